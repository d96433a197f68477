"""
The sandbox's ``POST /reports/getDetailedReports``: the delivery state of every message it accepted, paged
the way MessageCentral's own app asks for it (``from``/``to`` as ``d/M/yyyy`` dates, ``pageNo`` from 0,
``size``, ``type``). A message is listed only once its callback would have been due, with the status its
callback carries; rows come oldest first, so a page already read does not shift while reports fall due.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any

from airflow_provider_messagecentral.sandbox.config import STATUS_ERROR_CODES
from airflow_provider_messagecentral.sandbox.delivery import Outcome
from airflow_provider_messagecentral.sandbox.validation import SendRejected

MAX_SIZE = 10_000


def _iso(unix: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(unix)) + f".{int(unix % 1 * 1000):03d}"


def _date(name: str, params: Mapping[str, str]) -> date:
    text = params.get(name, "")
    parts = text.split("/")
    try:
        day, month, year = (int(p) for p in parts)
        return date(year, month, day)
    except ValueError:
        raise SendRejected(f"parameter '{name}' must be a date written d/M/yyyy, got {text[:20]!r}") from None


def _int(name: str, params: Mapping[str, str], low: int, high: int) -> int:
    text = params.get(name, "")
    if not text.isdigit() or not low <= int(text) <= high:
        raise SendRejected(f"parameter '{name}' must be an integer from {low} to {high}, got {text[:20]!r}")
    return int(text)


@dataclass(frozen=True)
class ReportsQuery:
    """A checked detailed-reports query."""

    first: date
    last: date
    page_no: int
    size: int
    kind: str

    @classmethod
    def parse(cls, params: Mapping[str, str], subject: str) -> ReportsQuery:
        """Check the query string against the account of the token; raise :class:`SendRejected` naming what."""
        for name in ("customerId", "from", "to", "pageNo", "size", "type"):
            if not params.get(name):
                raise SendRejected(f"missing required parameter '{name}'")
        if params["customerId"] != subject:
            raise SendRejected("parameter 'customerId' does not match the account of the authToken")
        first, last = _date("from", params), _date("to", params)
        if last < first:
            raise SendRejected("parameter 'to' is before 'from'")
        return cls(
            first=first,
            last=last,
            page_no=_int("pageNo", params, 0, 1_000_000),
            size=_int("size", params, 1, MAX_SIZE),
            kind=params["type"].upper(),
        )


def _row(outcome: Outcome, strings: bool) -> dict[str, Any]:
    error_code = STATUS_ERROR_CODES[outcome.status]
    return {
        "countryCode": outcome.country_code,
        "mobileNumber": outcome.national,
        "senderId": outcome.sender_id,
        "templateId": outcome.template_id,
        "messageBody": outcome.text,
        "status": outcome.status,
        "errorCode": str(error_code) if strings else error_code,
        "createdAt": _iso(outcome.submitted),
        "deliveredAt": _iso(outcome.due) if outcome.status == "DELIVRD" else None,
        "updatedAt": _iso(outcome.due),
    }


def detailed_reports(
    outcomes: list[Outcome], query: ReportsQuery, *, strings: bool = False, now: float | None = None
) -> dict[str, Any]:
    """
    The answer to ``query`` over the fates of the accepted messages (oldest first).

    :param strings: answer ``responseCode``, ``count`` and ``errorCode`` as strings (a variant seen in clients).
    """
    now = time.time() if now is None else now
    rows = [
        outcome
        for outcome in outcomes
        if outcome.due <= now
        and outcome.kind.upper() == query.kind
        and query.first <= datetime.fromtimestamp(outcome.submitted, timezone.utc).date() <= query.last
    ]
    start = query.page_no * query.size
    page = [_row(outcome, strings) for outcome in rows[start : start + query.size]]
    count: int | str = str(len(rows)) if strings else len(rows)
    return {"responseCode": "200" if strings else 200, "message": "SUCCESS", "data": {"data": page, "count": count}}
