"""SendWindowTrigger: wait in the triggerer (no worker slot held) until a closed send window opens."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pendulum
from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_messagecentral.safety import send_window

#: Longest single sleep: a trigger checks the clock at least this often (clock changes, suspended hosts).
MAX_SLEEP_SECONDS = 300.0


class SendWindowTrigger(BaseTrigger):
    """
    Fire once ``moment`` (an ISO 8601 time with offset) is reached: the opening of a send window.

    The send operators defer to it when ``on_outside_window="defer"`` and the window is closed, and resume
    into the send (the send ledger skips what was sent before the pause). The trigger sends nothing.

    .. code-block:: python

        self.defer(
            trigger=SendWindowTrigger(moment="2024-05-02T09:00:00+05:30", window="09:00-21:00 Asia/Kolkata"),
            method_name="execute_in_window",
        )

    :param moment: when to fire.
    :param window: the window's description, for logs only.
    """

    def __init__(self, moment: str, window: str = "") -> None:
        super().__init__()
        self.moment = moment
        self.window = window

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}", {"moment": self.moment, "window": self.window})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        target = pendulum.parse(self.moment)
        assert isinstance(target, pendulum.DateTime)
        self.log.info("Waiting for the send window %s to open at %s", self.window, self.moment)
        while True:
            remaining = (target - send_window.now()).total_seconds()
            if remaining <= 0:
                break
            await send_window.sleep(min(remaining, MAX_SLEEP_SECONDS))
        yield TriggerEvent({"status": "open", "moment": self.moment, "window": self.window})
