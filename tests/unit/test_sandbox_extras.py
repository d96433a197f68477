"""The sandbox's extras, without HTTP: detailed reports fall due with their callbacks; balance and error codes."""

from __future__ import annotations

import random
from typing import Any

import pytest

from airflow_provider_messagecentral.client.pulled import parse_pulled_page
from airflow_provider_messagecentral.sandbox.config import SandboxConfig
from airflow_provider_messagecentral.sandbox.delivery import Outcome, decide
from airflow_provider_messagecentral.sandbox.faults import parse_fault
from airflow_provider_messagecentral.sandbox.pulled import ReportsQuery, detailed_reports
from airflow_provider_messagecentral.sandbox.state import SandboxState
from airflow_provider_messagecentral.sandbox.validation import Recipient, SendRejected

T0 = 1796551200.0  # 2026-12-06 10:00:00 UTC
QUERY = {"customerId": "C-1", "from": "6/12/2026", "to": "06/12/2026", "pageNo": "0", "size": "10", "type": "sms"}


def outcome(i: int, status: str = "DELIVRD", due: float = T0 + 5) -> Outcome:
    return Outcome("91", f"98161{i:05d}", f"text {i}", "UTOMOB", None, "SMS", status, T0, due)


def test_rows_appear_once_due_and_parse_back() -> None:
    query = ReportsQuery.parse(QUERY, "C-1")
    outcomes = [outcome(0), outcome(1, "UNDELIV", due=T0 + 60)]
    assert detailed_reports(outcomes, query, now=T0 + 1)["data"] == {"data": [], "count": 0}
    body = detailed_reports(outcomes, query, now=T0 + 10)
    (report,) = parse_pulled_page(body).reports
    assert (report.mobile, report.status, report.error_code, report.message_body) == (
        "919816100000",
        "DELIVRD",
        "0",
        "text 0",
    )
    later = parse_pulled_page(detailed_reports(outcomes, query, now=T0 + 61, strings=True))
    assert [r.status for r in later.reports] == ["DELIVRD", "UNDELIV"] and later.total == 2
    assert later.reports[1].delivered_at is None and later.reports[1].error_code == "1"


def test_pages_and_days() -> None:
    outcomes = [outcome(i) for i in range(25)]
    page = lambda n: detailed_reports(outcomes, ReportsQuery.parse({**QUERY, "pageNo": str(n)}, "C-1"), now=T0 + 9)  # noqa: E731
    assert [len(page(n)["data"]["data"]) for n in range(4)] == [10, 10, 5, 0]
    other_day = ReportsQuery.parse({**QUERY, "from": "7/12/2026", "to": "8/12/2026"}, "C-1")
    assert detailed_reports(outcomes, other_day, now=T0 + 9)["data"]["count"] == 0


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"from": "2026-12-06"}, "'from' must be a date written d/M/yyyy"),
        ({"to": "5/12/2026"}, "'to' is before 'from'"),
        ({"pageNo": "-1"}, "'pageNo' must be an integer"),
        ({"size": "0"}, "'size' must be an integer"),
        ({"customerId": "C-2"}, "does not match"),
        ({"type": ""}, "missing required parameter 'type'"),
    ],
)
def test_bad_queries_are_refused(change: dict[str, str], reason: str) -> None:
    with pytest.raises(SendRejected, match=reason):
        ReportsQuery.parse({**QUERY, **change}, "C-1")


def test_statuses_follow_the_seed_with_or_without_callbacks() -> None:
    recipients = [{"message_id": str(i), "mobile": f"9198161{i:05d}"} for i in range(50)]
    mix = {"DELIVRD": 0.5, "UNDELIV": 0.5}
    with_cb, jobs = decide(random.Random(3), mix, recipients, T0, 1.0, callbacks=True)
    without, none = decide(random.Random(3), mix, recipients, T0, 1.0, callbacks=False)
    assert with_cb == without and none == [] and len(set(with_cb)) == 2
    assert [job[0]["status"] for job in jobs] == with_cb


def test_balance_is_charged_per_segment_and_refused_when_short() -> None:
    state = SandboxState(SandboxConfig(balance=10, credit_per_segment=2))
    assert state.take_business_fault(4) is None and state.balance() == 2.0
    assert state.take_business_fault(2) == 402 and state.balance() == 2.0
    state.set_faults({"balance": 50})
    assert state.balance() == 50.0
    state.set_faults({"balance": None})
    assert state.balance() == 10.0


@pytest.mark.parametrize(
    ("key", "value", "error"),
    [
        ("fail_on_send", {"code": 999}, "fail_on_send.code must be one of"),
        ("balance", -1, "balance must be a number >= 0"),
        ("balance_endpoint", 500, "balance_endpoint must be 404, 405 or null"),
    ],
)
def test_bad_faults_are_refused(key: str, value: Any, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_fault(key, value)


def test_config_checks_its_new_settings() -> None:
    with pytest.raises(ValueError, match="field_types must be one of"):
        SandboxConfig(field_types="floats")
    with pytest.raises(ValueError, match="credit_per_segment must be a number >= 0"):
        SandboxConfig(credit_per_segment=-1)
    assert Recipient("91", "9816100000", "x").mobile == "919816100000"
