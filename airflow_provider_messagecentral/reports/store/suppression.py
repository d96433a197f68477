"""The suppression list: numbers that must never be texted (opt-outs), kept in the report store."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, func, select

from airflow_provider_messagecentral.reports.models import normalize_mobile
from airflow_provider_messagecentral.reports.store import tables as t
from airflow_provider_messagecentral.reports.store.engine import StoreEngine, chunks, utcnow
from airflow_provider_messagecentral.reports.store.value_list import one_of
from airflow_provider_messagecentral.reports.store.views import iso, page_args, read_page


def _numbers(mobiles: Iterable[str]) -> list[str]:
    """``mobiles`` normalised (digits with country code), deduplicated and sorted; unreadable ones dropped."""
    numbers = {normalize_mobile(m) for m in mobiles}
    return sorted(n for n in numbers if n)


def _suppressed_item(row: Any) -> dict[str, Any]:
    return {"mobile": row["mobile"], "reason": row["reason"], "added_at": iso(row["added_at"])}


class SuppressionRoom(StoreEngine):
    """
    The suppression list of a report store (one room of
    :class:`~airflow_provider_messagecentral.reports.store.ReportStore`).

    Example::

        store.add_suppressed(["+91 98161 11111"], reason="STOP")
        assert store.suppressed_among(["919816111111", "917715131105"]) == {"919816111111"}
    """

    def add_suppressed(self, mobiles: Iterable[str], reason: str = "") -> int:
        """Add numbers to the suppression list; returns how many were not on it yet."""
        numbers = _numbers(mobiles)
        if not numbers:
            return 0
        now = utcnow()
        stmt = self._insert(t.suppression).on_conflict_do_nothing(index_elements=["mobile"])
        with self._write() as conn:
            before = int(conn.execute(select(func.count()).select_from(t.suppression)).scalar() or 0)
            conn.execute(stmt, [{"mobile": n, "reason": reason, "added_at": now} for n in numbers])
            after = int(conn.execute(select(func.count()).select_from(t.suppression)).scalar() or 0)
        return after - before

    def remove_suppressed(self, mobiles: Iterable[str]) -> int:
        """Remove numbers from the suppression list; returns how many were on it."""
        numbers = _numbers(mobiles)
        removed = 0
        with self._write() as conn:
            for chunk in chunks(numbers):
                removed += int(
                    conn.execute(delete(t.suppression).where(t.suppression.c.mobile.in_(chunk))).rowcount or 0
                )
        return removed

    def list_suppressed(self, page: int = 1, page_size: int = 100) -> dict[str, Any]:
        """One page of the suppression list, ordered by number."""
        page, page_size = page_args(page, page_size, max_size=10000)
        query = select(t.suppression).order_by(t.suppression.c.mobile)
        with self._read() as conn:
            return read_page(conn, query, t.suppression, page, page_size, _suppressed_item)

    def suppressed_among(self, mobiles: Iterable[str]) -> set[str]:
        """The numbers among ``mobiles`` (digits with country code) that are on the suppression list: one query."""
        numbers = {m for m in mobiles if m}
        if not numbers:
            return set()
        mobile = t.suppression.c.mobile
        with self._read() as conn:
            return set(conn.execute(select(mobile).where(one_of(conn.dialect, mobile, numbers))).scalars())

    def any_suppressed(self) -> bool:
        """Whether the suppression list holds any number (one indexed read)."""
        with self._read() as conn:
            return conn.execute(select(t.suppression.c.mobile).limit(1)).first() is not None
