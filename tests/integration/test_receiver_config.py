"""
One configuration: a standalone receiver (``reports serve``) started with only the ``messagecentral``
connection stores where the operators and the sensor read — the connection's store — whether the connection
lives in an environment variable or in Airflow's metadata database. Without the connection: the default SQLite
store, said loudly. ``/health`` names the store and where it came from.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import airflow_cli
from receiver_process import Serve

from airflow_provider_messagecentral.hooks.messagecentral import MessageCentralHook
from airflow_provider_messagecentral.reports.store import get_store

pytestmark = pytest.mark.integration


def report(message_id: str) -> dict[str, Any]:
    return {"messageId": message_id, "status": "DELIVRD", "errorCode": 0, "mobile": "919999999999"}


def connection(reports_url: str) -> dict[str, Any]:
    return {
        "conn_type": "messagecentral",
        "host": "http://messagecentral.invalid",
        "login": "C-1",
        "password": "conn-Passw0rd",
        "extra": {"email": "a@b.c", "reports_url": reports_url},
    }


def test_serve_with_only_the_connection_stores_where_the_sensor_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'connection-store.db'}"
    conn = json.dumps(connection(url))
    serve = Serve(tmp_path, [], {"AIRFLOW_CONN_MESSAGECENTRAL_DEFAULT": conn})
    try:
        assert serve.post(report("cfg-env-1")).status_code == 200
        health = serve.health()
    finally:
        serve.stop()
    assert (health["store"], health["store_from"]) == (url, "connection messagecentral_default")
    # What the sensor and the operators read: the same connection, the same store.
    monkeypatch.setenv("AIRFLOW_CONN_MESSAGECENTRAL_DEFAULT", conn)
    assert MessageCentralHook().settings.store_url == url
    assert get_store(url).get_report("cfg-env-1") is not None
    assert f"stores reports in {url} (from connection messagecentral_default)" in serve.output()
    assert "conn-Passw0rd" not in serve.output()


def test_serve_reads_a_connection_kept_in_the_metadata_database(airflow_db: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'metastore-store.db'}"
    conn = connection(url)
    added = airflow_cli(
        "connections", "add", "mc_in_metastore", "--conn-json", json.dumps({**conn, "extra": json.dumps(conn["extra"])})
    )
    assert added.returncode == 0, added.stderr[-2000:]
    serve = Serve(tmp_path, ["--conn-id", "mc_in_metastore"], {})
    try:
        assert serve.post(report("cfg-db-1")).status_code == 200
        health = serve.health()
    finally:
        serve.stop()
    assert (health["store"], health["store_from"]) == (url, "connection mc_in_metastore")
    assert get_store(url).get_report("cfg-db-1") is not None


def test_serve_without_the_connection_uses_the_default_store_and_says_why(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    serve = Serve(tmp_path, [], {"AIRFLOW_HOME": str(home), "MESSAGECENTRAL_CONN_ID": "mc_not_defined"})
    try:
        assert serve.post(report("cfg-default-1")).status_code == 200
        health = serve.health()
    finally:
        serve.stop()
    default = f"sqlite:///{home.resolve() / 'messagecentral_reports.db'}"
    assert (health["store"], health["store_from"]) == (default, "default")
    assert get_store(default).get_report("cfg-default-1") is not None
    output = serve.output()
    assert "warning" in output.lower() and "connection 'mc_not_defined' is not defined" in output


def test_an_override_that_differs_from_the_connection_is_a_warning(tmp_path: Path) -> None:
    conn_url, env_url = f"sqlite:///{tmp_path / 'conn.db'}", f"sqlite:///{tmp_path / 'env.db'}"
    env = {
        "AIRFLOW_CONN_MESSAGECENTRAL_DEFAULT": json.dumps(connection(conn_url)),
        "MESSAGECENTRAL_REPORTS_URL": env_url,
    }
    serve = Serve(tmp_path, [], env)
    try:
        health = serve.health()
    finally:
        serve.stop()
    assert (health["store"], health["store_from"]) == (env_url, "MESSAGECENTRAL_REPORTS_URL")
    assert f"OVERRIDES the store connection 'messagecentral_default' names ({conn_url})" in serve.output()
    serve = Serve(
        tmp_path,
        ["--store-url", env_url],
        {"AIRFLOW_CONN_MESSAGECENTRAL_DEFAULT": env["AIRFLOW_CONN_MESSAGECENTRAL_DEFAULT"]},
    )
    try:
        assert serve.health()["store_from"] == "--store-url"
    finally:
        serve.stop()
