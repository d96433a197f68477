"""
The send window value a connection (or a task) may carry: :class:`SendWindow` and its one parser.

The rules that decide which window applies and what to do outside it live in ``safety.send_window``; this
module holds only the value, so connection settings can validate their ``send_window`` extra.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

import pendulum
from pendulum import DateTime

from airflow_provider_messagecentral.exceptions import MessageCentralValidationError

#: Texts that mean "no send window".
OFF_WORDS = frozenset({"off", "none", "null", "false", "no", "disabled"})
_TIME_RE = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_TEXT_RE = re.compile(r"^\s*(\d{1,2}:\d{2})\s*-\s*(\d{1,2}:\d{2})\s+(\S+)\s*$")


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

    A window whose end is before its start crosses midnight. Start and end may not be equal. All time
    arithmetic is done with pendulum in the window's own time zone, so windows stay right across
    daylight-saving changes.

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
