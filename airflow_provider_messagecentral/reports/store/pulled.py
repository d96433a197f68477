"""
Delivery reports pulled from MessageCentral (``reports/getDetailedReports``), stored like the ones it POSTs.

A pulled report carries no ``messageId``. It is matched the way an id-less callback is: by its mobile, to the
recipients of every campaign whose window ``[first send - 1 min, last send + 3 days]`` holds its ``createdAt``,
and the rules of :mod:`.precedence` decide what a recipient ends up with. One row per message:

* **the recipient's message.** A recipient that already holds a report of the same message (a callback with a
  ``messageId``, matched by id or by mobile, whose submit date lies within :data:`SAME_MESSAGE` of the pulled
  row's ``createdAt``; or a pulled report of it) gets the pulled state *on that report*: the report's row in
  ``mc_reports`` and the recipient row take it when it outranks what they hold (a final status is never
  replaced by UNKNOWN or by an older one). No second row is made for that message.
* **a message not seen yet.** Otherwise the pulled row is stored under its own key, :func:`pulled_key`
  (``pulled:<mobile>:<createdAt>:<digest of sender, template and text>``), so that polling the same rows again
  is idempotent (the same status: a duplicate; a newer one replaces it by the precedence rule), and the
  recipient takes it when it holds nothing, or holds another message matched by mobile dated no later (the
  latest report of a number wins, as for callbacks). A recipient matched by id keeps its message.
* **folded.** A pulled report stored under its key whose recipients later hold that message's callback (a
  callback that came after the first poll) is merged into the callback's report on the next poll and its own
  row removed. A callback arriving after the last poll leaves both rows in ``mc_reports``; the recipient row,
  what summaries and the dashboard count, still holds one message at its best status
  (:func:`.precedence.recipient_takes` treats a pulled key held by a recipient as the same message).

Pulled reports land in ``mc_reports`` like callbacks, so recipients recorded later (:mod:`.recipients`) and
the reconciliation of uncertain units (:mod:`.reconcile`) see them without any rule of their own.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, func, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from airflow_provider_messagecentral.client.pulled import PulledReport
from airflow_provider_messagecentral.reports.models import ERROR_CODE_MAX, ERROR_CODE_MIN, FINAL_STATUSES
from airflow_provider_messagecentral.reports.store import precedence
from airflow_provider_messagecentral.reports.store import tables as t
from airflow_provider_messagecentral.reports.store.engine import StoreEngine, chunks, dialect_insert, utcnow
from airflow_provider_messagecentral.reports.store.precedence import PULLED_PREFIX, Standing

log = logging.getLogger(__name__)

#: A held report whose submit date lies this close to a pulled row's ``createdAt`` is the same message.
SAME_MESSAGE = timedelta(minutes=5)
#: How many times a storing transaction PostgreSQL aborted for a deadlock or serialization failure is run.
PULL_ATTEMPTS = 4
_RETRY_SQLSTATES = frozenset({"40001", "40P01"})
#: The recipient columns a pulled report changes, in the order :class:`_Recipient` holds them.
_RECIPIENT_UPDATE = (
    "report_message_id",
    "match_kind",
    "match_date",
    "status",
    "error_code",
    "submit_date",
    "done_date",
)


def pulled_key(report: PulledReport) -> str:
    """
    The message id a pulled report is stored under while no callback names its message: stable across polls.

    ``pulled:<mobile>:<createdAt, to the second>:<12 hex of a digest of sender id, template id and text>``.
    """
    assert report.created_at is not None
    digest = hashlib.sha256(
        json.dumps([report.sender_id, report.template_id, report.message_body]).encode("utf-8")
    ).hexdigest()[:12]
    return f"{PULLED_PREFIX}{report.mobile}:{report.created_at:%Y%m%dT%H%M%S}:{digest}"


def pulled_error_code(report: PulledReport) -> int | None:
    """The row's error code as the ``INTEGER`` column holds it; ``None`` when it is not a 32-bit number."""
    text = (report.error_code or "").strip()
    if not text.lstrip("-").isdigit():
        return None
    code = int(text)
    return code if ERROR_CODE_MIN <= code <= ERROR_CODE_MAX else None


