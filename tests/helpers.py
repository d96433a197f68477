"""Helpers shared by the tests (import as ``from helpers import ...``; tests/ is on sys.path)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
ARTIFACTS = REPO / "tests" / "artifacts"

SANDBOX_CUSTOMER = "C-SANDBOX0000001"
SANDBOX_PASSWORD = "sandbox"
SANDBOX_EMAIL = "sandbox@example.com"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def airflow_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    """Run the real ``airflow`` CLI of this virtualenv with the test AIRFLOW_HOME."""
    return subprocess.run(
        [str(VENV_BIN / "airflow"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


def sandbox_connection(url: str, **extra: Any) -> dict[str, Any]:
    """Connection JSON (as for ``AIRFLOW_CONN_<ID>``) pointing at a sandbox."""
    return {
        "conn_type": "messagecentral",
        "host": url,
        "login": SANDBOX_CUSTOMER,
        "password": SANDBOX_PASSWORD,
        "extra": {"email": SANDBOX_EMAIL, "country": "91", "sender_id": "UTOMOB", "max_retry_wait": 2, **extra},
    }


def wait_until(predicate: Any, timeout: float = 30.0, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until true or ``timeout`` seconds pass; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return bool(value)
        time.sleep(interval)
