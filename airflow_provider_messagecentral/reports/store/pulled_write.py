"""
One storing transaction of pulled delivery reports (:meth:`.pulled.PulledRoom.store_pulled`; rules in :mod:`.pulled`).

Per pulled row, in (mobile, createdAt) order:

1. **its message.** The callback report in ``mc_reports`` of the same number submitted within
   :data:`SAME_MESSAGE` of the row's ``createdAt`` (the closest), else the callback report a recipient of the
   number holds that was submitted that close (a callback without a mobile), else the row's own key
   (:func:`.pulled.pulled_key`).
2. **the report.** The message's report takes the row's state when :func:`.precedence.verdict` says so; a row
   stored under its key earlier whose message now has a callback is removed (folded into it).
3. **the recipients** of the number whose campaign window holds ``createdAt``: one holding that message (under
   either id) takes the state when it outranks what it holds, and the callback's id; one holding nothing, or
   another message matched by mobile dated no later, takes the message; one matched by id to another message
   keeps it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.engine import Connection

from airflow_provider_messagecentral.reports.models import ERROR_CODE_MAX, ERROR_CODE_MIN, FINAL_STATUSES
from airflow_provider_messagecentral.reports.store import precedence
from airflow_provider_messagecentral.reports.store import tables as t
from airflow_provider_messagecentral.reports.store.engine import chunks, dialect_insert
from airflow_provider_messagecentral.reports.store.precedence import PULLED_PREFIX, Standing

if TYPE_CHECKING:  # client.pulled imports the exceptions, hence Airflow: not at import time of the store
    from airflow_provider_messagecentral.client.pulled import PulledReport

#: The recipient columns a pulled report changes, in the order :class:`Recipient` holds them.
RECIPIENT_COLUMNS = (
    "report_message_id",
    "match_kind",
    "match_date",
    "status",
    "error_code",
    "submit_date",
    "done_date",
)


@functools.lru_cache(maxsize=4)
def keyed_upsert(dialect: str) -> Any:
    """Insert a pulled report under its key, or replace the stored one when :func:`.precedence.report_replaces`."""
    statement = dialect_insert(dialect, t.reports)
    replaced = ("status", "is_final", "error_code", "submit_date", "done_date", "received_at", "extra")
    return statement.on_conflict_do_update(
        index_elements=["message_id"],
        set_={name: getattr(statement.excluded, name) for name in replaced},
        where=precedence.report_replaces(statement.excluded, dialect),
    )


@functools.lru_cache(maxsize=1)
def callback_update() -> Any:
    """Give a callback's report (``:c_mid``) a pulled state (judged by precedence before)."""
    r = t.reports.c
    return (
        update(t.reports)
        .where(r.message_id == bindparam("c_mid"))
        .values(
            status=bindparam("c_status"),
            is_final=bindparam("c_final"),
            error_code=bindparam("c_error"),
            done_date=bindparam("c_done"),
            submit_date=func.coalesce(r.submit_date, bindparam("c_submit")),
            received_at=bindparam("c_now"),
        )
    )


def pulled_error_code(report: PulledReport) -> int | None:
    """The row's error code as the ``INTEGER`` column holds it; ``None`` when it is not a 32-bit number."""
    text = (report.error_code or "").strip()
    if not text.lstrip("-").isdigit():
        return None
    code = int(text)
    return code if ERROR_CODE_MIN <= code <= ERROR_CODE_MAX else None


def done_of(report: PulledReport) -> datetime | None:
    """A pulled report's done date: ``deliveredAt``, else ``updatedAt`` (a failed message often has only that)."""
    return report.delivered_at or report.updated_at


def standing_of(report: PulledReport) -> Standing:
    """What precedence looks at in a pulled report: :func:`done_of` is its done date, its creation the submit."""
    return Standing(report.status, report.status in FINAL_STATUSES, done_of(report), report.created_at)


def same_message(submitted: datetime | None, created: datetime, tolerance: Any) -> bool:
    """Whether a report submitted at ``submitted`` is the message of a pulled row created at ``created``."""
    return submitted is not None and abs(submitted - created) <= tolerance


@dataclass
class Recipient:
    """A recipient row as one storing transaction holds it (changed in memory, then written in one statement)."""

    id: int
    mobile: str
    window: tuple[datetime | None, datetime | None]
    report_message_id: str | None
    match_kind: str | None
    match_date: datetime | None
    status: str | None
    error_code: int | None
    submit_date: datetime | None
    done_date: datetime | None
    changed: bool = False

    def in_window(self, when: datetime) -> bool:
        start, end = self.window
        return start is not None and end is not None and start <= when <= end

    def holds_callback_of(self, created: datetime, tolerance: Any) -> bool:
        """Whether it holds a callback's report (not a pulled one) submitted within ``tolerance`` of ``created``."""
        held = self.report_message_id
        return (
            held is not None
            and not held.startswith(PULLED_PREFIX)
            and (self.submit_date is None or same_message(self.submit_date, created, tolerance))
        )

    def standing(self) -> Standing:
        return Standing(self.status or "", self.status in FINAL_STATUSES, self.done_date, self.submit_date)


