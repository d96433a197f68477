"""
Servers for the ingest benchmark, each run as its own process under uvicorn with one worker.

    python benchmarks/servers.py receiver PORT STORE_URL   # our receiver (create_app), secret from the env
    python benchmarks/servers.py bare PORT                 # a bare FastAPI endpoint that stores nothing

Both bind 127.0.0.1 only, use the same uvicorn settings (auto loop/http: uvloop + httptools when installed,
no access log) and answer ``POST /callback/{secret}`` and ``GET /health``.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

# At module level: the endpoint's annotations are strings (``from __future__ import annotations``) that FastAPI
# resolves in this module's globals. Imported inside bare_app, ``request: Request`` was taken for a required
# query parameter and the baseline answered every post 422 without reading its body.
from fastapi import FastAPI, HTTPException, Request

SECRET_ENV = "MESSAGECENTRAL_CALLBACK_SECRET"


def bare_app() -> Any:
    """The baseline: FastAPI reads and parses the body, checks the secret, and stores nothing."""
    secret = os.environ[SECRET_ENV]
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.post("/callback/{provided}")
    async def callback(provided: str, request: Request) -> dict[str, int]:
        if provided != secret:
            raise HTTPException(status_code=401)
        document = json.loads(await request.body())
        items = document if isinstance(document, list) else [document]
        return {"stored": len(items), "duplicates": 0}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main() -> None:
    import uvicorn

    kind, port = sys.argv[1], int(sys.argv[2])
    if kind == "receiver":
        from airflow_provider_messagecentral.reports.app import create_app

        app = create_app(sys.argv[3])
    elif kind == "bare":
        app = bare_app()
    else:
        raise SystemExit(f"unknown server kind {kind!r}: receiver or bare")
    uvicorn.run(app, host="127.0.0.1", port=port, workers=1, access_log=False, log_level="warning")


if __name__ == "__main__":
    main()
