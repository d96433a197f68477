"""
The Airflow names that moved between the Airflow versions this provider supports (3.1 and newer).

Import them from here, never from their Airflow module directly: each is taken from where Airflow 3.2+ keeps it
(the Task SDK) and, on Airflow 3.1, from where 3.1 keeps it. Everything else comes straight from ``airflow.sdk``.

========================================  ==============================  ==========================
name                                      Airflow 3.2+ (task-sdk 1.2+)    Airflow 3.1 (task-sdk 1.1)
========================================  ==============================  ==========================
``conf``                                  ``airflow.sdk``                 ``airflow.configuration``
``AirflowFailException``, ``Skip``,       ``airflow.sdk.exceptions``      ``airflow.exceptions``
``SensorTimeout``, ``NotFound``,
``TaskDeferred``
``Connection.aextra_dejson()``            task-sdk 1.3.2+ (Airflow 3.3.2)  :func:`aextra_dejson` here
========================================  ==============================  ==========================

Example::

    from airflow_provider_messagecentral.compat import AirflowFailException, conf
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import conf
    from airflow.sdk.exceptions import (
        AirflowFailException,
        AirflowNotFoundException,
        AirflowSensorTimeout,
        AirflowSkipException,
        TaskDeferred,
    )
else:
    try:
        from airflow.sdk import conf
    except ImportError:  # Airflow 3.1
        from airflow.configuration import conf
    try:
        from airflow.sdk.exceptions import (
            AirflowFailException,
            AirflowNotFoundException,
            AirflowSensorTimeout,
            AirflowSkipException,
            TaskDeferred,
        )
    except ImportError:  # Airflow 3.1
        from airflow.exceptions import (
            AirflowFailException,
            AirflowNotFoundException,
            AirflowSensorTimeout,
            AirflowSkipException,
            TaskDeferred,
        )


async def aextra_dejson(conn: Any) -> dict[str, Any]:
    """
    A connection's extras as a dict, from async code (a trigger) without blocking the event loop.

    ``Connection.aextra_dejson()`` where the Task SDK has it (1.3.2+, Airflow 3.3.2); before that the synchronous
    ``extra_dejson`` (which masks the secret extras, a call to the supervisor) runs in a thread.
    """
    method = getattr(conn, "aextra_dejson", None)
    if method is not None:
        return dict(await method())
    return dict(await asyncio.to_thread(lambda: conn.extra_dejson))


__all__ = [
    "AirflowFailException",
    "AirflowNotFoundException",
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "TaskDeferred",
    "aextra_dejson",
    "conf",
]
