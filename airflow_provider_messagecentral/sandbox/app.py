"""
The sandbox's HTTP API: MessageCentral's token and send endpoints plus admin endpoints under ``/__sandbox/``.

Admin endpoints (no auth; the sandbox is a loopback tool):

- ``GET /__sandbox/requests`` accepted sends; ``GET /__sandbox/messages`` one entry per recipient;
  ``GET /__sandbox/rejected`` refused requests; ``GET /__sandbox/stats`` counters.
- ``POST /__sandbox/reset`` (``?restore_config=true`` also restores the startup settings).
- ``GET|POST /__sandbox/faults``: ``expire_tokens``, ``token_ttl``, ``rate_limit``, ``errors``, ``latency``,
  ``balance``, ``balance_endpoint``, ``fail_on_send``, ``hang`` (a ``null`` value clears one).
- ``GET|POST /__sandbox/config``: ``callback_url``, ``callback_delay``, ``status_mix``, ``duplicates``,
  ``out_of_order``, ``seed``, ``field_types``, ``balance``, ``credit_per_segment``.

Besides token and send it plays two endpoints MessageCentral's own app uses but its API docs do not list:
``POST /reports/getDetailedReports`` (see ``sandbox/pulled.py``) and ``GET /wallet/credits/balance`` (the
account's credit, which sends consume per segment and recipient; see ``sandbox/faults.py``).
- ``POST /__sandbox/callbacks/flush?timeout=30&expedite=false``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.responses import JSONResponse, Response

from airflow_provider_messagecentral.safety.segments import analyse
from airflow_provider_messagecentral.sandbox import pulled
from airflow_provider_messagecentral.sandbox.config import SandboxConfig
from airflow_provider_messagecentral.sandbox.faults import BUSINESS_ERRORS
from airflow_provider_messagecentral.sandbox.pulled import ReportsQuery
from airflow_provider_messagecentral.sandbox.state import SandboxState
from airflow_provider_messagecentral.sandbox.validation import (
    Recipient,
    SendRejected,
    bulk_recipients,
    check_common,
    single_recipient,
)
from airflow_provider_messagecentral.sandbox.xlsx import check_xlsx, file_recipients

_QUERY_ONLY = (
    "countryCode",
    "flowType",
    "type",
    "senderId",
    "messageType",
    "message",
    "mobileNumber",
    "phoneNumbers",
    "customerId",
    "templateId",
    "entityId",
)


def _error(err: SendRejected) -> JSONResponse:
    body: dict[str, Any] = {"responseCode": err.response_code, "message": err.message, "data": None}
    headers = {"Retry-After": err.retry_after} if err.retry_after else None
    return JSONResponse(body, status_code=err.http_status, headers=headers)


def _business_error(code: int, field_types: str) -> JSONResponse:
    message, error_message = BUSINESS_ERRORS[code]
    data = {
        "verificationId": None,
        "mobileNumber": None,
        "responseCode": code if field_types == "ints" else str(code),
        "errorMessage": error_message,
        "timeout": None,
        "smsCLI": None,
        "transactionId": None,
    }
    top: int | str = str(code) if field_types == "strings" else code
    return JSONResponse({"responseCode": top, "message": message, "data": data})


def _segments(recipients: list[Recipient]) -> int:
    """SMS segments of every recipient's text (what the balance is charged for)."""
    per_text: dict[str, int] = {}
    total = 0
    for recipient in recipients:
        segments = per_text.get(recipient.text)
        if segments is None:
            segments = per_text[recipient.text] = analyse(recipient.text).segments
        total += segments
    return total


async def _recipients(
    request: Request, params: dict[str, str], subject: str
) -> tuple[str, list[Recipient], dict[str, Any] | None]:
    country_code = check_common(params)
    customer_id = params.get("customerId")
    if customer_id is not None and customer_id != subject:
        raise SendRejected("parameter 'customerId' does not match the account of the authToken")
    upload: UploadFile | None = None
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form()
        for name in _QUERY_ONLY:
            if name in form and name not in params:
                raise SendRejected(f"parameter '{name}' must be in the query string, not in the form body")
        part = form.get("file")
        if part is not None and not isinstance(part, UploadFile):
            raise SendRejected("multipart part 'file' must be a file upload (an .xlsx workbook)")
        upload = part
    given: list[str] = [name for name in ("mobileNumber", "phoneNumbers") if name in params]
    if upload is not None:
        given.append("file")
    if len(given) != 1:
        what = " and ".join(f"'{g}'" for g in given) if given else "none"
        raise SendRejected(
            f"give exactly one of 'mobileNumber', 'phoneNumbers' or a multipart 'file' part (got {what})"
        )
    message = params["message"]
    if given[0] == "mobileNumber":
        return "single", [single_recipient(country_code, params["mobileNumber"], message)], None
    if given[0] == "phoneNumbers":
        return "bulk", bulk_recipients(params["phoneNumbers"], message), None
    assert upload is not None
    content = await upload.read()
    filename = upload.filename or ""
    check_xlsx(filename, content)
    recipients = await run_in_threadpool(file_recipients, content, message, country_code)
    return "file", recipients, {"filename": filename, "size": len(content), "rows": len(recipients)}