def standing_of(report: PulledReport) -> Standing:
    """What precedence looks at in a pulled report: its delivered date is the done date, its creation the submit."""
    return Standing(report.status, report.status in FINAL_STATUSES, report.delivered_at, report.created_at)


@dataclass(frozen=True)
class PulledResult:
    """
    What :meth:`PulledRoom.store_pulled` did with a batch of pulled reports.

    :param stored: reports that were new or replaced an older status of their message.
    :param duplicates: reports whose message already had that status.
    :param ignored_stale: reports older than, or non-final after, what their message holds.
    :param matched: recipient rows that took a report of the batch.
    :param skipped: reports without a ``createdAt`` (they cannot be placed in any campaign window).

    Example::

        result = store.store_pulled(hook.get_detailed_reports(start, end))
        print(result.stored, result.matched)
    """

    stored: int = 0
    duplicates: int = 0
    ignored_stale: int = 0
    matched: int = 0
    skipped: int = 0


def _best_per_key(reports: Sequence[PulledReport]) -> tuple[dict[str, PulledReport], int, int]:
    """One report per key (the one precedence prefers), how many lost as duplicates, and as stale."""
    best: dict[str, PulledReport] = {}
    duplicates = stale = 0
    for report in reports:
        key = pulled_key(report)
        current = best.get(key)
        if current is None:
            best[key] = report
            continue
        judged = precedence.verdict(standing_of(current), standing_of(report))
        if judged == "duplicate":
            duplicates += 1
        else:
            stale += 1
            if judged == "store":
                best[key] = report
    return best, duplicates, stale


def _retryable(err: DBAPIError) -> bool:
    return getattr(err.orig, "sqlstate", None) in _RETRY_SQLSTATES


class PulledRoom(StoreEngine):
    """
    Pulled delivery reports of a report store (one room of
    :class:`~airflow_provider_messagecentral.reports.store.ReportStore`; the rules are in the module docs).

    Example::

        start, end = store.pull_window(campaign_key)
        result = store.store_pulled(list(hook.get_detailed_reports(start, end)))
    """

    def pull_window(self, campaign_key: str, margin: timedelta = timedelta(minutes=10)) -> tuple[datetime, datetime]:
        """
        The time range to pull for a campaign: from its earliest send still without a final report (or
        uncertain attempt) less ``margin``, to now plus ``margin``. Once every recipient is final it starts at
        the campaign's last send, so a long wait does not read the whole campaign again and again.

        :raises LookupError: the campaign is unknown or has sent nothing yet.
        """
        cc, rc, lc = t.campaigns.c, t.recipients.c, t.ledger.c
        with self._read() as conn:
            campaign = conn.execute(
                select(cc.last_send_at, cc.window_start).where(cc.campaign_key == campaign_key)
            ).first()
            if campaign is None:
                raise LookupError(f"campaign {campaign_key!r} is not recorded in the report store")
            open_send = conn.execute(
                select(func.min(rc.sent_at)).where(
                    rc.campaign_key == campaign_key, or_(rc.status.is_(None), rc.status.not_in(sorted(FINAL_STATUSES)))
                )
            ).scalar()
            uncertain = conn.execute(
                select(func.min(lc.created_at)).where(
                    lc.campaign_key == campaign_key, lc.state == "pending", lc.pending_recipients.is_not(None)
                )
            ).scalar()
        last, window_start = campaign
        starts = [d for d in (open_send, uncertain) if d is not None]
        if not starts:
            starts = [d for d in (last or window_start,) if d is not None]
        if not starts:
            raise LookupError(f"campaign {campaign_key!r} has sent nothing yet: there is no window to pull")
        return min(starts) - margin, utcnow() + margin

    def store_pulled(self, reports: Sequence[PulledReport]) -> PulledResult:
        """
        Store pulled reports in one short transaction and match them to campaign recipients (module docs).

        Idempotent: the same rows again change nothing. A transaction PostgreSQL aborts for a deadlock or a
        serialization failure (a callback for the same numbers committed at the same moment) is run again.
        """
        dated = [report for report in reports if report.created_at is not None]
        skipped = len(reports) - len(dated)
        best, duplicates, stale = _best_per_key(dated)
        for attempt in range(1, PULL_ATTEMPTS + 1):
            try:
                with self._write() as conn:
                    result = _PulledWrite(conn, self.dialect, utcnow()).run(best)
            except DBAPIError as err:
                if attempt == PULL_ATTEMPTS or not _retryable(err):
                    raise
                time.sleep(random.uniform(0.005, 0.02) * attempt)
                continue
            return PulledResult(
                stored=result.stored,
                duplicates=result.duplicates + duplicates,
                ignored_stale=result.ignored_stale + stale,
                matched=result.matched,
                skipped=skipped,
            )
        raise AssertionError("unreachable")  # pragma: no cover


