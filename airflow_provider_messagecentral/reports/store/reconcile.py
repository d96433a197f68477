"""
Reconciliation of uncertain send units: a pending unit whose recipients' delivery reports arrived was sent.

A unit stays ``pending`` when its request went out but no answer was recorded (worker killed mid-request, read
timeout). MessageCentral may well have texted its recipients; if it did, their delivery reports arrive like
any other. A stored report for one of the unit's remembered recipients (matched by mobile, as reports without
a known id are) dated in the unit's window — its first attempt - 1 min to its last attempt + 3 days — is the
evidence: the unit becomes ``accepted`` with evidence ``delivery_reports``, so every later try treats it as
accepted and never sends it again (whatever ``on_uncertain``), and its recipients are recorded and counted as
the campaign's, with the stored reports matched onto them, exactly as for an answered send. A unit without
such a report stays pending and its recipients are not counted.

Reconciliation never runs in the ingest path. It runs when :meth:`ReconcileRoom.reconcile` is called, and
the :class:`~airflow_provider_messagecentral.reports.store.ReportStore` facade runs it before it reads a
campaign (:meth:`~ReconcileRoom.reconcile_quietly`). Like reports matched by mobile, a number texted by two
campaigns whose windows overlap cannot be told apart: a report of the other campaign is taken as evidence too.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from airflow_provider_messagecentral.reports.store import tables as t
from airflow_provider_messagecentral.reports.store.engine import utcnow
from airflow_provider_messagecentral.reports.store.ledger import BY_DELIVERY_REPORTS, LedgerRoom
from airflow_provider_messagecentral.reports.store.recipients import (
    WINDOW_AFTER,
    WINDOW_BEFORE,
    Window,
    existing_matches,
    lock_campaign,
    record_recipients,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UncertainUnit:
    """
    A ledger unit left ``pending`` that remembers its recipients: a candidate for reconciliation.

    :param mobiles: its recipients, digits with country code.
    :param first_attempt: when the unit was first marked pending (naive UTC).
    :param last_attempt: when it was last marked pending: the request whose answer was lost.

    Example::

        unit = UncertainUnit("mc-...", "bulk-...", ["919816111111"], first_attempt=t0, last_attempt=t0)
        start, end = unit.window  # reports dated in here are evidence
    """

    campaign_key: str
    unit_key: str
    mobiles: list[str]
    first_attempt: datetime
    last_attempt: datetime

    @property
    def window(self) -> Window:
        """Reports for its recipients dated in ``[first attempt - 1 min, last attempt + 3 days]`` are evidence."""
        return self.first_attempt - WINDOW_BEFORE, self.last_attempt + WINDOW_AFTER

    def evidence(self, conn: Connection) -> int:
        """How many of its recipients have a stored report dated in :attr:`window`."""
        return len(existing_matches(conn, None, self.mobiles, self.window))


def uncertain_units(conn: Connection, campaign_keys: Sequence[str]) -> list[UncertainUnit]:
    """The pending units of ``campaign_keys`` that remember their recipients: one query."""
    lc = t.ledger.c
    rows = conn.execute(
        select(lc.campaign_key, lc.unit_key, lc.pending_recipients, lc.created_at, lc.updated_at)
        .where(lc.campaign_key.in_(list(campaign_keys)), lc.state == "pending", lc.pending_recipients.is_not(None))
        .order_by(lc.campaign_key, lc.unit_key)
    ).all()
    return [UncertainUnit(key, unit, json.loads(numbers), first, last) for key, unit, numbers, first, last in rows]


class ReconcileRoom(LedgerRoom):
    """
    Reconciliation of a report store's uncertain units (one room of
    :class:`~airflow_provider_messagecentral.reports.store.ReportStore`; see the module docs for the rules).

    Example::

        store.mark_pending(key, "chunk-26", 100, mobiles=numbers)  # the worker dies mid-request
        ...                                                         # delivery reports for the numbers arrive
        assert store.reconcile(key) == {"chunk-26": 100}
        assert store.get_units(key)["chunk-26"].reconciled
    """

    def reconcile(self, campaign_key: str) -> dict[str, int]:
        """
        Attribute the campaign's pending units whose recipients have delivery reports to the campaign.

        Bounded and idempotent: one query for the campaign's pending units that remember recipients (nothing
        more when there is none), then the reports of their numbers only (one query per 500 numbers); a write
        transaction only when a report was found, which checks again under the campaign's lock. A reconciled
        unit is no longer pending, so a second call finds nothing.

        :returns: ``unit_key -> recipients`` of the units reconciled by this call (empty: none).
        """
        with self._read() as conn:
            found = any(unit.evidence(conn) for unit in uncertain_units(conn, [campaign_key]))
        return self._attribute(campaign_key) if found else {}

    def reconcile_quietly(self, campaign_keys: Sequence[str]) -> bool:
        """
        :meth:`reconcile` the campaigns of ``campaign_keys`` that have uncertain units (one query finds them),
        for a read that follows: a database error is logged, not raised, so the read still answers (e.g. with
        read-only credentials). Returns whether any unit was reconciled.
        """
        if not campaign_keys:
            return False
        try:
            with self._read() as conn:
                keys = sorted({u.campaign_key for u in uncertain_units(conn, campaign_keys) if u.evidence(conn)})
            reconciled = [self._attribute(key) for key in keys]
            return any(reconciled)
        except SQLAlchemyError:
            log.warning(
                "Report store %s: could not reconcile uncertain send units of %s; counts leave them out",
                self.masked_url,
                ", ".join(campaign_keys[:3]) + (" ..." if len(campaign_keys) > 3 else ""),
                exc_info=True,
            )
            return False

    def _attribute(self, campaign_key: str) -> dict[str, int]:
        """In one write transaction, accept (evidence: delivery reports) every uncertain unit with evidence."""
        reconciled: dict[str, int] = {}
        lc = t.ledger.c
        with self._write() as conn:
            try:
                campaign = lock_campaign(conn, campaign_key)
            except LookupError:  # units recorded without their campaign have no window to match in
                return reconciled
            for unit in uncertain_units(conn, [campaign_key]):
                reports = unit.evidence(conn)
                if not reports:
                    continue
                conn.execute(
                    update(t.ledger)
                    .where(lc.campaign_key == campaign_key, lc.unit_key == unit.unit_key, lc.state == "pending")
                    .values(
                        state="accepted",
                        evidence=BY_DELIVERY_REPORTS,
                        recipients=len(unit.mobiles),
                        pending_recipients=None,
                        error=None,
                        updated_at=utcnow(),
                    )
                )
                record_recipients(conn, campaign, unit.unit_key, unit.mobiles, (None, None), unit.last_attempt)
                reconciled[unit.unit_key] = len(unit.mobiles)
                log.info(
                    "Campaign %s: send unit %s had no recorded answer, but MessageCentral reported deliveries for "
                    "%d of its %d recipient(s): counted as accepted (evidence: delivery reports)",
                    campaign_key,
                    unit.unit_key,
                    reports,
                    len(unit.mobiles),
                )
        return reconciled
