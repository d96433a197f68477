"""The plugin as Airflow sees it: listed by ``airflow plugins`` and mounted by a real ``airflow api-server``."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from helpers import VENV_BIN, airflow_cli, free_port, wait_until

from airflow_provider_messagecentral.reports.store import get_store

pytestmark = pytest.mark.integration

SECRET = "plugin-callback-secret-0123456789"
REPORT = {"messageId": "plugin-1", "status": "DELIVRD", "errorCode": 0, "mobile": "919999999999"}


def test_airflow_plugins_lists_the_receiver(airflow_home: Path) -> None:
    result = airflow_cli("plugins", "-o", "json")
    assert result.returncode == 0, result.stderr[-2000:]
    plugins = {p["name"]: p for p in json.loads(result.stdout[result.stdout.index("[") :])}
    apps = plugins["messagecentral"]["fastapi_apps"]
    assert apps == [
        {
            "app": "fastapi.applications.FastAPI",
            "url_prefix": "/messagecentral",
            "name": "MessageCentral delivery reports",
        }
    ]


def test_without_a_secret_callbacks_answer_503(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from airflow_provider_messagecentral.plugins.messagecentral import build_app

    monkeypatch.delenv("MESSAGECENTRAL_CALLBACK_SECRET", raising=False)
    monkeypatch.setenv("MESSAGECENTRAL_REPORTS_URL", f"sqlite:///{tmp_path / 'r.db'}")

    async def call() -> tuple[httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=build_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.post("/callback/anything", json=REPORT), await client.get("/health")

    callback, health = asyncio.run(call())
    assert callback.status_code == 503 and "not configured" in callback.text
    assert health.status_code == 200


@pytest.fixture(scope="module")
def api_server(airflow_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    work = tmp_path_factory.mktemp("api-server")
    store_url = f"sqlite:///{work / 'reports.db'}"
    port = free_port()
    log_path = work / "api-server.log"
    env = {
        **os.environ,
        "MESSAGECENTRAL_CALLBACK_SECRET": SECRET,
        "MESSAGECENTRAL_REPORTS_URL": store_url,
        "AIRFLOW__API__WORKERS": "1",
    }
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(VENV_BIN / "airflow"), "api-server", "--port", str(port), "--host", "127.0.0.1"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{base}/api/v2/version", timeout=2).status_code == 200
        except httpx.HTTPError:
            return proc.poll() is not None  # stop waiting if it died

    try:
        assert wait_until(up, timeout=120, interval=0.5) and proc.poll() is None, log_path.read_text()[-3000:]
        yield {"url": base, "store_url": store_url, "log": str(log_path), "home": str(airflow_db)}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def test_api_server_mounts_the_receiver(api_server: dict[str, str]) -> None:
    base = api_server["url"]
    response = httpx.post(f"{base}/messagecentral/callback/{SECRET}", json=REPORT, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["stored"] == 1
    assert httpx.post(f"{base}/messagecentral/callback/wrong", json=REPORT, timeout=10).status_code == 401
    report = get_store(api_server["store_url"]).get_report("plugin-1")
    assert report is not None and report["status"] == "DELIVRD"

    # read endpoints: Airflow's own auth, not the callback secret
    assert httpx.get(f"{base}/messagecentral/reports/plugin-1", timeout=10).status_code == 401
    bearer_secret = {"Authorization": f"Bearer {SECRET}"}
    assert httpx.get(f"{base}/messagecentral/reports/plugin-1", headers=bearer_secret, timeout=10).status_code in (
        401,
        403,
    )
    passwords = json.loads((Path(api_server["home"]) / "simple_auth_manager_passwords.json.generated").read_text())
    user, password = next(iter(passwords.items()))
    token = httpx.post(f"{base}/auth/token", json={"username": user, "password": password}, timeout=10)
    assert token.status_code in (200, 201), token.text
    auth = {"Authorization": f"Bearer {token.json()['access_token']}"}
    got = httpx.get(f"{base}/messagecentral/reports/plugin-1", headers=auth, timeout=10)
    assert got.status_code == 200 and got.json()["status"] == "DELIVRD"

    # the secret never reaches the api-server's access log
    log_text = Path(api_server["log"]).read_text()
    assert "/messagecentral/callback/***" in log_text
    assert SECRET not in log_text
