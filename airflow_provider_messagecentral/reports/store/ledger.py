"""
The send ledger: campaigns, their send units (pending, accepted, failed) and their recipients.

Recording an accepted unit also matches the reports that arrived before it (a fast callback can beat the
send's own bookkeeping) onto its new recipients, by the rules :mod:`.ingest` applies to reports arriving later.
A pending unit remembers its recipients and widens the campaign's matching window to its attempt, so that
:mod:`.reconcile` can attribute it to the campaign once delivery reports show it was sent; until then its
recipients are not counted.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import case, func, literal, select

from airflow_provider_messagecentral.reports.models import normalize_mobile
from airflow_provider_messagecentral.reports.store import tables as t
from airflow_provider_messagecentral.reports.store.engine import StoreEngine, utcnow
from airflow_provider_messagecentral.reports.store.recipients import lock_campaign, record_recipients, widen_window

CAMPAIGN_KINDS = ("single", "bulk", "file")
_SECRET_WORDS = ("token", "key", "password", "secret", "authorization", "credential")
_LEDGER_COPIED = (
    "state",
    "recipients",
    "transaction_id",
    "verification_id",
    "response",
    "error",
    "updated_at",
    "pending_recipients",
    "evidence",
)
#: :attr:`LedgerUnit.evidence` of a unit MessageCentral's answer accepted, and of one reconciled by reports.
BY_RESPONSE = "response"
BY_DELIVERY_REPORTS = "delivery_reports"


def naive_utc(value: datetime | None) -> datetime | None:
    """``value`` as the naive UTC datetime the store's columns hold (naive values are taken as UTC)."""
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(timezone.utc).replace(tzinfo=None)


def msisdn_list(mobiles: Sequence[str]) -> list[str]:
    """Recipients as digits with country code (``919816111111``), as recipient rows hold them."""
    if "".join(mobiles).isdigit():  # the common case, checked at C speed: every entry is already digits
        return list(mobiles)
    return [m if m.isdigit() else (normalize_mobile(m) or m) for m in mobiles]


def _scrub(value: Any) -> Any:
    """Drop secret-looking keys from an API response before it is stored."""
    if isinstance(value, dict):
        return {
            k: _scrub(v)
            for k, v in value.items()
            if not any(word in str(k).lower() for word in _SECRET_WORDS) or str(k) == "smsCLI"
        }
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


@dataclass(frozen=True)
class LedgerUnit:
    """
    One send unit (a chunk, a file or a single message) of a campaign, as the ledger records it.

    :param state: ``pending`` (request about to be / being made: outcome unknown), ``accepted`` or ``failed``.
    :param attempts: how many times the unit was marked pending.
    :param evidence: for an accepted unit, what showed it was accepted: ``"response"`` (MessageCentral's answer)
        or ``"delivery_reports"`` (its answer was lost, and delivery reports for its recipients reconciled it);
        ``None`` otherwise (and for units accepted before schema version 3).

    Example::

        unit = store.get_units(campaign_key)["chunk-0"]
        if unit.state == "accepted":
            print(unit.transaction_id, unit.recipients)
    """

    campaign_key: str
    unit_key: str
    state: str
    attempts: int
    recipients: int
    transaction_id: str | None
    verification_id: str | None
    response: dict[str, Any] | None
    error: str | None
    created_at: datetime
    updated_at: datetime
    evidence: str | None = None

    @property
    def reconciled(self) -> bool:
        """Whether the unit counts as accepted because delivery reports arrived for its recipients."""
        return self.state == "accepted" and self.evidence == BY_DELIVERY_REPORTS


