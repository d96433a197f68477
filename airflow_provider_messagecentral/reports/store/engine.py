"""
The store's engine: connections, transactions, schema migrations and health.

SQLite (default, WAL) or PostgreSQL (psycopg 3), through SQLAlchemy Core. Every room of the store
(:mod:`.ledger`, :mod:`.ingest`, :mod:`.views`, :mod:`.suppression`) builds on :class:`StoreEngine` and runs
each public method as one short transaction (:meth:`StoreEngine._write` or :meth:`StoreEngine._read`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, func, insert, inspect, select, text
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection, Engine, make_url

from airflow_provider_messagecentral.client.store_url import default_store_url, mask_url, normalize_store_url
from airflow_provider_messagecentral.reports.store import tables as t

log = logging.getLogger(__name__)

#: Longest ``IN (...)`` list a statement is given; longer lists are read in chunks (:func:`chunks`).
IN_CHUNK = 500
_PG_MIGRATION_LOCK = 0x6D635F7363686D  # "mc_schm"


def utcnow() -> datetime:
    """Now, as the naive UTC datetime every ``DateTime`` column holds."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def chunks(items: Sequence[str], size: int = IN_CHUNK) -> Iterator[Sequence[str]]:
    """``items`` in slices of at most ``size`` (one ``IN`` list each)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def dialect_insert(dialect: str, table: Any) -> Any:
    """``INSERT`` into ``table`` in ``dialect`` (both have ``on_conflict_do_update`` / ``on_conflict_do_nothing``)."""
    return (pg_dialect.insert if dialect == "postgresql" else sqlite_dialect.insert)(table)


def create_store_engine(url: str) -> Engine:
    """
    An engine for ``url``. PostgreSQL: a pre-pinged pool. SQLite: WAL (unless in memory), a 30 s busy
    timeout, and transactions begun explicitly: ``BEGIN IMMEDIATE`` for writers (:meth:`StoreEngine._write`),
    ``BEGIN`` for readers.
    """
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


class StoreEngine:
    """
    The engine of a report store and its schema: what every room of :class:`ReportStore` builds on.

    :param url: SQLAlchemy URL (``sqlite:///path.db`` or ``postgresql+psycopg://user:pw@host/db``); default
        :func:`~airflow_provider_messagecentral.client.store_url.default_store_url`.
    :param migrate: create/upgrade the schema now (default ``True``).

    Example::

        engine = StoreEngine("sqlite:////tmp/reports.db")
        assert engine.ping() and engine.schema_version() == tables.LATEST_VERSION
    """

    def __init__(self, url: str | None = None, *, migrate: bool = True) -> None:
        self.url = normalize_store_url(url or default_store_url())
        self._write_lock = threading.Lock()
        self.engine = create_store_engine(self.url)
        self.dialect = self.engine.dialect.name
        if migrate:
            self.migrate()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.masked_url!r})"

    @property
    def masked_url(self) -> str:
        """The URL with its password masked (safe to log)."""
        return mask_url(self.url)

    @contextmanager
    def _write(self, connection: Connection | None = None) -> Iterator[Connection]:
        """A write transaction (committed on exit), on ``connection`` when the caller holds one (left open)."""
        # SQLite has one writer at a time. Threads of this process queue on a Python lock (woken the moment
        # it is released) rather than in SQLite's busy handler, which sleeps in steps of up to 100 ms and
        # made p99 latency under 32 concurrent callbacks seconds long. Other processes still wait through
        # busy_timeout.
        opened = self.engine.connect() if connection is None else nullcontext(connection)
        with self._write_lock if self.dialect == "sqlite" else nullcontext(), opened as conn:
            conn.execution_options(mc_write=True)
            with conn.begin():
                yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        """A read transaction."""
        with self.engine.connect() as conn, conn.begin():
            yield conn

    def _insert(self, table: Any) -> Any:
        """``INSERT`` into ``table`` in this store's dialect (:func:`dialect_insert`)."""
        return dialect_insert(self.dialect, table)

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

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
                    insert(t.schema_version).values(version=version, description=description, applied_at=utcnow())
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
