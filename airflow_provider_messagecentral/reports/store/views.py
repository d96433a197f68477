"""
Read views of the store: one report, campaign summaries and pages, and the dashboard's aggregates.

Nothing here writes. The receiver's read endpoints, the sensor and trigger, the CLI and the dashboard read
through these methods only (the :class:`~airflow_provider_messagecentral.reports.store.ReportStore` facade
reconciles uncertain send units before a campaign's summary and the campaign list: :mod:`.reconcile`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import ColumnElement, Integer, Select, and_, case, cast, func, or_, select
from sqlalchemy.engine import Connection

from airflow_provider_messagecentral.reports.models import DELIVERED, FAILED_STATUSES, FINAL_STATUSES
from airflow_provider_messagecentral.reports.store import tables as t
from airflow_provider_messagecentral.reports.store.engine import StoreEngine
from airflow_provider_messagecentral.reports.store.ledger import BY_DELIVERY_REPORTS

#: Funnel stages after "accepted": (key, label, statuses). "pending" is whatever is left.
FUNNEL_STAGES: tuple[tuple[str, str, str | None], ...] = (
    ("delivered", "Delivered", DELIVERED),
    ("undelivered", "Undelivered", "UNDELIV"),
    ("expired", "Expired", "EXPIRED"),
    ("rejected", "Rejected", "REJECTD"),
    ("unknown", "Unknown", "UNKNOWN"),
    ("pending", "Pending", None),
)
#: Above this many delivered recipients the delivery curve is estimated from a sample of about this size.
CURVE_SAMPLE_SIZE = 50_000
CURVE_MAX_POINTS = 60
_NICE_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


def iso(value: datetime | None) -> str | None:
    """A stored (naive UTC) datetime as ISO 8601 with ``+00:00``."""
    return None if value is None else value.replace(tzinfo=timezone.utc).isoformat()


def page_args(page: int, page_size: int, max_size: int = 1000) -> tuple[int, int]:
    """``page`` (from 1) and ``page_size`` (1 .. ``max_size``) clamped to what a page view serves."""
    page = max(1, int(page))
    page_size = min(max(1, int(page_size)), max_size)
    return page, page_size


def read_page(
    conn: Connection, query: Select[Any], table: Any, page: int, page_size: int, item: Callable[[Any], dict[str, Any]]
) -> dict[str, Any]:
    """
    Page ``page`` of ``query`` (filtered and ordered; its ``WHERE`` also counts the ``total`` rows of ``table``),
    each row shown as ``item(row)``: ``{"items", "page", "page_size", "total"}``.
    """
    count = select(func.count()).select_from(table)
    if query.whereclause is not None:
        count = count.where(query.whereclause)
    total = int(conn.execute(count).scalar() or 0)
    rows = conn.execute(query.limit(page_size).offset((page - 1) * page_size)).mappings()
    return {"items": [item(row) for row in rows], "page": page, "page_size": page_size, "total": total}


@dataclass(frozen=True)
class DeliveryCurve:
    """
    Cumulative delivered recipients over time since send.

    :param step: bucket width in seconds.
    :param points: ``(seconds since send, delivered so far)``, starting at ``(0, 0)``.
    :param undated: delivered recipients without any timestamp (counted in no bucket).
    :param sample: 1 when every delivered recipient was read; ``k`` when the curve was estimated from every
        k-th recipient (by row id) and scaled to the exact delivered count (large campaigns).

    Example::

        curve = store.delivery_curve(campaign_key, recipients=6)
        print(curve.points[-1], curve.delivered)
    """

    recipients: int
    step: int
    points: list[tuple[int, int]]
    undated: int
    sample: int = 1

    @property
    def delivered(self) -> int:
        return (self.points[-1][1] if self.points else 0) + self.undated

    @classmethod
    def from_delays(
        cls, rows: list[tuple[Any, Any]], recipients: int, delivered: int | None, sample: int, max_points: int
    ) -> DeliveryCurve:
        """The curve of ``(delay in seconds or None, recipients)`` rows, scaled to ``delivered`` when sampled."""
        dated = sorted((max(int(d), 0), int(n)) for d, n in rows if d is not None)
        undated = sum(int(n) for d, n in rows if d is None)
        read = sum(n for _d, n in dated) + undated
        scale = (delivered / read) if sample > 1 and read and delivered is not None else 1.0
        if sample > 1:
            undated = round(undated * scale)
        if not dated:
            return cls(recipients, 1, [(0, 0)], undated, sample)
        span = max(dated[-1][0], 1)
        step = next((s for s in _NICE_STEPS if span / s <= max_points), math.ceil(span / max_points))
        buckets: dict[int, int] = {}
        for seconds, count in dated:
            slot = seconds // step + 1  # deliveries of bucket i are done by the end of the bucket
            buckets[slot] = buckets.get(slot, 0) + count
        points = [(0, 0)]
        total = 0
        for slot in sorted(buckets):
            total += buckets[slot]
            points.append((slot * step, round(total * scale)))
        if sample > 1 and delivered is not None:
            points[-1] = (points[-1][0], delivered - undated)
        return cls(recipients, step, points, undated, sample)


class ViewsRoom(StoreEngine):
    """
    Read views of a report store (one room of :class:`~airflow_provider_messagecentral.reports.store.ReportStore`).

    Example::

        summary = store.campaign_summary(campaign_key)
        page = store.campaign_reports(campaign_key, page=2, page_size=50, search="98161")
    """

    def get_report(self, message_id: str) -> dict[str, Any] | None:
        """The latest stored status of one message, or ``None`` when no report for it arrived."""
        with self._read() as conn:
            row = conn.execute(select(t.reports).where(t.reports.c.message_id == message_id)).mappings().first()
        if row is None:
            return None
        return {
            "message_id": row["message_id"],
            "status": row["status"],
            "final": bool(row["is_final"]),
            "error_code": row["error_code"],
            "mobile": row["mobile"],
            "country_code": row["country_code"],
            "client_id": row["client_id"],
            "submit_date": iso(row["submit_date"]),
            "done_date": iso(row["done_date"]),
            "received_at": iso(row["received_at"]),
            "extra": row["extra"] or {},
        }

    def campaign_summary(self, campaign_key: str) -> dict[str, Any] | None:
        """
        Delivery counts of a campaign, ``None`` when the campaign is unknown.

        Keys: ``campaign``, ``recipients``, ``delivered``, ``failed``, ``pending`` (no final status yet),
        ``final``, ``by_status`` (status -> recipients; recipients without any report are not listed),
        ``delivered_ratio`` and ``failed_ratio`` (over recipients; 0.0 without recipients).
        """
        rc = t.recipients.c
        with self._read() as conn:
            known = conn.execute(
                select(t.campaigns.c.campaign_key).where(t.campaigns.c.campaign_key == campaign_key)
            ).first()
            if known is None:
                return None
            rows = conn.execute(
                select(rc.status, func.count()).where(rc.campaign_key == campaign_key).group_by(rc.status)
            ).all()
        by_status = {status: int(n) for status, n in rows if status is not None}
        total = sum(int(n) for _status, n in rows)
        delivered = by_status.get(DELIVERED, 0)
        failed = sum(n for status, n in by_status.items() if status in FAILED_STATUSES)
        final = sum(n for status, n in by_status.items() if status in FINAL_STATUSES)
        return {
            "campaign": campaign_key,
            "recipients": total,
            "delivered": delivered,
            "failed": failed,
            "pending": total - final,
            "final": final,
            "by_status": dict(sorted(by_status.items())),
            "delivered_ratio": round(delivered / total, 6) if total else 0.0,
            "failed_ratio": round(failed / total, 6) if total else 0.0,
        }

    def campaign_reports(
        self, campaign_key: str, page: int = 1, page_size: int = 100, search: str | None = None
    ) -> dict[str, Any]:
        """
        One page of a campaign's recipients with their matched report, ordered by mobile.

        :param search: digits match part of the mobile; otherwise a status (``UNDELIV``) or a message id.
        """
        page, page_size = page_args(page, page_size)
        rc = t.recipients.c
        query = (
            select(
                rc.mobile,
                rc.unit_key,
                rc.message_id,
                rc.report_message_id,
                rc.match_kind,
                rc.status,
                rc.error_code,
                rc.submit_date,
                rc.done_date,
                rc.sent_at,
            )
            .where(and_(rc.campaign_key == campaign_key, *_search_terms(search)))
            .order_by(rc.mobile, rc.id)
        )
        with self._read() as conn:
            return read_page(conn, query, t.recipients, page, page_size, _recipient_item)

    def list_campaigns(self, page: int = 1, page_size: int = 50) -> dict[str, Any]:
        """One page of campaigns, newest first."""
        page, page_size = page_args(page, page_size)
        query = select(t.campaigns).order_by(t.campaigns.c.created_at.desc(), t.campaigns.c.campaign_key)
        with self._read() as conn:
            return read_page(conn, query, t.campaigns, page, page_size, _campaign_item)

    def get_campaign(self, campaign_key: str) -> dict[str, Any] | None:
        """The campaign row (dag_id, run_id, task_id, map_index, kind, recipients, send times) or ``None``."""
        with self._read() as conn:
            row = conn.execute(select(t.campaigns).where(t.campaigns.c.campaign_key == campaign_key)).mappings().first()
        return dict(row) if row is not None else None

    def campaign_funnel(self, campaign_key: str, summary: dict[str, Any]) -> dict[str, int]:
        """
        Funnel counts: ``sent`` (recipients of every send unit the ledger tried), ``accepted`` (recipients
        MessageCentral accepted = the summary's recipients), then one count per :data:`FUNNEL_STAGES` key; the
        stages after ``accepted`` add up to ``accepted``. ``reconciled`` (not a stage) counts the accepted
        recipients of units whose answer was lost and whose delivery reports showed they were sent.
        """
        by_status: dict[str, int] = summary["by_status"]
        accepted = int(summary["recipients"])
        ledger = t.ledger.c
        reconciled_units = case((ledger.evidence == BY_DELIVERY_REPORTS, ledger.recipients), else_=0)
        with self._read() as conn:
            sent, reconciled = conn.execute(
                select(
                    func.coalesce(func.sum(ledger.recipients), 0), func.coalesce(func.sum(reconciled_units), 0)
                ).where(ledger.campaign_key == campaign_key)
            ).one()
        counts = {"sent": max(int(sent or 0), accepted), "accepted": accepted, "reconciled": int(reconciled or 0)}
        named = 0
        for key, _label, status in FUNNEL_STAGES:
            if status is not None:
                counts[key] = int(by_status.get(status, 0))
                named += counts[key]
        counts["pending"] = accepted - named
        return counts

    def delivery_curve(
        self,
        campaign_key: str,
        recipients: int,
        delivered: int | None = None,
        max_points: int = CURVE_MAX_POINTS,
    ) -> DeliveryCurve:
        """
        Delivered recipients of a campaign bucketed by delay since their send: one aggregate query.

        :param delivered: the campaign's exact delivered count (from its summary). When it exceeds
            :data:`CURVE_SAMPLE_SIZE`, every k-th recipient (by row id, which every index carries) is read and
            the curve is scaled to this count, so a page of a million-recipient campaign stays fast.
        """
        rc = t.recipients.c
        delay = self._delay_seconds().label("delay")
        sample = max(1, math.ceil((delivered or 0) / CURVE_SAMPLE_SIZE))
        conditions = [rc.campaign_key == campaign_key, rc.status == DELIVERED]
        if sample > 1:
            conditions.append(rc.id % sample == 0)
        with self._read() as conn:
            rows = conn.execute(select(delay, func.count()).where(and_(*conditions)).group_by(delay)).all()
        return DeliveryCurve.from_delays([(d, n) for d, n in rows], recipients, delivered, sample, max_points)

    def _delay_seconds(self) -> ColumnElement[Any]:
        """Seconds from a recipient's send to its delivery (doneDate, else the report's arrival time)."""
        rc = t.recipients.c
        received = (
            select(t.reports.c.received_at).where(t.reports.c.message_id == rc.report_message_id).scalar_subquery()
        )
        done = func.coalesce(rc.done_date, received)
        if self.dialect == "postgresql":
            return cast(func.extract("epoch", done - rc.sent_at), Integer)
        return cast((func.julianday(done) - func.julianday(rc.sent_at)) * 86400, Integer)

    def failures_by_error_code(self, campaign_key: str) -> list[tuple[str, int | None, int]]:
        """``(status, error code, recipients)`` of the campaign's failed recipients, most frequent first."""
        rc = t.recipients.c
        with self._read() as conn:
            rows = conn.execute(
                select(rc.status, rc.error_code, func.count().label("n"))
                .where(rc.campaign_key == campaign_key, rc.status.in_(sorted(FAILED_STATUSES)))
                .group_by(rc.status, rc.error_code)
                .order_by(func.count().desc(), rc.status, rc.error_code)
            ).all()
        return [(str(status), None if code is None else int(code), int(n)) for status, code, n in rows]