class LedgerRoom(StoreEngine):
    """
    The send ledger of a report store (one room of :class:`~airflow_provider_messagecentral.reports.store.ReportStore`).

    Example::

        store.ensure_campaign(key, dag_id="dag", run_id="run", task_id="send", kind="bulk")
        store.mark_pending(key, "chunk-0", 2)
        store.mark_accepted(key, "chunk-0", transaction_id="tx", verification_id=None, response={},
                            mobiles=["919816111111", "917715131105"])
    """

    def ensure_campaign(
        self,
        campaign_key: str,
        *,
        dag_id: str,
        run_id: str,
        task_id: str,
        map_index: int = -1,
        kind: str,
    ) -> None:
        """Record a campaign (a send task instance) unless it exists already. Idempotent."""
        if kind not in CAMPAIGN_KINDS:
            raise ValueError(f"campaign kind must be one of {', '.join(CAMPAIGN_KINDS)}, got {kind!r}")
        stmt = (
            self._insert(t.campaigns)
            .values(
                campaign_key=campaign_key,
                dag_id=dag_id,
                run_id=run_id,
                task_id=task_id,
                map_index=int(map_index),
                kind=kind,
                created_at=utcnow(),
                recipients=0,
            )
            .on_conflict_do_nothing(index_elements=["campaign_key"])
        )
        with self._write() as conn:
            conn.execute(stmt)

    def get_units(self, campaign_key: str) -> dict[str, LedgerUnit]:
        """Every ledger unit of a campaign: ``unit_key -> LedgerUnit``."""
        columns = [t.ledger.c[name] for name in LedgerUnit.__dataclass_fields__]
        with self._read() as conn:
            rows = conn.execute(select(*columns).where(t.ledger.c.campaign_key == campaign_key)).mappings()
            return {row["unit_key"]: LedgerUnit(**row) for row in rows}

    def mark_pending(
        self,
        campaign_key: str,
        unit_key: str,
        recipients: int,
        *,
        mobiles: Sequence[str] | None = None,
        sent_at: datetime | None = None,
    ) -> None:
        """
        Record that a unit is about to be sent: insert it, or count one more attempt.

        An accepted unit stays accepted (only its attempt count grows); a failed one becomes pending again.
        With ``mobiles``, a unit that is not accepted remembers them and the campaign's matching window is
        widened to cover this attempt: should its answer be lost, delivery reports for these numbers can
        reconcile it (:meth:`~.reconcile.ReconcileRoom.reconcile`). They are not counted as recipients until then.

        :param mobiles: the unit's recipients (digits with country code, as for :meth:`mark_accepted`).
        :param sent_at: when the request is made (default now; naive values are UTC).
        """
        now = naive_utc(sent_at) or utcnow()
        remembered = None if mobiles is None else json.dumps(msisdn_list(mobiles), separators=(",", ":"))
        stmt = self._unit_insert(
            campaign_key, unit_key, "pending", now=now, recipients=int(recipients), pending_recipients=remembered
        )
        accepted = t.ledger.c.state == "accepted"
        stmt = stmt.on_conflict_do_update(
            index_elements=["campaign_key", "unit_key"],
            set_={
                "attempts": t.ledger.c.attempts + 1,
                "recipients": stmt.excluded.recipients,
                "state": func.coalesce(
                    func.nullif(t.ledger.c.state, "failed"), literal("pending")
                ),  # pending->pending, failed->pending, accepted->accepted
                "error": None,
                "updated_at": stmt.excluded.updated_at,
                "pending_recipients": case((accepted, None), else_=stmt.excluded.pending_recipients),
            },
        )
        with self._write() as conn:
            if mobiles is not None:  # the campaign row first: every writer locks campaign, then ledger
                widen_window(conn, campaign_key, now)
            conn.execute(stmt)

    def mark_failed(self, campaign_key: str, unit_key: str, error: str) -> None:
        """Record that a unit was refused for good (``error`` must carry no secret): it was not sent."""
        stmt = self._unit_insert(campaign_key, unit_key, "failed", recipients=0, error=error[:4000])
        stmt = stmt.on_conflict_do_update(
            index_elements=["campaign_key", "unit_key"],
            set_={
                "state": "failed",
                "error": stmt.excluded.error,
                "updated_at": stmt.excluded.updated_at,
                "pending_recipients": None,
            },
            where=t.ledger.c.state != "accepted",
        )
        with self._write() as conn:
            conn.execute(stmt)

    def mark_accepted(
        self,
        campaign_key: str,
        unit_key: str,
        *,
        transaction_id: str | None,
        verification_id: str | None,
        response: dict[str, Any],
        mobiles: list[str],
        sent_at: datetime | None = None,
    ) -> None:
        """
        Record an accepted unit in one transaction: the ledger row, one recipient row per mobile (replacing
        the unit's earlier rows, so calling it twice does not double-count, nor after the unit was
        reconciled), and the campaign's recipient count and send times. Reports that arrived before this call
        are matched to the new recipients.

        :param mobiles: the unit's recipients as digits with country code (``919816111111``).
        :param sent_at: when the request was accepted (default now; naive values are UTC).
        """
        sent = naive_utc(sent_at) or utcnow()
        numbers = msisdn_list(mobiles)
        tx = str(transaction_id) if transaction_id is not None else None
        vid = str(verification_id) if verification_id is not None else None
        ledger_stmt = self._unit_insert(
            campaign_key,
            unit_key,
            "accepted",
            recipients=len(numbers),
            transaction_id=tx,
            verification_id=vid,
            response=_scrub(response),
            error=None,
            pending_recipients=None,
            evidence=BY_RESPONSE,
        )
        ledger_stmt = ledger_stmt.on_conflict_do_update(
            index_elements=["campaign_key", "unit_key"],
            set_={name: getattr(ledger_stmt.excluded, name) for name in _LEDGER_COPIED},
        )
        with self._write() as conn:
            campaign = lock_campaign(conn, campaign_key)
            conn.execute(ledger_stmt)
            record_recipients(conn, campaign, unit_key, numbers, (tx, vid), sent)

    def _unit_insert(
        self, campaign_key: str, unit_key: str, state: str, *, now: datetime | None = None, **values: Any
    ) -> Any:
        """``INSERT`` of a unit in ``state`` (first attempt, created ``now``); the caller adds its conflict rule."""
        now = now or utcnow()
        return self._insert(t.ledger).values(
            campaign_key=campaign_key,
            unit_key=unit_key,
            state=state,
            attempts=1,
            created_at=now,
            updated_at=now,
            **values,
        )
