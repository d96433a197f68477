"""
The one precedence rule between two reports of the same ``messageId``, in Python and in SQL.

A report's *rank* is the tuple ``(final, doneDate, submitDate)`` with a missing date read as the epoch:
a final status beats a non-final one, then the later ``doneDate`` wins, then the later ``submitDate``;
equal ranks let the newcomer in. A report with the same status as the stored one is a duplicate and changes
nothing. So:

* :func:`verdict` (Python) judges the reports of one batch before they reach the database;
* :func:`report_replaces` (SQL) is the ``WHERE`` of the report upsert: the same judgement on the stored row
  as it is when the upsert holds its lock;
* :func:`recipient_takes` (SQL) guards every recipient update of ingest: a recipient holding this message
  already takes the newcomer only when it :func:`outranks` what the recipient holds.

Both SQL forms are one row-value comparison of :func:`rank_sql` tuples, the SQL spelling of :meth:`Standing.rank`
(``tests/unit/test_precedence.py`` proves the three forms agree on SQLite and PostgreSQL).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, NamedTuple

from sqlalchemy import ColumnElement, Integer, and_, bindparam, case, func, literal_column, or_, tuple_
from sqlalchemy.types import DateTime

from airflow_provider_messagecentral.reports.models import FINAL_STATUSES, DeliveryReport
from airflow_provider_messagecentral.reports.store import tables as t

#: What a missing date counts as.
EPOCH = datetime(1970, 1, 1)
#: How the message id of a report pulled from MessageCentral (no messageId of its own) begins: see
#: :mod:`.pulled`. A recipient holding one treats any report as possibly its message (:func:`recipient_takes`).
PULLED_PREFIX = "pulled:"

Verdict = Literal["store", "duplicate", "stale"]
Rank = tuple[int, datetime, datetime]


class Standing(NamedTuple):
    """
    What precedence looks at in a report: its status, whether that status is final, and its dates.

    (A named tuple: ingest builds one per report, and a tuple is built several times faster than a frozen
    dataclass.)

    Example::

        held = Standing("DELIVRD", True, done, submitted)
        assert verdict(held, Standing("UNKNOWN", False, later, submitted)) == "stale"
    """

    status: str
    is_final: bool
    done_date: datetime | None
    submit_date: datetime | None

    @classmethod
    def of(cls, report: DeliveryReport) -> Standing:
        return cls(report.status, report.is_final, report.doneDate, report.submitDate)

    def rank(self) -> Rank:
        """``(final, doneDate, submitDate)``, a missing date read as :data:`EPOCH`: the higher rank wins."""
        return int(self.is_final), self.done_date or EPOCH, self.submit_date or EPOCH


def outranks(new: Standing, old: Standing) -> bool:
    """Whether ``new`` may replace ``old``: its rank is at least ``old``'s."""
    return new.rank() >= old.rank()


def verdict(old: Standing, new: Standing) -> Verdict:
    """Whether ``new`` replaces ``old`` (same messageId): ``store``, ``duplicate`` (same status) or ``stale``."""
    if new.status == old.status:
        return "duplicate"
    return "store" if outranks(new, old) else "stale"


def rank_params(standing: Standing) -> dict[str, Any]:
    """The bound parameters ``b_final``, ``b_done_key``, ``b_submit_key`` of :func:`recipient_takes`."""
    final, done, submit = standing.rank()
    return {"b_final": final, "b_done_key": done, "b_submit_key": submit}


def epoch_sql(dialect: str) -> ColumnElement[Any]:
    """:data:`EPOCH` as an inlined SQL constant (an ``executemany`` statement pays for every bound parameter)."""
    if dialect == "postgresql":
        return literal_column("TIMESTAMP '1970-01-01 00:00:00'", DateTime())
    return literal_column("'1970-01-01 00:00:00.000000'", DateTime())  # SQLAlchemy's SQLite DATETIME format


def rank_sql(final: Any, done_date: Any, submit_date: Any, epoch: ColumnElement[Any]) -> Any:
    """The SQL form of :meth:`Standing.rank`: ``(final, coalesce(done, epoch), coalesce(submit, epoch))``."""
    return tuple_(final, func.coalesce(done_date, epoch), func.coalesce(submit_date, epoch))


def report_replaces(excluded: Any, dialect: str) -> ColumnElement[bool]:
    """
    SQL form of ``verdict(stored, excluded) == "store"``: the ``WHERE`` of the report upsert.

    :param excluded: the upsert's ``excluded`` columns (the incoming report); the stored row is ``mc_reports``.
    """
    r, epoch = t.reports.c, epoch_sql(dialect)
    new = rank_sql(excluded.is_final, excluded.done_date, excluded.submit_date, epoch)
    old = rank_sql(r.is_final, r.done_date, r.submit_date, epoch)
    return and_(excluded.status != r.status, new >= old)


def recipient_takes(dialect: str, mid: Any = None, rank: tuple[Any, Any, Any] | None = None) -> ColumnElement[bool]:
    """
    Whether a recipient row may take report ``:b_mid`` (guards every recipient update of ingest).

    A recipient that holds another message's report (or none) follows the matching rules. One that holds this
    message already takes it only when the newcomer :func:`outranks` it, the newcomer's rank bound as
    :func:`rank_params`; a recipient's ``final`` is read from its status. A recipient holding a pulled report
    (:data:`PULLED_PREFIX`, no messageId known) counts as holding the newcomer's message: a callback of it
    that arrives after a poll never takes a recipient back from a final status to UNKNOWN or an older one.

    :param mid: the newcomer's message id as an SQL expression (default the bound ``:b_mid``).
    :param rank: the newcomer's rank as SQL expressions (default the bound :func:`rank_params`), e.g. the
        columns of a set of reports that an ``UPDATE ... FROM`` copies.
    """
    rc, epoch = t.recipients.c, epoch_sql(dialect)
    # Our own constants, not input: inlined, since an expanding IN cannot be used with executemany().
    finals: list[ColumnElement[Any]] = [literal_column(f"'{status}'") for status in sorted(FINAL_STATUSES)]
    old_final = case((rc.status.in_(finals), literal_column("1")), else_=literal_column("0"))
    old = rank_sql(old_final, rc.done_date, rc.submit_date, epoch)
    new = tuple_(
        *(
            rank
            or (
                bindparam("b_final", type_=Integer()),
                bindparam("b_done_key", type_=DateTime()),
                bindparam("b_submit_key", type_=DateTime()),
            )
        )
    )
    mid = bindparam("b_mid") if mid is None else mid
    pulled: ColumnElement[str] = literal_column(f"'{PULLED_PREFIX}%'")
    other = and_(rc.report_message_id != mid, rc.report_message_id.not_like(pulled))
    return or_(rc.report_message_id.is_(None), other, new >= old)
