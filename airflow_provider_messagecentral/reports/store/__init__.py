"""
The delivery-report store: campaigns, the send ledger, recipients, reports and the suppression list.

One facade, :class:`ReportStore`, over one room per concern:

* :mod:`.engine` — engine, SQLite pragmas and transactions, schema migrations (:mod:`.tables`), health;
* :mod:`.ledger` — campaigns and send units (pending, accepted, failed);
* :mod:`.recipients` — recipients of accepted units, reports that arrived before their send, campaign windows;
* :mod:`.reconcile` — pending units whose recipients' delivery reports arrived count as accepted;
* :mod:`.ingest` — delivery reports in, matched to recipients by id, else by mobile in the campaign window;
* :mod:`.pulled` — delivery reports pulled from MessageCentral (no messageId), stored by the same rules;
* :mod:`.views` — one report, campaign summaries and pages, the dashboard's aggregates;
* :mod:`.suppression` — numbers never to text;
* :mod:`.precedence` — the one rule that decides which of two reports of a message wins.
"""

from __future__ import annotations

import threading
from typing import Any

from airflow_provider_messagecentral.client.store_url import (
    default_store_url,
    normalize_store_url,
    resolve_store_url,
)
from airflow_provider_messagecentral.reports.store.ingest import IngestRoom
from airflow_provider_messagecentral.reports.store.ledger import LedgerUnit
from airflow_provider_messagecentral.reports.store.pulled import PulledResult, PulledRoom
from airflow_provider_messagecentral.reports.store.reconcile import ReconcileRoom
from airflow_provider_messagecentral.reports.store.suppression import SuppressionRoom
from airflow_provider_messagecentral.reports.store.views import ViewsRoom

__all__ = [
    "LedgerUnit",
    "PulledResult",
    "ReportStore",
    "default_store_url",
    "get_store",
    "resolve_store_url",
]


class ReportStore(ReconcileRoom, IngestRoom, PulledRoom, ViewsRoom, SuppressionRoom):
    """
    Delivery reports, campaigns and the send ledger in one SQL database (SQLite or PostgreSQL).

    Every public method is one short transaction and commits before it returns. Use :func:`get_store` to
    share one engine per URL within a process. The schema is created (and migrated) on first use.

    Uncertain send units (pending: the answer to their request was lost) whose recipients' delivery reports
    arrived are reconciled (:mod:`.reconcile`) by :meth:`reconcile`, and before the reads that count a
    campaign's recipients: :meth:`get_units` (so each try of a send task sees them as accepted),
    :meth:`campaign_summary` (the sensor and trigger, the receiver's summary endpoint, the CLI, the dashboard)
    and :meth:`list_campaigns` (the dashboard's campaign list). Ingest never reconciles.

    :param url: SQLAlchemy URL (``sqlite:///path.db`` or ``postgresql+psycopg://user:pw@host/db``); default
        :func:`default_store_url`.
    :param migrate: create/upgrade the schema now (default ``True``).

    Example::

        store = get_store("sqlite:////tmp/reports.db")
        key = "mc-0123456789abcdef0123"
        store.ensure_campaign(key, dag_id="dag", run_id="run", task_id="send", kind="bulk")
        print(store.campaign_summary(key))
    """

    def get_units(self, campaign_key: str) -> dict[str, LedgerUnit]:
        """Every ledger unit of a campaign (``unit_key -> LedgerUnit``), uncertain units reconciled first."""
        self.reconcile_quietly([campaign_key])
        return super().get_units(campaign_key)

    def campaign_summary(self, campaign_key: str) -> dict[str, Any] | None:
        """The campaign's delivery counts (:meth:`ViewsRoom.campaign_summary`), uncertain units reconciled first."""
        self.reconcile_quietly([campaign_key])
        return super().campaign_summary(campaign_key)

    def list_campaigns(self, page: int = 1, page_size: int = 50) -> dict[str, Any]:
        """One page of campaigns, newest first (:meth:`ViewsRoom.list_campaigns`), their uncertain units reconciled."""
        listing = super().list_campaigns(page, page_size)
        if self.reconcile_quietly([item["campaign"] for item in listing["items"]]):
            listing = super().list_campaigns(page, page_size)
        return listing


_stores: dict[str, ReportStore] = {}
_stores_lock = threading.Lock()


def get_store(url: str | None = None) -> ReportStore:
    """
    The process-wide :class:`ReportStore` of ``url`` (default :func:`default_store_url`): one engine per URL.

    The schema is created or upgraded the first time a URL is used in the process.
    """
    key = normalize_store_url(url or default_store_url())
    store = _stores.get(key)
    if store is not None:
        return store
    with _stores_lock:
        store = _stores.get(key)
        if store is None:
            store = ReportStore(key)
            _stores[key] = store
        return store
