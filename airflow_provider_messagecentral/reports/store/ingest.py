"""
Ingest of delivery reports: the raw audit table, the reports table, and matching onto campaign recipients.

Matching a recipient to its report happens when the report arrives (and, for reports that arrived before
the send was recorded, when the recipient is recorded: :mod:`.ledger`): the matched report's status is
copied onto the recipient row, so a campaign summary is one ``GROUP BY`` over an index. Rules:

* by id: the report's ``messageId`` equals the send's ``transactionId`` (and the mobile agrees; a report
  without a mobile matches by id only when the id names exactly one recipient);
* else by mobile: the latest report (by submit date) for the recipient's number whose submit date lies in
  the campaign window ``[first_send_at - 1 min, last_send_at + 3 days]``.

A number texted by two campaigns whose windows overlap counts a report for both campaigns: without a
per-recipient id there is no way to tell the two messages apart. A report without ``submitDate`` matches
by its ``doneDate`` (else its arrival time). Which of two reports of one message wins is
:mod:`.precedence`'s rule, everywhere.
"""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from airflow_provider_messagecentral.reports.models import DeliveryReport, IngestResult
from airflow_provider_messagecentral.reports.store.attribution import BatchAttribution, IngestRequest
from airflow_provider_messagecentral.reports.store.engine import StoreEngine, utcnow
from airflow_provider_messagecentral.reports.store.group_commit import GroupCommit
from airflow_provider_messagecentral.reports.store.ingest_pg import PostgresIngest
from airflow_provider_messagecentral.reports.store.ingest_sql import IngestSQL, IngestStatements, MatchGroups

__all__ = ["INGEST_ATTEMPTS", "IngestRequest", "IngestRoom", "IngestStatements"]

log = logging.getLogger(__name__)

#: SQLSTATEs after which PostgreSQL rolled the transaction back and running it again is the documented remedy:
#: serialization_failure and deadlock_detected.
_RETRY_SQLSTATES = frozenset({"40001", "40P01"})
#: How many times an ingest transaction runs before its error reaches the caller (the receiver answers 503).
INGEST_ATTEMPTS = 4


def _retryable(err: DBAPIError) -> bool:
    """Whether the database aborted the transaction for a deadlock or serialization failure (safe to rerun)."""
    return getattr(err.orig, "sqlstate", None) in _RETRY_SQLSTATES


