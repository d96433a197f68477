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


def test_the_plugin_takes_its_store_from_the_connection(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from airflow_provider_messagecentral.plugins.messagecentral import build_app

    url = f"sqlite:///{tmp_path / 'from-conn.db'}"
    conn = {"conn_type": "messagecentral", "host": "http://messagecentral.invalid", "extra": {"reports_url": url}}
    monkeypatch.setenv("AIRFLOW_CONN_MC_PLUGIN_ENV", json.dumps(conn))
    monkeypatch.setenv("MESSAGECENTRAL_CONN_ID", "mc_plugin_env")
    monkeypatch.setenv("MESSAGECENTRAL_CALLBACK_SECRET", SECRET)
    monkeypatch.delenv("MESSAGECENTRAL_REPORTS_URL", raising=False)

    async def call() -> tuple[httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=build_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.post(f"/callback/{SECRET}", json=REPORT), await client.get("/health")

    callback, health = asyncio.run(call())
    assert callback.status_code == 200
    assert (health.json()["store"], health.json()["store_from"]) == (url, "connection mc_plugin_env")
    assert get_store(url).get_report("plugin-1") is not None


@pytest.fixture(scope="module")
def api_server(airflow_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """
    ``airflow api-server --workers 2`` with the plugin; the store named by a ``messagecentral`` connection kept
    in the metadata database (``$MESSAGECENTRAL_CONN_ID``), as the operators and the sensor would read it.
    """
    work = tmp_path_factory.mktemp("api-server")
    store_url = f"sqlite:///{work / 'reports.db'}"
    extra = json.dumps({"reports_url": store_url})
    conn = {"conn_type": "messagecentral", "host": "http://messagecentral.invalid", "extra": extra}
    added = airflow_cli("connections", "add", "mc_plugin_metastore", "--conn-json", json.dumps(conn))
    assert added.returncode == 0, added.stderr[-2000:]
    port = free_port()
    log_path = work / "api-server.log"
    env = {
        **os.environ,
        "MESSAGECENTRAL_CALLBACK_SECRET": SECRET,
        "MESSAGECENTRAL_CONN_ID": "mc_plugin_metastore",
        "AIRFLOW__API__WORKERS": "2",
    }
    env.pop("MESSAGECENTRAL_REPORTS_URL", None)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(VENV_BIN / "airflow"), "api-server", "--port", str(port), "--host", "127.0.0.1", "--workers", "2"],
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


def test_api_server_health_names_the_connections_store(api_server: dict[str, str]) -> None:
    health = httpx.get(f"{api_server['url']}/messagecentral/health", timeout=10).json()
    assert health["status"] == "ok"
    assert (health["store"], health["store_from"]) == (api_server["store_url"], "connection mc_plugin_metastore")


def _access_lines(log_text: str, path_part: str) -> list[str]:
    return [line for line in log_text.splitlines() if "request finished" in line and path_part in line]


def test_successful_callbacks_do_not_flood_the_access_log(api_server: dict[str, str]) -> None:
    """
    Airflow's ``http.access`` logger wrote one INFO line per callback (83k lines for 82k callbacks); now only
    callbacks answered with an error are logged, and every other request as before. Two workers: the filter
    is installed in each.
    """
    base = api_server["url"]
    before = Path(api_server["log"]).read_text()
    with httpx.Client(base_url=base, timeout=10, headers={"connection": "close"}) as client:
        for n in range(40):
            doc = {**REPORT, "messageId": f"quiet-{n}"}
            assert client.post(f"/messagecentral/callback/{SECRET}", json=doc).status_code == 200
        assert (
            client.post("/messagecentral/callback", json=REPORT, headers={"X-Callback-Secret": SECRET}).status_code
            == 200
        )
        assert client.post("/messagecentral/callback/wrong-secret", json=REPORT).status_code == 401
        assert client.post(f"/messagecentral/callback/{SECRET}", content=b"{").status_code == 422
        assert client.get("/api/v2/version").status_code == 200
    assert wait_until(
        lambda: (
            len(Path(api_server["log"]).read_text()) > len(before)
            and "/api/v2/version" in Path(api_server["log"]).read_text()[len(before) :]
        ),
        timeout=10,
    )
    new = Path(api_server["log"]).read_text()[len(before) :]
    callbacks = _access_lines(new, "/messagecentral/callback")
    assert len(callbacks) == 2, callbacks  # the 401 and the 422
    assert all("401" in line or "422" in line for line in callbacks)
    assert _access_lines(new, "/api/v2/version")
    assert SECRET not in new
    assert get_store(api_server["store_url"]).get_report("quiet-39") is not None
