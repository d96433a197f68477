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
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pendulum
from pendulum import DateTime

from airflow_provider_messagecentral.exceptions import MessageCentralValidationError

#: ``send_window="default"`` (the operators' default): the connection's extra, else the promotional rule.
DEFAULT = "default"
ON_OUTSIDE_WINDOW = ("defer", "skip", "fail")
OFF_WORDS = frozenset({"off", "none", "null", "false", "no", "disabled"})
_TIME_RE = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_TEXT_RE = re.compile(r"^\s*(\d{1,2}:\d{2})\s*-\s*(\d{1,2}:\d{2})\s+(\S+)\s*$")


def now() -> DateTime:
    """The current time (UTC). Tests patch this function to travel in time."""
    return pendulum.now("UTC")


async def sleep(seconds: float) -> None:
    """Wait (the trigger's sleep). Tests patch this together with :func:`now`."""
    await asyncio.sleep(seconds)


def _parse_time(value: object, what: str) -> tuple[int, int]:
    text = str(value).strip()
    match = _TIME_RE.match(text)
    if not match:
        raise MessageCentralValidationError(f"send_window {what} must be a time like '09:00', got {value!r}")
    return int(match.group(1)), int(match.group(2))


@dataclass(frozen=True)
class SendWindow:
    """
    A daily window in a time zone during which messages may go out: ``start`` inclusive, ``end`` exclusive.

    A window whose end is before its start crosses midnight. Start and end may not be equal.

    :param start: opening time, ``"HH:MM"``.
    :param end: closing time, ``"HH:MM"``.
    :param tz: IANA time zone name, e.g. ``"Asia/Kolkata"``.

    Example::

        window = SendWindow("09:00", "21:00", "Asia/Kolkata")
        window.is_open(pendulum.datetime(2024, 5, 1, 20, 59, tz="Asia/Kolkata"))  # True
        window.next_open(pendulum.datetime(2024, 5, 1, 21, 0, tz="Asia/Kolkata"))  # 2024-05-02T09:00:00+05:30
    """

    start: str
    end: str
    tz: str

    def __post_init__(self) -> None:
        start, end = _parse_time(self.start, "start"), _parse_time(self.end, "end")
        if start == end:
            raise MessageCentralValidationError(
                f"send_window start and end are both {self.start!r}: an empty window would never open"
            )
        try:
            pendulum.timezone(self.tz)
        except Exception:
            raise MessageCentralValidationError(
                f"send_window time zone {self.tz!r} is unknown (use an IANA name such as 'Asia/Kolkata')"
            ) from None
        object.__setattr__(self, "start", f"{start[0]:02d}:{start[1]:02d}")
        object.__setattr__(self, "end", f"{end[0]:02d}:{end[1]:02d}")

    def describe(self) -> str:
        """``"09:00-21:00 Asia/Kolkata"`` (also the text form accepted by :func:`parse_send_window`)."""
        return f"{self.start}-{self.end} {self.tz}"

    def _openings(self, moment: DateTime) -> Iterable[tuple[DateTime, DateTime]]:
        """The window's instances (open, close) around ``moment``: from the day before to the day after."""
        local = moment.in_timezone(self.tz)
        sh, sm = _parse_time(self.start, "start")
        eh, em = _parse_time(self.end, "end")
        crosses = (eh, em) < (sh, sm)
        for offset in (-1, 0, 1, 2):
            day = local.date().add(days=offset)
            opens = pendulum.datetime(day.year, day.month, day.day, sh, sm, tz=self.tz)
            end_day = day.add(days=1) if crosses else day
            closes = pendulum.datetime(end_day.year, end_day.month, end_day.day, eh, em, tz=self.tz)
            yield opens, closes

    def is_open(self, moment: DateTime) -> bool:
        """Whether messages may go out at ``moment``."""
        return self.closes_at(moment) is not None

    def closes_at(self, moment: DateTime) -> DateTime | None:
        """When the window that is open at ``moment`` closes; ``None`` when it is closed at ``moment``."""
        for opens, closes in self._openings(moment):
            if opens <= moment < closes:
                return closes.in_timezone(self.tz)
        return None

    def next_open(self, moment: DateTime) -> DateTime:
        """``moment`` when the window is open then, else the next opening (in the window's zone)."""
        if self.is_open(moment):
            return moment.in_timezone(self.tz)
        return min(opens for opens, _ in self._openings(moment) if opens > moment).in_timezone(self.tz)


#: The default window of promotional traffic to Indian numbers.
INDIA_PROMOTIONAL_WINDOW = SendWindow("09:00", "21:00", "Asia/Kolkata")


def parse_send_window(value: object) -> SendWindow | None:
    """
    Read a send window: ``(start, end, tz)`` (tuple, list or its JSON text), the text
    ``"09:00-21:00 Asia/Kolkata"``, a :class:`SendWindow`, or ``None``/``"off"`` for no window.

    :raises MessageCentralValidationError: naming what is wrong with the value.
    """
    if value is None or isinstance(value, SendWindow):
        return value
    if isinstance(value, str):
        text = value.strip()
        if not text or text.lower() in OFF_WORDS:
            return None
        if text.startswith("[") or text.startswith("("):
            try:
                parsed = json.loads(text.replace("(", "[").replace(")", "]").replace("'", '"'))
            except ValueError:
                raise MessageCentralValidationError(f"send_window {value!r} cannot be read as a list") from None
            return parse_send_window(parsed)
        match = _TEXT_RE.match(text)
        if not match:
            raise MessageCentralValidationError(
                f"send_window must look like '09:00-21:00 Asia/Kolkata' or ('09:00', '21:00', 'Asia/Kolkata'), "
                f"got {value!r}"
            )
        return SendWindow(match.group(1), match.group(2), match.group(3))
    if isinstance(value, (list, tuple)):
        if len(value) != 3 or not all(isinstance(v, str) for v in value):
            raise MessageCentralValidationError(
                f"send_window must be (start, end, time zone) as three strings, got {value!r}"
            )
        return SendWindow(value[0], value[1], value[2])
    raise MessageCentralValidationError(
        f"send_window must be (start, end, time zone), a text like '09:00-21:00 Asia/Kolkata' or None, "
        f"got {type(value).__name__}"
    )


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
