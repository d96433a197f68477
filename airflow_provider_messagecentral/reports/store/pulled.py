"""
Delivery reports pulled from MessageCentral (``reports/getDetailedReports``), stored like the ones it POSTs.

A pulled report carries no ``messageId``. It is matched the way an id-less callback is: by its mobile, to the
recipients of every campaign whose window ``[first send - 1 min, last send + 3 days]`` holds its ``createdAt``,
and the rules of :mod:`.precedence` decide what a recipient ends up with. One row per message:

* **a message a callback named.** When a callback report of the same number submitted within
  :data:`SAME_MESSAGE` of the row's ``createdAt`` is stored (or a recipient holds one), that is the row's
  message: its report in ``mc_reports`` and the recipients holding it take the pulled state when it outranks
  what they hold (a final status is never replaced by UNKNOWN or by an older one). No second row is made.
* **a message not seen yet.** Otherwise the row is stored under its own key, :func:`pulled_key`
  (``pulled:<mobile>:<createdAt>:<digest of sender, template and text>``), so that polling the same rows again
  is idempotent (the same status: a duplicate; a newer one replaces it by the precedence rule). A recipient
  takes it when it holds nothing, or holds another message matched by mobile dated no later (the latest
  report of a number wins, as for callbacks); a recipient matched by id to another message keeps it.
* **folded.** When the callback of a message stored under its key arrives later, the next poll moves the
  pulled state onto the callback's report, points the recipients at the callback's id and removes the keyed
  row. A callback arriving after the last poll leaves both rows in ``mc_reports``; the recipient row, what
  summaries and the dashboard count, still holds one message at its best status
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
from typing import TYPE_CHECKING

from sqlalchemy import func, or_, select
from sqlalchemy.exc import DBAPIError

from airflow_provider_messagecentral.reports.models import FINAL_STATUSES
from airflow_provider_messagecentral.reports.store import precedence
from airflow_provider_messagecentral.reports.store import tables as t
from airflow_provider_messagecentral.reports.store.engine import StoreEngine, utcnow
from airflow_provider_messagecentral.reports.store.precedence import PULLED_PREFIX
from airflow_provider_messagecentral.reports.store.pulled_write import PulledWrite, standing_of

if TYPE_CHECKING:  # client.pulled imports the exceptions, hence Airflow: not at import time of the store
    from airflow_provider_messagecentral.client.pulled import PulledReport

log = logging.getLogger(__name__)

#: A held report whose submit date lies this close to a pulled row's ``createdAt`` is the same message.
SAME_MESSAGE = timedelta(minutes=5)
#: How many times a storing transaction PostgreSQL aborted for a deadlock or serialization failure is run.
PULL_ATTEMPTS = 4
_RETRY_SQLSTATES = frozenset({"40001", "40P01"})


def pulled_key(report: PulledReport) -> str:
    """
    The message id a pulled report is stored under while no callback names its message: stable across polls.

    ``pulled:<mobile>:<createdAt, to the second>:<12 hex of a digest of sender id, template id and text>``.

    :raises ValueError: the row has no ``createdAt`` (:meth:`PulledRoom.store_pulled` skips those).
    """
    if report.created_at is None:
        raise ValueError(f"a pulled report for {report.mobile} has no createdAt: it cannot be keyed")
    digest = hashlib.sha256(
        json.dumps([report.sender_id, report.template_id, report.message_body]).encode("utf-8")
    ).hexdigest()[:12]
    return f"{PULLED_PREFIX}{report.mobile}:{report.created_at:%Y%m%dT%H%M%S}:{digest}"


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

        result = store.store_pulled(list(hook.get_detailed_reports(start, end)))
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
                    result = PulledWrite(conn, self.dialect, utcnow(), SAME_MESSAGE).run(best)
            except DBAPIError as err:
                if attempt == PULL_ATTEMPTS or not _retryable(err):
                    raise
                log.warning(
                    "Report store %s: storing %d pulled reports aborted (SQLSTATE %s), running it again "
                    "(attempt %d of %d)",
                    self.masked_url,
                    len(best),
                    getattr(err.orig, "sqlstate", None),
                    attempt + 1,
                    PULL_ATTEMPTS,
                )
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
