"""Helpers shared by the tests (import as ``from helpers import ...``; tests/ is on sys.path)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_messagecentral.reports.models import DeliveryReport

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


#: The delivery report exactly as MessageCentral documents it (copy it before changing it).
DOCUMENTED_REPORT: dict[str, Any] = {
    "apiKey": None,
    "clientId": None,
    "messageId": "a2e87214-d18c-4a2e-b7f4-802c4465a9b9",
    "status": "DELIVRD",
    "errorCode": 0,
    "countryCode": None,
    "mobile": "919999999999",
    "submitDate": "2023-11-02 13:59:18",
    "doneDate": "2023-11-02 13:59:22",
}

#: The moment report_time(0) stands for.
REPORT_T0 = datetime(2023, 11, 2, 13, 59, 0)


def report(message_id: str, status: str, mobile: str | None = "919816111111", **fields: Any) -> DeliveryReport:
    """A validated DeliveryReport with the given id, status and mobile (other fields as keywords)."""
    from airflow_provider_messagecentral.reports.models import DeliveryReport

    payload: dict[str, Any] = {"messageId": message_id, "status": status, "mobile": mobile, "errorCode": 0}
    payload.update(fields)
    return DeliveryReport.model_validate(payload)


def report_time(minutes: float) -> str:
    """A report date ``minutes`` after REPORT_T0, in MessageCentral's format (no zone)."""
    return (REPORT_T0 + timedelta(minutes=minutes)).strftime("%Y-%m-%d %H:%M:%S")
