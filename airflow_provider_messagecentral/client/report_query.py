"""
One query of ``reports/getDetailedReports``: its parameters, checked once, and the bounded walk over its pages.

What MessageCentral's own app sends (see docs/messagecentral-api.md): ``from`` and ``to`` are calendar dates
written ``d/M/yyyy`` (no time of day), ``pageNo`` counts from 0, ``size`` is the page size and ``type`` is
``SMS`` or ``OTP``. The API's time zone for those dates is not known, so the dates asked for reach 14 hours
past either end of the window (every zone from UTC-12 to UTC+14); rows outside the window may come back and
are left to the caller, who matches them to a campaign's recipients and send window.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from airflow_provider_messagecentral.client.pulled import PulledPage, PulledReport
from airflow_provider_messagecentral.exceptions import MessageCentralValidationError

DEFAULT_PAGE_SIZE = 500
#: The largest page asked for; MessageCentral documents no bound (its app asks for 10-100 rows).
MAX_PAGE_SIZE = 1000
#: Pages read per call unless the caller says otherwise: 100,000 rows at the default page size.
DEFAULT_MAX_PAGES = 200
#: Report types seen in MessageCentral's app.
REPORT_TYPES = ("SMS", "OTP")
ZONE_SLACK = timedelta(hours=14)

log = logging.getLogger(__name__)


def _utc(when: datetime, name: str) -> datetime:
    if not isinstance(when, datetime):
        raise MessageCentralValidationError(f"{name} must be a datetime, got {type(when).__name__}")
    return when if when.tzinfo is None else when.astimezone(timezone.utc).replace(tzinfo=None)


def api_date(when: datetime) -> str:
    """A date as the API's ``from``/``to`` take it: ``d/M/yyyy`` (``6/12/2026``)."""
    return f"{when.day}/{when.month}/{when.year}"


@dataclass(frozen=True)
class ReportQuery:
    """
    The parameters of one detailed-reports query (everything but the page number), checked.

    :param customer_id: the account's customer id.
    :param date_from: ``from`` as sent (``d/M/yyyy``).
    :param date_to: ``to`` as sent.
    :param page_size: rows per page.
    :param message_type: ``type`` as sent.
    :param max_pages: pages read at most.
    """

    customer_id: str
    date_from: str
    date_to: str
    page_size: int
    message_type: str
    max_pages: int

    @classmethod
    def build(
        cls,
        customer_id: str,
        start: datetime,
        end: datetime,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        message_type: str = "SMS",
        max_pages: int | None = None,
    ) -> ReportQuery:
        """Check the window and bounds (naive datetimes are UTC); raise a validation error naming what is wrong."""
        first, last = _utc(start, "start"), _utc(end, "end")
        if last < first:
            raise MessageCentralValidationError(f"detailed reports: end {end} is before start {start}")
        if isinstance(page_size, bool) or not isinstance(page_size, int) or not 1 <= page_size <= MAX_PAGE_SIZE:
            raise MessageCentralValidationError(
                f"detailed reports: page_size must be an integer from 1 to {MAX_PAGE_SIZE}, got {page_size!r}"
            )
        pages = DEFAULT_MAX_PAGES if max_pages is None else max_pages
        if isinstance(pages, bool) or not isinstance(pages, int) or pages < 1:
            raise MessageCentralValidationError(f"detailed reports: max_pages must be an integer >= 1, got {pages!r}")
        kind = str(message_type or "").strip().upper()
        if kind not in REPORT_TYPES:
            raise MessageCentralValidationError(
                f"detailed reports: message_type must be one of {', '.join(REPORT_TYPES)}, got {message_type!r}"
            )
        return cls(
            customer_id=customer_id,
            date_from=api_date(first - ZONE_SLACK),
            date_to=api_date(last + ZONE_SLACK),
            page_size=page_size,
            message_type=kind,
            max_pages=pages,
        )

    def params(self, page_no: int) -> dict[str, str]:
        """The query string of page ``page_no`` (0-based, as the API counts)."""
        return {
            "customerId": self.customer_id,
            "from": self.date_from,
            "to": self.date_to,
            "pageNo": str(page_no),
            "size": str(self.page_size),
            "type": self.message_type,
        }

    def reports(self, fetch_page: Callable[[int], PulledPage]) -> Iterator[PulledReport]:
        """
        Walk the pages with ``fetch_page(page_no)``: stop on a short or empty page, once ``count`` rows were
        seen, or after ``max_pages`` pages (with a warning that more may exist). Unreadable rows are logged.
        """
        seen = 0
        for page_no in range(self.max_pages):
            page = fetch_page(page_no)
            seen += page.rows
            if page.skipped:
                log.warning(
                    "detailed reports page %d: %d row(s) skipped (%s)",
                    page_no + 1,
                    len(page.skipped),
                    "; ".join(page.skipped[:3]),
                )
            yield from page.reports
            if page.rows < self.page_size or (page.total is not None and seen >= page.total):
                return
        log.warning(
            "detailed reports: stopped after max_pages=%d pages (%d rows); there may be more",
            self.max_pages,
            seen,
        )
