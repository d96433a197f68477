"""Pulled delivery reports: every observed shape of a getDetailedReports answer, and the hook paging through it."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import requests
from fake_http import FakeMessageCentral, status

from airflow_provider_messagecentral.client.pulled import PulledReport, parse_pulled_page, pulled_mobile, pulled_time
from airflow_provider_messagecentral.client.report_query import ReportQuery
from airflow_provider_messagecentral.client.tokens import TokenCache
from airflow_provider_messagecentral.exceptions import (
    MessageCentralAuthError,
    MessageCentralError,
    MessageCentralValidationError,
)
from airflow_provider_messagecentral.hooks.messagecentral import MessageCentralHook

ROW = {
    "countryCode": "91",
    "mobileNumber": "9816111111",
    "senderId": "UTOMOB",
    "templateId": None,
    "messageBody": "Sale today",
    "status": "DELIVRD",
    "errorCode": 0,
    "createdAt": "2026-12-06T10:00:00.000",
    "deliveredAt": "2026-12-06T10:00:04.000",
    "updatedAt": "2026-12-06T10:00:04.000",
}


def body(rows: list[Any], count: Any = "rows", code: Any = 200) -> dict[str, Any]:
    """An answer of the DTO's shape; ``count`` defaults to the number of rows."""
    return {
        "responseCode": code,
        "message": "SUCCESS",
        "data": {"data": rows, "count": len(rows) if count == "rows" else count},
    }


# -- the parser -------------------------------------------------------------------------------------------


def test_row_as_messagecentral_app_reads_it() -> None:
    page = parse_pulled_page(body([ROW]))
    assert page.total == 1 and page.skipped == [] and page.rows == 1
    assert page.reports == [
        PulledReport(
            mobile="919816111111",
            status="DELIVRD",
            error_code="0",
            created_at=datetime(2026, 12, 6, 10, 0, 0),
            delivered_at=datetime(2026, 12, 6, 10, 0, 4),
            sender_id="UTOMOB",
            template_id=None,
            message_body="Sale today",
            updated_at=datetime(2026, 12, 6, 10, 0, 4),
        )
    ]


@pytest.mark.parametrize("code", [200, "200", " 200 ", None])
def test_response_code_int_string_or_absent(code: Any) -> None:
    assert len(parse_pulled_page(body([ROW], code=code)).reports) == 1


@pytest.mark.parametrize("code", [500, "501", "INVALID_CUSTOMER_ID"])
def test_refused_query_raises_with_its_code(code: Any) -> None:
    with pytest.raises(MessageCentralError, match="refused the query") as info:
        parse_pulled_page({"responseCode": code, "message": "INVALID_CUSTOMER_ID", "data": None})
    assert info.value.code == code


def test_data_as_plain_list_has_no_total() -> None:
    page = parse_pulled_page({"responseCode": 200, "data": [ROW, ROW]})
    assert len(page.reports) == 2 and page.total is None


@pytest.mark.parametrize("data", [None, {"data": None, "count": 0}, {"count": 0}, {"data": []}])
def test_empty_answers_are_empty_pages(data: Any) -> None:
    page = parse_pulled_page({"responseCode": 200, "message": "SUCCESS", "data": data})
    assert page.reports == [] and page.rows == 0


@pytest.mark.parametrize(("count", "total"), [(7, 7), ("7", 7), (None, None), ("many", None), (-1, None)])
def test_count_int_or_string(count: Any, total: int | None) -> None:
    assert parse_pulled_page(body([ROW], count=count)).total == total


@pytest.mark.parametrize(
    ("value", "kept"), [(0, "0"), ("0", "0"), (1, "1"), ("DLT_ERR", "DLT_ERR"), (None, None), ("", None)]
)
def test_error_code_int_or_string_kept_as_text(value: Any, kept: str | None) -> None:
    (report,) = parse_pulled_page(body([{**ROW, "errorCode": value}])).reports
    assert report.error_code == kept


def test_ids_as_ints_become_text() -> None:
    (report,) = parse_pulled_page(body([{**ROW, "senderId": 123456, "templateId": 1707161234567890123}])).reports
    assert report.sender_id == "123456" and report.template_id == "1707161234567890123"


def test_status_is_upper_cased() -> None:
    (report,) = parse_pulled_page(body([{**ROW, "status": " undeliv "}])).reports
    assert report.status == "UNDELIV"


def test_rows_without_number_or_status_are_skipped_with_why() -> None:
    rows = [ROW, {**ROW, "mobileNumber": None}, {**ROW, "status": ""}, "junk", {**ROW, "mobileNumber": "n/a"}]
    page = parse_pulled_page(body(rows))
    assert len(page.reports) == 1 and page.rows == 5
    assert page.skipped == [
        "row 2: no usable mobileNumber",
        "row 3: no status",
        "row 4: not an object (str)",
        "row 5: no usable mobileNumber",
    ]