def _search_terms(search: str | None) -> list[ColumnElement[bool]]:
    """The conditions of :meth:`ViewsRoom.campaign_reports`'s ``search``: part of a mobile, a status, an id."""
    rc = t.recipients.c
    term = (search or "").strip()
    if not term:
        return []
    digits = term.lstrip("+").replace(" ", "")
    if digits.isdigit():
        return [rc.mobile.contains(digits, autoescape=True)]
    if term.upper() == "PENDING":
        return [or_(rc.status.is_(None), rc.status.not_in(sorted(FINAL_STATUSES)))]
    return [or_(rc.status == term.upper(), rc.report_message_id == term, rc.message_id == term)]


def _recipient_item(row: Any) -> dict[str, Any]:
    """A recipient as :meth:`ViewsRoom.campaign_reports` shows it."""
    return {
        "mobile": row["mobile"],
        "message_id": row["report_message_id"] or row["message_id"],
        "transaction_id": row["message_id"],
        "unit": row["unit_key"],
        "matched_by": row["match_kind"],
        "status": row["status"],
        "final": row["status"] in FINAL_STATUSES,
        "error_code": row["error_code"],
        "sent_at": iso(row["sent_at"]),
        "submit_date": iso(row["submit_date"]),
        "done_date": iso(row["done_date"]),
    }


def _campaign_item(row: Any) -> dict[str, Any]:
    """A campaign as :meth:`ViewsRoom.list_campaigns` shows it."""
    return {
        "campaign": row["campaign_key"],
        **{name: row[name] for name in ("dag_id", "run_id", "task_id", "map_index", "kind", "recipients")},
        **{name: iso(row[name]) for name in ("created_at", "first_send_at", "last_send_at")},
    }
