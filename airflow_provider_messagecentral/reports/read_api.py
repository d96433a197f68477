"""
The receiver's read side: ``GET /health`` (open) and the report/campaign endpoints, which the app includes
behind its read auth (:func:`bearer_auth` standalone, Airflow's login when mounted in the api-server).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from airflow_provider_messagecentral.reports.receiver_config import StoreNotConfigured, receiver_config
from airflow_provider_messagecentral.reports.store import ReportStore

log = logging.getLogger(__name__)

_bearer = HTTPBearer(auto_error=False)

#: ``GET /health``: no auth (load balancers and MessageCentral's own checks call it).
health_router = APIRouter()
#: The report and campaign endpoints; include them with the read-auth dependency.
router = APIRouter()


def bearer_auth(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> None:
    """FastAPI dependency: ``Authorization: Bearer <callback secret>`` (unless read auth is switched off)."""
    config = receiver_config(request)
    if not config.require_read_auth:
        return
    if credentials is None or not config.secret_ok(credentials.credentials):
        raise HTTPException(
            status_code=401, detail="missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"}
        )


@health_router.get("/health")
def health(request: Request) -> JSONResponse:
    """
    200 when the store answers, 503 otherwise. Names the store callbacks are written to (password masked) and
    where that came from: ``{"status", "configured", "store": "postgresql+psycopg://u:***@h/db", "store_from":
    "connection messagecentral_default" | "MESSAGECENTRAL_REPORTS_URL" | "--store-url" | "default" | ...}``.
    """
    config = receiver_config(request)
    body: dict[str, Any] = {"status": "unavailable", "configured": config.configured, "store": None, "store_from": None}
    try:
        choice = config.store_choice()
    except StoreNotConfigured as err:
        return JSONResponse(status_code=503, content={**body, "detail": f"report store not configured: {err}"})
    body.update(store=choice.masked, store_from=choice.source)
    try:
        ok = config.store().ping()
    except Exception:
        log.warning("Report store %s could not be opened", choice.masked, exc_info=True)
        ok = False
    body["status"] = "ok" if ok else "unavailable"
    return JSONResponse(status_code=200 if ok else 503, content=body)


def _store(request: Request) -> ReportStore:
    """The app's report store (the handlers are sync: FastAPI runs them in a thread)."""
    return receiver_config(request).store()


def _summary_or_404(db: ReportStore, campaign_key: str) -> dict[str, Any]:
    summary = db.campaign_summary(campaign_key)
    if summary is None:
        raise HTTPException(status_code=404, detail="unknown campaign")
    return summary


@router.get("/reports/{message_id}")
def get_report(message_id: str, request: Request) -> dict[str, Any]:
    """The latest status of one message."""
    report = _store(request).get_report(message_id)
    if report is None:
        raise HTTPException(status_code=404, detail="no report for this message id")
    return report


@router.get("/campaigns")
def list_campaigns(
    request: Request, page: int = Query(1, ge=1, le=1_000_000), page_size: int = Query(50, ge=1, le=1000)
) -> dict[str, Any]:
    """Campaigns, newest first."""
    return _store(request).list_campaigns(page=page, page_size=page_size)


@router.get("/campaigns/{campaign_key}/summary")
def campaign_summary(campaign_key: str, request: Request) -> dict[str, Any]:
    """Delivery counts and ratios of one campaign."""
    return _summary_or_404(_store(request), campaign_key)


@router.get("/campaigns/{campaign_key}/reports")
def campaign_reports(
    campaign_key: str,
    request: Request,
    page: int = Query(1, ge=1, le=1_000_000),
    page_size: int = Query(100, ge=1, le=1000),
    search: str | None = Query(None, max_length=200),
) -> dict[str, Any]:
    """One page of a campaign's recipients with their latest report."""
    db = _store(request)
    _summary_or_404(db, campaign_key)
    return db.campaign_reports(campaign_key, page=page, page_size=page_size, search=search)
