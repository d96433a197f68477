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
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, exists, func, insert, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from airflow_provider_messagecentral.reports.models import DeliveryReport, IngestResult
from airflow_provider_messagecentral.reports.store import precedence
from airflow_provider_messagecentral.reports.store import tables as t
from airflow_provider_messagecentral.reports.store.engine import StoreEngine, chunks, dialect_insert, utcnow

log = logging.getLogger(__name__)

#: SQLSTATEs after which PostgreSQL rolled the transaction back and running it again is the documented remedy:
#: serialization_failure and deadlock_detected.
_RETRY_SQLSTATES = frozenset({"40001", "40P01"})
#: How many times an ingest transaction runs before its error reaches the caller (the receiver answers 503).
INGEST_ATTEMPTS = 4
#: Report columns an upsert that wins replaces.
_REPLACED = (
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


def _retryable(err: DBAPIError) -> bool:
    """Whether the database aborted the transaction for a deadlock or serialization failure (safe to rerun)."""
    return getattr(err.orig, "sqlstate", None) in _RETRY_SQLSTATES


@dataclass(frozen=True)
class IngestStatements:
    """
    The statements of :meth:`IngestRoom.ingest` for one dialect, built once per store.

    :param upsert: insert a report, or replace the stored one when :func:`.precedence.report_replaces`;
        ``RETURNING`` the message ids it wrote.
    :param by_id_mobile: copy report ``:b_mid`` onto the recipients sent with that transaction id and mobile.
    :param by_id_only: the same without a mobile (for a transaction id that names one recipient).
    :param by_mobile: copy it onto recipients of its mobile in a campaign window, unless matched by id or by a
        later report.

    Example::

        statements = IngestStatements.build("sqlite")
        written = set(conn.execute(statements.upsert, rows).scalars())
    """

    upsert: Any
    by_id_mobile: Any
    by_id_only: Any
    by_mobile: Any

    @classmethod
    def build(cls, dialect: str) -> IngestStatements:
        """The statements of ``dialect`` (``sqlite`` or ``postgresql``)."""
        if dialect == "sqlite" and sqlite3.sqlite_version_info < (3, 35):
            raise RuntimeError(
                f"the report store needs SQLite 3.35 or newer (INSERT ... RETURNING); this Python uses SQLite "
                f"{sqlite3.sqlite_version}: use a newer Python/SQLite or PostgreSQL"
            )
        upsert = dialect_insert(dialect, t.reports)
        upsert = upsert.on_conflict_do_update(
            index_elements=["message_id"],
            set_={name: getattr(upsert.excluded, name) for name in _REPLACED},
            where=precedence.report_replaces(upsert.excluded, dialect),
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
        takes = precedence.recipient_takes(dialect)
        in_window = exists().where(
            cc.campaign_key == rc.campaign_key,
            cc.window_start <= bindparam("b_date"),
            cc.window_end >= bindparam("b_date"),
        )
        later_by_mobile = and_(
            rc.match_kind == "mobile",
            or_(rc.report_message_id == bindparam("b_mid"), rc.match_date <= bindparam("b_date")),
        )
        return cls(
            upsert=upsert.returning(t.reports.c.message_id),
            by_id_mobile=update(t.recipients)
            .where(rc.message_id == bindparam("b_mid"), rc.mobile == bindparam("b_mobile"), takes)
            .values(match_kind="id", **copied),
            by_id_only=update(t.recipients)
            .where(rc.message_id == bindparam("b_mid"), takes)
            .values(match_kind="id", **copied),
            by_mobile=update(t.recipients)
            .where(
                rc.mobile == bindparam("b_mobile"),
                or_(rc.match_kind.is_(None), later_by_mobile),
                in_window,
                takes,
            )
            .values(match_kind="mobile", **copied),
        )


class IngestRoom(StoreEngine):
    """
    Report ingest of a report store (one room of :class:`~airflow_provider_messagecentral.reports.store.ReportStore`).

    Example::

        result = store.ingest([DeliveryReport(messageId="m1", status="DELIVRD")], ['{"messageId": "m1"}'])
        print(result.stored, result.duplicates, result.ignored_stale)
    """

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
        now = utcnow()
        batch = IngestResult()
        best: dict[str, DeliveryReport] = {}
        for report in reports:
            current = best.get(report.messageId)
            if current is None:
                best[report.messageId] = report
                continue
            verdict = precedence.verdict(precedence.Standing.of(current), precedence.Standing.of(report))
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

    @functools.cached_property
    def _ingest_sql(self) -> IngestStatements:
        """The statements of :meth:`ingest`, built once per store (building and keying them is not free)."""
        return IngestStatements.build(self.dialect)

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
            upsert = self._ingest_sql.upsert
            written = set(conn.execute(upsert, [self._report_params(r, now) for r in ordered]).scalars())
            winners = [r for r in ordered if r.messageId in written]
            result.stored = len(winners)
            refused = [r for r in ordered if r.messageId not in written]
            if refused:
                self._count_refused(conn, refused, result)
            if winners:
                self._match_reports(conn, winners, now)

    @staticmethod
    def _count_refused(conn: Connection, refused: list[DeliveryReport], result: IngestResult) -> None:
        """Count reports the upsert refused as duplicates (the stored status is theirs) or stale."""
        # Rows refused by the upsert are locked by it (PostgreSQL): this read sees what refused them.
        current: dict[str, str] = {}
        for chunk in chunks([r.messageId for r in refused]):
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

    @staticmethod
    def _report_params(report: DeliveryReport, now: datetime) -> dict[str, Any]:
        """The row of ``mc_reports`` that stores ``report`` (arrived at ``now``)."""
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
                **precedence.rank_params(precedence.Standing.of(report)),
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
            conn.execute(sql.by_id_mobile, by_id_mobile)
        if by_id_any:
            # A report without a mobile matches by id only when the id names exactly one recipient
            # (a bulk request's transactionId is shared by the whole chunk). One counting query per chunk.
            rc = t.recipients.c
            counts: dict[str, int] = {}
            for chunk in chunks([p["b_mid"] for p in by_id_any]):
                counts.update(
                    conn.execute(
                        select(rc.message_id, func.count()).where(rc.message_id.in_(chunk)).group_by(rc.message_id)
                    ).all()
                )
            single = [p for p in by_id_any if counts.get(p["b_mid"]) == 1]
            if single:
                conn.execute(sql.by_id_only, single)
        if by_mobile:
            conn.execute(sql.by_mobile, by_mobile)