class PulledWrite:
    """
    One storing transaction: call :meth:`run` with ``key -> pulled report`` (one report per key).

    :param tolerance: :data:`.pulled.SAME_MESSAGE`.
    """

    def __init__(self, conn: Connection, dialect: str, now: datetime, tolerance: Any) -> None:
        self.conn, self.dialect, self.now, self.tolerance = conn, dialect, now, tolerance
        self.stored = self.duplicates = self.ignored_stale = self.matched = 0
        self.held: dict[str, Standing] = {}
        self.callbacks: dict[str, list[tuple[str, datetime]]] = {}
        self.callback_standing: dict[str, Standing] = {}
        # Written once per transaction, after every row is judged: statements, not rows, cost the most.
        self.upserts: dict[str, dict[str, Any]] = {}
        self.callback_updates: dict[str, dict[str, Any]] = {}
        self.folded: list[str] = []

    def run(self, best: dict[str, PulledReport]) -> PulledWrite:
        self.held = self._held(sorted(best))  # pulled rows stored already, locked (PostgreSQL) in key order
        mobiles = sorted({report.mobile for report in best.values()})
        self.callbacks = self._callbacks(mobiles)
        by_mobile: dict[str, list[Recipient]] = {}
        recipients = self._recipients(mobiles)
        for recipient in recipients:
            by_mobile.setdefault(recipient.mobile, []).append(recipient)
        for key, report in sorted(best.items(), key=lambda item: (item[1].mobile, item[1].created_at, item[0])):
            self._place(key, report, by_mobile.get(report.mobile, []))
        self._write_reports()
        changed = [r for r in recipients if r.changed]
        if changed:
            rc = t.recipients.c
            self.conn.execute(
                update(t.recipients)
                .where(rc.id == bindparam("r_id"))
                .values({name: bindparam(f"r_{name}") for name in RECIPIENT_COLUMNS}),
                [{"r_id": r.id, **{f"r_{name}": getattr(r, name) for name in RECIPIENT_COLUMNS}} for r in changed],
            )
        self.matched = len(changed)
        return self

    def _write_reports(self) -> None:
        """The report rows the judgement changed: keyed upserts, callbacks' new states, folded keyed rows."""
        if self.upserts:
            self.conn.execute(keyed_upsert(self.dialect), [self.upserts[key] for key in sorted(self.upserts)])
        if self.callback_updates:
            self.conn.execute(callback_update(), [self.callback_updates[mid] for mid in sorted(self.callback_updates)])
        for chunk in chunks(sorted(self.folded)):
            self.conn.execute(delete(t.reports).where(t.reports.c.message_id.in_(list(chunk))))

    # -- reads ------------------------------------------------------------------------------------------------

    def _held(self, keys: Sequence[str]) -> dict[str, Standing]:
        r = t.reports.c
        held: dict[str, Standing] = {}
        for chunk in chunks(keys):
            query = (
                select(r.message_id, r.status, r.is_final, r.done_date, r.submit_date)
                .where(r.message_id.in_(list(chunk)))
                .order_by(r.message_id)
                .with_for_update()
            )
            for mid, status, final, done, submit in self.conn.execute(query):
                held[mid] = Standing(status, bool(final), done, submit)
        return held

    def _callbacks(self, mobiles: Sequence[str]) -> dict[str, list[tuple[str, datetime]]]:
        """
        ``mobile -> [(message id, submit date)]`` of the callback reports stored for the numbers, locked
        (PostgreSQL) in message id order before any recipient row: the order ingest locks them in, so a
        callback committed at the same moment waits instead of deadlocking.
        """
        r = t.reports.c
        found: dict[str, list[tuple[str, datetime]]] = {}
        for chunk in chunks(mobiles):
            query = (
                select(r.mobile, r.message_id, r.submit_date, r.status, r.is_final, r.done_date)
                .where(
                    r.mobile.in_(list(chunk)), r.submit_date.is_not(None), r.message_id.not_like(f"{PULLED_PREFIX}%")
                )
                .order_by(r.message_id)
                .with_for_update()
            )
            for mobile, mid, submitted, status, final, done in self.conn.execute(query):
                found.setdefault(mobile, []).append((mid, submitted))
                self.callback_standing[mid] = Standing(status, bool(final), done, submitted)
        return found

    def _recipients(self, mobiles: Sequence[str]) -> list[Recipient]:
        rc, cc = t.recipients.c, t.campaigns.c
        found: list[Recipient] = []
        for chunk in chunks(mobiles):
            query = (
                select(rc.id, rc.mobile, cc.window_start, cc.window_end, *(rc[name] for name in RECIPIENT_COLUMNS))
                .join(t.campaigns, cc.campaign_key == rc.campaign_key)
                .where(rc.mobile.in_(list(chunk)))
                .order_by(rc.id)
                .with_for_update(of=t.recipients)
            )
            found.extend(Recipient(row[0], row[1], (row[2], row[3]), *row[4:]) for row in self.conn.execute(query))
        return found

    # -- one pulled row ---------------------------------------------------------------------------------------

    def _message_of(self, key: str, report: PulledReport, recipients: list[Recipient]) -> str:
        """Step 1: the id of the row's message (a callback's, else ``key``)."""
        created = report.created_at
        assert created is not None
        near = [
            (abs(submitted - created), mid)
            for mid, submitted in self.callbacks.get(report.mobile, [])
            if same_message(submitted, created, self.tolerance)
        ]
        if near:
            return min(near)[1]
        held = sorted(
            r.report_message_id
            for r in recipients
            if r.report_message_id and r.holds_callback_of(created, self.tolerance)
        )
        return held[0] if held else key

    def _place(self, key: str, report: PulledReport, recipients: list[Recipient]) -> None:
        created = report.created_at
        assert created is not None
        in_window = [r for r in recipients if r.in_window(created)]
        message = self._message_of(key, report, in_window)
        new = standing_of(report)
        if message == key:
            judged = self._store_keyed(key, report, new)
        else:
            judged = self._onto_callback(message, report, new)
            if key in self.held:  # stored under its key by an earlier poll: fold it into the callback's report
                self.folded.append(key)
                del self.held[key]
        if judged == "store":
            self.stored += 1
        elif judged == "stale":
            self.ignored_stale += 1
        else:
            self.duplicates += 1
        for recipient in in_window:
            self._take(recipient, key, message, report, new)

    def _store_keyed(self, key: str, report: PulledReport, new: Standing) -> str:
        """Step 2 for a message no callback names: insert or replace the row stored under ``key``."""
        held = self.held.get(key)
        judged = "store" if held is None else precedence.verdict(held, new)
        if judged == "store":
            self.upserts[key] = self._report_row(key, report)
            self.held[key] = new
        return judged

    def _onto_callback(self, message_id: str, report: PulledReport, new: Standing) -> str:
        """Step 2 for a callback's message: its report takes the pulled state when it outranks it."""
        old = self.callback_standing.get(message_id)
        if old is None:  # held by a recipient but not read by number (a callback without a mobile)
            r = t.reports.c
            row = self.conn.execute(
                select(r.status, r.is_final, r.done_date, r.submit_date)
                .where(r.message_id == message_id)
                .with_for_update()
            ).first()
            if row is None:  # a recipient names a report that is not stored: nothing to give the state to
                return "duplicate"
            old = Standing(row[0], bool(row[1]), row[2], row[3])
        judged = precedence.verdict(old, new)
        if judged == "store":
            self.callback_standing[message_id] = new
            self.callback_updates[message_id] = {
                "c_mid": message_id,
                "c_status": new.status,
                "c_final": int(new.is_final),
                "c_error": pulled_error_code(report),
                "c_done": new.done_date,
                "c_submit": new.submit_date,
                "c_now": self.now,
            }
        return judged

    def _take(self, recipient: Recipient, key: str, message: str, report: PulledReport, new: Standing) -> None:
        """Step 3: copy the pulled state onto ``recipient`` when the matching and precedence rules let it."""
        created = report.created_at
        assert created is not None
        held = recipient.report_message_id
        if held in (key, message) or (held is not None and recipient.holds_callback_of(created, self.tolerance)):
            if held != message:  # the callback's id replaces the pulled key (or names the message the same)
                recipient.report_message_id, recipient.changed = message, True
            if recipient.status == new.status or not precedence.outranks(new, recipient.standing()):
                return
        elif held is None or (
            recipient.match_kind == "mobile" and (recipient.match_date or precedence.EPOCH) <= created
        ):
            recipient.report_message_id, recipient.match_kind, recipient.match_date = message, "mobile", created
        else:
            return
        recipient.status, recipient.error_code = new.status, pulled_error_code(report)
        recipient.submit_date = recipient.submit_date or new.submit_date
        recipient.done_date = new.done_date
        recipient.changed = True

    def _report_row(self, key: str, report: PulledReport) -> dict[str, Any]:
        extra = {
            "source": "getDetailedReports",
            **({"errorCode": report.error_code} if report.error_code else {}),
            **({"senderId": report.sender_id} if report.sender_id else {}),
            **({"templateId": report.template_id} if report.template_id else {}),
        }
        return {
            "message_id": key,
            "status": report.status,
            "is_final": int(report.status in FINAL_STATUSES),
            "error_code": pulled_error_code(report),
            "mobile": report.mobile,
            "country_code": None,
            "client_id": None,
            "submit_date": report.created_at,
            "done_date": done_of(report),
            "received_at": self.now,
            "extra": extra,
        }
