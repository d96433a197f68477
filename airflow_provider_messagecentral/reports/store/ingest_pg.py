"""
PostgreSQL ingest in set-based statements: a group commit's transaction in two round trips, whatever the batch.

Each step is one statement over the batch's rows, compiled once and prepared once per connection (the text
does not depend on the batch size). A round trip is one simple query of libpq (:class:`RoundTrip`):
``BEGIN; ...; EXECUTE step(literal, ...); ...`` — not the driver's pipeline, whose every statement sent
and result read is a wait on the socket that lets the receiver's event loop take the GIL: under load the
writer then waited ~0.3-2.5 ms for it back, eight times a transaction (6.3 ms of a 7.7 ms transaction).

The rows go as one JSON document per statement (``json_to_recordset``):
Python's JSON encoder and PostgreSQL's parser are C, where the driver's adaptation of lists spent Python per
value. The ids and mobiles a statement looks up also go as an array (``= ANY``), so the planner uses their
index whatever it believes of the table (with stale statistics it chose to scan every recipient).

1. raw bodies appended; the message's last winner inserted where no row exists (``ON CONFLICT DO NOTHING
   RETURNING``, in ``messageId`` order); the batch's messages read and locked (``FOR UPDATE``, in
   ``messageId`` order); how many recipients each id was sent to — then :mod:`.attribution` judges the batch;
2. the replaced reports upserted (the precedence rule in the ``WHERE`` again), the stored reports copied onto
   the recipients they match (``UPDATE ... FROM``, :func:`.ingest_sql.match_statements` over the set), and
   the commit.

Per-row statements cost PostgreSQL's executor (and the driver) a statement per report; these cost one
per batch. An ``UPDATE ... FROM`` changes a row once per statement, so reports that would update the same
recipients (two reports of one mobile in a batch) go in successive statements, in the order the per-row
updates ran (:func:`rounds`).
"""

from __future__ import annotations

import itertools
import json
import re
import weakref
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from operator import itemgetter
from typing import Any, NamedTuple

