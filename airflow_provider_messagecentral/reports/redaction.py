"""
Keep the callback secret out of logs: MessageCentral sends no auth header, so the secret is a path segment
(``/callback/<secret>``) that access logs would print. Redacted to ``/callback/***`` in log records and, once a
request is answered, in the ASGI scope that access-log middleware reads.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

from starlette.types import ASGIApp, Receive, Scope, Send

_CALLBACK_PATH = re.compile(r"(/callback/)[^/?\s\"]+")


def redact_callback_path(text: str) -> str:
    """``POST /callback/s3cret?x=1`` -> ``POST /callback/***?x=1``."""
    return _CALLBACK_PATH.sub(r"\1***", text)


class CallbackSecretFilter(logging.Filter):
    """
    Redact ``/callback/<secret>`` in log records (uvicorn's access log prints request paths).

    Example::

        logging.getLogger("uvicorn.access").addFilter(CallbackSecretFilter())
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(
                redact_callback_path(a) if isinstance(a, str) and "/callback/" in a else a for a in record.args
            )
        if isinstance(record.msg, str) and "/callback/" in record.msg:
            record.msg = redact_callback_path(record.msg)
        return True


def install_log_redaction(logger_names: Sequence[str] = ("uvicorn.access", "uvicorn.error", "uvicorn")) -> None:
    """Attach :class:`CallbackSecretFilter` to the loggers (and their handlers) that print request paths."""
    for name in logger_names:
        logger = logging.getLogger(name)
        targets: list[logging.Filterer] = [logger, *logger.handlers]
        for target in targets:
            if not any(isinstance(f, CallbackSecretFilter) for f in target.filters):
                target.addFilter(CallbackSecretFilter())


def _redact_path_segment(path: str) -> str:
    """``/x/callback/s3cret/y`` -> ``/x/callback/***/y``: the whole segment after each ``/callback/``."""
    parts = path.split("/callback/")
    return "/callback/".join(
        [parts[0], *("***" + part[part.find("/") :] if "/" in part else "***" for part in parts[1:])]
    )


def redact_scope_path(scope: Scope) -> None:
    """Replace the secret in an answered request's ``path`` and ``raw_path`` by ``***`` (see below)."""
    if scope.get("type") != "http":
        return
    path = scope.get("path")
    if isinstance(path, str) and "/callback/" in path:
        scope["path"] = _redact_path_segment(path)
    raw = scope.get("raw_path")
    if isinstance(raw, bytes) and b"/callback/" in raw:
        scope["raw_path"] = _redact_path_segment(raw.decode("latin-1")).encode("latin-1")


class RedactCallbackPathMiddleware:
    """
    ASGI middleware: once a request is answered, replace the secret in ``scope["path"]`` by ``***``.

    Access loggers that read the path after the app returned (Airflow api-server's ``http.access``
    middleware does) then log ``/callback/***``. Routing is finished by then, so nothing else changes.

    Example::

        app.add_middleware(RedactCallbackPathMiddleware)
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        finally:
            redact_scope_path(scope)
