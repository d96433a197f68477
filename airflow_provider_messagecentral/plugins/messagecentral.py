"""
Airflow plugin that mounts the delivery-report receiver in the api-server under ``/messagecentral``.

Registered through the ``airflow.plugins`` entry point. Configuration (environment of the api-server):
``MESSAGECENTRAL_CALLBACK_SECRET`` (required for callbacks; without it they answer 503). Reports are stored
where the ``messagecentral`` connection says (its ``reports_url`` / ``reports_conn_id``: the store the operators
and the delivery sensor use): ``messagecentral_default``, or the connection ``$MESSAGECENTRAL_CONN_ID`` /
``[messagecentral] conn_id`` names; ``$MESSAGECENTRAL_REPORTS_URL`` overrides it; without the connection, SQLite
under ``$AIRFLOW_HOME``. ``GET /messagecentral/health`` names the store. MessageCentral's callback URL is then
``https://<airflow>/messagecentral/callback/<secret>``. The read endpoints need an authenticated Airflow user
(the UI session cookie or ``Authorization: Bearer <Airflow JWT>``). Successful callbacks are left out of the
api-server's access log (:mod:`~airflow_provider_messagecentral.plugins.access_log`).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from airflow_provider_messagecentral.plugins.access_log import quiet_callback_access_log
from airflow_provider_messagecentral.reports.app import create_app

log = logging.getLogger(__name__)

URL_PREFIX = "/messagecentral"

_bearer = HTTPBearer(auto_error=False)


async def airflow_user_required(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
) -> None:
    """
    FastAPI dependency: the request must carry a valid Airflow login (JWT bearer token or UI cookie).

    Airflow applies no auth to plugin apps, so the receiver's read endpoints call Airflow's own
    ``get_user`` (``airflow.api_fastapi.core_api.security``); it answers 401/403 itself.
    """
    from airflow.api_fastapi.core_api.security import get_user

    await get_user(request, None, credentials)


def build_app() -> FastAPI:
    """The receiver as mounted in the api-server (callbacks answer 503 until a secret is configured)."""
    timezone = os.environ.get("MESSAGECENTRAL_REPORTS_TIMEZONE", "UTC")
    quiet_callback_access_log(URL_PREFIX)
    try:
        # The store is chosen on the first request (the connection is looked up then, not while plugins load).
        return create_app(
            allow_unconfigured=True,
            timezone=timezone,
            read_auth=airflow_user_required,
        )
    except ValueError as err:
        # A bad configuration must not take the api-server down: serve 503s that say why.
        log.error("MessageCentral receiver not mounted properly: %s", err)
        return _misconfigured_app(str(err))


def _misconfigured_app(reason: str) -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.api_route("/{path:path}", methods=["GET", "POST"])
    def unavailable(path: str) -> Any:
        from fastapi.responses import JSONResponse

        return JSONResponse(status_code=503, content={"detail": f"receiver not configured: {reason}"})

    return app


class MessageCentralPlugin(AirflowPlugin):
    """
    Mounts the MessageCentral delivery-report receiver at ``/messagecentral`` in the Airflow api-server.

    Example: with ``MESSAGECENTRAL_CALLBACK_SECRET`` set, register
    ``https://airflow.example.com/messagecentral/callback/<secret>`` with MessageCentral, and read
    ``GET /messagecentral/campaigns/<campaign>/summary`` as a logged-in Airflow user.
    """

    name = "messagecentral"
    fastapi_apps = [
        {
            "app": build_app(),
            "url_prefix": URL_PREFIX,
            "name": "MessageCentral delivery reports",
        }
    ]
    external_views = [
        {
            "name": "MessageCentral campaigns",
            "href": "/messagecentral/dashboard",
            "url_route": "messagecentral",
            "destination": "nav",
            "category": "browse",
        }
    ]