from sqlalchemy import (
    JSON,
    BigInteger,
    Integer,
    SmallInteger,
    String,
    Text,
    any_,
    bindparam,
    cast,
    column,
    func,
    insert,
    literal_column,
    null,
    select,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Dialect
from sqlalchemy.types import DateTime

from airflow_provider_messagecentral.reports.models import DeliveryReport
from airflow_provider_messagecentral.reports.store import precedence
from airflow_provider_messagecentral.reports.store import tables as t
from airflow_provider_messagecentral.reports.store.attribution import BatchAttribution
from airflow_provider_messagecentral.reports.store.ingest_sql import (
    MATCH_VALUES,
    REPLACED,
    REPORT_COLUMNS,
    IngestSQL,
    MatchGroups,
    match_statements,
)

#: Types of the report columns as the rows document holds them (``extra`` as text, cast to the column's type).
_REPORT_TYPES: dict[str, Any] = {
    "message_id": String(),
    "status": String(),
    "is_final": SmallInteger(),
    "error_code": Integer(),
    "mobile": String(),
    "country_code": String(),
    "client_id": String(),
    "submit_date": DateTime(),
    "done_date": DateTime(),
    "received_at": DateTime(),
    "extra": Text(),
}


#: The first statement of every ingest transaction: how PostgreSQL plans its statements until it commits.
#: The driver prepares the statements; left to itself, PostgreSQL planned each execution again (a custom plan
#: for the batch's values: ~0.2 ms of server CPU per statement, more than executing it) and, when it did
#: keep a generic plan, kept one made while the tables were small (before autovacuum analyzes them) that read
#: the whole reports table for a few ids, for every batch after. Here every plan is generic, made once per
#: connection and statement, and without sequential scans: it looks the batch's rows up in their indexes,
#: whatever the statistics say. Dates come back as text, in ``DateStyle`` ISO: what ``datetime.fromisoformat``
#: reads.
INDEX_LOOKUPS_ONLY = (
    "SELECT set_config('enable_seqscan', 'off', true), set_config('plan_cache_mode', 'force_generic_plan', true),"
    " set_config('DateStyle', 'ISO', true)"
)
#: SQLSTATE of ``EXECUTE`` naming no prepared statement (the driver deallocates every one after a rollback
#: when it had prepared statements of its own).
_NOT_PREPARED = "26000"
_instances = itertools.count(1)
_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


class Prepared(NamedTuple):
    """A statement prepared on each connection as ``name``; ``params``: its parameters in ``$n`` order."""

    name: str
    prepare: bytes
    params: tuple[str, ...]

    @classmethod
    def of(cls, name: str, compiled: str) -> Prepared:
        """From a statement compiled for psycopg (``%(param)s`` placeholders, ``%%`` for ``%``)."""
        params: list[str] = []

        def number(match: re.Match[str]) -> str:
            if match.group(1) not in params:
                params.append(match.group(1))
            return f"${params.index(match.group(1)) + 1}"

        sql = _PLACEHOLDER.sub(number, compiled).replace("%%", "%")
        return cls(name, f"PREPARE {name} AS {sql}".encode(), tuple(params))


class RoundTrip:
    """
    Statements sent to PostgreSQL in one simple query and their results, on a psycopg connection.

    Prepared statements run as ``EXECUTE name(literal, ...)``, the values quoted by libpq; a statement not
    yet prepared on the connection is prepared at the front of the same query.

    :param prepared: the names already prepared on each connection (shared by the round trips of one
        :class:`PostgresIngest`).
    """

    def __init__(self, conn: Any, prepared: weakref.WeakKeyDictionary[Any, set[str]]) -> None:
        from psycopg.pq import Escaping  # the postgres extra

        self.conn = conn
        #: The names prepared on this connection (shared with the other round trips on it).
        self._done = prepared.setdefault(conn, set())
        self._escape = Escaping(conn.pgconn).escape_literal
        self._parts: list[bytes] = []
        self._preparing: list[Prepared] = []

    def add(self, sql: bytes) -> None:
        """A statement of the query, as it is."""
        self._parts.append(sql)

    def execute(self, statement: Prepared, values: dict[str, Any]) -> None:
        """``EXECUTE`` of ``statement`` with ``values`` (text or ``None``) for its parameters."""
        if statement.name not in self._done and statement not in self._preparing:
            self._preparing.append(statement)
        escape = self._escape
        literals = [b"NULL" if (v := values[p]) is None else escape(v.encode()) for p in statement.params]
        self._parts.append(b"EXECUTE " + statement.name.encode() + b"(" + b",".join(literals) + b")")

    def run(self) -> list[Any]:
        """Send the query and wait for its results, one per statement (the preparations' left out)."""
        from psycopg import errors, generators
        from psycopg.pq import ExecStatus

        prepares = [statement.prepare for statement in self._preparing]
        self.conn.pgconn.send_query(b";".join([*prepares, *self._parts]))
        results = self.conn.wait(generators.execute(self.conn.pgconn))
        for statement, result in zip(self._preparing, results, strict=False):
            if result.status == ExecStatus.COMMAND_OK:  # prepared for the session, whatever happens next
                self._done.add(statement.name)
        for result in results:
            if result.status == ExecStatus.FATAL_ERROR:
                raise errors.error_from_result(result)
        return list(results[len(prepares) :])

    def forget_prepared(self) -> None:
        """The connection's prepared statements are gone (deallocated): prepare them again."""
        self._done.clear()


def result_rows(result: Any) -> list[list[bytes | None]]:
    """The rows of a result, as libpq's text values."""
    columns = range(result.nfields)
    return [[result.get_value(row, column) for column in columns] for row in range(result.ntuples)]


def _text(value: bytes | None) -> str:
    return (value or b"").decode()


def _date(value: bytes | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value.decode())


def _standing(
    status: bytes | None, final: bytes | None, done: bytes | None, submit: bytes | None
) -> precedence.Standing:
    return precedence.Standing(_text(status), final == b"1", _date(done), _date(submit))


def _rows_of(types: dict[str, Any], name: str, param: str) -> Any:
    """``json_to_recordset(:param::JSON) AS name(a T, b U, ...)``: rows bound as one JSON array of objects."""
    columns = [column(key, kind) for key, kind in types.items()]
    return func.json_to_recordset(bindparam(param, type_=JSON())).table_valued(*columns).render_derived(name, True)


def rows_document(rows: Sequence[dict[str, Any]]) -> str:
    """The ``rows`` parameter: rows (values as text, numbers or ``None``) as one JSON array."""
    return json.dumps(rows, ensure_ascii=False, separators=(",", ":"))


def text_array(values: Iterable[str]) -> str:
    """A PostgreSQL array literal of text values: ``{"a","b\\"c"}`` (each quoted, ``\\`` and ``"`` escaped)."""
    return "{" + ",".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values) + "}"


def _compiled(statement: Any, dialect: Dialect) -> str:
    return str(statement.compile(dialect=dialect).string)


def rounds(params: Sequence[dict[str, Any]], key: Callable[[dict[str, Any]], Any]) -> list[list[dict[str, Any]]]:
    """
    ``params`` (in the order their per-row updates would run) split so that no two of one round share a
    ``key`` (the recipients they may update): the n-th report of each key goes in round n.
    """
    seen: dict[Any, int] = {}
    out: list[list[dict[str, Any]]] = []
    for param in params:
        n = seen.get(key(param), 0)
        seen[key(param)] = n + 1
        if n == len(out):
            out.append([])
        out[n].append(param)
    return out


