"""
The send ledger: campaigns, their send units (pending, accepted, failed) and their recipients.

Recording an accepted unit also matches the reports that arrived before it (a fast callback can beat the
send's own bookkeeping) onto its new recipients, by the rules :mod:`.ingest` applies to reports arriving later.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import delete, func, insert, literal, select, update
from sqlalchemy.engine import Connection

from airflow_provider_messagecentral.reports.models import normalize_mobile
from airflow_provider_messagecentral.reports.store import tables as t
from airflow_provider_messagecentral.reports.store.engine import StoreEngine, chunks, utcnow

CAMPAIGN_KINDS = ("single", "bulk", "file")
#: Reports match a campaign's recipients by mobile when dated in [first send - 1 min, last send + 3 days].
WINDOW_BEFORE = timedelta(minutes=1)
WINDOW_AFTER = timedelta(days=3)
_SECRET_WORDS = ("token", "key", "password", "secret", "authorization", "credential")
#: Recipient columns that record the report matched to the recipient.
_MATCH_COLUMNS = ("report_message_id", "match_kind", "match_date", "status", "error_code", "submit_date", "done_date")
_LEDGER_COPIED = ("state", "recipients", "transaction_id", "verification_id", "response", "error", "updated_at")


def _naive_utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(timezone.utc).replace(tzinfo=None)


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
        with self._read() as conn:
            rows = conn.execute(select(t.ledger).where(t.ledger.c.campaign_key == campaign_key)).mappings()
            return {
                row["unit_key"]: LedgerUnit(**{name: row[name] for name in LedgerUnit.__dataclass_fields__})
                for row in rows
            }

    def mark_pending(self, campaign_key: str, unit_key: str, recipients: int) -> None:
        """
        Record that a unit is about to be sent: insert it, or count one more attempt.

        An accepted unit stays accepted (only its attempt count grows); a failed one becomes pending again.
        """
        stmt = self._unit_insert(campaign_key, unit_key, "pending", recipients=int(recipients))
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
            },
        )
        with self._write() as conn:
            conn.execute(stmt)

    def mark_failed(self, campaign_key: str, unit_key: str, error: str) -> None:
        """Record that a unit was refused for good (``error`` must carry no secret)."""
        stmt = self._unit_insert(campaign_key, unit_key, "failed", recipients=0, error=error[:4000])
        stmt = stmt.on_conflict_do_update(
            index_elements=["campaign_key", "unit_key"],
            set_={"state": "failed", "error": stmt.excluded.error, "updated_at": stmt.excluded.updated_at},
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
        the unit's earlier rows, so calling it twice does not double-count), and the campaign's recipient
        count and send times. Reports that arrived before this call are matched to the new recipients.

        :param mobiles: the unit's recipients as digits with country code (``919816111111``).
        :param sent_at: when the request was accepted (default now; naive values are UTC).
        """
        sent = _naive_utc(sent_at) or utcnow()
        numbers = [m if m.isdigit() else (normalize_mobile(m) or m) for m in mobiles]
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
        )
        ledger_stmt = ledger_stmt.on_conflict_do_update(
            index_elements=["campaign_key", "unit_key"],
            set_={name: getattr(ledger_stmt.excluded, name) for name in _LEDGER_COPIED},
        )
        with self._write() as conn:
            campaign = self._lock_campaign(conn, campaign_key)
            conn.execute(ledger_stmt)
            removed = conn.execute(
                delete(t.recipients).where(
                    t.recipients.c.campaign_key == campaign_key, t.recipients.c.unit_key == unit_key
                )
            ).rowcount
            window = self._extend_campaign(conn, campaign, sent, int(removed or 0), len(numbers))
            matches = self._existing_matches(conn, tx, numbers, window)
            unmatched = dict.fromkeys(_MATCH_COLUMNS)
            rows = [
                {
                    "campaign_key": campaign_key,
                    "unit_key": unit_key,
                    "mobile": mobile,
                    "message_id": tx,
                    "verification_id": vid,
                    "sent_at": sent,
                    **matches.get(mobile, unmatched),
                }
                for mobile in numbers
            ]
            if rows:
                conn.execute(insert(t.recipients), rows)

    def _unit_insert(self, campaign_key: str, unit_key: str, state: str, **values: Any) -> Any:
        """``INSERT`` of a ledger unit in ``state`` (first attempt, created now); the caller adds its conflict rule."""
        now = utcnow()
        return self._insert(t.ledger).values(
            campaign_key=campaign_key,
            unit_key=unit_key,
            state=state,
            attempts=1,
            created_at=now,
            updated_at=now,
            **values,
        )

    @staticmethod
    def _lock_campaign(conn: Connection, campaign_key: str) -> dict[str, Any]:
        """The campaign's key, recipient count and send times, its row locked until the transaction ends."""
        cc = t.campaigns.c
        campaign = (
            conn.execute(
                select(cc.campaign_key, cc.first_send_at, cc.last_send_at, cc.recipients)
                .where(cc.campaign_key == campaign_key)
                .with_for_update()
            )
            .mappings()
            .first()
        )
        if campaign is None:
            raise LookupError(
                f"campaign {campaign_key!r} is not recorded: call ensure_campaign() before mark_accepted()"
            )
        return dict(campaign)

    @staticmethod
    def _extend_campaign(
        conn: Connection, campaign: dict[str, Any], sent: datetime, removed: int, added: int
    ) -> tuple[datetime, datetime]:
        """Count a unit's recipients (``removed`` replaced by ``added``) and its send; returns the new window."""
        first = min(d for d in (campaign["first_send_at"], sent) if d is not None)
        last = max(d for d in (campaign["last_send_at"], sent) if d is not None)
        window = (first - WINDOW_BEFORE, last + WINDOW_AFTER)
        conn.execute(
            update(t.campaigns)
            .where(t.campaigns.c.campaign_key == campaign["campaign_key"])
            .values(
                first_send_at=first,
                last_send_at=last,
                window_start=window[0],
                window_end=window[1],
                recipients=max(0, int(campaign["recipients"]) - removed) + added,
            )
        )
        return window

    @staticmethod
    def _existing_matches(
        conn: Connection,
        transaction_id: str | None,
        mobiles: Sequence[str],
        window: tuple[datetime, datetime],
    ) -> dict[str, dict[str, Any]]:
        """
        Reports already stored for new recipients: ``mobile -> recipient columns of the match``.

        By id: the report whose messageId is the send's transactionId (its mobile among ``mobiles``, or no
        mobile and a single recipient). Else by mobile: the latest report (by submit date, else done date, else
        arrival) for the number dated inside the campaign ``window``.
        """
        r = t.reports.c
        cols = (r.message_id, r.mobile, r.status, r.error_code, r.submit_date, r.done_date, r.received_at)
        found: dict[str, dict[str, Any]] = {}
        wanted = set(mobiles)
        if transaction_id is not None:
            row = conn.execute(select(*cols).where(r.message_id == transaction_id)).mappings().first()
            if row is not None and (row["mobile"] in wanted or (row["mobile"] is None and len(wanted) == 1)):
                mobile = row["mobile"] if row["mobile"] is not None else next(iter(wanted))
                found[mobile] = _match_columns(row, "id")
        unique = sorted(wanted - set(found))
        for chunk in chunks(unique):
            for row in conn.execute(select(*cols).where(r.mobile.in_(chunk))).mappings():
                date = row["submit_date"] or row["done_date"] or row["received_at"]
                if not window[0] <= date <= window[1]:
                    continue
                current = found.get(row["mobile"])
                if current is None or (current["match_kind"] == "mobile" and date >= current["match_date"]):
                    found[row["mobile"]] = _match_columns(row, "mobile")
        return found


def _match_columns(row: Any, kind: str) -> dict[str, Any]:
    """The recipient columns (:data:`_MATCH_COLUMNS`) that record a match with report ``row``."""
    return {
        "report_message_id": row["message_id"],
        "match_kind": kind,
        "match_date": row["submit_date"] or row["done_date"] or row["received_at"],
        "status": row["status"],
        "error_code": row["error_code"],
        "submit_date": row["submit_date"],
        "done_date": row["done_date"],
    }
