"""
The SQL of ingest: statements defined once with SQLAlchemy Core, compiled once per store, run on the driver.

Ingest is the receiver's hot path: a group commit writes thousands of rows a second. SQLAlchemy's
per-row parameter processing cost more than SQLite's own work, so :class:`IngestSQL` compiles each statement
of :class:`IngestStatements` once for the store's dialect and runs it on the DBAPI cursor of the
transaction's connection, with rows whose values are already what the driver takes (:meth:`IngestSQL.value`:
dates as SQLAlchemy's SQLite text, JSON as text; PostgreSQL gets the casts SQLAlchemy renders).
"""

from __future__ import annotations

import json
import sqlite3
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import (
    ColumnElement,
    DateTime,
    Integer,
    String,
    and_,
    bindparam,
    exists,
    insert,
    literal_column,
    or_,
    update,
)
from sqlalchemy.engine import Connection, Dialect

from airflow_provider_messagecentral.reports.models import DeliveryReport
from airflow_provider_messagecentral.reports.store import precedence
from airflow_provider_messagecentral.reports.store import tables as t
from airflow_provider_messagecentral.reports.store.engine import chunks, dialect_insert

#: Report columns an upsert that wins replaces.
REPLACED = (
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
REPORT_COLUMNS = ("message_id", *REPLACED)
RAW_COLUMNS = ("received_at", "remote", "body")


@dataclass(frozen=True)
class IngestStatements:
    """
    The statements of ingest for one dialect, built once per store.

    :param insert_new: insert a report unless its message is stored (``RETURNING`` the message ids inserted).
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

    insert_new: Any
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
            set_={name: getattr(upsert.excluded, name) for name in REPLACED},
            where=precedence.report_replaces(upsert.excluded, dialect),
        )
        insert_new = dialect_insert(dialect, t.reports).on_conflict_do_nothing(index_elements=["message_id"])
        by_id_mobile, by_id_only, by_mobile = match_statements(dialect, ROW_MATCH_SOURCE)
        return cls(
            insert_new=insert_new.returning(t.reports.c.message_id),
            upsert=upsert.returning(t.reports.c.message_id),
            by_id_mobile=by_id_mobile,
            by_id_only=by_id_only,
            by_mobile=by_mobile,
        )


#: What the recipient updates copy from a report (:meth:`IngestSQL.match_params`): parameter name -> type.
MATCH_VALUES: dict[str, Any] = {
    "b_mid": String(),
    "b_mobile": String(),
    "b_status": String(),
    "b_error": Integer(),
    "b_submit": DateTime(),
    "b_done": DateTime(),
    "b_date": DateTime(),
    "b_final": Integer(),
    "b_done_key": DateTime(),
    "b_submit_key": DateTime(),
}
#: One report's values as bound parameters (the rank typed, as :func:`.precedence.recipient_takes` binds it).
ROW_MATCH_SOURCE: dict[str, Any] = {
    name: bindparam(name, type_=kind) if name in ("b_final", "b_done_key", "b_submit_key") else bindparam(name)
    for name, kind in MATCH_VALUES.items()
}


def match_statements(dialect: str, b: Mapping[str, Any]) -> tuple[Any, Any, Any]:
    """
    The recipient updates (see :class:`IngestStatements`) that copy the report whose values ``b`` holds
    (:data:`MATCH_VALUES` names): bound parameters of one report (:data:`ROW_MATCH_SOURCE`), or the columns
    of a set of reports an ``UPDATE ... FROM`` joins (:mod:`.ingest_pg`).
    """
    rc, cc = t.recipients.c, t.campaigns.c
    copied: dict[str, Any] = {
        "report_message_id": b["b_mid"],
        "match_date": b["b_date"],
        "status": b["b_status"],
        "error_code": b["b_error"],
        "submit_date": b["b_submit"],
        "done_date": b["b_done"],
    }
    takes = precedence.recipient_takes(dialect, b["b_mid"], (b["b_final"], b["b_done_key"], b["b_submit_key"]))
    in_window = exists().where(
        cc.campaign_key == rc.campaign_key,
        cc.window_start <= b["b_date"],
        cc.window_end >= b["b_date"],
    )
    # Our own constants, inlined: the driver statements then take nothing but the rows' values.
    by_id: ColumnElement[str] = literal_column("'id'")
    by_mobile: ColumnElement[str] = literal_column("'mobile'")
    later_by_mobile = and_(
        rc.match_kind == by_mobile,
        or_(rc.report_message_id == b["b_mid"], rc.match_date <= b["b_date"]),
    )
    return (
        update(t.recipients)
        .where(rc.message_id == b["b_mid"], rc.mobile == b["b_mobile"], takes)
        .values(match_kind=by_id, **copied),
        update(t.recipients).where(rc.message_id == b["b_mid"], takes).values(match_kind=by_id, **copied),
        update(t.recipients)
        .where(rc.mobile == b["b_mobile"], or_(rc.match_kind.is_(None), later_by_mobile), in_window, takes)
        .values(match_kind=by_mobile, **copied),
    )


@dataclass(frozen=True)
class MatchGroups:
    """
    Which recipient update copies each report, in the order the updates lock rows.

    :param by_id_mobile: reports with a mobile whose id was sent to some recipient (by id and number).
    :param by_id_only: reports without a mobile whose id names exactly one recipient (a bulk request's id is
        shared by its whole chunk, so it names nobody alone).
    :param by_mobile: every report with a mobile (matched by number within its campaign's window).
    """

    by_id_mobile: list[dict[str, Any]]
    by_id_only: list[dict[str, Any]]
    by_mobile: list[dict[str, Any]]

    @classmethod
    def of(cls, params: Sequence[dict[str, Any]], sent: Mapping[str, int]) -> MatchGroups:
        """Group :meth:`IngestSQL.match_params` rows, given how many recipients each message id was sent to."""
        return cls(
            by_id_mobile=sorted(
                (p for p in params if p["b_mobile"] is not None and sent.get(p["b_mid"])),
                key=lambda p: (p["b_mid"], p["b_mobile"]),
            ),
            by_id_only=sorted(
                (p for p in params if p["b_mobile"] is None and sent.get(p["b_mid"]) == 1), key=lambda p: p["b_mid"]
            ),
            by_mobile=sorted(
                (p for p in params if p["b_mobile"] is not None), key=lambda p: (p["b_mobile"], p["b_mid"])
            ),
        )


class DriverStatement:
    """
    A Core statement compiled once for a dialect, run on the DBAPI cursor with ready values.

    Positional drivers (SQLite's ``?``) get tuples in the compiled order, named ones (psycopg's ``%(name)s``)
    the row dicts themselves. The statement must bind nothing but the rows' keys (constants inlined).

    Example::

        raw = DriverStatement(insert(t.raw_reports), engine.dialect, RAW_COLUMNS)
        raw.executemany(cursor, [{"received_at": "2024-05-01 00:00:00.000000", "remote": None, "body": "{}"}])
    """

    def __init__(self, statement: Any, dialect: Dialect, column_keys: Sequence[str] | None = None) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=list(column_keys) if column_keys else None)
        self.sql: str = compiled.string
        # Only Python 3.11's sqlite3 runs executemany() of INSERT ... RETURNING cleanly: 3.10 refuses it ("can only
        # execute DML statements") and 3.12+ leaves the statement in progress ("cannot commit transaction").
        self._returning_row_by_row = sys.version_info[:2] != (3, 11) and " RETURNING " in self.sql.upper()
        constants = [name for bind, name in compiled.bind_names.items() if not bind.required]
        if constants:
            raise ValueError(f"inline the constants {constants} of {self.sql[:60]!r}...")
        positions = tuple(compiled.positiontup or ())
        # itemgetter of one name returns the value, not a 1-tuple: every statement here binds several.
        self._positional = itemgetter(*positions) if len(positions) > 1 else None

    def args(self, params: dict[str, Any]) -> Any:
        """The driver's parameters for one row."""
        return params if self._positional is None else self._positional(params)

    def executemany(self, cursor: Any, rows: Sequence[dict[str, Any]]) -> None:
        """Run the statement once per row (one driver call; one call per row where the driver refuses that)."""
        args = rows if self._positional is None else list(map(self._positional, rows))
        if self._returning_row_by_row and isinstance(cursor, sqlite3.Cursor):
            # SQLite makes every change of an INSERT ... RETURNING on its first step: the returned rows are
            # read to the end (so the statement is finished before the commit) and dropped, as executemany() drops them.
            for arg in args:
                cursor.execute(self.sql, arg).fetchall()
            return
        cursor.executemany(self.sql, args)


class IngestSQL:
    """
    The compiled ingest statements of one store and the rows they take.

    Example::

        sql = IngestSQL(engine.dialect)
        with engine.begin() as conn:
            sql.raw.executemany(sql.cursor(conn), [sql.raw_row(now, None, "{}")])
    """

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect.name
        self.statements = IngestStatements.build(self.dialect)
        s = self.statements
        self.raw = DriverStatement(insert(t.raw_reports), dialect, RAW_COLUMNS)
        self.insert_new = DriverStatement(s.insert_new, dialect, REPORT_COLUMNS)
        self.upsert = DriverStatement(s.upsert, dialect, REPORT_COLUMNS)
        self.by_id_mobile = DriverStatement(s.by_id_mobile, dialect)
        self.by_id_only = DriverStatement(s.by_id_only, dialect)
        self.by_mobile = DriverStatement(s.by_mobile, dialect)
        self._epoch = self.value(precedence.EPOCH)
        self._held_sql = f"SELECT message_id, status, is_final, done_date, submit_date FROM {t.reports.name} WHERE "
        self._sent_sql = f"SELECT message_id, count(*) FROM {t.recipients.name} WHERE "

    def add_raw(self, cursor: Any, rows: Sequence[dict[str, Any]]) -> None:
        """Append rows (:meth:`raw_row`) to the raw audit table."""
        self.raw.executemany(cursor, rows)

    def add_new(self, cursor: Any, rows: Sequence[dict[str, Any]]) -> None:
        """
        Insert reports (:meth:`report_row`) of messages the transaction read as not stored, while it holds the
        database (SQLite): all of them are inserted.
        """
        self.insert_new.executemany(cursor, rows)

    @staticmethod
    def cursor(conn: Connection) -> Any:
        """The DBAPI cursor of ``conn``'s connection (inside its SQLAlchemy transaction)."""
        return conn.connection.cursor()

    @staticmethod
    def value(when: datetime | None) -> str | None:
        """
        A date as the statements take it: SQLAlchemy's SQLite text form (``2024-05-01 13:59:18.000000``),
        which PostgreSQL reads as a ``timestamp`` too (:mod:`.ingest_pg` sends rows as JSON).
        """
        return None if when is None else when.isoformat(" ", "microseconds")

    def _date(self, stored: Any) -> datetime | None:
        if stored is None or isinstance(stored, datetime):
            return stored
        return datetime.fromisoformat(stored)

    def raw_row(self, now: datetime, remote: str | None, body: str) -> dict[str, Any]:
        """A row of the raw audit table."""
        return {"received_at": self.value(now), "remote": remote, "body": body}

    def report_row(self, report: DeliveryReport, now: datetime) -> dict[str, Any]:
        """The row of ``mc_reports`` that stores ``report`` (arrived at ``now``)."""
        value, extra = self.value, report.model_extra
        return {
            "message_id": report.messageId,
            "status": report.status,
            "is_final": int(report.is_final),
            "error_code": report.errorCode,
            "mobile": report.mobile,
            "country_code": report.countryCode,
            "client_id": report.clientId,
            "submit_date": value(report.submitDate),
            "done_date": value(report.doneDate),
            "received_at": value(now),
            # SQLAlchemy's JSON type stores None as JSON null, never SQL NULL: the same here.
            "extra": json.dumps(extra) if extra else "null",
        }

    def match_params(self, report: DeliveryReport, now: datetime) -> dict[str, Any]:
        """The parameters of the recipient updates that copy ``report`` (see :class:`IngestStatements`)."""
        value = self.value
        submit, done = value(report.submitDate), value(report.doneDate)
        return {
            "b_mid": report.messageId,
            "b_status": report.status,
            # precedence.rank_params, with the dates as the driver takes them
            "b_final": int(report.is_final),
            "b_done_key": self._epoch if done is None else done,
            "b_submit_key": self._epoch if submit is None else submit,
            "b_error": report.errorCode,
            "b_submit": submit,
            "b_done": done,
            "b_date": submit or done or value(now),
            "b_mobile": report.mobile,
        }

    def recipients_per_id(self, cursor: Any, message_ids: Sequence[str]) -> dict[str, int]:
        """How many recipients each of ``message_ids`` was sent to (ids sent to none are left out)."""
        sent: dict[str, int] = {}
        for chunk in chunks(message_ids):
            cursor.execute(*self._in_list(self._sent_sql, chunk, " GROUP BY message_id"))
            sent.update(cursor.fetchall())
        return sent

    @staticmethod
    def _in_list(head: str, chunk: Sequence[str], tail: str) -> tuple[str, tuple[Any, ...]]:
        """``head`` + ``message_id`` in ``chunk`` + ``tail``, with SQLite's parameters."""
        return f"{head}message_id IN ({','.join('?' * len(chunk))}){tail}", tuple(chunk)

    def held(self, cursor: Any, message_ids: Sequence[str]) -> dict[str, precedence.Standing]:
        """The stored standing of ``message_ids`` (SQLite: the transaction holds the whole database)."""
        held: dict[str, precedence.Standing] = {}
        for chunk in chunks(message_ids):
            cursor.execute(*self._in_list(self._held_sql, chunk, ""))
            for mid, status, final, done, submit in cursor.fetchall():
                held[mid] = precedence.Standing(status, bool(final), self._date(done), self._date(submit))
        return held
