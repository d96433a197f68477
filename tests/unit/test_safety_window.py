"""Send windows: parsing, open/closed, next opening across midnight and DST, which window applies; the trigger."""

from __future__ import annotations

import asyncio

import pendulum
import pytest

from airflow_provider_messagecentral.client.settings import MessageCentralSettings
from airflow_provider_messagecentral.exceptions import MessageCentralValidationError
from airflow_provider_messagecentral.safety import send_window
from airflow_provider_messagecentral.safety.send_window import (
    DEFAULT,
    SendWindow,
    parse_send_window,
    resolve_send_window,
    window_decision,
)
from airflow_provider_messagecentral.triggers.send_window import SendWindowTrigger

IST = "Asia/Kolkata"


def ist(day: int, hour: int, minute: int = 0) -> pendulum.DateTime:
    return pendulum.datetime(2024, 5, day, hour, minute, tz=IST)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (("09:00", "21:00", IST), SendWindow("09:00", "21:00", IST)),
        (["9:00", "21:00", IST], SendWindow("09:00", "21:00", IST)),
        ("09:00-21:00 Asia/Kolkata", SendWindow("09:00", "21:00", IST)),
        ('["22:00", "06:30", "Europe/London"]', SendWindow("22:00", "06:30", "Europe/London")),
        ("('09:00', '21:00', 'Asia/Kolkata')", SendWindow("09:00", "21:00", IST)),
        (None, None),
        ("off", None),
        ("None", None),
    ],
)
def test_parse_send_window(value: object, expected: SendWindow | None) -> None:
    assert parse_send_window(value) == expected


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (("9", "21:00", IST), "start must be a time like '09:00'"),
        (("09:00", "24:00", IST), "end must be a time"),
        (("09:00", "09:00", IST), "empty window"),
        (("09:00", "21:00", "Mars/Olympus"), "time zone 'Mars/Olympus' is unknown"),
        (("09:00", "21:00"), "three strings"),
        ("nine to nine", "must look like"),
        (9, "got int"),
    ],
)
def test_bad_send_windows_say_what_is_wrong(value: object, error: str) -> None:
    with pytest.raises(MessageCentralValidationError, match=error):
        parse_send_window(value)


def test_daytime_window_opens_and_closes() -> None:
    window = SendWindow("09:00", "21:00", IST)
    assert not window.is_open(ist(1, 8, 59))
    assert window.is_open(ist(1, 9, 0))  # start inclusive
    assert window.is_open(ist(1, 20, 59))
    assert not window.is_open(ist(1, 21, 0))  # end exclusive
    assert window.closes_at(ist(1, 20, 55)) == ist(1, 21, 0)
    assert window.next_open(ist(1, 21, 0)) == ist(2, 9, 0)
    assert window.next_open(ist(1, 3, 0)) == ist(1, 9, 0)
    assert window.next_open(ist(1, 12, 0)) == ist(1, 12, 0)
    # The same moment in UTC is judged in the window's zone: 15:30 UTC is 21:00 IST.
    assert not window.is_open(pendulum.datetime(2024, 5, 1, 15, 30, tz="UTC"))


def test_window_crossing_midnight() -> None:
    window = SendWindow("22:00", "06:00", IST)
    assert window.is_open(ist(1, 23, 30))
    assert window.is_open(ist(2, 5, 59))
    assert not window.is_open(ist(2, 6, 0))
    assert window.closes_at(ist(1, 23, 30)) == ist(2, 6, 0)
    assert window.closes_at(ist(2, 1, 0)) == ist(2, 6, 0)
    assert window.next_open(ist(2, 12, 0)) == ist(2, 22, 0)


def test_windows_follow_daylight_saving_time() -> None:
    london = SendWindow("09:00", "21:00", "Europe/London")
    # 2024-03-31: clocks go forward at 01:00 GMT. 09:00 local is 08:00 UTC that day, 09:00 UTC the day before.
    before = london.next_open(pendulum.datetime(2024, 3, 29, 22, 0, tz="UTC"))
    after = london.next_open(pendulum.datetime(2024, 3, 30, 22, 0, tz="UTC"))
    assert before.in_timezone("UTC") == pendulum.datetime(2024, 3, 30, 9, 0, tz="UTC")
    assert after.in_timezone("UTC") == pendulum.datetime(2024, 3, 31, 8, 0, tz="UTC")
    # A window opening at 01:30 on the night 01:00-02:00 does not exist opens at the first moment that does.
    night = SendWindow("01:30", "05:00", "Europe/London")
    opens = night.next_open(pendulum.datetime(2024, 3, 30, 23, 0, tz="UTC"))
    assert opens.in_timezone("UTC") == pendulum.datetime(2024, 3, 31, 1, 30, tz="UTC")
    assert night.is_open(pendulum.datetime(2024, 3, 31, 1, 45, tz="UTC"))
    # On the 25-hour day in October, 21:00 local is 21:00 UTC (GMT again).
    closes = london.closes_at(pendulum.datetime(2024, 10, 27, 12, 0, tz="UTC"))
    assert closes is not None and closes.in_timezone("UTC") == pendulum.datetime(2024, 10, 27, 21, 0, tz="UTC")