@pytest.mark.parametrize("junk", [[], "text", None, 3])
def test_answer_that_is_not_an_object_raises(junk: Any) -> None:
    with pytest.raises(MessageCentralError, match="expected a JSON object"):
        parse_pulled_page(junk)


def test_rows_that_are_not_a_list_raise() -> None:
    with pytest.raises(MessageCentralError, match="not a list of rows"):
        parse_pulled_page({"responseCode": 200, "data": {"data": {"a": 1}}})


@pytest.mark.parametrize(
    ("country", "number", "mobile"),
    [
        ("91", "9816111111", "919816111111"),  # national, as the app shows it
        ("+91", "98161 11111", "919816111111"),
        (91, 9816111111, "919816111111"),  # numbers as JSON ints
        ("91", "9198765432", "919198765432"),  # a national number that starts with 91 stays national
        ("91", "919816111111", "919816111111"),  # already carries the code
        ("91", "+919816111111", "919816111111"),
        ("91", "00919816111111", "919816111111"),
        (None, "919816111111", "919816111111"),
        ("", "447700900123", "447700900123"),
        ("44", "7700900123", "447700900123"),
    ],
)
def test_mobile_carries_the_country_code_once(country: Any, number: Any, mobile: str) -> None:
    assert pulled_mobile(country, number) == mobile


@pytest.mark.parametrize(
    ("value", "when"),
    [
        ("2026-12-06T10:00:00", datetime(2026, 12, 6, 10)),
        ("2026-12-06 10:00:00", datetime(2026, 12, 6, 10)),
        ("2026-12-06T10:00:00.250Z", datetime(2026, 12, 6, 10, 0, 0, 250000)),
        ("2026-12-06T15:30:00+05:30", datetime(2026, 12, 6, 10)),
        (1796551200, datetime(2026, 12, 6, 10)),
        (1796551200000, datetime(2026, 12, 6, 10)),
        ("yesterday", None),
        ("", None),
        (None, None),
        (True, None),
    ],
)
def test_times_become_naive_utc(value: Any, when: datetime | None) -> None:
    assert pulled_time(value) == when


# -- the query --------------------------------------------------------------------------------------------


def test_query_asks_whole_days_around_the_window_as_the_app_writes_them() -> None:
    query = ReportQuery.build("C-1", datetime(2026, 12, 6, 10), datetime(2026, 12, 6, 11), page_size=100)
    assert query.params(0) == {
        "customerId": "C-1",
        "from": "5/12/2026",
        "to": "7/12/2026",
        "pageNo": "0",
        "size": "100",
        "type": "SMS",
    }
    assert query.params(3)["pageNo"] == "3"


