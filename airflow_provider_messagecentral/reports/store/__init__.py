"""
The delivery-report store: campaigns, the send ledger, recipients, reports and the suppression list.

SQLite (default, WAL) or PostgreSQL (psycopg 3), through SQLAlchemy Core. Every public method is one short
transaction and commits before it returns.

Matching a recipient to its report happens when the report arrives (and, for reports that arrived before
the send was recorded, when the recipient is recorded): the matched report's status is copied onto the
recipient row, so a campaign summary is one ``GROUP BY`` over an index. Rules:

* by id: the report's ``messageId`` equals the send's ``transactionId`` (and the mobile agrees);
* else by mobile: the latest report (by submit date) for the recipient's number whose submit date lies in
  the campaign window ``[first_send_at - 1 min, last_send_at + 3 days]``.

A number texted by two campaigns whose windows overlap counts a report for both campaigns: without a
per-recipient id there is no way to tell the two messages apart. A report without ``submitDate`` matches
by its ``doneDate`` (else its arrival time).
"""

from __future__ import annotations

import functools
import logging
import random
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Integer,
    and_,
    bindparam,
    case,
    create_engine,
    delete,
    event,
    exists,
    func,
    insert,
    inspect,
    literal,
    literal_column,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.types import DateTime

from airflow_provider_messagecentral.client.store_url import (
    default_store_url,
    mask_url,
    normalize_store_url,
    resolve_store_url,
)
from airflow_provider_messagecentral.reports.models import (
    DELIVERED,
    FAILED_STATUSES,
    FINAL_STATUSES,
    DeliveryReport,
    IngestResult,
    normalize_mobile,
)
from airflow_provider_messagecentral.reports.store import tables as t

__all__ = [
    "LedgerUnit",
    "ReportStore",
    "default_store_url",
    "get_store",
    "resolve_store_url",
]

log = logging.getLogger(__name__)

CAMPAIGN_KINDS = ("single", "bulk", "file")
LEDGER_STATES = ("pending", "accepted", "failed")
WINDOW_BEFORE = timedelta(minutes=1)
WINDOW_AFTER = timedelta(days=3)
_EPOCH = datetime(1970, 1, 1)
_IN_CHUNK = 500
_SECRET_WORDS = ("token", "key", "password", "secret", "authorization", "credential")
_PG_MIGRATION_LOCK = 0x6D635F7363686D  # "mc_schm"
#: SQLSTATEs after which PostgreSQL rolled the transaction back and running it again is the documented remedy:
#: serialization_failure and deadlock_detected.
_RETRY_SQLSTATES = frozenset({"40001", "40P01"})
#: How many times an ingest transaction runs before its error reaches the caller (the receiver answers 503).
INGEST_ATTEMPTS = 4


def _retryable(err: DBAPIError) -> bool:
    """Whether the database aborted the transaction for a deadlock or serialization failure (safe to rerun)."""
    return getattr(err.orig, "sqlstate", None) in _RETRY_SQLSTATES


def _utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _naive_utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(timezone.utc).replace(tzinfo=None)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.replace(tzinfo=timezone.utc).isoformat()


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


def _page_args(page: int, page_size: int, max_size: int = 1000) -> tuple[int, int]:
    page = max(1, int(page))
    page_size = min(max(1, int(page_size)), max_size)
    return page, page_size


