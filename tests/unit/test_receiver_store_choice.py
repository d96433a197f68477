"""Where the receiver stores reports: the messagecentral connection (one source of truth), with the overrides."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from airflow_provider_messagecentral.client.store_url import (
    CONN_ID_ENV,
    STORE_URL_ENV,
    choose_receiver_store,
    receiver_conn_id,
)
from airflow_provider_messagecentral.reports.__main__ import main as reports_cli
from airflow_provider_messagecentral.reports.app import create_app
from airflow_provider_messagecentral.reports.store import get_store

SECRET = "unit-callback-secret-0123456789"
REPORT = {"messageId": "conn-1", "status": "DELIVRD", "errorCode": 0, "mobile": "919999999999"}


def set_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, **extra: Any) -> None:
    conn = {"conn_type": "messagecentral", "host": "http://messagecentral.invalid", "login": "C-1", "password": "pw"}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({**conn, "extra": {"email": "a@b.c", **extra}}))


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "home"))
    for name in (STORE_URL_ENV, CONN_ID_ENV, "AIRFLOW_CONN_MESSAGECENTRAL_DEFAULT", "AIRFLOW__MESSAGECENTRAL__CONN_ID"):
        monkeypatch.delenv(name, raising=False)


def test_the_connection_names_the_store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'conn.db'}"
    set_connection(monkeypatch, "messagecentral_default", reports_url=url)
    choice = choose_receiver_store()
    assert (choice.url, choice.source, choice.warn) == (url, "connection messagecentral_default", False)


def test_conn_id_from_argument_then_env_then_airflow_config_then_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert receiver_conn_id() == "messagecentral_default"
    monkeypatch.setenv("AIRFLOW__MESSAGECENTRAL__CONN_ID", "from_config")
    assert receiver_conn_id() == "from_config"
    monkeypatch.setenv(CONN_ID_ENV, "from_env")
    assert receiver_conn_id() == "from_env"
    assert receiver_conn_id("from_cli") == "from_cli"


def test_another_connection_by_env_var(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    set_connection(monkeypatch, "messagecentral_default", reports_url=f"sqlite:///{tmp_path / 'default.db'}")
    set_connection(monkeypatch, "mc_prod", reports_url=f"sqlite:///{tmp_path / 'prod.db'}")
    monkeypatch.setenv(CONN_ID_ENV, "mc_prod")
    choice = choose_receiver_store()
    assert (choice.url, choice.source) == (f"sqlite:///{tmp_path / 'prod.db'}", "connection mc_prod")


def test_reports_conn_id_names_a_database_connection(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    db = tmp_path / "via-conn.db"
    monkeypatch.setenv("AIRFLOW_CONN_MC_REPORTS_DB", json.dumps({"conn_type": "sqlite", "host": str(db)}))
    set_connection(monkeypatch, "messagecentral_default", reports_conn_id="mc_reports_db")
    assert choose_receiver_store().url == f"sqlite:///{db}"
    set_connection(monkeypatch, "messagecentral_default", reports_conn_id="mc_missing_db")
    with pytest.raises(ValueError, match="reports_conn_id 'mc_missing_db', which is not defined"):
        choose_receiver_store()


def test_a_connection_without_reports_url_names_the_default_store(monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(monkeypatch, "messagecentral_default")
    choice = choose_receiver_store()
    assert choice.source == "connection messagecentral_default"
    assert choice.url.endswith("/home/messagecentral_reports.db")


def test_without_the_connection_the_default_sqlite_store_with_a_warning(tmp_path: Path) -> None:
    choice = choose_receiver_store(conn_id="mc_nowhere")
    assert choice.url == f"sqlite:///{(tmp_path / 'home').resolve() / 'messagecentral_reports.db'}"
    assert choice.source == "default" and choice.warn
    assert "connection 'mc_nowhere' is not defined" in choice.reason


def test_overrides_win_and_say_when_they_differ_from_the_connection(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    conn_url = "postgresql+psycopg://u:conn-Passw0rd@db/reports"
    set_connection(monkeypatch, "messagecentral_default", reports_url=conn_url)
    monkeypatch.setenv(STORE_URL_ENV, f"sqlite:///{tmp_path / 'env.db'}")
    choice = choose_receiver_store()
    assert (choice.url, choice.source, choice.warn) == (f"sqlite:///{tmp_path / 'env.db'}", STORE_URL_ENV, True)
    assert "OVERRIDES" in choice.reason and "u:***@db/reports" in choice.reason
    assert "conn-Passw0rd" not in choice.reason
    monkeypatch.setenv(STORE_URL_ENV, conn_url)
    same = choose_receiver_store()
    assert (same.source, same.warn) == (STORE_URL_ENV, False)
    assert "names the same store" in same.reason
    assert same.masked == "postgresql+psycopg://u:***@db/reports"
    explicit = choose_receiver_store(f"sqlite:///{tmp_path / 'cli.db'}")  # deliberate: taken as it is
    assert (explicit.source, explicit.warn, explicit.reason) == ("--store-url", False, "set by --store-url")


def test_a_connection_with_bad_extras_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(monkeypatch, "messagecentral_default", flow_type="PIGEON")
    with pytest.raises(ValueError, match="connection 'messagecentral_default': connection extra 'flow_type'"):
        choose_receiver_store()


# -- the app and /health ---------------------------------------------------------------------------------


def test_health_names_the_store_and_where_it_came_from(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'conn.db'}"
    set_connection(monkeypatch, "messagecentral_default", reports_url=url)
    with TestClient(create_app(secret=SECRET)) as client:
        assert client.post(f"/callback/{SECRET}", json=REPORT).json()["stored"] == 1
        health = client.get("/health").json()
    assert health == {
        "status": "ok",
        "configured": True,
        "store": url,
        "store_from": "connection messagecentral_default",
    }
    assert get_store(url).get_report("conn-1") is not None

    monkeypatch.setenv(STORE_URL_ENV, f"sqlite:///{tmp_path / 'env.db'}")
    with TestClient(create_app(secret=SECRET)) as client:
        assert client.get("/health").json()["store_from"] == STORE_URL_ENV
    with TestClient(create_app(f"sqlite:///{tmp_path / 'arg.db'}", secret=SECRET)) as client:
        assert client.get("/health").json()["store_from"] == "store_url argument"
    monkeypatch.delenv(STORE_URL_ENV)
    with TestClient(create_app(secret=SECRET, conn_id="mc_nowhere")) as client:
        assert client.get("/health").json()["store_from"] == "default"


def test_health_masks_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "postgresql+psycopg://reporter:pg-Passw0rd@127.0.0.1:9/reports?connect_timeout=1"
    set_connection(monkeypatch, "messagecentral_default", reports_url=url)
    with TestClient(create_app(secret=SECRET)) as client:
        response = client.get("/health")
    assert response.status_code == 503  # nothing listens on port 9
    assert response.json()["store"] == "postgresql+psycopg://reporter:***@127.0.0.1:9/reports?connect_timeout=1"
    assert "pg-Passw0rd" not in response.text


def test_an_unreadable_connection_answers_503_saying_why(monkeypatch: pytest.MonkeyPatch) -> None:
    """Writing to a store the connection does not name would be worse: 503 (MessageCentral retries)."""
    set_connection(monkeypatch, "messagecentral_default", flow_type="PIGEON")
    with TestClient(create_app(secret=SECRET)) as client:
        callback = client.post(f"/callback/{SECRET}", json=REPORT)
        health = client.get("/health")
    assert callback.status_code == 503 and "report store not configured" in callback.json()["detail"]
    assert health.status_code == 503 and "flow_type" in health.json()["detail"]
    assert health.json()["store"] is None


def test_the_store_choice_is_logged_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="airflow_provider_messagecentral")
    with TestClient(create_app(secret=SECRET, conn_id="mc_nowhere")) as client:
        client.get("/health")
        client.post(f"/callback/{SECRET}", json=REPORT)
    lines = [r for r in caplog.records if "MessageCentral receiver stores reports in" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.WARNING
    assert "(from default)" in lines[0].getMessage() and "'mc_nowhere' is not defined" in lines[0].getMessage()


# -- the CLI ---------------------------------------------------------------------------------------------


def test_cli_summary_and_suppression_read_the_connections_store(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    set_connection(monkeypatch, "mc_cli", reports_url=url)
    assert reports_cli(["suppression", "add", "+919812345678", "--conn-id", "mc_cli"]) == 0
    assert json.loads(capsys.readouterr().out) == {"added": 1, "given": 1}
    assert get_store(url).list_suppressed()["total"] == 1
    assert reports_cli(["summary", "mc-unknown", "--conn-id", "mc_cli"]) == 1
    assert str(tmp_path / "cli.db") in capsys.readouterr().err
    set_connection(monkeypatch, "mc_bad", flow_type="PIGEON")
    assert reports_cli(["summary", "mc-unknown", "--conn-id", "mc_bad"]) == 2
    assert "connection 'mc_bad'" in capsys.readouterr().err
