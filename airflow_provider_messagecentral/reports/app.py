"""
The delivery-report receiver: a FastAPI app MessageCentral POSTs callbacks to, plus read endpoints.

Run it standalone (``python -m airflow_provider_messagecentral.reports serve``) or mounted in the Airflow
api-server by the ``messagecentral`` plugin.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import os
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Receive, Scope, Send

from airflow_provider_messagecentral.client.store_url import default_store_url, normalize_store_url
from airflow_provider_messagecentral.reports.dashboard import dashboard_router
from airflow_provider_messagecentral.reports.models import DeliveryReport
from airflow_provider_messagecentral.reports.store import ReportStore, get_store

log = logging.getLogger(__name__)

SECRET_ENV = "MESSAGECENTRAL_CALLBACK_SECRET"  # noqa: S105 (the variable name, not a secret)
STORE_URL_ENV = "MESSAGECENTRAL_REPORTS_URL"
MIN_SECRET_LENGTH = 16
_MAX_ERRORS = 20

ReadAuth = Callable[..., Awaitable[None] | None]

_CALLBACK_PATH = re.compile(r"(/callback/)[^/?\s\"]+")


class CallbackSecretFilter(logging.Filter):
    """Redact ``/callback/<secret>`` in log records (uvicorn's access log prints request paths)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(
                _CALLBACK_PATH.sub(r"\1***", a) if isinstance(a, str) and "/callback/" in a else a for a in record.args
            )
        if isinstance(record.msg, str) and "/callback/" in record.msg:
            record.msg = _CALLBACK_PATH.sub(r"\1***", record.msg)
        return True


def install_log_redaction(logger_names: Sequence[str] = ("uvicorn.access", "uvicorn.error", "uvicorn")) -> None:
    """Attach :class:`CallbackSecretFilter` to the loggers (and their handlers) that print request paths."""
    for name in logger_names:
        logger = logging.getLogger(name)
        targets: list[logging.Filterer] = [logger, *logger.handlers]
        for target in targets:
            if not any(isinstance(f, CallbackSecretFilter) for f in target.filters):
                target.addFilter(CallbackSecretFilter())


