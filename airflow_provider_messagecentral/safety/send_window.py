"""
Send windows (quiet hours): when a campaign may go out, and when a closed window opens again.

All time arithmetic is done with pendulum in the window's own time zone, so windows stay right across
daylight-saving changes (a window opening at 02:30 on a spring-forward night opens at 03:30, the first moment
that exists) and across midnight (``("21:00", "06:00", "Europe/London")`` is one window per night).

The default: ``PROMOTIONAL`` traffic to Indian numbers (+91) only goes out 09:00-21:00 Asia/Kolkata (TRAI's
rules for commercial communication); ``TRANSACTIONAL`` and ``OTP`` traffic is not restricted. A connection
extra ``send_window`` replaces the promotional default; a task's ``send_window`` argument wins over both and
applies to every message type; ``None`` (or ``"off"``) switches windows off.

Tests replace :func:`now` (and :func:`sleep`, used by the trigger) to travel in time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pendulum
from pendulum import DateTime

from airflow_provider_messagecentral.client.window import SendWindow, parse_send_window
from airflow_provider_messagecentral.exceptions import MessageCentralValidationError

#: ``send_window="default"`` (the operators' default): the connection's extra, else the promotional rule.
DEFAULT = "default"
ON_OUTSIDE_WINDOW = ("defer", "skip", "fail")


def now() -> DateTime:
    """The current time (UTC). Tests patch this function to travel in time."""
    return pendulum.now("UTC")


async def sleep(seconds: float) -> None:
    """Wait (the trigger's sleep). Tests patch this together with :func:`now`."""
    await asyncio.sleep(seconds)


#: The default window of promotional traffic to Indian numbers.
INDIA_PROMOTIONAL_WINDOW = SendWindow("09:00", "21:00", "Asia/Kolkata")


def check_send_window_arg(value: object) -> None:
    """Validate a task's ``send_window`` argument when it holds no Jinja (else it is checked at execute)."""
    if value == DEFAULT:
        return
    if isinstance(value, str) and ("{{" in value or "{%" in value):
        return
    if isinstance(value, (list, tuple)) and any(isinstance(v, str) and "{{" in v for v in value):
        return
    parse_send_window(value)


def check_on_outside_window(value: object) -> str:
    if value not in ON_OUTSIDE_WINDOW:
        raise MessageCentralValidationError(f"on_outside_window must be 'defer', 'skip' or 'fail', got {value!r}")
    return str(value)


@dataclass(frozen=True)
class WindowRule:
    """
    The send window that applies to one campaign, and why.

    :param window: the window, or ``None`` when sends are not restricted.
    :param source: where it comes from: ``"task"``, ``"connection"``, ``"default"`` or ``"none"``.
    :param reason: one sentence for the log and the preview.
    """

    window: SendWindow | None
    source: str
    reason: str


def resolve_send_window(
    task_value: object,
    connection_value: object,
    *,
    message_type: str,
    country_codes: Iterable[str],
) -> WindowRule:
    """
    Which window applies: the task's argument (any message type), else for ``PROMOTIONAL`` traffic the
    connection's ``send_window`` extra, else for promotional traffic to Indian numbers 09:00-21:00 IST.

    :param task_value: the operator's ``send_window`` (``"default"`` when not given).
    :param connection_value: the connection's ``send_window`` extra (``"default"`` when not set, ``None`` when
        it switches windows off).
    :param message_type: ``PROMOTIONAL``, ``TRANSACTIONAL`` or ``OTP`` as the request will carry it.
    :param country_codes: dialling codes of the campaign's recipients.
    """
    if task_value != DEFAULT:
        window = parse_send_window(task_value)
        if window is None:
            return WindowRule(None, "task", "send_window=None on the task: no send window")
        return WindowRule(window, "task", f"send_window {window.describe()} set on the task")
    if message_type.upper() != "PROMOTIONAL":
        return WindowRule(None, "none", f"{message_type.upper()} traffic has no default send window")
    if connection_value != DEFAULT:
        window = parse_send_window(connection_value)
        if window is None:
            return WindowRule(None, "connection", "the connection's send_window extra switches windows off")
        return WindowRule(window, "connection", f"the connection's send_window {window.describe()}")
    if "91" in set(country_codes):
        window = INDIA_PROMOTIONAL_WINDOW
        return WindowRule(window, "default", f"default for PROMOTIONAL traffic to Indian numbers: {window.describe()}")
    return WindowRule(None, "none", "no send window applies (PROMOTIONAL traffic outside India, none configured)")


def window_decision(rule: WindowRule, on_outside_window: str, moment: DateTime) -> dict[str, Any]:
    """
    The window decision as shown in a preview and the log: JSON-able.

    ``{"window": "09:00-21:00 Asia/Kolkata" | None, "source", "reason", "now", "open": bool,
    "opens_at": ISO | None, "closes_at": ISO | None, "action": "send" | "defer" | "skip" | "fail"}``
    """
    window = rule.window
    if window is None:
        return {
            "window": None,
            "source": rule.source,
            "reason": rule.reason,
            "now": moment.in_timezone("UTC").isoformat(),
            "open": True,
            "opens_at": None,
            "closes_at": None,
            "action": "send",
        }
    closes = window.closes_at(moment)
    is_open = closes is not None
    return {
        "window": window.describe(),
        "source": rule.source,
        "reason": rule.reason,
        "now": moment.in_timezone(window.tz).isoformat(),
        "open": is_open,
        "opens_at": None if is_open else window.next_open(moment).isoformat(),
        "closes_at": closes.isoformat() if closes is not None else None,
        "action": "send" if is_open else on_outside_window,
    }


__all__ = [
    "DEFAULT",
    "INDIA_PROMOTIONAL_WINDOW",
    "ON_OUTSIDE_WINDOW",
    "SendWindow",
    "WindowRule",
    "check_on_outside_window",
    "check_send_window_arg",
    "now",
    "parse_send_window",
    "resolve_send_window",
    "sleep",
    "window_decision",
]
