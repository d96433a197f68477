"""Delivery reports: pydantic models, the SQL store (campaigns, send ledger, reports) and the receiver."""

from __future__ import annotations

from airflow_provider_messagecentral.reports.models import (
    FAILED_STATUSES,
    FINAL_STATUSES,
    KNOWN_STATUSES,
    DeliveryReport,
    IngestResult,
)
from airflow_provider_messagecentral.reports.store import (
    LedgerUnit,
    ReportStore,
    default_store_url,
    get_store,
    resolve_store_url,
)

__all__ = [
    "FAILED_STATUSES",
    "FINAL_STATUSES",
    "KNOWN_STATUSES",
    "DeliveryReport",
    "IngestResult",
    "LedgerUnit",
    "ReportStore",
    "default_store_url",
    "get_store",
    "resolve_store_url",
]
