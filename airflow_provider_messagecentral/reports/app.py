"""
The delivery-report receiver: a FastAPI app MessageCentral POSTs callbacks to, plus read endpoints.

Run it standalone (``python -m airflow_provider_messagecentral.reports serve``) or mounted in the Airflow
api-server by the ``messagecentral`` plugin. :func:`create_app` composes the pieces: the settings
(:mod:`~airflow_provider_messagecentral.reports.receiver_config`, held on ``app.state.receiver``), the
callback router (:mod:`~airflow_provider_messagecentral.reports.callbacks`), the read endpoints and the
dashboard behind the read auth (:mod:`~airflow_provider_messagecentral.reports.read_api`,
:mod:`~airflow_provider_messagecentral.reports.dashboard`) and the secret redaction of logs
(:mod:`~airflow_provider_messagecentral.reports.redaction`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from airflow_provider_messagecentral.client.store_url import STORE_URL_ENV
from airflow_provider_messagecentral.reports import callbacks, read_api
from airflow_provider_messagecentral.reports.dashboard import dashboard_router
from airflow_provider_messagecentral.reports.receiver_config import SECRET_ENV, ReceiverConfig
from airflow_provider_messagecentral.reports.redaction import RedactCallbackPathMiddleware, install_log_redaction

__all__ = ["SECRET_ENV", "STORE_URL_ENV", "ReadAuth", "create_app"]

log = logging.getLogger(__name__)

ReadAuth = Callable[..., Awaitable[None] | None]


async def _store_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    log.error("Report store error: %s", type(exc).__name__)
    return JSONResponse(status_code=503, content={"detail": "report store unavailable"})


def create_app(
    store_url: str | None = None,
    secret: str | None = None,
    *,
    max_body_bytes: int = 65536,
    allowed_ips: list[str] | None = None,
    timezone: str = "UTC",
    require_read_auth: bool = True,
    allow_unconfigured: bool = False,
    read_auth: ReadAuth | None = None,
) -> FastAPI:
    """
    Build the receiver app. Cheap: the store is opened on the first request.

    :param store_url: SQLAlchemy URL of the report store; default ``$MESSAGECENTRAL_REPORTS_URL``, else
        :func:`~airflow_provider_messagecentral.client.store_url.default_store_url` (see
        :func:`~airflow_provider_messagecentral.client.store_url.receiver_store_url`).
    :param secret: the callback secret (path segment or ``X-Callback-Secret`` header; ``Bearer`` token of
        the read endpoints); default ``$MESSAGECENTRAL_CALLBACK_SECRET``. Required unless
        ``allow_unconfigured``, in which case callbacks answer 503 "receiver not configured".
    :param max_body_bytes: larger callback bodies are refused with 413.
    :param allowed_ips: optional allow-list of sender addresses/networks (others get 403).
    :param timezone: zone of report dates that carry none (MessageCentral sends none; default UTC).
    :param require_read_auth: read endpoints need ``Authorization: Bearer <secret>``.
    :param read_auth: a FastAPI dependency replacing the bearer check (the plugin passes Airflow's auth).

    Example::

        app = create_app("sqlite:////data/reports.db", secret=os.environ["MESSAGECENTRAL_CALLBACK_SECRET"])
        uvicorn.run(app, host="0.0.0.0", port=8098, access_log=False)
    """
    config = ReceiverConfig.create(
        store_url,
        secret,
        max_body_bytes=max_body_bytes,
        allowed_ips=allowed_ips,
        timezone=timezone,
        require_read_auth=require_read_auth,
        allow_unconfigured=allow_unconfigured,
    )
    install_log_redaction()
    app = FastAPI(
        title="MessageCentral delivery reports",
        description="Receives MessageCentral delivery-report callbacks and serves campaign summaries.",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.receiver = config
    app.add_middleware(RedactCallbackPathMiddleware)
    app.add_exception_handler(SQLAlchemyError, _store_unavailable)
    reader = [Depends(read_auth or read_api.bearer_auth)]
    app.include_router(callbacks.router)
    app.include_router(read_api.health_router)
    app.include_router(dashboard_router(config.store, dependencies=reader))
    app.include_router(read_api.router, dependencies=reader)
    return app
