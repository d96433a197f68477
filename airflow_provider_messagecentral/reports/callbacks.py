"""
The callback endpoints MessageCentral POSTs delivery reports to: ``POST /callback/{secret}`` and ``POST
/callback`` (secret in ``X-Callback-Secret``).

One request: the secret and sender checks (503 unconfigured, 403 sender, 401 secret), the body read with its
limit (400 bad ``Content-Length``, 413), its decoding (UTF-8, or UTF-16/UTF-32 as RFC 8259 §8.1 / RFC 4627 §3
detect them), the JSON parse and report validation (422, nothing stored, no input echoed), the ``apiKey``
redaction of the raw text kept, then one ingest into the store (503 when the store fails), answered once
committed.

The callback is the receiver's hot path (thousands a second), so it is served at the ASGI level
(:class:`CallbackEndpoint`) rather than as a FastAPI route: no dependency injection, response-model
validation or exception-middleware round per request, and a prebuilt answer. :class:`CallbackFastPath` hands
callback POSTs to it before FastAPI's routing; :func:`callback_routes` declares the same paths to the router,
so other methods get 405 and a trailing slash its redirect, as before. Every error answer is FastAPI's
(``{"detail": ...}``, same status codes).
"""

from __future__ import annotations

import codecs
import json
import logging
from typing import Any

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import ClientDisconnect
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from airflow_provider_messagecentral.reports.models import DeliveryReport, IngestResult
from airflow_provider_messagecentral.reports.receiver_config import ReceiverConfig, StoreNotConfigured
from airflow_provider_messagecentral.reports.redaction import redact_scope_path
from airflow_provider_messagecentral.reports.store.group_commit import ingest_callback

log = logging.getLogger(__name__)

MAX_ERRORS = 20
#: The path of the callback with its secret in the ``X-Callback-Secret`` header; ``/callback/{secret}``: in the path.
CALLBACK_PATH = "/callback"
_PATH_WITH_SECRET = CALLBACK_PATH + "/"


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of header ``name`` (lower case, as ASGI servers pass them), or ``None``."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The request body; 413 as soon as it (or its ``Content-Length``) is over ``limit`` bytes."""
    length = header(scope, b"content-length")
    if length is not None:
        if not length.strip().isdigit():
            raise HTTPException(status_code=400, detail="invalid Content-Length header")
        if int(length) > limit:
            raise HTTPException(status_code=413, detail=f"body larger than {limit} bytes")
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.request":
            body += message.get("body", b"")
            if len(body) > limit:
                raise HTTPException(status_code=413, detail=f"body larger than {limit} bytes")
            if not message.get("more_body", False):
                return body
        elif message["type"] == "http.disconnect":
            raise ClientDisconnect()


#: Byte-order marks, longest first (the UTF-32LE mark starts with the UTF-16LE one).
_BOMS = (
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
)


#: First bytes of a body that starts with neither a byte-order mark nor a zero byte (every ASCII byte but NUL).
_PLAIN_FIRST_BYTES = frozenset(bytes([b]) for b in range(1, 128))


def body_encoding(raw: bytes) -> tuple[str, int]:
    """
    The encoding of a JSON body and the length of its byte-order mark: the mark when there is one (RFC 8259
    §8.1 lets a parser ignore it), else the pattern of zero bytes in the first four (RFC 4627 §3: a JSON text
    starts with two ASCII characters): ``00 00 00 xx`` UTF-32BE, ``00 xx 00 xx`` UTF-16BE, ``xx 00 00 00``
    UTF-32LE, ``xx 00 xx 00`` UTF-16LE, else UTF-8.
    """
    if raw[:1] in _PLAIN_FIRST_BYTES and raw[1:2] != b"\x00":
        return "utf-8", 0  # the common case: no mark (none starts with an ASCII byte), no zero byte
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


def store_unavailable(exc: Exception) -> JSONResponse:
    """The answer when the report store fails (503; the error's kind is logged, never its text)."""
    log.error("Report store error: %s", type(exc).__name__)
    return JSONResponse(status_code=503, content={"detail": "report store unavailable"})


def store_not_configured(exc: Exception) -> JSONResponse:
    """The answer when the receiver cannot tell which report store to use (503 saying why)."""
    return JSONResponse(status_code=503, content={"detail": f"report store not configured: {exc}"})