class RedactCallbackPathMiddleware:
    """
    ASGI middleware: once a request is answered, replace the secret in ``scope["path"]`` by ``***``.

    Access loggers that read the path after the app returned (Airflow api-server's ``http.access``
    middleware does) then log ``/callback/***``. Routing is finished by then, so nothing else changes.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        finally:
            if scope.get("type") == "http":
                path = scope.get("path")
                if isinstance(path, str) and "/callback/" in path:
                    scope["path"] = _CALLBACK_PATH.sub(r"\1***", path)
                raw = scope.get("raw_path")
                if isinstance(raw, bytes) and b"/callback/" in raw:
                    scope["raw_path"] = _CALLBACK_PATH.sub(r"\1***", raw.decode("latin-1")).encode("latin-1")


def resolve_secret(secret: str | None = None) -> str | None:
    """The callback secret: the argument, else ``$MESSAGECENTRAL_CALLBACK_SECRET`` (``None`` when neither)."""
    value = secret if secret is not None else os.environ.get(SECRET_ENV)
    value = (value or "").strip()
    return value or None


def _parse_networks(allowed_ips: Sequence[str] | None) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    networks = []
    for position, entry in enumerate(allowed_ips or [], start=1):
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError as err:
            raise ValueError(f"allowed_ips #{position} {entry!r} is not an IP address or network") from err
    return networks


def _validation_errors(err: ValidationError, item: int | None) -> list[dict[str, Any]]:
    """Pydantic errors without the offending input (it may hold an apiKey)."""
    out = []
    for e in err.errors(include_url=False, include_input=False, include_context=False)[:_MAX_ERRORS]:
        entry: dict[str, Any] = {"loc": [*([] if item is None else [item]), *e["loc"]], "msg": e["msg"]}
        out.append(entry)
    return out


def _value_error_text(err: ValueError) -> str:
    text = str(err)
    if "integer string conversion" in text:
        return "a number has more digits than can be read (4300 at most)"
    return text.split(";", 1)[0][:120]


def _redact_api_keys(documents: list[Any]) -> bool:
    redacted = False
    for doc in documents:
        if isinstance(doc, dict) and doc.get("apiKey") not in (None, ""):
            doc["apiKey"] = "***"
            redacted = True
    return redacted


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
        :func:`~airflow_provider_messagecentral.client.store_url.default_store_url`.
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
    the_secret = resolve_secret(secret)
    if the_secret is None and not allow_unconfigured:
        raise ValueError(
            f"no callback secret: set the {SECRET_ENV} environment variable (or pass secret=) before "
            "starting the MessageCentral receiver"
        )
    if the_secret is not None and len(the_secret) < MIN_SECRET_LENGTH:
        log.warning(
            "The MessageCentral callback secret is short (%d characters): use %d or more random characters",
            len(the_secret),
            MIN_SECRET_LENGTH,
        )
    if max_body_bytes < 1:
        raise ValueError(f"max_body_bytes must be >= 1, got {max_body_bytes}")
    networks = _parse_networks(allowed_ips)
    url = normalize_store_url(store_url or os.environ.get(STORE_URL_ENV) or default_store_url())
    secret_bytes = the_secret.encode("utf-8") if the_secret else b""
    install_log_redaction()

    app = FastAPI(
        title="MessageCentral delivery reports",
        description="Receives MessageCentral delivery-report callbacks and serves campaign summaries.",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.add_middleware(RedactCallbackPathMiddleware)
    state: dict[str, ReportStore] = {}

    def store() -> ReportStore:
        existing = state.get("store")
        if existing is None:
            existing = state["store"] = get_store(url)
        return existing

    @app.exception_handler(SQLAlchemyError)
    async def _db_error(_request: Request, exc: SQLAlchemyError) -> JSONResponse:
        log.error("Report store error: %s", type(exc).__name__)
        return JSONResponse(status_code=503, content={"detail": "report store unavailable"})

    def _secret_ok(candidate: str | None) -> bool:
        if not candidate or not secret_bytes:
            return False
        return hmac.compare_digest(candidate.encode("utf-8", "surrogateescape"), secret_bytes)

    def _check_sender(request: Request) -> None:
        if not networks:
            return
        host = request.client.host if request.client else ""
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        if address is None or not any(address in net for net in networks):
            raise HTTPException(status_code=403, detail="sender address not allowed")

    async def _read_body(request: Request) -> bytes:
        length = request.headers.get("content-length")
        if length is not None:
            if not length.strip().isdigit():
                raise HTTPException(status_code=400, detail="invalid Content-Length header")
            if int(length) > max_body_bytes:
                raise HTTPException(status_code=413, detail=f"body larger than {max_body_bytes} bytes")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_body_bytes:
                raise HTTPException(status_code=413, detail=f"body larger than {max_body_bytes} bytes")
        return bytes(body)

    async def _callback(request: Request, provided: str | None) -> dict[str, int]:
        if not secret_bytes:
            raise HTTPException(status_code=503, detail="receiver not configured: no callback secret is set")
        _check_sender(request)
        if not _secret_ok(provided):
            raise HTTPException(status_code=401, detail="wrong or missing callback secret")
        raw = await _read_body(request)
        try:
            document = json.loads(raw)
        except UnicodeDecodeError as err:
            raise HTTPException(status_code=422, detail=f"body is not UTF-8 (byte {err.start})") from err
        except json.JSONDecodeError as err:
            raise HTTPException(
                status_code=422, detail=f"malformed JSON: {err.msg} at line {err.lineno} column {err.colno}"
            ) from err
        except RecursionError as err:
            # "[" * 30000 fits the size limit; the parser gives up at Python's recursion limit.
            raise HTTPException(status_code=422, detail="malformed JSON: arrays or objects nested too deeply") from err
        except ValueError as err:
            # An integer literal longer than Python's int-string limit (4300 digits) fails outside the parser.
            raise HTTPException(status_code=422, detail=f"malformed JSON: {_value_error_text(err)}") from err
        items = document if isinstance(document, list) else [document]
        reports: list[DeliveryReport] = []
        errors: list[dict[str, Any]] = []
        context = {"tz": timezone}
        for index, item in enumerate(items):
            position = index if isinstance(document, list) else None
            if not isinstance(item, dict):
                errors.append({"loc": [] if position is None else [position], "msg": "expected a JSON object"})
                continue
            try:
                reports.append(DeliveryReport.model_validate(item, context=context))
            except ValidationError as err:
                errors.extend(_validation_errors(err, position))
            if len(errors) >= _MAX_ERRORS:
                break
        if errors:
            raise HTTPException(status_code=422, detail=errors[:_MAX_ERRORS])
        text = raw.decode("utf-8")
        if _redact_api_keys(items):
            text = json.dumps(document, ensure_ascii=False)
        remote = request.client.host if request.client else None
        db = await run_in_threadpool(store)
        result = await run_in_threadpool(db.ingest, reports, [text], remote)
        return {"stored": result.stored, "duplicates": result.duplicates, "ignored_stale": result.ignored_stale}

    @app.post("/callback/{secret}")
    async def callback_in_path(secret: str, request: Request) -> dict[str, int]:
        """MessageCentral's callback URL: one report object or a JSON array of them."""
        return await _callback(request, secret)

    @app.post("/callback")
    async def callback_in_header(request: Request) -> dict[str, int]:
        """The same as ``/callback/{secret}`` with the secret in the ``X-Callback-Secret`` header."""
        return await _callback(request, request.headers.get("x-callback-secret"))

    @app.get("/health")
    def health() -> JSONResponse:
        """200 when the store answers, 503 otherwise."""
        try:
            ok = store().ping()
        except Exception:
            log.warning("Report store could not be opened", exc_info=True)
            ok = False
        body = {"status": "ok" if ok else "unavailable", "configured": bool(secret_bytes)}
        return JSONResponse(status_code=200 if ok else 503, content=body)

    bearer = HTTPBearer(auto_error=False)

    def bearer_auth(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if not require_read_auth:
            return
        if credentials is None or not _secret_ok(credentials.credentials):
            raise HTTPException(
                status_code=401, detail="missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"}
            )

    reader = [Depends(read_auth or bearer_auth)]
    app.include_router(dashboard_router(store, dependencies=reader))

    @app.get("/reports/{message_id}", dependencies=reader)
    def get_report(message_id: str) -> dict[str, Any]:
        """The latest status of one message."""
        report = store().get_report(message_id)
        if report is None:
            raise HTTPException(status_code=404, detail="no report for this message id")
        return report

    @app.get("/campaigns", dependencies=reader)
    def list_campaigns(
        page: int = Query(1, ge=1, le=1_000_000), page_size: int = Query(50, ge=1, le=1000)
    ) -> dict[str, Any]:
        """Campaigns, newest first."""
        return store().list_campaigns(page=page, page_size=page_size)

    @app.get("/campaigns/{campaign_key}/summary", dependencies=reader)
    def campaign_summary(campaign_key: str) -> dict[str, Any]:
        """Delivery counts and ratios of one campaign."""
        summary = store().campaign_summary(campaign_key)
        if summary is None:
            raise HTTPException(status_code=404, detail="unknown campaign")
        return summary

    @app.get("/campaigns/{campaign_key}/reports", dependencies=reader)
    def campaign_reports(
        campaign_key: str,
        page: int = Query(1, ge=1, le=1_000_000),
        page_size: int = Query(100, ge=1, le=1000),
        search: str | None = Query(None, max_length=200),
    ) -> dict[str, Any]:
        """One page of a campaign's recipients with their latest report."""
        db = store()
        if db.campaign_summary(campaign_key) is None:
            raise HTTPException(status_code=404, detail="unknown campaign")
        return db.campaign_reports(campaign_key, page=page, page_size=page_size, search=search)

    return app