class PostgresIngest:
    """
    The set-based statements of one PostgreSQL store's ingest and the transaction that runs them.

    Example::

        pg = PostgresIngest(engine.dialect, IngestSQL(engine.dialect))
        results = pg.transaction(psycopg_connection, BatchAttribution(requests), utcnow())
    """

    def __init__(self, dialect: Dialect, sql: IngestSQL) -> None:
        self.sql = sql
        #: The statements prepared on each connection (by name); names are unique to this instance.
        self.prepared: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()
        prefix = f"mc_ingest_{next(_instances)}_"

        def prepared(name: str, statement: Any) -> Prepared:
            return Prepared.of(prefix + name, _compiled(statement, dialect))

        reports = _rows_of(_REPORT_TYPES, "s", "rows")
        values = [reports.c[name] for name in REPORT_COLUMNS if name != "extra"]
        rows = select(*values, cast(reports.c.extra, t.reports.c.extra.type)).order_by(reports.c.message_id)
        new = (
            pg_insert(t.reports)
            .from_select(list(REPORT_COLUMNS), rows)
            .on_conflict_do_nothing(index_elements=["message_id"])
        )
        self.insert_new = prepared("insert_new", new)
        upsert = pg_insert(t.reports).from_select(list(REPORT_COLUMNS), rows)
        upsert = upsert.on_conflict_do_update(
            index_elements=["message_id"],
            set_={name: getattr(upsert.excluded, name) for name in REPLACED},
            where=precedence.report_replaces(upsert.excluded, "postgresql"),
        )
        self.upsert = prepared("upsert", upsert)
        b = _rows_of(MATCH_VALUES, "b", "rows")
        by_id_mobile, by_id_only, by_mobile = match_statements("postgresql", {k: b.c[k] for k in MATCH_VALUES})
        rc, ids = t.recipients.c, any_(bindparam("ids", type_=ARRAY(String())))
        self.by_id_mobile = prepared("by_id_mobile", by_id_mobile.where(rc.message_id == ids))
        self.by_id_only = prepared("by_id_only", by_id_only.where(rc.message_id == ids))
        self.by_mobile = prepared("by_mobile", by_mobile.where(rc.mobile == ids))
        r = t.reports.c
        held = select(r.message_id, r.status, r.is_final, r.done_date, r.submit_date).where(r.message_id == ids)
        held = held.order_by(r.message_id).with_for_update()
        self.held = prepared("held", held)
        sent = select(rc.message_id, func.count().label("n")).where(rc.message_id == ids).group_by(rc.message_id)
        self.sent = prepared("sent", sent)
        self.first = prepared("first", self._first_statement(new, held, sent))

    @staticmethod
    def _first_statement(new: Any, held: Any, sent: Any) -> Any:
        """
        Step 1 in one statement: the raw bodies appended and the new messages inserted (data-modifying CTEs),
        the messages stored before it started read and locked, the recipients per id counted; one row per
        message inserted (``i``), held (``h``: its standing) and id sent (``s``: its count).
        """
        raw = _rows_of({"remote": String(), "body": Text()}, "r", "raw")
        when = bindparam("received_at", type_=DateTime())
        add_raw = insert(t.raw_reports).from_select(["received_at", "remote", "body"], select(when, *raw.c))
        ins = new.returning(t.reports.c.message_id).cte("ins")
        locked, counted = held.cte("held"), sent.cte("sent")
        # Typed NULLs: PostgreSQL resolves the branches' column types pairwise.
        no_standing = [cast(null(), kind) for kind in (String(), SmallInteger(), DateTime(), DateTime())]
        no_count = cast(null(), BigInteger())
        return union_all(
            select(literal_column("'i'"), ins.c.message_id, *no_standing, no_count),
            select(literal_column("'h'"), *locked.c, no_count),
            select(literal_column("'s'"), counted.c.message_id, *no_standing, counted.c.n),
        ).add_cte(add_raw.cte("raw"))

    def transaction(self, conn: Any, batch: BatchAttribution, now: datetime) -> list[Any]:
        """
        Run and commit the ingest transaction of ``batch`` on the psycopg connection ``conn`` (idle, not in
        a transaction); the answer of each request. Raises the driver's error (nothing committed then: the
        caller rolls back).

        The lock of a message that another transaction inserted while this one waited for it is taken by a
        second read: the first one (its statement's snapshot) cannot see that row.
        """
        sql, ids = self.sql, batch.message_ids
        if_new = batch.settle({})
        raw = [{"remote": remote, "body": body} for remote, body in batch.raw_rows()]
        first = {
            "received_at": sql.value(now),
            "raw": rows_document(raw),
            "rows": rows_document([sql.report_row(if_new.winners[mid], now) for mid in ids]),
            "ids": text_array(ids),
        }
        rows = self._first_round(conn, first)
        inserted: set[str] = set()
        held: dict[str, precedence.Standing | None] = {}
        sent: dict[str, int] = {}
        for kind, mid_value, status, final, done, submit, count in rows:
            mid = _text(mid_value)
            if kind == b"i":
                inserted.add(mid)
            elif kind == b"h":
                held[mid] = _standing(status, final, done, submit)
            else:
                sent[mid] = int(count or 0)
        missing = [mid for mid in ids if mid not in inserted and mid not in held]
        if missing:
            again = RoundTrip(conn, self.prepared)
            again.execute(self.held, {"ids": text_array(missing)})
            for mid_value, status, final, done, submit in result_rows(again.run()[-1]):
                held[_text(mid_value)] = _standing(status, final, done, submit)
        # Nothing stored before (no message held): the judgement from nothing stored is the one.
        answers, winners, stored = batch.settle(held) if held else if_new
        changed = [winners[mid] for mid in ids if mid in winners and mid not in inserted]
        fresh = [report for report in changed if report.messageId not in held]
        replacing = [report for report in changed if report.messageId in held]
        second = RoundTrip(conn, self.prepared)
        if fresh:  # rows that vanished between the two reads (never in practice): inserted unless there
            second.execute(self.insert_new, {"rows": rows_document([sql.report_row(r, now) for r in fresh])})
        if replacing:
            second.execute(self.upsert, {"rows": rows_document([sql.report_row(r, now) for r in replacing])})
        if stored:
            self._add_matches(second, stored, now, sent)
        second.add(b"COMMIT")
        second.run()
        return answers

    def _first_round(self, conn: Any, values: dict[str, Any]) -> list[list[bytes | None]]:
        """
        ``BEGIN``, the plan settings and step 1; its rows. When the connection had lost the statements
        prepared on it (the driver deallocates all after a rollback), rolled back and run once more.
        """
        from psycopg import errors

        for attempt in (1, 2):
            trip = RoundTrip(conn, self.prepared)
            trip.add(b"BEGIN")
            trip.add(INDEX_LOOKUPS_ONLY.encode())
            trip.execute(self.first, values)
            try:
                return result_rows(trip.run()[-1])
            except errors.Error as err:
                if attempt == 2 or err.sqlstate != _NOT_PREPARED:
                    raise
                trip.forget_prepared()
                rollback = RoundTrip(conn, self.prepared)
                rollback.add(b"ROLLBACK")
                rollback.run()
        raise AssertionError("unreachable")  # pragma: no cover

    def match(
        self, conn: Any, stored: Sequence[DeliveryReport], now: datetime, sent: dict[str, int] | None = None
    ) -> None:
        """
        Copy stored reports onto the recipients they match (:meth:`.ingest.IngestRoom._match_reports`), one
        statement per round, on the psycopg connection ``conn`` inside its transaction (begun here when idle).

        :param sent: how many recipients each message id was sent to (looked up when not given).
        """
        from psycopg.pq import TransactionStatus

        trip = RoundTrip(conn, self.prepared)
        if conn.pgconn.transaction_status == TransactionStatus.IDLE:  # the caller's transaction, begun here
            trip.add(b"BEGIN")
        if sent is None:
            mids = sorted({report.messageId for report in stored})
            trip.execute(self.sent, {"ids": text_array(mids)})
            sent = {_text(mid): int(n or 0) for mid, n in result_rows(trip.run()[-1])}
            trip = RoundTrip(conn, self.prepared)
        self._add_matches(trip, stored, now, sent)
        trip.run()

    def _add_matches(
        self, trip: RoundTrip, stored: Sequence[DeliveryReport], now: datetime, sent: dict[str, int]
    ) -> None:
        """The recipient updates of ``stored`` (:func:`rounds` of each statement) added to ``trip``."""
        params = [self.sql.match_params(report, now) for report in stored]
        groups = MatchGroups.of(params, sent)
        for statement, chosen, name in (
            (self.by_id_mobile, groups.by_id_mobile, "b_mid"),
            (self.by_id_only, groups.by_id_only, "b_mid"),
            (self.by_mobile, groups.by_mobile, "b_mobile"),
        ):
            key = (lambda p: (p["b_mid"], p["b_mobile"])) if statement is self.by_id_mobile else itemgetter(name)
            for one_round in rounds(chosen, key):
                looked_up = text_array(dict.fromkeys(p[name] for p in one_round))
                trip.execute(statement, {"rows": rows_document(one_round), "ids": looked_up})
