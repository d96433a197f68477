"""
Keep MessageCentral's callbacks out of the api-server's access log.

Airflow 3's api-server logs every request it answers through one structlog logger, ``http.access``
(``HttpAccessLogMiddleware``): one INFO line per delivery-report callback, 83k lines for an 82k-recipient
campaign. :class:`QuietCallbackAccessLog` drops the lines of *successful* callback POSTs and keeps the rest
(callbacks answered 4xx/5xx, every other request).
"""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from typing import Any

import structlog

#: The logger name of the api-server's access log (``airflow.api_fastapi.common.http_access_log``).
ACCESS_LOGGER = "http.access"


class QuietCallbackAccessLog:
    """
    structlog processor: drop the ``http.access`` event of a callback POST answered below 400.

    :param url_prefix: where the receiver is mounted (the plugin's ``/messagecentral``).

    Example::

        quiet = QuietCallbackAccessLog("/messagecentral")
        structlog.configure(processors=[quiet, *structlog.get_config()["processors"]])
    """

    def __init__(self, url_prefix: str) -> None:
        self.url_prefix = url_prefix
        self._path = re.compile(rf"{re.escape(url_prefix.rstrip('/'))}/callback(/[^/]*)?/?")

    def __call__(self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> Any:
        name = event_dict.get("logger_name") or event_dict.get("logger")
        if name != ACCESS_LOGGER or event_dict.get("method") != "POST":
            return event_dict
        status = event_dict.get("status_code")
        path = event_dict.get("path")
        if isinstance(status, int) and 0 < status < 400 and isinstance(path, str) and self._path.fullmatch(path):
            raise structlog.DropEvent
        return event_dict


def quiet_callback_access_log(url_prefix: str) -> bool:
    """
    Put :class:`QuietCallbackAccessLog` first in structlog's processor chain (the api-server has configured
    structlog by the time it loads plugins). Idempotent; returns whether it was added.
    """
    processors = list(structlog.get_config()["processors"])
    if any(isinstance(p, QuietCallbackAccessLog) and p.url_prefix == url_prefix for p in processors):
        return False
    structlog.configure(processors=[QuietCallbackAccessLog(url_prefix), *processors])
    return True