@dataclass
class _Recipient:
    """A recipient row as one storing transaction holds it (and changes it, in memory, then in one update)."""

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

    def holds_message_of(self, key: str, created: datetime) -> bool:
        """Whether the report this recipient holds is the message of the pulled row ``key`` created at ``created``."""
        held = self.report_message_id
        if held is None:
            return False
        if held == key:
            return True
        if held.startswith(PULLED_PREFIX):
            return False
        return self.submit_date is None or abs(self.submit_date - created) <= SAME_MESSAGE

    def standing(self) -> Standing:
        return Standing(self.status or "", self.status in FINAL_STATUSES, self.done_date, self.submit_date)


class _PulledWrite:
    """One storing transaction of :meth:`PulledRoom.store_pulled`."""

    def __init__(self, conn: Connection, dialect: str, now: datetime) -> None:
        self.conn, self.dialect, self.now = conn, dialect, now
        self.stored = self.duplicates = self.ignored_stale = self.matched = 0

    def run(self, best: dict[str, PulledReport]) -> _PulledWrite:
        keys = sorted(best)
        held = self._held(keys)  # the pulled rows stored already, locked (PostgreSQL) in key order
        recipients = self._recipients(sorted({report.mobile for report in best.values()}))
        by_mobile: dict[str, list[_Recipient]] = {}
        for recipient in recipients:
            by_mobile.setdefault(recipient.mobile, []).append(recipient)
        ordered = sorted(best.items(), key=lambda item: (item[1].mobile, item[1].created_at, item[0]))
        for key, report in ordered:
            self._place(key, report, held.get(key), by_mobile.get(report.mobile, []))
        changed = [r for r in recipients if r.changed]
        if changed:
            rc = t.recipients.c
            self.conn.execute(
                update(t.recipients)
                .where(rc.id == bindparam("r_id"))
                .values({name: bindparam(f"r_{name}") for name in _RECIPIENT_UPDATE}),
                [{"r_id": r.id, **{f"r_{name}": getattr(r, name) for name in _RECIPIENT_UPDATE}} for r in changed],
            )
            self.matched = len(changed)
        return self

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

    def _recipients(self, mobiles: Sequence[str]) -> list[_Recipient]:
        rc, cc = t.recipients.c, t.campaigns.c
        found: list[_Recipient] = []
        for chunk in chunks(mobiles):
            query = (
                select(rc.id, rc.mobile, cc.window_start, cc.window_end, *(rc[name] for name in _RECIPIENT_UPDATE))
                .join(t.campaigns, cc.campaign_key == rc.campaign_key)
                .where(rc.mobile.in_(list(chunk)))
                .order_by(rc.id)
                .with_for_update(of=t.recipients)
            )
            for row in self.conn.execute(query):
                found.append(_Recipient(row[0], row[1], (row[2], row[3]), *row[4:]))
        return found

    def _place(self, key: str, report: PulledReport, held: Standing | None, recipients: list[_Recipient]) -> None:
        """Store one pulled report: on the message its recipients hold, else under ``key``; then the recipients."""
        created = report.created_at
        assert created is not None
        new = standing_of(report)
        in_window = [r for r in recipients if r.in_window(created)]
        onto = sorted(
            {
                r.report_message_id
                for r in in_window
                if r.report_message_id and r.report_message_id != key and r.holds_message_of(key, created)
            }
        )
        keyed = not onto or any(not r.holds_message_of(key, created) or r.report_message_id == key for r in in_window)
        verdicts: list[str] = []
        if keyed:
            verdicts.append(self._store_keyed(key, report, new, held))
        elif held is not None:
            self._fold(key)  # its recipients hold the callback's message now: one row per message
        for message_id in onto:
            verdicts.append(self._onto_message(message_id, report, new))
        if "store" in verdicts:
            self.stored += 1
        elif "stale" in verdicts:
            self.ignored_stale += 1
        else:
            self.duplicates += 1
        for recipient in in_window:
            self._take(recipient, key, report, new)

    def _store_keyed(self, key: str, report: PulledReport, new: Standing, held: Standing | None) -> str:
        """Insert or replace the report stored under ``key`` (precedence); the verdict."""
        judged = "store" if held is None else precedence.verdict(held, new)
        if judged != "store":
            return judged
        row = self._report_row(key, report)
        statement = precedence_upsert(self.dialect)
        self.conn.execute(statement, row)
        return judged

    def _onto_message(self, message_id: str, report: PulledReport, new: Standing) -> str:
        """Give the pulled state to the stored report ``message_id`` (a callback's) when it outranks it."""
        r = t.reports.c
        row = self.conn.execute(
            select(r.status, r.is_final, r.done_date, r.submit_date).where(r.message_id == message_id).with_for_update()
        ).first()
        if row is None:  # removed since the recipients were read: nothing to give the state to
            return "duplicate"
        old = Standing(row[0], bool(row[1]), row[2], row[3])
        judged = precedence.verdict(old, new)
        if judged == "store":
            self.conn.execute(
                update(t.reports)
                .where(r.message_id == message_id)
                .values(
                    status=new.status,
                    is_final=int(new.is_final),
                    error_code=pulled_error_code(report),
                    done_date=new.done_date,
                    submit_date=func.coalesce(r.submit_date, new.submit_date),
                    received_at=self.now,
                )
            )
        return judged

    def _fold(self, key: str) -> None:
        """Remove the row stored under ``key``: its message is the callback's report its recipients hold."""
        self.conn.execute(delete(t.reports).where(t.reports.c.message_id == key))

    def _take(self, recipient: _Recipient, key: str, report: PulledReport, new: Standing) -> None:
        """Copy the pulled state onto ``recipient`` when the matching and precedence rules let it."""
        created = report.created_at
        assert created is not None
        if recipient.holds_message_of(key, created):
            if recipient.status == new.status or not precedence.outranks(new, recipient.standing()):
                return
            if recipient.report_message_id == key:
                recipient.match_date = created
        elif recipient.report_message_id is None or (
            recipient.match_kind == "mobile" and (recipient.match_date or precedence.EPOCH) <= created
        ):
            recipient.report_message_id, recipient.match_kind, recipient.match_date = key, "mobile", created
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
            "done_date": report.delivered_at,
            "received_at": self.now,
            "extra": extra,
        }


def precedence_upsert(dialect: str) -> Any:
    """Insert a report, or replace the stored one of its message when :func:`.precedence.report_replaces`."""
    statement = dialect_insert(dialect, t.reports)
    replaced = ("status", "is_final", "error_code", "submit_date", "done_date", "received_at", "extra")
    return statement.on_conflict_do_update(
        index_elements=["message_id"],
        set_={name: getattr(statement.excluded, name) for name in replaced},
        where=precedence.report_replaces(statement.excluded, dialect),
    )
