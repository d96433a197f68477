"""
Where the delivery sensor's reports come from, and one bounded pull of a campaign's reports from MessageCentral.

``report_source`` of the sensor and its trigger: ``"callbacks"`` (the receiver stores what MessageCentral
POSTs; nothing is pulled), ``"api"`` (the sensor itself pulls ``reports/getDetailedReports``: no receiver,
no public URL needed) or ``"both"``. A :class:`ReportPuller` asks only for the campaign's window (its oldest
send without a final report, less a margin, to now), at most every ``pull_interval`` seconds, in pages of
``pull_page_size`` rows, with a bound on pages and on time, and stores what comes back through the store's
rules (:mod:`~airflow_provider_messagecentral.reports.store.pulled`). This module knows nothing of the hook:
the Airflow layer hands it the fetch function (the hook's ``get_detailed_reports``, which shares the hook's
rate limiter and retries).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from airflow_provider_messagecentral.client.pulled import PulledReport
from airflow_provider_messagecentral.reports.store import PulledResult, get_store

#: The values of ``report_source``.
REPORT_SOURCES = ("callbacks", "api", "both")
#: Seconds between two pulls of a campaign's reports (at most one pull per poke or trigger poll).
DEFAULT_PULL_INTERVAL = 60.0
#: Rows asked for per page of ``reports/getDetailedReports``.
DEFAULT_PULL_PAGE_SIZE = 500
MAX_PULL_PAGE_SIZE = 1000
#: The pulled range starts this long before the campaign's oldest open send (clocks differ).
PULL_MARGIN = timedelta(minutes=10)
#: A pull reads at most max(this, 4 x recipients / page size) pages ...
MIN_PULL_PAGES = 20
#: ... and stops between two pages once it has run this many seconds (the next pull goes on).
PULL_TIME_BUDGET = 120.0

#: ``fetch(start, end, page_size, max_pages)``: the pulled rows of ``[start, end]`` (naive UTC), page by page.
Fetch = Callable[[datetime, datetime, int, int], Iterable[PulledReport]]


def validate_report_source(value: Any) -> str:
    """``report_source`` checked: one of :data:`REPORT_SOURCES` (``ValueError`` naming the choices)."""
    if not isinstance(value, str) or value.strip().lower() not in REPORT_SOURCES:
        raise ValueError(f"report_source must be one of {', '.join(map(repr, REPORT_SOURCES))}, got {value!r}")
    return value.strip().lower()


def validate_pull_options(interval: Any, page_size: Any) -> tuple[float, int]:
    """``pull_interval`` (seconds > 0) and ``pull_page_size`` (1 .. :data:`MAX_PULL_PAGE_SIZE`), checked."""
    if isinstance(interval, timedelta):
        interval = interval.total_seconds()
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not interval > 0:
        raise ValueError(f"pull_interval must be a number of seconds > 0 or a timedelta, got {interval!r}")
    if isinstance(page_size, bool) or not isinstance(page_size, int) or not 1 <= page_size <= MAX_PULL_PAGE_SIZE:
        raise ValueError(f"pull_page_size must be a whole number from 1 to {MAX_PULL_PAGE_SIZE}, got {page_size!r}")
    return float(interval), page_size


@dataclass(frozen=True)
class PullOutcome:
    """
    One pull of a campaign's reports.

    :param start: start of the range asked for (naive UTC).
    :param end: end of the range asked for.
    :param received: rows MessageCentral returned.
    :param result: what the store did with them (summed over the pages).
    :param complete: ``False`` when the time budget cut the pull short (the next pull reads the range again).
    """

    start: datetime
    end: datetime
    received: int
    result: PulledResult
    complete: bool = True

    def describe(self, campaign: str) -> str:
        """One log line."""
        r = self.result
        cut = "" if self.complete else " (cut short by the time budget; the next pull goes on)"
        return (
            f"campaign {campaign}: pulled {self.received} delivery report(s) from MessageCentral for "
            f"{self.start:%Y-%m-%d %H:%M:%S} .. {self.end:%Y-%m-%d %H:%M:%S} UTC: {r.stored} new or changed, "
            f"{r.duplicates} unchanged, {r.ignored_stale} older, {r.matched} recipient(s) updated{cut}"
        )


def _summed(a: PulledResult, b: PulledResult) -> PulledResult:
    return PulledResult(
        stored=a.stored + b.stored,
        duplicates=a.duplicates + b.duplicates,
        ignored_stale=a.ignored_stale + b.ignored_stale,
        matched=a.matched + b.matched,
        skipped=a.skipped + b.skipped,
    )


class ReportPuller:
    """
    Pull a campaign's delivery reports from MessageCentral into the report store, bounded and at most every
    ``interval`` seconds. Blocking: run :meth:`pull` in a thread from async code.

    :param store_url: the report store.
    :param campaign: the campaign key.
    :param fetch: the rows of a range (:data:`Fetch`; the hook's ``get_detailed_reports``).
    :param page_size: rows per page (:data:`DEFAULT_PULL_PAGE_SIZE`).
    :param interval: seconds between pulls (:data:`DEFAULT_PULL_INTERVAL`).
    :param time_budget: seconds after which a pull stops between two pages (:data:`PULL_TIME_BUDGET`).

    Example::

        puller = ReportPuller(store_url, key, lambda s, e, size, pages: hook.get_detailed_reports(
            s, e, page_size=size, max_pages=pages))
        if puller.due():
            log.info("%s", puller.pull().describe(key))
    """

    def __init__(
        self,
        store_url: str,
        campaign: str,
        fetch: Fetch,
        page_size: int = DEFAULT_PULL_PAGE_SIZE,
        interval: float = DEFAULT_PULL_INTERVAL,
        time_budget: float = PULL_TIME_BUDGET,
    ) -> None:
        self.store_url, self.campaign, self.fetch = store_url, campaign, fetch
        self.interval, self.page_size = validate_pull_options(interval, page_size)
        self.time_budget = time_budget
        self.last_pull: float | None = None

    def due(self, now: float | None = None) -> bool:
        """Whether a pull is due: never pulled yet, or ``interval`` seconds passed since the last one began."""
        now = time.monotonic() if now is None else now
        return self.last_pull is None or now - self.last_pull >= self.interval

    def seconds_to_next(self, now: float | None = None) -> float:
        """Seconds until the next pull is due (0: now)."""
        if self.last_pull is None:
            return 0.0
        now = time.monotonic() if now is None else now
        return max(0.0, self.last_pull + self.interval - now)

    def pull(self) -> PullOutcome | None:
        """
        Pull the campaign's window once and store what comes back, one transaction per page; ``None`` when the
        campaign has sent nothing yet (nothing to ask for). MessageCentral answers whole days: rows created
        outside the window (they cannot match the campaign's open recipients) are counted, not stored. Errors
        (HTTP, store) reach the caller, which logs them and pulls again at the next interval.
        """
        began = time.monotonic()
        self.last_pull = began
        store = get_store(self.store_url)
        try:
            start, end = store.pull_window(self.campaign, PULL_MARGIN)
        except LookupError:
            return None
        campaign = store.get_campaign(self.campaign) or {}
        max_pages = max(MIN_PULL_PAGES, math.ceil(4 * int(campaign.get("recipients") or 0) / self.page_size))
        received, result, complete = 0, PulledResult(), True
        batch: list[PulledReport] = []
        rows = iter(self.fetch(start, end, self.page_size, max_pages))
        try:
            for row in rows:
                received += 1
                if row.created_at is not None and not start <= row.created_at <= end:
                    continue
                batch.append(row)
                if len(batch) >= self.page_size:
                    result = _summed(result, store.store_pulled(batch))
                    batch = []
                    if time.monotonic() - began > self.time_budget:
                        complete = False
                        break
            if batch:
                result = _summed(result, store.store_pulled(batch))
        finally:
            close = getattr(rows, "close", None)
            if close is not None:
                close()
        return PullOutcome(start, end, received, result, complete)
