"""The standalone receiver (``python -m airflow_provider_messagecentral.reports serve``) as a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
from helpers import free_port, wait_until

SECRET = "standalone-callback-secret-0123456789"


class Serve:
    """``python -m airflow_provider_messagecentral.reports serve --workers N`` as a subprocess."""

    def __init__(self, workdir: Path, args: list[str], env: dict[str, str], healthy_status: int = 200) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / f"serve-{self.port}.log"
        command = [sys.executable, "-m", "airflow_provider_messagecentral.reports", "serve", "--port", str(self.port)]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [*command, *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "MESSAGECENTRAL_CALLBACK_SECRET": SECRET, **env},
                start_new_session=True,
            )

        def healthy() -> bool:
            assert self.proc.poll() is None, self.output()
            try:
                return httpx.get(f"{self.url}/health", timeout=2).status_code == healthy_status
            except httpx.HTTPError:
                return False

        assert wait_until(healthy, timeout=120, interval=0.2), self.output()

    def health(self) -> dict[str, object]:
        body: dict[str, object] = httpx.get(f"{self.url}/health", timeout=5).json()
        return body

    def post(self, body: object) -> httpx.Response:
        return httpx.post(f"{self.url}/callback/{SECRET}", json=body, timeout=10)

    def output(self) -> str:
        return self.log.read_text("utf-8", "replace")

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
