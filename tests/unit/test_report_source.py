"""report_source options and one bounded pull (ReportPuller) against a real store (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from airflow_provider_messagecentral.campaign.keys import make_campaign_key
from airflow_provider_messagecentral.client.pulled import PulledReport
from airflow_provider_messagecentral.reports.pulled import (
    PULL_MARGIN,
    ReportPuller,
    validate_pull_options,
    validate_report_source,
)
from airflow_provider_messagecentral.reports.store import ReportStore
from airflow_provider_messagecentral.reports.store.engine import utcnow

NUMBERS = [f"9198161{i:05d}" for i in range(6)]


class Account:
    """What MessageCentral's reports/getDetailedReports would list: rows by creation time, paged."""

    def __init__(self, rows: list[PulledReport]) -> None:
        self.rows = rows
        self.asked: list[tuple[datetime, datetime, int, int]] = []
        self.pages_read = 0
        self.wider = False  # MessageCentral answers whole days: rows around the window come back too

    def fetch(self, start: datetime, end: datetime, page_size: int, max_pages: int) -> Iterator[PulledReport]:
        self.asked.append((start, end, page_size, max_pages))
        if self.wider:
            start, end = start - timedelta(days=1), end + timedelta(days=1)
        listed = [r for r in self.rows if r.created_at is not None and start <= r.created_at <= end]
        for page in range(max_pages):
            chunk = listed[page * page_size : (page + 1) * page_size]
            if not chunk:
                return
            self.pages_read += 1
            yield from chunk


def sent_campaign(store: ReportStore, sent: datetime) -> str:
    key = make_campaign_key("dag", "run", "send")
    store.ensure_campaign(key, dag_id="dag", run_id="run", task_id="send", kind="bulk")
    store.mark_accepted(key, "c0", transaction_id="tx", verification_id="v", response={}, mobiles=NUMBERS, sent_at=sent)
    return key


def rows(sent: datetime, status: str = "DELIVRD") -> list[PulledReport]:
    return [
        PulledReport(mobile=m, status=status, error_code="0", created_at=sent, delivered_at=sent + timedelta(seconds=3))
        for m in NUMBERS
    ]


@pytest.mark.parametrize("value", ["callbacks", "api", "both", " API "])
def test_report_source_accepts_the_three_sources(value: str) -> None:
    assert validate_report_source(value) == value.strip().lower()


@pytest.mark.parametrize("value", ["webhook", "", None, 1])
def test_report_source_names_the_choices(value: object) -> None:
    with pytest.raises(ValueError, match="report_source must be one of 'callbacks', 'api', 'both'"):
        validate_report_source(value)


@pytest.mark.parametrize(
    ("interval", "page_size", "match"),
    [
        (0, 500, "pull_interval must be a number of seconds > 0"),
        ("60", 500, "pull_interval must be"),
        (60, 0, "pull_page_size must be a whole number from 1 to 1000"),
        (60, 1001, "pull_page_size must be"),
        (60, 2.5, "pull_page_size must be"),
    ],
)
def test_pull_options_are_checked(interval: object, page_size: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        validate_pull_options(interval, page_size)


def test_pull_options_take_a_timedelta() -> None:
    assert validate_pull_options(timedelta(minutes=2), 100) == (120.0, 100)


def test_a_pull_asks_for_the_campaign_window_and_stores_the_reports(store: ReportStore) -> None:
    now = utcnow().replace(microsecond=0)
    sent = now - timedelta(minutes=3)
    key = sent_campaign(store, sent)
    earlier = PulledReport(mobile=NUMBERS[0], status="UNDELIV", created_at=sent - timedelta(hours=2))
    account = Account([*rows(sent), earlier])
    account.wider = True
    puller = ReportPuller(store.url, key, account.fetch, page_size=4)
    outcome = puller.pull()
    assert outcome is not None and outcome.complete
    ((start, end, page_size, max_pages),) = account.asked
    assert start == sent - PULL_MARGIN and end >= now and page_size == 4 and max_pages >= 2
    assert (outcome.received, outcome.result.stored, outcome.result.matched) == (7, 6, 6)  # the earlier row: not stored
    assert account.pages_read == 2
    summary = store.campaign_summary(key)
    assert summary is not None and summary["delivered"] == 6 and store.stats()["reports"] == 6
    assert "pulled 7 delivery report(s)" in outcome.describe(key)


def test_pulls_are_spaced_by_the_interval(store: ReportStore) -> None:
    key = sent_campaign(store, datetime(2024, 5, 1, 10, 0))
    puller = ReportPuller(store.url, key, Account([]).fetch, interval=60)
    assert puller.due(now=0.0)
    puller.pull()
    assert puller.last_pull is not None
    assert not puller.due(now=puller.last_pull + 59)
    assert puller.due(now=puller.last_pull + 60)
    assert puller.seconds_to_next(now=puller.last_pull + 45) == 15


def test_an_unknown_campaign_pulls_nothing(store: ReportStore) -> None:
    account = Account([])
    assert ReportPuller(store.url, "mc-unknown", account.fetch).pull() is None
    assert account.asked == []


def test_the_time_budget_stops_a_pull_between_pages(store: ReportStore) -> None:
    sent = utcnow() - timedelta(minutes=1)
    key = sent_campaign(store, sent)
    account = Account(rows(sent))
    outcome = ReportPuller(store.url, key, account.fetch, page_size=2, time_budget=0).pull()
    assert outcome is not None and not outcome.complete
    assert (outcome.received, account.pages_read) == (2, 1)  # the rest is read by the next pull
    assert "cut short" in outcome.describe(key)