class IngestRoom(StoreEngine):
    """
    Report ingest of a report store (one room of :class:`~airflow_provider_messagecentral.reports.store.ReportStore`).

    Example::

        result = store.ingest([DeliveryReport(messageId="m1", status="DELIVRD")], ['{"messageId": "m1"}'])
        print(result.stored, result.duplicates, result.ignored_stale)
    """

    def ingest(self, reports: list[DeliveryReport], raw_bodies: list[str], remote: str | None = None) -> IngestResult:
        """
        Store one callback's delivery reports in one short transaction and match them to campaign recipients.

        Idempotent on ``messageId``: the same status again is a duplicate; a final status is never replaced
        by a non-final one; otherwise the newer report (by doneDate, then submitDate) wins.

        :param reports: validated reports.
        :param raw_bodies: the received documents, appended to the raw audit table as they are.
        :param remote: the sender's address, for the audit table.
        """
        return self.ingest_batch([IngestRequest(reports, raw_bodies, remote)])[0]

    def ingest_batch(
        self, requests: Sequence[IngestRequest], connection: Connection | None = None
    ) -> list[IngestResult]:
        """
        Store several callbacks in one transaction (group commit); one :class:`IngestResult` per request.

        Each request's counts are those it would get had the requests been committed one after another in
        the order given (:mod:`.attribution`). Rows are written in ``messageId`` order (recipients in mobile
        order), so concurrent transactions holding the same messages lock them in one order; a transaction
        PostgreSQL still aborts for a deadlock or a serialization failure is run again
        (:data:`INGEST_ATTEMPTS` times in all) before the error is raised. Nothing of a failed transaction
        is stored.

        :param connection: a connection of this store the caller holds (the group-commit writer keeps one
            while it has work); default: one from the pool for this transaction.
        """
        batch = BatchAttribution(requests)
        now = utcnow()
        for attempt in range(1, INGEST_ATTEMPTS + 1):
            results: list[IngestResult] = []
            try:
                self._translated(self._ingest_tx, batch, now, results, connection)
            except DBAPIError as err:
                if attempt == INGEST_ATTEMPTS or not _retryable(err):
                    raise
                log.warning(
                    "Report store %s: ingest of %d reports aborted (SQLSTATE %s), running it again (attempt %d of %d)",
                    self.masked_url,
                    len(batch.message_ids),
                    getattr(err.orig, "sqlstate", None),
                    attempt + 1,
                    INGEST_ATTEMPTS,
                )
                time.sleep(random.uniform(0.005, 0.02) * attempt)
                continue
            return results
        raise AssertionError("unreachable")  # pragma: no cover

    def writer_connection(self) -> Connection:
        """
        A connection for a writer that holds it across ingest transactions (``ingest_batch(...,
        connection=...)``): no pool checkout, nor its ping, per transaction. The caller closes it.
        """
        return self.engine.connect()

    def connection_lost(self, connection: Connection, err: BaseException) -> bool:
        """Whether ``err``, raised by a transaction on ``connection``, says the database connection is gone."""
        if connection.invalidated or getattr(err, "connection_invalidated", False):
            return True  # SQLAlchemy saw the disconnect (rolling back on the dead connection) and dropped it
        driver = connection.connection.dbapi_connection
        orig: Any = getattr(err, "orig", None) or err
        return driver is None or bool(self.engine.dialect.is_disconnect(orig, driver, None))

    @property
    def group_commit(self) -> GroupCommit:
        """
        This store's group-commit writer in this process (:mod:`.group_commit`), created on first use: the
        receiver hands every validated callback to it.
        """
        return GroupCommit.of(self)

    def _translated(self, tx: Callable[..., None], *args: Any) -> None:
        """
        Run ``tx``; an error of the driver (statements run on its cursor) is raised as SQLAlchemy's
        :class:`~sqlalchemy.exc.DBAPIError` of the same kind, as every other store method raises it.
        """
        driver_error = self.engine.dialect.loaded_dbapi.Error
        try:
            tx(*args)
        except driver_error as err:
            raise DBAPIError.instance(None, None, err, driver_error, dialect=self.engine.dialect) from err

    @functools.cached_property
    def _ingest_sql(self) -> IngestSQL:
        """The statements of :meth:`ingest`, built and compiled once per store."""
        return IngestSQL(self.engine.dialect)

    @functools.cached_property
    def _postgresql(self) -> PostgresIngest:
        """The set-based statements of PostgreSQL ingest, built and compiled once per store."""
        return PostgresIngest(self.engine.dialect, self._ingest_sql)

    def _ingest_postgresql(
        self, batch: BatchAttribution, now: datetime, results: list[IngestResult], connection: Connection | None
    ) -> None:
        """
        One ingest transaction on PostgreSQL: :mod:`.ingest_pg` (the steps of :meth:`_ingest_sqlite` as
        set-based statements in two round trips, the commit in the second) on the driver of a write
        connection, whose own commit then finds nothing left to do.
        """
        with self._write(connection) as conn:
            results[:] = self._postgresql.transaction(conn.connection.driver_connection, batch, now)

    def _ingest_tx(
        self, batch: BatchAttribution, now: datetime, results: list[IngestResult], connection: Connection | None
    ) -> None:
        """One ingest transaction (``results`` gets one answer per request once it committed)."""
        if self.dialect == "sqlite":
            self._ingest_sqlite(batch, now, results, connection)
        else:
            self._ingest_postgresql(batch, now, results, connection)

    def _ingest_sqlite(
        self, batch: BatchAttribution, now: datetime, results: list[IngestResult], connection: Connection | None
    ) -> None:
        """
        One ingest transaction on SQLite (:mod:`.ingest_pg` takes the same steps set-based on PostgreSQL).

        1. The stored standing of the batch's messages is read and held: SQLite's writer holds the whole
           database.
        2. The batch is judged from what is held (:meth:`.attribution.BatchAttribution.settle`): a verdict
           on the rows as they are while this transaction holds them, never on an earlier read.
        3. New messages are inserted; replaced ones go through the report upsert, whose ``WHERE`` is the
           precedence rule again (:func:`.precedence.report_replaces`).
        4. Every report the judgement stored is copied onto the recipients it matches, in order.
        """
        sql = self._ingest_sql
        with self._write(connection) as conn:
            cursor = sql.cursor(conn)
            raw = batch.raw_rows()
            if raw:
                sql.add_raw(cursor, [sql.raw_row(now, remote, body) for remote, body in raw])
            held = sql.held(cursor, batch.message_ids)
            answers, winners, stored = batch.settle(held)
            changed = [winners[mid] for mid in batch.message_ids if mid in winners]
            fresh = [report for report in changed if report.messageId not in held]
            replacing = [report for report in changed if report.messageId in held]
            if fresh:
                sql.add_new(cursor, [sql.report_row(report, now) for report in fresh])
            if replacing:
                sql.upsert.executemany(cursor, [sql.report_row(report, now) for report in replacing])
            if stored:
                self._match_reports(conn, stored, now)
        results[:] = answers

    def _match_reports(self, conn: Connection, winners: Iterable[DeliveryReport], now: datetime) -> None:
        """
        Copy newly stored reports onto the recipients they match (by id, else by mobile in window).

        The updates run in one order in every transaction (by id: messageId then mobile; by mobile: mobile then
        messageId), so two concurrent batches never wait for each other's recipient rows in opposite orders.
        """
        if self.dialect != "sqlite":
            self._postgresql.match(conn.connection.driver_connection, list(winners), now)
            return
        sql = self._ingest_sql
        cursor = sql.cursor(conn)
        params = [sql.match_params(report, now) for report in winners]
        # How many recipients each message id was sent to (0: none, the common case of bulk sends): only ids
        # that name a recipient are matched by id; one without a mobile only when it names exactly one (a
        # bulk request's transactionId is shared by the whole chunk).
        sent = sql.recipients_per_id(cursor, sorted({p["b_mid"] for p in params}))
        groups = MatchGroups.of(params, sent)
        if groups.by_id_mobile:
            sql.by_id_mobile.executemany(cursor, groups.by_id_mobile)
        if groups.by_id_only:
            sql.by_id_only.executemany(cursor, groups.by_id_only)
        if groups.by_mobile:
            sql.by_mobile.executemany(cursor, groups.by_mobile)
