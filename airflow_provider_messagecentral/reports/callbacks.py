"""
The callback endpoints MessageCentral POSTs delivery reports to: ``POST /callback/{secret}`` and ``POST
/callback`` (secret in ``X-Callback-Secret``).

One request: the secret and sender checks (503 unconfigured, 403 sender, 401 secret), the body read with its
limit (413), the JSON parse and report validation (422, nothing stored, no input echoed), the ``apiKey``
redaction of the raw text kept, then one ingest into the store.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import ValidationError

from airflow_provider_messagecentral.reports.models import DeliveryReport
from airflow_provider_messagecentral.reports.receiver_config import receiver_config
from airflow_provider_messagecentral.reports.store.group_commit import ingest_callback

MAX_ERRORS = 20

router = APIRouter()


async def read_body(request: Request, limit: int) -> bytes:
    """The request body; 413 as soon as it (or its ``Content-Length``) is over ``limit`` bytes."""
    length = request.headers.get("content-length")
    if length is not None:
        if not length.strip().isdigit():
            raise HTTPException(status_code=400, detail="invalid Content-Length header")
        if int(length) > limit:
            raise HTTPException(status_code=413, detail=f"body larger than {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(status_code=413, detail=f"body larger than {limit} bytes")
    return bytes(body)


def _value_error_text(err: ValueError) -> str:
    text = str(err)
    if "integer string conversion" in text:
        return "a number has more digits than can be read (4300 at most)"
    return text.split(";", 1)[0][:120]


def parse_json(raw: bytes) -> Any:
    """The JSON document of a body; 422 saying why it cannot be read."""
    try:
        return json.loads(raw)
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


def _validation_errors(err: ValidationError, item: int | None) -> list[dict[str, Any]]:
    """Pydantic errors without the offending input (it may hold an apiKey)."""
    return [
        {"loc": [*([] if item is None else [item]), *e["loc"]], "msg": e["msg"]}
        for e in err.errors(include_url=False, include_input=False, include_context=False)[:MAX_ERRORS]
    ]


def validate_reports(document: Any, timezone: str) -> list[DeliveryReport]:
    """
    The reports of a callback body (one object or an array of them); 422 listing (at most 20) errors, each
    with its ``loc`` (item index first for arrays) and no input value.
    """
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
        if len(errors) >= MAX_ERRORS:
            break
    if errors:
        raise HTTPException(status_code=422, detail=errors[:MAX_ERRORS])
    return reports


def raw_text(raw: bytes, document: Any) -> str:
    """The body as kept in the raw-report table: with every ``apiKey`` replaced by ``***``."""
    redacted = False
    for doc in document if isinstance(document, list) else [document]:
        if isinstance(doc, dict) and doc.get("apiKey") not in (None, ""):
            doc["apiKey"] = "***"
            redacted = True
    return json.dumps(document, ensure_ascii=False) if redacted else raw.decode("utf-8")


async def receive(request: Request, provided: str | None) -> dict[str, int]:
    """Check, read, validate and store one callback; ``{"stored", "duplicates", "ignored_stale"}``."""
    config = receiver_config(request)
    if not config.configured:
        raise HTTPException(status_code=503, detail="receiver not configured: no callback secret is set")
    config.check_sender(request)
    if not config.secret_ok(provided):
        raise HTTPException(status_code=401, detail="wrong or missing callback secret")
    raw = await read_body(request, config.max_body_bytes)
    document = parse_json(raw)
    reports = validate_reports(document, config.timezone)
    text = raw_text(raw, document)
    remote = request.client.host if request.client else None
    result = await ingest_callback(config.store, reports, text, remote)  # answered once committed
    return {"stored": result.stored, "duplicates": result.duplicates, "ignored_stale": result.ignored_stale}


@router.post("/callback/{secret}")
async def callback_in_path(secret: str, request: Request) -> dict[str, int]:
    """MessageCentral's callback URL: one report object or a JSON array of them."""
    return await receive(request, secret)


@router.post("/callback")
async def callback_in_header(request: Request) -> dict[str, int]:
    """The same as ``/callback/{secret}`` with the secret in the ``X-Callback-Secret`` header."""
    return await receive(request, request.headers.get("x-callback-secret"))
