"""
The delivery-report receiver: a FastAPI app MessageCentral POSTs callbacks to, plus read endpoints.

Run it standalone (``python -m airflow_provider_messagecentral.reports serve``) or mounted in the Airflow
api-server by the ``messagecentral`` plugin. :func:`create_app` composes the pieces: the settings
(:mod:`~airflow_provider_messagecentral.reports.receiver_config`, held on ``app.state.receiver``), the
callback router (:mod:`~airflow_provider_messagecentral.reports.callbacks`), the read endpoints and the
dashboard behind the read auth (:mod:`~airflow_provider_messagecentral.reports.read_api`,
:mod:`~airflow_provider_messagecentral.reports.dashboard`) and the secret redaction of logs
(:mod:`~airflow_provider_messagecentral.reports.redaction`). :func:`create_app_from_env` is the factory uvicorn
workers import (``reports serve --workers N``): its options come from the environment, never the command line.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from airflow_provider_messagecentral.client.store_url import CONN_ID_ENV, STORE_URL_ENV, StoreChoice
from airflow_provider_messagecentral.reports import callbacks, read_api
from airflow_provider_messagecentral.reports.dashboard import dashboard_router
from airflow_provider_messagecentral.reports.receiver_config import SECRET_ENV, ReceiverConfig, StoreNotConfigured
from airflow_provider_messagecentral.reports.redaction import RedactCallbackPathMiddleware, install_log_redaction

__all__ = ["CONN_ID_ENV", "OPTIONS_ENV", "SECRET_ENV", "STORE_URL_ENV", "ReadAuth", "create_app", "create_app_from_env"]

log = logging.getLogger(__name__)

ReadAuth = Callable[..., Awaitable[None] | None]

#: The environment variable ``reports serve`` hands its options (and the store it chose) to its workers in.
OPTIONS_ENV = "MESSAGECENTRAL_RECEIVER_OPTIONS"


async def _store_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    return callbacks.store_unavailable(exc)


async def _store_not_configured(_request: Request, exc: Exception) -> JSONResponse:
    return callbacks.store_not_configured(exc)


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
    conn_id: str | None = None,
) -> FastAPI:
    """
    Build the receiver app. Cheap: the store is chosen and opened on the first request.

    :param store_url: SQLAlchemy URL of the report store, an override; default ``$MESSAGECENTRAL_REPORTS_URL``
        (another override), else the store the connection ``conn_id`` names, else — that connection is not
        defined — :func:`~airflow_provider_messagecentral.client.store_url.default_store_url` (see
        :func:`~airflow_provider_messagecentral.client.store_url.choose_receiver_store`).
    :param secret: the callback secret (path segment or ``X-Callback-Secret`` header; ``Bearer`` token of
        the read endpoints); default ``$MESSAGECENTRAL_CALLBACK_SECRET``. Required unless
        ``allow_unconfigured``, in which case callbacks answer 503 "receiver not configured".
    :param max_body_bytes: larger callback bodies are refused with 413.
    :param allowed_ips: optional allow-list of sender addresses/networks (others get 403).
    :param timezone: zone of report dates that carry none (MessageCentral sends none; default UTC).
    :param require_read_auth: read endpoints need ``Authorization: Bearer <secret>``.
    :param read_auth: a FastAPI dependency replacing the bearer check (the plugin passes Airflow's auth).
    :param conn_id: the ``messagecentral`` connection naming the store (the one the operators and the sensor
        use); default ``$MESSAGECENTRAL_CONN_ID``, else ``[messagecentral] conn_id``, else
        ``messagecentral_default``.

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
        conn_id=conn_id,
    )
    return compose_app(config, read_auth)


def compose_app(config: ReceiverConfig, read_auth: ReadAuth | None = None) -> FastAPI:
    """The receiver app over a checked :class:`ReceiverConfig` (see :func:`create_app`)."""
    install_log_redaction()
    app = FastAPI(
        title="MessageCentral delivery reports",
        description="Receives MessageCentral delivery-report callbacks and serves campaign summaries.",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.receiver = config
    callback = callbacks.CallbackEndpoint(config)
    app.add_middleware(RedactCallbackPathMiddleware)
    app.add_middleware(callbacks.CallbackFastPath, endpoint=callback)  # outermost: callbacks skip the rest
    app.add_exception_handler(SQLAlchemyError, _store_unavailable)
    app.add_exception_handler(StoreNotConfigured, _store_not_configured)
    reader = [Depends(read_auth or read_api.bearer_auth)]
    app.router.routes.extend(callbacks.callback_routes(callback))
    app.include_router(read_api.health_router)
    app.include_router(dashboard_router(config.store, dependencies=reader))
    app.include_router(read_api.router, dependencies=reader)
    return app


def receiver_options_env(options: dict[str, Any], choice: StoreChoice) -> str:
    """The :data:`OPTIONS_ENV` value handing ``create_app`` options and the chosen store to the workers."""
    return json.dumps({**options, "store_url": choice.url, "store_from": choice.source, "reason": choice.reason})


def create_app_from_env() -> FastAPI:
    """
    The app factory of ``reports serve`` (``uvicorn.run(..., factory=True, workers=N)`` imports it by name in
    every worker): ``create_app`` options and the store ``serve`` chose from :data:`OPTIONS_ENV`, the callback
    secret from ``$MESSAGECENTRAL_CALLBACK_SECRET`` (never a command-line argument: it would show in ``ps``).

    Example::

        os.environ[OPTIONS_ENV] = receiver_options_env({"timezone": "UTC"}, choose_receiver_store())
        uvicorn.run("airflow_provider_messagecentral.reports.app:create_app_from_env", factory=True, workers=4)
    """
    options = json.loads(os.environ.get(OPTIONS_ENV) or "{}")
    url, source, reason = (options.pop(name, None) for name in ("store_url", "store_from", "reason"))
    choice = StoreChoice(url, source or "", reason or "") if url else None
    return compose_app(ReceiverConfig.create(choice=choice, **options))