@pytest.mark.parametrize(
    ("task", "connection", "message_type", "codes", "expected", "source"),
    [
        (DEFAULT, DEFAULT, "PROMOTIONAL", {"91"}, "09:00-21:00 Asia/Kolkata", "default"),
        (DEFAULT, DEFAULT, "PROMOTIONAL", {"44"}, None, "none"),
        (DEFAULT, DEFAULT, "TRANSACTIONAL", {"91"}, None, "none"),
        (DEFAULT, DEFAULT, "OTP", {"91"}, None, "none"),
        (DEFAULT, SendWindow("10:00", "20:00", IST), "PROMOTIONAL", {"91"}, "10:00-20:00 Asia/Kolkata", "connection"),
        (DEFAULT, None, "PROMOTIONAL", {"91"}, None, "connection"),
        (DEFAULT, SendWindow("10:00", "20:00", IST), "TRANSACTIONAL", {"91"}, None, "none"),
        (None, DEFAULT, "PROMOTIONAL", {"91"}, None, "task"),
        ("off", SendWindow("10:00", "20:00", IST), "PROMOTIONAL", {"91"}, None, "task"),
        (("08:00", "18:00", "Europe/Berlin"), DEFAULT, "TRANSACTIONAL", {"49"}, "08:00-18:00 Europe/Berlin", "task"),
    ],
)
def test_which_window_applies(
    task: object, connection: object, message_type: str, codes: set[str], expected: str | None, source: str
) -> None:
    rule = resolve_send_window(task, connection, message_type=message_type, country_codes=codes)
    assert (rule.window.describe() if rule.window else None, rule.source) == (expected, source)


def test_connection_extras_parse_window_price_and_budget() -> None:
    def settings(**extra: object) -> MessageCentralSettings:
        return MessageCentralSettings.from_parts(conn_id="c", host=None, login="C-1", password="p", extra=extra)

    plain = settings()
    assert (plain.send_window, plain.send_window_set, plain.price_per_segment, plain.max_cost) == (
        None,
        False,
        None,
        None,
    )
    custom = settings(send_window="10:00-20:00 Asia/Kolkata", price_per_segment="0.18", max_cost=5000)
    assert custom.send_window == SendWindow("10:00", "20:00", IST) and custom.send_window_set
    assert (custom.price_per_segment, custom.max_cost) == (0.18, 5000.0)
    off = settings(send_window="off")
    assert off.send_window is None and off.send_window_set
    with pytest.raises(ValueError, match="connection extra 'send_window'"):
        settings(send_window="always")
    with pytest.raises(ValueError, match="'price_per_segment' must be a number"):
        settings(price_per_segment="cheap")


def test_window_decision_is_json_for_the_preview() -> None:
    rule = resolve_send_window(DEFAULT, DEFAULT, message_type="PROMOTIONAL", country_codes=["91"])
    closed = window_decision(rule, "skip", ist(1, 23, 30))
    assert closed == {
        "window": "09:00-21:00 Asia/Kolkata",
        "source": "default",
        "reason": "default for PROMOTIONAL traffic to Indian numbers: 09:00-21:00 Asia/Kolkata",
        "now": "2024-05-01T23:30:00+05:30",
        "open": False,
        "opens_at": "2024-05-02T09:00:00+05:30",
        "closes_at": None,
        "action": "skip",
    }
    assert window_decision(rule, "defer", ist(1, 12))["action"] == "send"


def test_trigger_serializes_and_fires_once_the_moment_is_reached(monkeypatch: pytest.MonkeyPatch) -> None:
    trigger = SendWindowTrigger(moment="2024-05-02T09:00:00+05:30", window="09:00-21:00 Asia/Kolkata")
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_messagecentral.triggers.send_window.SendWindowTrigger"
    assert SendWindowTrigger(**kwargs).moment == trigger.moment

    clock = {"now": ist(1, 21, 0)}
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        clock["now"] = clock["now"].add(seconds=seconds)

    monkeypatch.setattr(send_window, "now", lambda: clock["now"])
    monkeypatch.setattr(send_window, "sleep", fake_sleep)

    async def first_event() -> object:
        return await anext(trigger.run())

    event = asyncio.run(first_event())
    assert event.payload == {"status": "open", "moment": trigger.moment, "window": trigger.window}  # type: ignore[attr-defined]
    assert clock["now"] >= ist(2, 9, 0)
    assert max(slept) <= 300  # it re-reads the clock at least every five minutes
