"""The receiver under uvicorn on a free port: callbacks, duplicates, order, malformed, oversized, auth."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import DOCUMENTED_REPORT

from airflow_provider_messagecentral.campaign.keys import make_campaign_key
from airflow_provider_messagecentral.reports.app import create_app
from airflow_provider_messagecentral.reports.redaction import CallbackSecretFilter
from airflow_provider_messagecentral.reports.server import ReceiverServer
from airflow_provider_messagecentral.reports.store import ReportStore, get_store

pytestmark = pytest.mark.integration

SECRET = "test-callback-secret-0123456789"
DOC = DOCUMENTED_REPORT


def _module_pg_database(pg_server: dict[str, Any]) -> str:
    """A fresh database on the session's PostgreSQL (``pg_url`` is per test; this server lives per module)."""
    import psycopg

    name = f"recv_{uuid.uuid4().hex[:12]}"
    dsn = f"host={pg_server['host']} port={pg_server['port']} user=postgres dbname=postgres"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql+psycopg://postgres@{pg_server['host']}:{pg_server['port']}/{name}"


@pytest.fixture(
    scope="module",
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReceiverServer]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('receiver') / 'reports.db'}"
    else:
        url = _module_pg_database(request.getfixturevalue("pg_server"))
    with ReceiverServer(url, SECRET, max_body_bytes=4096) as srv:
        srv.store_url = url  # type: ignore[attr-defined]
        yield srv


@pytest.fixture
def store(server: ReceiverServer) -> ReportStore:
    return get_store(server.store_url)  # type: ignore[attr-defined]