def create_app(config: SandboxConfig | None = None, state: SandboxState | None = None) -> FastAPI:
    """
    Build the sandbox application.

    :param config: settings of the sandbox (ignored when ``state`` is given).
    :param state: an existing state to serve (lets a caller keep direct access to it).
    """
    state = state or SandboxState(config)
    app = FastAPI(
        title="MessageCentral sandbox",
        docs_url="/__sandbox/docs",
        openapi_url="/__sandbox/openapi.json",
        redoc_url=None,
    )
    app.state.sandbox = state

    @app.get("/auth/v1/authentication/token")
    async def token(request: Request) -> Response:
        params = dict(request.query_params)
        if (latency := state.latency()) > 0:
            await asyncio.sleep(latency)
        try:
            jwt = state.issue_token(params)
        except SendRejected as err:
            state.record_rejected("token", err, params)
            return _error(err)
        return JSONResponse({"responseCode": 200, "message": "SUCCESS", "token": jwt})

    @app.post("/verification/v3/send")
    async def send(request: Request) -> Response:
        state.count_send()
        params = dict(request.query_params)
        if (latency := state.latency()) > 0:
            await asyncio.sleep(latency)
        try:
            subject = state.authenticate(request.headers.get("authtoken"))
            fault = state.take_transient_fault()
            if fault is not None:
                raise fault
            kind, recipients, file_info = await _recipients(request, params, subject)
        except SendRejected as err:
            state.record_rejected("send", err, params)
            return _error(err)
        code = state.take_business_fault(_segments(recipients))
        if code is not None:
            state.record_rejected("send", SendRejected(BUSINESS_ERRORS[code][0], 200, code), params)
            return _business_error(code, state.config.field_types)
        hang = state.take_hang()
        entry = state.record_accepted(kind, params, recipients, file_info, hung=hang > 0)
        if hang > 0:
            await asyncio.sleep(hang)
        mobile = params["mobileNumber"] if kind == "single" else recipients[0].national
        types = state.config.field_types
        data = {
            "verificationId": int(entry["verification_id"]) if types == "ints" else entry["verification_id"],
            "mobileNumber": mobile,
            "responseCode": 200 if types == "ints" else "200",
            "errorMessage": None,
            "timeout": "30.0",
            "smsCLI": None,
            "transactionId": entry["transaction_id"],
        }
        return JSONResponse({"responseCode": "200" if types == "strings" else 200, "message": "SUCCESS", "data": data})

    @app.get("/wallet/credits/balance")
    async def balance(request: Request) -> Response:
        params = dict(request.query_params)
        try:
            subject = state.authenticate(request.headers.get("authtoken"))
            if params.get("customerId") != subject:
                raise SendRejected("parameter 'customerId' is missing or does not match the account of the authToken")
        except SendRejected as err:
            state.record_rejected("balance", err, params)
            return _error(err)
        status = state.faults()["balance_endpoint"]
        if status is not None:
            return JSONResponse(
                {"status": status, "error": "Not Found" if status == 404 else "Method Not Allowed"}, status
            )
        return JSONResponse(wallet_body(state, subject))

    @app.post("/reports/getDetailedReports")
    async def detailed_reports(request: Request) -> Response:
        params = dict(request.query_params)
        if (latency := state.latency()) > 0:
            await asyncio.sleep(latency)
        try:
            query = ReportsQuery.parse(params, state.authenticate(request.headers.get("authtoken")))
        except SendRejected as err:
            state.record_rejected("reports", err, params)
            return _error(err)
        strings = state.config.field_types == "strings"
        return JSONResponse(pulled.detailed_reports(state.outcomes(), query, strings=strings))

    _add_admin_routes(app, state)
    return app


def wallet_body(state: SandboxState, customer_id: str) -> dict[str, Any]:
    """The balance answer as MessageCentral's app reads it (``WalletBalanceDto``), in the configured field types."""
    strings = state.config.field_types == "strings"
    credits = state.balance()
    data = {
        "customerId": customer_id,
        "credits": str(credits) if strings else credits,
        "lastRechargedCredit": state.config.balance,
        "createdDateTime": state.started,
        "updatedDateTime": state.started,
        "minimumCreditsAllowed": "0",
        "userPaid": True,
    }
    return {"responseCode": "200" if strings else 200, "message": "SUCCESS", "data": data}


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise ValueError("body must be a JSON object") from None
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    return body


def _add_admin_routes(app: FastAPI, state: SandboxState) -> None:
    @app.get("/__sandbox/requests")
    def requests_log() -> list[dict[str, Any]]:
        return state.requests()

    @app.get("/__sandbox/messages")
    def messages() -> list[dict[str, Any]]:
        return state.messages()

    @app.get("/__sandbox/rejected")
    def rejected() -> list[dict[str, Any]]:
        return state.rejected()

    @app.get("/__sandbox/stats")
    def stats() -> dict[str, int]:
        return state.stats()

    @app.post("/__sandbox/reset")
    def reset(restore_config: bool = False) -> dict[str, Any]:
        state.reset(restore_config=restore_config)
        return {"reset": True, "stats": state.stats()}

    @app.get("/__sandbox/faults")
    def get_faults() -> dict[str, Any]:
        return state.faults()

    @app.post("/__sandbox/faults")
    async def set_faults(request: Request) -> Response:
        try:
            return JSONResponse(state.set_faults(await _json_object(request)))
        except ValueError as err:
            return JSONResponse({"error": str(err)}, status_code=400)

    @app.get("/__sandbox/config")
    def get_config() -> dict[str, object]:
        return state.config.public_view()

    @app.post("/__sandbox/config")
    async def set_config(request: Request) -> Response:
        try:
            return JSONResponse(state.configure(await _json_object(request)))
        except (ValueError, TypeError) as err:
            return JSONResponse({"error": str(err)}, status_code=400)

    @app.post("/__sandbox/callbacks/flush")
    async def flush(timeout: float = 30.0, expedite: bool = False) -> dict[str, Any]:
        done = await run_in_threadpool(state.dispatcher.flush, timeout, expedite)
        return {"flushed": done, **state.dispatcher.counts()}