def route_path(scope: Scope) -> str:
    """The path the app routes on: without the ``root_path`` of a mount (Starlette's rule)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and len(path) > len(root) and path[len(root)] == "/":
        return path[len(root) :]
    return path


def is_callback_path(path: str) -> bool:
    """Whether a routed path is ``/callback`` or ``/callback/{secret}`` (one non-empty segment)."""
    if path == CALLBACK_PATH:
        return True
    return path.startswith(_PATH_WITH_SECRET) and len(path) > len(_PATH_WITH_SECRET) and "/" not in path[10:]


def _answer_200(result: IngestResult) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``http.response.start`` and body messages of a stored callback (FastAPI's JSON, prebuilt)."""
    body = b'{"stored":%d,"duplicates":%d,"ignored_stale":%d}' % (
        result.stored,
        result.duplicates,
        result.ignored_stale,
    )
    headers = [(b"content-length", b"%d" % len(body)), (b"content-type", b"application/json")]
    return {"type": "http.response.start", "status": 200, "headers": headers}, {
        "type": "http.response.body",
        "body": body,
    }


class CallbackEndpoint:
    """
    The ASGI app of ``POST /callback/{secret}`` and ``POST /callback``: one report object or a JSON array of
    them; answers ``{"stored", "duplicates", "ignored_stale"}`` once the transaction holding them committed.

    :param config: the receiver's settings (secret, limits, store).

    Example::

        endpoint = CallbackEndpoint(ReceiverConfig.create("sqlite:////data/r.db", secret="a-long-random-secret"))
        app.router.routes.extend(callback_routes(endpoint))
    """

    def __init__(self, config: ReceiverConfig) -> None:
        self.config = config

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            result = await self.ingest(scope, receive)
        except HTTPException as exc:
            response = JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
        except SQLAlchemyError as exc:
            response = store_unavailable(exc)
        except StoreNotConfigured as exc:
            response = store_not_configured(exc)
        else:
            start, body = _answer_200(result)
            await send(start)
            await send(body)
            return
        await response(scope, receive, send)

    async def ingest(self, scope: Scope, receive: Receive) -> IngestResult:
        """Check, read, validate and store one callback (``HTTPException`` for every refusal)."""
        config = self.config
        if not config.configured:
            raise HTTPException(status_code=503, detail="receiver not configured: no callback secret is set")
        if config.networks:
            config.check_sender(Request(scope))
        path = route_path(scope)
        provided = path[len(_PATH_WITH_SECRET) :] if path != CALLBACK_PATH else header(scope, b"x-callback-secret")
        if not config.secret_ok(provided):
            raise HTTPException(status_code=401, detail="wrong or missing callback secret")
        text = decode_body(await read_body(scope, receive, config.max_body_bytes))
        document = parse_json(text)
        reports = validate_reports(document, config.timezone)
        kept = raw_text(text, document)
        client = scope.get("client")
        return await ingest_callback(config.store, reports, kept, client[0] if client else None)


def callback_routes(endpoint: CallbackEndpoint) -> list[Route]:
    """The callback paths as router routes (POST only): what :class:`CallbackFastPath` does not take first."""
    return [
        Route(f"{_PATH_WITH_SECRET}{{secret}}", endpoint, methods=["POST"], include_in_schema=False),
        Route(CALLBACK_PATH, endpoint, methods=["POST"], include_in_schema=False),
    ]


class CallbackFastPath:
    """
    ASGI middleware: hands callback POSTs to :class:`CallbackEndpoint` before FastAPI routes them (the rest
    goes on down the app), then redacts the secret in the request's path (see
    :func:`~airflow_provider_messagecentral.reports.redaction.redact_scope_path`).

    Example::

        app.add_middleware(CallbackFastPath, endpoint=CallbackEndpoint(config))
    """

    def __init__(self, app: ASGIApp, endpoint: CallbackEndpoint) -> None:
        self.app = app
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not is_callback_path(route_path(scope)):
            await self.app(scope, receive, send)
            return
        try:
            await self.endpoint(scope, receive, send)
        finally:
            redact_scope_path(scope)