@pytest.fixture
def client(server: ReceiverServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as c:
        yield c


def post(client: httpx.Client, body: Any, secret: str = SECRET) -> httpx.Response:
    return client.post(f"/callback/{secret}", content=json.dumps(body), headers={"content-type": "application/json"})


def doc(message_id: str, status: str = "DELIVRD", **fields: Any) -> dict[str, Any]:
    return {**DOC, "messageId": message_id, "status": status, **fields}


def test_documented_callback_is_stored_and_readable(client: httpx.Client, store: ReportStore) -> None:
    response = post(client, DOC)
    assert response.status_code == 200
    assert response.json()["stored"] == 1 and response.json()["duplicates"] == 0
    got = client.get(f"/reports/{DOC['messageId']}", headers={"Authorization": f"Bearer {SECRET}"})
    assert got.status_code == 200
    assert got.json()["status"] == "DELIVRD" and got.json()["mobile"] == "919999999999"
    assert post(client, DOC).json() == {"stored": 0, "duplicates": 1, "ignored_stale": 0}


def test_secret_in_header_and_array_bodies(client: httpx.Client, store: ReportStore) -> None:
    body = [doc("arr-1"), doc("arr-2", "UNDELIV", errorCode="34"), doc("arr-1")]
    response = client.post("/callback", json=body, headers={"X-Callback-Secret": SECRET})
    assert response.status_code == 200
    assert response.json()["stored"] == 2 and response.json()["duplicates"] == 1
    assert store.get_report("arr-2")["error_code"] == 34  # type: ignore[index]


def test_out_of_order_reports_keep_the_final_status(client: httpx.Client, store: ReportStore) -> None:
    assert post(client, doc("ooo-1", "DELIVRD")).json()["stored"] == 1
    assert post(client, doc("ooo-1", "UNKNOWN", doneDate="2023-11-02 14:30:00")).json()["ignored_stale"] == 1
    assert store.get_report("ooo-1")["status"] == "DELIVRD"  # type: ignore[index]


@pytest.mark.parametrize(
    "body",
    [
        b'{"messageId": "bad-1", "status": "DELIVRD"',  # truncated JSON
        b"\xff\xfe not utf-8",
        json.dumps({"messageId": "bad-2", "status": {"x": 1}}).encode(),
        json.dumps({"messageId": ["bad-3"], "status": "DELIVRD"}).encode(),
        json.dumps({"status": "DELIVRD"}).encode(),
        json.dumps({**DOC, "messageId": "bad-4", "submitDate": "yesterday"}).encode(),
        json.dumps([{**DOC, "messageId": "bad-5"}, {**DOC, "messageId": "bad-6", "status": 7}]).encode(),
        json.dumps([{**DOC, "messageId": "bad-7"}, "not an object"]).encode(),
        b'"just a string"',
    ],
)
def test_malformed_bodies_are_refused_and_nothing_is_stored(
    client: httpx.Client, store: ReportStore, body: bytes
) -> None:
    before = store.stats()
    response = client.post(f"/callback/{SECRET}", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert store.stats() == before
    for n in range(1, 8):
        assert store.get_report(f"bad-{n}") is None


def test_validation_errors_name_the_item_and_field(client: httpx.Client) -> None:
    response = post(client, [doc("v-1"), doc("v-2", status={"a": 1})])
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == [1, "status"]


def test_oversized_bodies_are_refused(client: httpx.Client, store: ReportStore) -> None:
    before = store.stats()
    big = [doc(f"big-{i}") for i in range(100)]
    assert post(client, big).status_code == 413

    def stream() -> Iterator[bytes]:  # chunked: no Content-Length, the receiver must count
        yield b"["
        for i in range(10_000):
            yield (json.dumps(doc(f"big-s-{i}")) + ",").encode()
        yield b"{}]"

    response = client.post(f"/callback/{SECRET}", content=stream(), headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert store.stats() == before


@pytest.mark.parametrize("secret", ["wrong-secret", SECRET[:-1], SECRET + "x"])
def test_wrong_secret_is_refused_and_not_echoed(client: httpx.Client, store: ReportStore, secret: str) -> None:
    before = store.stats()
    response = post(client, doc("auth-1"), secret=secret)
    assert response.status_code == 401
    assert secret not in response.text and SECRET not in response.text
    assert client.post("/callback", json=doc("auth-2")).status_code == 401
    assert client.post("/callback", json=doc("auth-2"), headers={"X-Callback-Secret": "nope"}).status_code == 401
    assert store.stats() == before


def test_read_endpoints_need_the_bearer_secret(client: httpx.Client, store: ReportStore) -> None:
    key = make_campaign_key("dag", "run", "send")
    store.ensure_campaign(key, dag_id="dag", run_id="run", task_id="send", kind="bulk")
    store.mark_accepted(
        key, "c0", transaction_id="tx", verification_id=None, response={}, mobiles=["919816111111", "917715131105"]
    )
    for path in (f"/campaigns/{key}/summary", f"/campaigns/{key}/reports", "/campaigns", "/reports/x"):
        assert client.get(path).status_code == 401
        assert client.get(path, headers={"Authorization": "Bearer nope"}).status_code == 401
    auth = {"Authorization": f"Bearer {SECRET}"}
    summary = client.get(f"/campaigns/{key}/summary", headers=auth).json()
    assert summary["recipients"] == 2 and summary["pending"] == 2 and summary["campaign"] == key
    page = client.get(f"/campaigns/{key}/reports", params={"page_size": 1, "page": 2}, headers=auth).json()
    assert page["total"] == 2 and [i["mobile"] for i in page["items"]] == ["919816111111"]
    assert client.get("/campaigns", headers=auth).json()["total"] >= 1
    assert client.get("/campaigns/mc-unknown/summary", headers=auth).status_code == 404
    assert client.get("/reports/unknown-id", headers=auth).status_code == 404
    assert client.get(f"/campaigns/{key}/reports", params={"page": 0}, headers=auth).status_code == 422
    assert client.get(f"/campaigns/{key}/reports", params={"page_size": "x"}, headers=auth).status_code == 422


def test_health(client: httpx.Client) -> None:
    response = client.get("/health")
    assert response.status_code == 200 and response.json()["status"] == "ok"


def test_health_is_503_when_the_store_does_not_answer(tmp_path: Path) -> None:
    app_url = "postgresql+psycopg://nobody@127.0.0.1:9/none?connect_timeout=1"
    with ReceiverServer(app_url, SECRET) as srv, httpx.Client(base_url=srv.url, timeout=20) as c:
        assert c.get("/health").status_code == 503
        assert post(c, doc("down-1")).status_code == 503


def test_ip_allow_list(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    with ReceiverServer(url, SECRET, allowed_ips=["10.0.0.0/8"]) as srv, httpx.Client(base_url=srv.url) as c:
        assert post(c, doc("ip-1")).status_code == 403
    with ReceiverServer(url, SECRET, allowed_ips=["127.0.0.1"]) as srv, httpx.Client(base_url=srv.url) as c:
        assert post(c, doc("ip-1")).status_code == 200


def test_refuses_to_start_without_a_secret(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MESSAGECENTRAL_CALLBACK_SECRET", raising=False)
    with pytest.raises(ValueError, match="MESSAGECENTRAL_CALLBACK_SECRET"):
        create_app(f"sqlite:///{tmp_path / 'r.db'}")
    proc = subprocess.run(
        [sys.executable, "-m", "airflow_provider_messagecentral.reports", "serve", "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "", "AIRFLOW_HOME": str(tmp_path)},
        check=False,
    )
    assert proc.returncode == 2 and "MESSAGECENTRAL_CALLBACK_SECRET" in proc.stderr


def test_summary_cli_prints_json(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    store = get_store(url)
    key = make_campaign_key("d", "r", "t")
    store.ensure_campaign(key, dag_id="d", run_id="r", task_id="t", kind="single")
    proc = subprocess.run(
        [sys.executable, "-m", "airflow_provider_messagecentral.reports", "summary", key, "--store-url", url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["campaign"] == key


def test_access_log_filter_redacts_the_secret() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "POST", f"/messagecentral/callback/{SECRET}?x=1", "1.1", 200),
        None,
    )
    CallbackSecretFilter().filter(record)
    assert SECRET not in record.getMessage() and "/callback/***" in record.getMessage()
