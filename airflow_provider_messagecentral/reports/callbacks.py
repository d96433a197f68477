"""
The callback endpoints MessageCentral POSTs delivery reports to: ``POST /callback/{secret}`` and ``POST
/callback`` (secret in ``X-Callback-Secret``).

One request: the secret and sender checks (503 unconfigured, 403 sender, 401 secret), the body read with its
limit (413), its decoding (UTF-8, or UTF-16/UTF-32 as RFC 8259 §8.1 / RFC 4627 §3 detect them), the JSON parse
and report validation (422, nothing stored, no input echoed), the ``apiKey`` redaction of the raw text kept,
then one ingest into the store.
"""

from __future__ import annotations

import codecs
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


#: Byte-order marks, longest first (the UTF-32LE mark starts with the UTF-16LE one).
_BOMS = (
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
)


def body_encoding(raw: bytes) -> tuple[str, int]:
    """
    The encoding of a JSON body and the length of its byte-order mark: the mark when there is one (RFC 8259
    §8.1 lets a parser ignore it), else the pattern of zero bytes in the first four (RFC 4627 §3: a JSON text
    starts with two ASCII characters): ``00 00 00 xx`` UTF-32BE, ``00 xx 00 xx`` UTF-16BE, ``xx 00 00 00``
    UTF-32LE, ``xx 00 xx 00`` UTF-16LE, else UTF-8.
    """
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            return encoding, len(bom)
    zeros = tuple(byte == 0 for byte in raw[:4])
    if len(zeros) == 4 and zeros[:3] == (True, True, True):
        return "utf-32-be", 0
    if len(zeros) == 4 and zeros[1:] == (True, True, True):
        return "utf-32-le", 0
    if len(zeros) >= 2 and zeros[0] and not zeros[1]:
        return "utf-16-be", 0
    if len(zeros) >= 2 and zeros[1] and not zeros[0]:
        return "utf-16-le", 0
    return "utf-8", 0


def decode_body(raw: bytes) -> str:
    """The body as text (see :func:`body_encoding`); 422 naming the encoding and the first bad byte."""
    encoding, bom = body_encoding(raw)
    try:
        return raw[bom:].decode(encoding)
    except UnicodeDecodeError as err:
        name = encoding.upper().replace("-BE", "BE").replace("-LE", "LE")
        raise HTTPException(status_code=422, detail=f"body is not {name} (byte {err.start + bom})") from err


def _value_error_text(err: ValueError) -> str:
    text = str(err)
    if "integer string conversion" in text:
        return "a number has more digits than can be read (4300 at most)"
    return text.split(";", 1)[0][:120]


def parse_json(text: str) -> Any:
    """The JSON document of a decoded body; 422 saying why it cannot be read."""
    try:
        return json.loads(text)
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


def raw_text(text: str, document: Any) -> str:
    """The decoded body as kept in the raw-report table: with every ``apiKey`` replaced by ``***``."""
    redacted = False
    for doc in document if isinstance(document, list) else [document]:
        if isinstance(doc, dict) and doc.get("apiKey") not in (None, ""):
            doc["apiKey"] = "***"
            redacted = True
    return json.dumps(document, ensure_ascii=False) if redacted else text


async def receive(request: Request, provided: str | None) -> dict[str, int]:
    """Check, read, validate and store one callback; ``{"stored", "duplicates", "ignored_stale"}``."""
    config = receiver_config(request)
    if not config.configured:
        raise HTTPException(status_code=503, detail="receiver not configured: no callback secret is set")
    config.check_sender(request)
    if not config.secret_ok(provided):
        raise HTTPException(status_code=401, detail="wrong or missing callback secret")
    text = decode_body(await read_body(request, config.max_body_bytes))
    document = parse_json(text)
    reports = validate_reports(document, config.timezone)
    kept = raw_text(text, document)
    remote = request.client.host if request.client else None
    result = await ingest_callback(config.store, reports, kept, remote)  # answered once committed
    return {"stored": result.stored, "duplicates": result.duplicates, "ignored_stale": result.ignored_stale}


@router.post("/callback/{secret}")
async def callback_in_path(secret: str, request: Request) -> dict[str, int]:
    """MessageCentral's callback URL: one report object or a JSON array of them."""
    return await receive(request, secret)


@router.post("/callback")
async def callback_in_header(request: Request) -> dict[str, int]:
    """The same as ``/callback/{secret}`` with the secret in the ``X-Callback-Secret`` header."""
    return await receive(request, request.headers.get("x-callback-secret"))