def test_query_reads_aware_times_in_utc() -> None:
    ist = timezone(timedelta(hours=5, minutes=30))
    query = ReportQuery.build("C-1", datetime(2026, 1, 1, 16, tzinfo=ist), datetime(2026, 1, 1, 17, tzinfo=ist))
    assert (query.date_from, query.date_to) == ("31/12/2025", "2/1/2026")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"end": datetime(2026, 1, 1)}, "before start"),
        ({"page_size": 0}, "page_size"),
        ({"page_size": 5000}, "page_size"),
        ({"page_size": True}, "page_size"),
        ({"max_pages": 0}, "max_pages"),
        ({"message_type": "WHATSAPP"}, "message_type"),
        ({"start": "2026-01-01"}, "start must be a datetime"),
    ],
)
def test_query_checks_its_arguments(kwargs: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {"start": datetime(2026, 1, 2), "end": datetime(2026, 1, 3), **kwargs}
    with pytest.raises(MessageCentralValidationError, match=match):
        ReportQuery.build("C-1", **args)


# -- the hook ---------------------------------------------------------------------------------------------


@pytest.fixture
def hook(monkeypatch: pytest.MonkeyPatch, mocker: Any) -> tuple[MessageCentralHook, FakeMessageCentral]:
    conn = {
        "conn_type": "messagecentral",
        "host": "https://mc.example.test",
        "login": "C-24C217810E09483",
        "password": "S3cret-pass!",
        "extra": {"email": "ops@example.com", "country": "91"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_MC_PULL", json.dumps(conn))
    mocker.patch("airflow_provider_messagecentral.client.retries.time.sleep")
    fake = FakeMessageCentral()
    hook = MessageCentralHook("mc_pull", token_cache=TokenCache())
    hook.get_conn().mount("https://", fake)
    return hook, fake


def rows(n: int, first: int = 0) -> list[dict[str, Any]]:
    return [{**ROW, "mobileNumber": f"98161{first + i:05d}"} for i in range(n)]


WINDOW = (datetime(2026, 12, 6, 9), datetime(2026, 12, 6, 12))


def test_hook_pages_until_a_short_page(hook: Any) -> None:
    h, fake = hook
    fake.send_replies.extend(
        [
            {"json": body(rows(3, 0), count=None)},
            {"json": body(rows(3, 3), count=None)},
            {"json": body(rows(1, 6), count=None)},
        ]
    )
    got = list(h.get_detailed_reports(*WINDOW, page_size=3))
    assert [r.mobile for r in got] == [f"9198161{i:05d}" for i in range(7)]
    calls = [c for c in fake.calls if c.path == "/reports/getDetailedReports"]
    assert [c.params["pageNo"] for c in calls] == ["0", "1", "2"]
    assert all(c.method == "POST" and c.headers["authToken"] == "tok-1" for c in calls)
    assert calls[0].params["customerId"] == "C-24C217810E09483"


def test_hook_stops_once_count_rows_were_seen(hook: Any) -> None:
    h, fake = hook
    fake.send_replies.extend([{"json": body(rows(2), count=4)}, {"json": body(rows(2, 2), count="4")}])
    assert len(list(h.get_detailed_reports(*WINDOW, page_size=2))) == 4
    assert len(fake.send_calls) == 0 and len(fake.calls) == 3  # one token call, two pages


def test_hook_stops_on_an_empty_page(hook: Any) -> None:
    h, fake = hook
    fake.send_replies.extend([{"json": body(rows(2), count="")}, {"json": {"responseCode": 200, "data": None}}])
    assert len(list(h.get_detailed_reports(*WINDOW, page_size=2))) == 2
    assert len(fake.calls) == 3


def test_hook_reads_at_most_max_pages_and_warns(hook: Any, caplog: pytest.LogCaptureFixture) -> None:
    h, fake = hook
    fake.send_replies.extend([{"json": body(rows(2, 2 * i), count=100)} for i in range(5)])
    assert len(list(h.get_detailed_reports(*WINDOW, page_size=2, max_pages=3))) == 6
    assert len(fake.calls) == 4
    assert "stopped after max_pages=3" in caplog.text


def test_skipped_rows_are_logged_and_do_not_end_paging(hook: Any, caplog: pytest.LogCaptureFixture) -> None:
    h, fake = hook
    fake.send_replies.extend(
        [{"json": body([ROW, {**ROW, "status": None}], count=3)}, {"json": body(rows(1, 5), count=3)}]
    )
    assert len(list(h.get_detailed_reports(*WINDOW, page_size=2))) == 2
    assert "1 row(s) skipped (row 2: no status)" in caplog.text


def test_transient_failures_and_timeouts_are_retried_for_reads(hook: Any) -> None:
    h, fake = hook
    fake.send_replies.extend(
        [status(503), requests.ReadTimeout("slow"), status(429, **{"Retry-After": "0"}), {"json": body(rows(1))}]
    )
    assert len(list(h.get_detailed_reports(*WINDOW))) == 1
    assert len([c for c in fake.calls if c.path.endswith("getDetailedReports")]) == 4


def test_expired_token_is_refreshed_once(hook: Any) -> None:
    h, fake = hook
    fake.token_replies.extend([{"json": {"token": "old"}}, {"json": {"token": "new"}}])
    fake.send_replies.extend([status(401), {"json": body(rows(1))}])
    assert len(list(h.get_detailed_reports(*WINDOW))) == 1
    pages = [c for c in fake.calls if c.path.endswith("getDetailedReports")]
    assert [c.headers["authToken"] for c in pages] == ["old", "new"]


def test_refused_twice_is_an_auth_error(hook: Any) -> None:
    h, fake = hook
    fake.send_replies.extend([status(401), status(403)])
    with pytest.raises(MessageCentralAuthError):
        list(h.get_detailed_reports(*WINDOW))


def test_http_error_names_the_page(hook: Any) -> None:
    h, fake = hook
    fake.send_replies.extend(
        [{"json": body(rows(2), count=9)}, status(400, {"responseCode": 400, "message": "BAD_REQUEST"})]
    )
    reports = h.get_detailed_reports(*WINDOW, page_size=2)
    with pytest.raises(MessageCentralError, match="detailed reports page 2: MessageCentral answered HTTP 400"):
        list(reports)


def test_bad_arguments_fail_before_any_request(hook: Any) -> None:
    h, fake = hook
    with pytest.raises(MessageCentralValidationError, match="page_size"):
        h.get_detailed_reports(*WINDOW, page_size=-1)
    assert fake.calls == []


def test_pages_share_the_hooks_rate_limiter(hook: Any, mocker: Any) -> None:
    h, fake = hook
    acquire = mocker.spy(h.rate_limiter, "acquire")
    fake.send_replies.extend([{"json": body(rows(2), count=4)}, {"json": body(rows(2, 2), count=4)}])
    list(h.get_detailed_reports(*WINDOW, page_size=2))
    h.send_message("9816111111", "hi")
    assert acquire.call_count == 3