def _chunks(items: Sequence[str], size: int = _IN_CHUNK) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass(frozen=True)
class LedgerUnit:
    """
    One send unit (a chunk, a file or a single message) of a campaign, as the ledger records it.

    :param state: ``pending`` (request about to be / being made: outcome unknown), ``accepted`` or ``failed``.
    :param attempts: how many times the unit was marked pending.
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


@dataclass
class _Row:
    """A report reduced to what precedence and matching need."""

    message_id: str
    status: str
    is_final: int
    done_date: datetime | None
    submit_date: datetime | None


Verdict = Literal["store", "duplicate", "stale"]


def _verdict(old: _Row, new: _Row) -> Verdict:
    """Whether ``new`` replaces ``old`` (same messageId). Mirrors :meth:`ReportStore._precedence_sql`."""
    if new.status == old.status:
        return "duplicate"
    if new.is_final != old.is_final:
        return "store" if new.is_final > old.is_final else "stale"
    new_key = (new.done_date or _EPOCH, new.submit_date or _EPOCH)
    old_key = (old.done_date or _EPOCH, old.submit_date or _EPOCH)
    return "store" if new_key >= old_key else "stale"


class ReportStore:
    """
    Delivery reports, campaigns and the send ledger in one SQL database.

    Use :func:`get_store` to share one engine per URL within a process. The schema is created (and migrated)
    on first use.

    :param url: SQLAlchemy URL (``sqlite:///path.db`` or ``postgresql+psycopg://user:pw@host/db``); default
        :func:`default_store_url`.
    :param migrate: create/upgrade the schema now (default ``True``).

    Example::

        store = get_store("sqlite:////tmp/reports.db")
        key = "mc-0123456789abcdef0123"
        store.ensure_campaign(key, dag_id="dag", run_id="run", task_id="send", kind="bulk")
        print(store.campaign_summary(key))
    """

    def __init__(self, url: str | None = None, *, migrate: bool = True) -> None:
        self.url = normalize_store_url(url or default_store_url())
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self.engine = self._create_engine(self.url)
        self.dialect = self.engine.dialect.name
        if migrate:
            self.migrate()

    def __repr__(self) -> str:
        return f"ReportStore({mask_url(self.url)!r})"

    @property
    def masked_url(self) -> str:
        return mask_url(self.url)

    # ------------------------------------------------------------------ engine and transactions

    @staticmethod
    def _create_engine(url: str) -> Engine:
        parsed = make_url(url)
        if parsed.get_backend_name() != "sqlite":
            return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10, future=True)
        database = parsed.database or ""
        in_memory = database in ("", ":memory:") or database.startswith("file::memory:")
        if not in_memory:
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # transactions are begun explicitly below
            cursor = dbapi_conn.cursor()
            if not in_memory:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            # Writers take the write lock up front: a deferred transaction that upgrades later can fail
            # with SQLITE_BUSY at once, without honouring busy_timeout.
            write = conn.get_execution_options().get("mc_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        # SQLite has one writer at a time. Threads of this process queue on a Python lock (woken the moment
        # it is released) rather than in SQLite's busy handler, which sleeps in steps of up to 100 ms and
        # made p99 latency under 32 concurrent callbacks seconds long. Other processes still wait through
        # busy_timeout.
        with self._write_lock if self.dialect == "sqlite" else nullcontext(), self.engine.connect() as conn:
            conn.execution_options(mc_write=True)
            with conn.begin():
                yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    def _insert(self, table: Any) -> Any:
        return (pg_dialect.insert if self.dialect == "postgresql" else sqlite_dialect.insert)(table)

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    # ------------------------------------------------------------------ schema

    def schema_version(self) -> int:
        """The schema version of the database (0 when no schema exists yet)."""
        with self._read() as conn:
            if not inspect(conn).has_table(t.schema_version.name):
                return 0
            return int(conn.execute(select(func.max(t.schema_version.c.version))).scalar() or 0)

    def migrate(self, target: int | None = None) -> int:
        """
        Create or upgrade the schema up to ``target`` (default: latest), all steps in one transaction.

        Safe to call from several processes at once. Returns the resulting version.
        """
        goal = t.LATEST_VERSION if target is None else target
        current = self.schema_version()
        if current >= goal:
            if current > t.LATEST_VERSION:
                log.warning(
                    "Report store %s has schema version %s, newer than this provider knows (%s)",
                    self.masked_url,
                    current,
                    t.LATEST_VERSION,
                )
            return current
        with self._write() as conn:
            if self.dialect == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            t.schema_version.create(conn, checkfirst=True)
            current = int(conn.execute(select(func.max(t.schema_version.c.version))).scalar() or 0)
            for version, description, step in t.MIGRATIONS:
                if version <= current or version > goal:
                    continue
                step(conn)
                conn.execute(
                    insert(t.schema_version).values(version=version, description=description, applied_at=_utcnow())
                )
                log.info("Report store %s migrated to schema version %s", self.masked_url, version)
                current = version
        return current

    def ping(self) -> bool:
        """Whether the database answers (used by the receiver's ``/health``)."""
        try:
            with self._read() as conn:
                conn.execute(select(func.count()).select_from(t.schema_version)).scalar()
            return True
        except Exception:
            log.warning("Report store %s does not answer", self.masked_url, exc_info=True)
            return False

    def stats(self) -> dict[str, int]:
        """Row counts of the main tables (for health pages and tests)."""
        counts: dict[str, int] = {}
        with self._read() as conn:
            for name, table in (
                ("campaigns", t.campaigns),
                ("recipients", t.recipients),
                ("reports", t.reports),
                ("raw_reports", t.raw_reports),
                ("ledger_units", t.ledger),
                ("suppressed", t.suppression),
            ):
                counts[name] = int(conn.execute(select(func.count()).select_from(table)).scalar() or 0)
        return counts

    # ------------------------------------------------------------------ campaigns and ledger

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
                created_at=_utcnow(),
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
                row["unit_key"]: LedgerUnit(
                    campaign_key=row["campaign_key"],
                    unit_key=row["unit_key"],
                    state=row["state"],
                    attempts=row["attempts"],
                    recipients=row["recipients"],
                    transaction_id=row["transaction_id"],
                    verification_id=row["verification_id"],
                    response=row["response"],
                    error=row["error"],
                    created_at=row["created_at"],
                    updated_at=row["updated_at"],
                )
                for row in rows
            }

    def mark_pending(self, campaign_key: str, unit_key: str, recipients: int) -> None:
        """
        Record that a unit is about to be sent: insert it, or count one more attempt.

        An accepted unit stays accepted (only its attempt count grows); a failed one becomes pending again.
        """
        now = _utcnow()
        stmt = self._insert(t.ledger).values(
            campaign_key=campaign_key,
            unit_key=unit_key,
            state="pending",
            attempts=1,
            recipients=int(recipients),
            created_at=now,
            updated_at=now,
        )
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
        now = _utcnow()
        stmt = self._insert(t.ledger).values(
            campaign_key=campaign_key,
            unit_key=unit_key,
            state="failed",
            attempts=1,
            recipients=0,
            error=error[:4000],
            created_at=now,
            updated_at=now,
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["campaign_key", "unit_key"],
            set_={"state": "failed", "error": stmt.excluded.error, "updated_at": now},
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
        sent = _naive_utc(sent_at) or _utcnow()
        now = _utcnow()
        numbers = [m if m.isdigit() else (normalize_mobile(m) or m) for m in mobiles]
        tx = str(transaction_id) if transaction_id is not None else None
        vid = str(verification_id) if verification_id is not None else None
        ledger_stmt = self._insert(t.ledger).values(
            campaign_key=campaign_key,
            unit_key=unit_key,
            state="accepted",
            attempts=1,
            recipients=len(numbers),
            transaction_id=tx,
            verification_id=vid,
            response=_scrub(response),
            error=None,
            created_at=now,
            updated_at=now,
        )
        ledger_stmt = ledger_stmt.on_conflict_do_update(
            index_elements=["campaign_key", "unit_key"],
            set_={
                name: getattr(ledger_stmt.excluded, name)
                for name in (
                    "state",
                    "recipients",
                    "transaction_id",
                    "verification_id",
                    "response",
                    "error",
                    "updated_at",
                )
            },
        )
        with self._write() as conn:
            campaign = (
                conn.execute(
                    select(t.campaigns.c.first_send_at, t.campaigns.c.last_send_at, t.campaigns.c.recipients)
                    .where(t.campaigns.c.campaign_key == campaign_key)
                    .with_for_update()
                )
                .mappings()
                .first()
            )
            if campaign is None:
                raise LookupError(
                    f"campaign {campaign_key!r} is not recorded: call ensure_campaign() before mark_accepted()"
                )
            conn.execute(ledger_stmt)
            removed = conn.execute(
                delete(t.recipients).where(
                    t.recipients.c.campaign_key == campaign_key, t.recipients.c.unit_key == unit_key
                )
            ).rowcount
            first = min(d for d in (campaign["first_send_at"], sent) if d is not None)
            last = max(d for d in (campaign["last_send_at"], sent) if d is not None)
            window = (first - WINDOW_BEFORE, last + WINDOW_AFTER)
            conn.execute(
                update(t.campaigns)
                .where(t.campaigns.c.campaign_key == campaign_key)
                .values(
                    first_send_at=first,
                    last_send_at=last,
                    window_start=window[0],
                    window_end=window[1],
                    recipients=max(0, int(campaign["recipients"]) - int(removed or 0)) + len(numbers),
                )
            )
            matches = self._existing_matches(conn, tx, numbers, window)
            rows = []
            for mobile in numbers:
                row: dict[str, Any] = {
                    "campaign_key": campaign_key,
                    "unit_key": unit_key,
                    "mobile": mobile,
                    "message_id": tx,
                    "verification_id": vid,
                    "sent_at": sent,
                    "report_message_id": None,
                    "match_kind": None,
                    "match_date": None,
                    "status": None,
                    "error_code": None,
                    "submit_date": None,
                    "done_date": None,
                }
                found = matches.get(mobile)
                if found is not None:
                    row.update(found)
                rows.append(row)
            if rows:
                conn.execute(insert(t.recipients), rows)

    def _existing_matches(
        self,
        conn: Connection,
        transaction_id: str | None,
        mobiles: Sequence[str],
        window: tuple[datetime, datetime],
    ) -> dict[str, dict[str, Any]]:
        """Reports already stored for new recipients: ``mobile -> recipient columns of the match``."""
        cols = (
            t.reports.c.message_id,
            t.reports.c.mobile,
            t.reports.c.status,
            t.reports.c.error_code,
            t.reports.c.submit_date,
            t.reports.c.done_date,
            t.reports.c.received_at,
        )
        found: dict[str, dict[str, Any]] = {}
        wanted = set(mobiles)
        if transaction_id is not None:
            row = conn.execute(select(*cols).where(t.reports.c.message_id == transaction_id)).mappings().first()
            if row is not None and (row["mobile"] in wanted or (row["mobile"] is None and len(wanted) == 1)):
                mobile = row["mobile"] if row["mobile"] is not None else next(iter(wanted))
                found[mobile] = self._match_columns(row, "id")
        unique = sorted(wanted - set(found))
        for chunk in _chunks(unique):
            for row in conn.execute(select(*cols).where(t.reports.c.mobile.in_(chunk))).mappings():
                date = row["submit_date"] or row["done_date"] or row["received_at"]
                if not window[0] <= date <= window[1]:
                    continue
                current = found.get(row["mobile"])
                if current is None or (current["match_kind"] == "mobile" and date >= current["match_date"]):
                    found[row["mobile"]] = self._match_columns(row, "mobile")
        return found

    @staticmethod
    def _match_columns(row: Any, kind: str) -> dict[str, Any]:
        return {
            "report_message_id": row["message_id"],
            "match_kind": kind,
            "match_date": row["submit_date"] or row["done_date"] or row["received_at"],
            "status": row["status"],
            "error_code": row["error_code"],
            "submit_date": row["submit_date"],
            "done_date": row["done_date"],
        }

    # ------------------------------------------------------------------ reports

    def _precedence_sql(self, excluded: Any) -> ColumnElement[bool]:
        """SQL form of :func:`_verdict` == "store" (guards the upsert against concurrent writers)."""
        r = t.reports.c
        epoch = literal(_EPOCH, DateTime())
        new_done, old_done = func.coalesce(excluded.done_date, epoch), func.coalesce(r.done_date, epoch)
        new_sub, old_sub = func.coalesce(excluded.submit_date, epoch), func.coalesce(r.submit_date, epoch)
        return and_(
            excluded.status != r.status,
            or_(
                excluded.is_final > r.is_final,
                and_(
                    excluded.is_final == r.is_final,
                    or_(new_done > old_done, and_(new_done == old_done, new_sub >= old_sub)),
                ),
            ),
        )

    def _recipient_precedence_sql(self) -> ColumnElement[bool]:
        """
        Whether a recipient row may take report ``:b_mid`` (guards every recipient update of ingest).

        A recipient that holds another message's report (or none) follows the matching rules. One that holds
        this message already takes it only by :func:`_verdict`'s rule: a final status is never replaced by
        a non-final one, an older report (by doneDate, then submitDate) never replaces a newer one.
        Written as one row-value comparison ``(final, done, submit) >= (...)`` with constants inlined: the
        update runs once per report (executemany), so every bound parameter counts.
        """
        rc = t.recipients.c
        if self.dialect == "postgresql":
            epoch = literal_column("TIMESTAMP '1970-01-01 00:00:00'", DateTime())
        else:  # SQLAlchemy's SQLite DATETIME storage format
            epoch = literal_column("'1970-01-01 00:00:00.000000'", DateTime())
        # Our own constants, not input: inlined, since an expanding IN cannot be used with executemany().
        finals: list[ColumnElement[Any]] = [literal_column(f"'{status}'") for status in sorted(FINAL_STATUSES)]
        old_final = case((rc.status.in_(finals), literal_column("1")), else_=literal_column("0"))
        old_key = tuple_(
            old_final,
            func.coalesce(rc.done_date, epoch),
            func.coalesce(rc.submit_date, epoch),
        )
        new_key = tuple_(
            bindparam("b_final", type_=Integer()),
            bindparam("b_done_key", type_=DateTime()),
            bindparam("b_submit_key", type_=DateTime()),
        )
        return or_(rc.report_message_id.is_(None), rc.report_message_id != bindparam("b_mid"), new_key >= old_key)

    def ingest(self, reports: list[DeliveryReport], raw_bodies: list[str], remote: str | None = None) -> IngestResult:
        """
        Store a batch of delivery reports in one short transaction and match them to campaign recipients.

        Idempotent on ``messageId``: the same status again is a duplicate; a final status is never replaced
        by a non-final one; otherwise the newer report (by doneDate, then submitDate) wins.

        Rows are written in ``messageId`` order (recipients in mobile order), so concurrent batches holding
        the same messages lock them in one order; a transaction PostgreSQL still aborts for a deadlock or a
        serialization failure is run again (:data:`INGEST_ATTEMPTS` times in all) before the error is raised.

        :param reports: validated reports.
        :param raw_bodies: the received documents, appended to the raw audit table as they are.
        :param remote: the sender's address, for the audit table.
        """
        now = _utcnow()
        batch = IngestResult()
        best: dict[str, DeliveryReport] = {}
        for report in reports:
            current = best.get(report.messageId)
            if current is None:
                best[report.messageId] = report
                continue
            verdict = _verdict(self._row(current), self._row(report))
            if verdict == "store":
                best[report.messageId] = report
                batch.ignored_stale += 1  # the one it replaced never reaches the database
            elif verdict == "duplicate":
                batch.duplicates += 1
            else:
                batch.ignored_stale += 1
        ordered = [best[message_id] for message_id in sorted(best)]
        for attempt in range(1, INGEST_ATTEMPTS + 1):
            result = batch.model_copy()
            try:
                self._ingest_tx(ordered, raw_bodies, remote, now, result)
            except DBAPIError as err:
                if attempt == INGEST_ATTEMPTS or not _retryable(err):
                    raise
                log.warning(
                    "Report store %s: ingest of %d reports aborted (SQLSTATE %s), running it again (attempt %d of %d)",
                    self.masked_url,
                    len(ordered),
                    getattr(err.orig, "sqlstate", None),
                    attempt + 1,
                    INGEST_ATTEMPTS,
                )
                time.sleep(random.uniform(0.005, 0.02) * attempt)
                continue
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def _ingest_tx(
        self,
        ordered: list[DeliveryReport],
        raw_bodies: list[str],
        remote: str | None,
        now: datetime,
        result: IngestResult,
    ) -> None:
        """One ingest transaction: ``ordered`` holds one report per messageId, sorted by messageId."""
        with self._write() as conn:
            if raw_bodies:
                conn.execute(
                    insert(t.raw_reports),
                    [{"received_at": now, "remote": (remote or None), "body": body} for body in raw_bodies],
                )
            if not ordered:
                return
            # The upsert's WHERE is the precedence rule, evaluated on the row as it is when this transaction
            # holds its lock (PostgreSQL locks a conflicting row even when the WHERE refuses the update).
            # RETURNING names exactly the rows this statement wrote: only those are copied onto recipients.
            # A verdict from an earlier read could be stale by now (another transaction may have committed
            # a final status in between), and copying such a "winner" let a stale UNKNOWN replace it.
            upsert = self._ingest_sql["upsert"]
            written = set(conn.execute(upsert, [self._report_params(r, now) for r in ordered]).scalars())
            winners = [r for r in ordered if r.messageId in written]
            result.stored = len(winners)
            refused = [r for r in ordered if r.messageId not in written]
            if refused:
                # Rows refused by the upsert are locked by it (PostgreSQL): this read sees what refused them.
                current: dict[str, str] = {}
                for chunk in _chunks([r.messageId for r in refused]):
                    current.update(
                        conn.execute(
                            select(t.reports.c.message_id, t.reports.c.status).where(t.reports.c.message_id.in_(chunk))
                        ).all()
                    )
                for report in refused:
                    if current.get(report.messageId) == report.status:
                        result.duplicates += 1
                    else:
                        result.ignored_stale += 1
            if winners:
                self._match_reports(conn, winners, now)

    @staticmethod
    def _row(report: DeliveryReport) -> _Row:
        return _Row(report.messageId, report.status, int(report.is_final), report.doneDate, report.submitDate)

    @staticmethod
    def _report_params(report: DeliveryReport, now: datetime) -> dict[str, Any]:
        extra = report.extra_fields()
        return {
            "message_id": report.messageId,
            "status": report.status,
            "is_final": int(report.is_final),
            "error_code": report.errorCode,
            "mobile": report.mobile,
            "country_code": report.countryCode,
            "client_id": report.clientId,
            "submit_date": report.submitDate,
            "done_date": report.doneDate,
            "received_at": now,
            "extra": extra or None,
        }

    def _match_reports(self, conn: Connection, winners: Iterable[DeliveryReport], now: datetime) -> None:
        """
        Copy newly stored reports onto the recipients they match (by id, else by mobile in window).

        The updates run in one order in every transaction (by id: messageId then mobile; by mobile: mobile then
        messageId), so two concurrent batches never wait for each other's recipient rows in opposite orders.
        """
        by_id_mobile: list[dict[str, Any]] = []
        by_id_any: list[dict[str, Any]] = []
        by_mobile: list[dict[str, Any]] = []
        for report in winners:
            params = {
                "b_mid": report.messageId,
                "b_status": report.status,
                "b_final": int(report.is_final),
                "b_done_key": report.doneDate or _EPOCH,
                "b_submit_key": report.submitDate or _EPOCH,
                "b_error": report.errorCode,
                "b_submit": report.submitDate,
                "b_done": report.doneDate,
                "b_date": report.submitDate or report.doneDate or now,
                "b_mobile": report.mobile,
            }
            if report.mobile is None:
                by_id_any.append(params)
            else:
                by_id_mobile.append(params)
                by_mobile.append(params)
        by_id_mobile.sort(key=lambda p: (p["b_mid"], p["b_mobile"]))
        by_id_any.sort(key=lambda p: p["b_mid"])
        by_mobile.sort(key=lambda p: (p["b_mobile"], p["b_mid"]))
        sql = self._ingest_sql
        if by_id_mobile:
            conn.execute(sql["by_id_mobile"], by_id_mobile)
        if by_id_any:
            # A report without a mobile matches by id only when the id names exactly one recipient
            # (a bulk request's transactionId is shared by the whole chunk). One counting query per chunk.
            rc = t.recipients.c
            counts: dict[str, int] = {}
            for chunk in _chunks([p["b_mid"] for p in by_id_any]):
                counts.update(
                    conn.execute(
                        select(rc.message_id, func.count()).where(rc.message_id.in_(chunk)).group_by(rc.message_id)
                    ).all()
                )
            single = [p for p in by_id_any if counts.get(p["b_mid"]) == 1]
            if single:
                conn.execute(sql["by_id_only"], single)
        if by_mobile:
            conn.execute(sql["by_mobile"], by_mobile)

    @functools.cached_property
    def _ingest_sql(self) -> dict[str, Any]:
        """The statements of :meth:`ingest`, built once per store (building and keying them is not free)."""
        if self.dialect == "sqlite" and sqlite3.sqlite_version_info < (3, 35):
            raise RuntimeError(
                f"the report store needs SQLite 3.35 or newer (INSERT ... RETURNING); this Python uses SQLite "
                f"{sqlite3.sqlite_version}: use a newer Python/SQLite or PostgreSQL"
            )
        upsert = self._insert(t.reports)
        upsert = upsert.on_conflict_do_update(
            index_elements=["message_id"],
            set_={
                name: getattr(upsert.excluded, name)
                for name in (
                    "status",
                    "is_final",
                    "error_code",
                    "mobile",
                    "country_code",
                    "client_id",
                    "submit_date",
                    "done_date",
                    "received_at",
                    "extra",
                )
            },
            where=self._precedence_sql(upsert.excluded),
        )
        rc, cc = t.recipients.c, t.campaigns.c
        copied: dict[str, Any] = {
            "report_message_id": bindparam("b_mid"),
            "match_date": bindparam("b_date"),
            "status": bindparam("b_status"),
            "error_code": bindparam("b_error"),
            "submit_date": bindparam("b_submit"),
            "done_date": bindparam("b_done"),
        }
        precedence = self._recipient_precedence_sql()
        in_window = exists().where(
            cc.campaign_key == rc.campaign_key,
            cc.window_start <= bindparam("b_date"),
            cc.window_end >= bindparam("b_date"),
        )
        return {
            "upsert": upsert.returning(t.reports.c.message_id),
            "by_id_mobile": update(t.recipients)
            .where(rc.message_id == bindparam("b_mid"), rc.mobile == bindparam("b_mobile"), precedence)
            .values(match_kind="id", **copied),
            "by_id_only": update(t.recipients)
            .where(rc.message_id == bindparam("b_mid"), precedence)
            .values(match_kind="id", **copied),
            "by_mobile": update(t.recipients)
            .where(
                rc.mobile == bindparam("b_mobile"),
                or_(
                    rc.match_kind.is_(None),
                    and_(
                        rc.match_kind == "mobile",
                        or_(rc.report_message_id == bindparam("b_mid"), rc.match_date <= bindparam("b_date")),
                    ),
                ),
                in_window,
                precedence,
            )
            .values(match_kind="mobile", **copied),
        }

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
            "submit_date": _iso(row["submit_date"]),
            "done_date": _iso(row["done_date"]),
            "received_at": _iso(row["received_at"]),
            "extra": row["extra"] or {},
        }

    # ------------------------------------------------------------------ campaign views

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
        page, page_size = _page_args(page, page_size)
        rc = t.recipients.c
        conditions: list[ColumnElement[bool]] = [rc.campaign_key == campaign_key]
        term = (search or "").strip()
        if term:
            digits = term.lstrip("+").replace(" ", "")
            if digits.isdigit():
                conditions.append(rc.mobile.contains(digits, autoescape=True))
            elif term.upper() == "PENDING":
                conditions.append(or_(rc.status.is_(None), rc.status.not_in(sorted(FINAL_STATUSES))))
            else:
                conditions.append(or_(rc.status == term.upper(), rc.report_message_id == term, rc.message_id == term))
        where = and_(*conditions)
        with self._read() as conn:
            total = int(conn.execute(select(func.count()).select_from(t.recipients).where(where)).scalar() or 0)
            rows = conn.execute(
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
                .where(where)
                .order_by(rc.mobile, rc.id)
                .limit(page_size)
                .offset((page - 1) * page_size)
            ).mappings()
            items = [
                {
                    "mobile": row["mobile"],
                    "message_id": row["report_message_id"] or row["message_id"],
                    "transaction_id": row["message_id"],
                    "unit": row["unit_key"],
                    "matched_by": row["match_kind"],
                    "status": row["status"],
                    "final": row["status"] in FINAL_STATUSES,
                    "error_code": row["error_code"],
                    "sent_at": _iso(row["sent_at"]),
                    "submit_date": _iso(row["submit_date"]),
                    "done_date": _iso(row["done_date"]),
                }
                for row in rows
            ]
        return {"items": items, "page": page, "page_size": page_size, "total": total}

    def list_campaigns(self, page: int = 1, page_size: int = 50) -> dict[str, Any]:
        """One page of campaigns, newest first."""
        page, page_size = _page_args(page, page_size)
        cc = t.campaigns.c
        with self._read() as conn:
            total = int(conn.execute(select(func.count()).select_from(t.campaigns)).scalar() or 0)
            rows = conn.execute(
                select(t.campaigns)
                .order_by(cc.created_at.desc(), cc.campaign_key)
                .limit(page_size)
                .offset((page - 1) * page_size)
            ).mappings()
            items = [
                {
                    "campaign": row["campaign_key"],
                    "dag_id": row["dag_id"],
                    "run_id": row["run_id"],
                    "task_id": row["task_id"],
                    "map_index": row["map_index"],
                    "kind": row["kind"],
                    "recipients": row["recipients"],
                    "created_at": _iso(row["created_at"]),
                    "first_send_at": _iso(row["first_send_at"]),
                    "last_send_at": _iso(row["last_send_at"]),
                }
                for row in rows
            ]
        return {"items": items, "page": page, "page_size": page_size, "total": total}

    # ------------------------------------------------------------------ suppression list

    @staticmethod
    def _suppression_numbers(mobiles: Iterable[str]) -> list[str]:
        numbers = {normalize_mobile(m) for m in mobiles}
        return sorted(n for n in numbers if n)

    def add_suppressed(self, mobiles: Iterable[str], reason: str = "") -> int:
        """Add numbers to the suppression list; returns how many were not on it yet."""
        numbers = self._suppression_numbers(mobiles)
        if not numbers:
            return 0
        now = _utcnow()
        stmt = self._insert(t.suppression).on_conflict_do_nothing(index_elements=["mobile"])
        with self._write() as conn:
            before = int(conn.execute(select(func.count()).select_from(t.suppression)).scalar() or 0)
            conn.execute(stmt, [{"mobile": n, "reason": reason, "added_at": now} for n in numbers])
            after = int(conn.execute(select(func.count()).select_from(t.suppression)).scalar() or 0)
        return after - before

    def remove_suppressed(self, mobiles: Iterable[str]) -> int:
        """Remove numbers from the suppression list; returns how many were on it."""
        numbers = self._suppression_numbers(mobiles)
        removed = 0
        with self._write() as conn:
            for chunk in _chunks(numbers):
                removed += int(
                    conn.execute(delete(t.suppression).where(t.suppression.c.mobile.in_(chunk))).rowcount or 0
                )
        return removed

    def list_suppressed(self, page: int = 1, page_size: int = 100) -> dict[str, Any]:
        """One page of the suppression list, ordered by number."""
        page, page_size = _page_args(page, page_size, max_size=10000)
        sc = t.suppression.c
        with self._read() as conn:
            total = int(conn.execute(select(func.count()).select_from(t.suppression)).scalar() or 0)
            rows = conn.execute(
                select(t.suppression).order_by(sc.mobile).limit(page_size).offset((page - 1) * page_size)
            ).mappings()
            items = [{"mobile": r["mobile"], "reason": r["reason"], "added_at": _iso(r["added_at"])} for r in rows]
        return {"items": items, "page": page, "page_size": page_size, "total": total}

    def suppressed_among(self, mobiles: Iterable[str]) -> set[str]:
        """The numbers among ``mobiles`` (digits with country code) that are on the suppression list."""
        numbers = sorted({m for m in mobiles if m})
        found: set[str] = set()
        with self._read() as conn:
            for chunk in _chunks(numbers):
                found.update(
                    conn.execute(select(t.suppression.c.mobile).where(t.suppression.c.mobile.in_(chunk))).scalars()
                )
        return found


_stores: dict[str, ReportStore] = {}
_stores_lock = threading.Lock()


def get_store(url: str | None = None) -> ReportStore:
    """
    The process-wide :class:`ReportStore` of ``url`` (default :func:`default_store_url`): one engine per URL.

    The schema is created or upgraded the first time a URL is used in the process.
    """
    key = normalize_store_url(url or default_store_url())
    store = _stores.get(key)
    if store is not None:
        return store
    with _stores_lock:
        store = _stores.get(key)
        if store is None:
            store = ReportStore(key)
            _stores[key] = store
        return store


def clear_store_cache() -> None:
    """Dispose of every cached store (tests, forked processes)."""
    with _stores_lock:
        for store in _stores.values():
            store.dispose()
        _stores.clear()
