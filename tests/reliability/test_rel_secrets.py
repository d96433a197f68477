"""
No secret — the connection password, its base64 ``key`` (and URL-quoted key), the token, the callback
secret — appears in anything a user or an operator can see: log records at DEBUG, stdout/stderr, Airflow
task logs, XComs, rendered templates, exception texts, HTTP answers, access logs, ``repr``/``str``.

Each test registers the secrets with the ``leak_scanner`` fixture and adds what it saw; the fixture adds the
captured logs and output and fails the test on any occurrence.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import free_port, wait_until
from rel_support import LeakScanner, kill, task_context

from airflow_provider_messagecentral.client.tokens import TOKEN_CACHE
from airflow_provider_messagecentral.exceptions import MessageCentralError
from airflow_provider_messagecentral.hooks.messagecentral import MessageCentralHook
from airflow_provider_messagecentral.operators.messagecentral import (
    MessageCentralBulkSendOperator,
    MessageCentralSendOperator,
)
from airflow_provider_messagecentral.reports.server import ReceiverServer
from airflow_provider_messagecentral.reports.store import get_store
from airflow_provider_messagecentral.sandbox import SandboxConfig, SandboxServer

pytestmark = pytest.mark.reliability

DAG_FILE = Path(__file__).parent / "dags" / "rel_secrets.py"
# Passwords whose base64 holds '+', '/' and '=' so that the URL-quoted key differs from the key.
PASSWORD = "Rel?Pw>>~~secret-9f3b1e"
WRONG_PASSWORD = "Wrong?Pw>>~~guess-77a0c2"
CALLBACK_SECRET = "rel-cb-Secret-1d8e5a9c3f7b20e4"
CUSTOMER = "C-REL0000000042"
EMAIL = "ops-rel@example.com"


@dataclass
class World:
    sandbox: SandboxServer
    receiver: ReceiverServer
    reports_url: str
    tokens: list[str]


def _conn(url: str, password: str, reports_url: str) -> str:
    return json.dumps(
        {
            "conn_type": "messagecentral",
            "host": url,
            "login": CUSTOMER,
            "password": password,
            "extra": {"email": EMAIL, "country": "91", "sender_id": "UTOMOB", "reports_url": reports_url},
        }
    )


def _register(scanner: LeakScanner) -> None:
    scanner.secrets.add_password("password", PASSWORD)
    scanner.secrets.add_password("wrong password", WRONG_PASSWORD)
    scanner.secrets.add("callback secret", CALLBACK_SECRET)


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """A sandbox with its own account, callbacks into a receiver on the connection's store; tokens recorded."""
    reports_url = f"sqlite:///{tmp_path / 'reports.db'}"
    tokens: list[str] = []
    config = SandboxConfig(customer_id=CUSTOMER, password=PASSWORD, email=EMAIL, callback_delay=0)
    with SandboxServer(config) as sandbox, ReceiverServer(reports_url, CALLBACK_SECRET) as receiver:
        issue = sandbox.state.issue_token

        def recording_issue(params: Any) -> str:
            token = issue(params)
            tokens.append(token)
            return token

        monkeypatch.setattr(sandbox.state, "issue_token", recording_issue)
        sandbox.configure(callback_url=f"{receiver.url}/callback/{CALLBACK_SECRET}")
        monkeypatch.setenv("AIRFLOW_CONN_MESSAGECENTRAL_DEFAULT", _conn(sandbox.url, PASSWORD, reports_url))
        monkeypatch.setenv("AIRFLOW_CONN_MC_WRONG_PASSWORD", _conn(sandbox.url, WRONG_PASSWORD, reports_url))
        TOKEN_CACHE.clear()
        yield World(sandbox, receiver, reports_url, tokens)
        TOKEN_CACHE.clear()


def _add_airflow_records(scanner: LeakScanner, dag_id: str) -> int:
    """Every XCom and rendered-template row of the DAG, as stored in Airflow's DB."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    rows = 0
    with create_session() as session:
        for xcom in session.scalars(select(XComModel).where(XComModel.dag_id == dag_id)):
            scanner.add(f"XCom {xcom.task_id}/{xcom.key}", json.dumps(xcom.value, default=repr))
            rows += 1
        for rtif in session.scalars(
            select(RenderedTaskInstanceFields).where(RenderedTaskInstanceFields.dag_id == dag_id)
        ):
            scanner.add(f"rendered template of {rtif.task_id}", json.dumps(rtif.rendered_fields, default=repr))
            rows += 1
    return rows


def test_campaign_through_every_operator_and_the_sensor_leaks_nothing(
    load_dag_file: Any, world: World, leak_scanner: LeakScanner, capfd: pytest.CaptureFixture[str]
) -> None:
    """
    A DAG run (``dag.test()``) with a single, a bulk and a file send, the delivery sensor on stored reports,
    and a task whose connection has a wrong password: none of the secrets (password, base64 key and its
    URL-quoted form, every token the sandbox issued, the callback secret) is in the captured logs and output,
    task logs (``dag.test()`` writes them to stdout), XComs, rendered templates or the reprs of the DAG's
    tasks.
    """
    _register(leak_scanner)
    module = load_dag_file(DAG_FILE)
    dag_run = module.secrets_dag.test()

    states = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}
    assert states == {
        "single": "success",
        "bulk": "success",
        "file": "success",
        "wait": "success",
        "wrong_password": "failed",
    }, states
    assert len(world.sandbox.messages()) == 1 + 30 + 5
    out, err = capfd.readouterr()  # dag.test() writes the task logs here
    leak_scanner.add("dag.test task logs (stdout)", out)
    leak_scanner.add("dag.test task logs (stderr)", err)
    assert "refused the credentials" in out + err, "the failed task's log was not captured"
    assert "chunk 3/3" in out + err, "the bulk task's log was not captured"
    assert world.tokens, "no token was issued: the flows under test did not run"
    for index, token in enumerate(world.tokens):
        leak_scanner.secrets.add(f"token #{index + 1}", token)
    assert _add_airflow_records(leak_scanner, "mc_rel_secrets") >= 5
    for task in module.secrets_dag.tasks:
        leak_scanner.add(f"repr of task {task.task_id}", repr(task))
        leak_scanner.add(f"str of task {task.task_id}", str(task))
    leak_scanner.add("sandbox request log", world.sandbox.requests())
    leak_scanner.add("sandbox rejected log", world.sandbox.rejected())
    summary = get_store(world.reports_url).list_campaigns()
    leak_scanner.add("campaign list", summary)


def test_failed_token_call_wrong_receiver_secrets_and_reprs_leak_nothing(
    world: World, leak_scanner: LeakScanner
) -> None:
    """
    A token call refused for a wrong password (``test_connection``, ``get_token``, an operator's send), the
    receiver answering wrong and right secrets in path, header and bearer, and the repr/str of the hook, its
    connection settings, the operators, the receiver and the sandbox: no secret in any exception text, HTTP
    answer or repr.
    """
    _register(leak_scanner)
    wrong = MessageCentralHook(messagecentral_conn_id="mc_wrong_password")
    ok, message = wrong.test_connection()
    assert not ok
    leak_scanner.add("test_connection message", message)
    with pytest.raises(MessageCentralError) as caught:
        wrong.get_token()
    leak_scanner.add("token error str", str(caught.value))
    leak_scanner.add("token error repr", repr(caught.value))
    op = MessageCentralSendOperator(
        task_id="send",
        mobile_number="9816100001",
        message="Hello",
        messagecentral_conn_id="mc_wrong_password",
        send_window=None,
    )
    with pytest.raises(MessageCentralError) as caught:
        op.execute(task_context(run_id="wrong"))
    leak_scanner.add("operator error", f"{caught.value!s} {caught.value!r} {caught.value.args!r}")

    hook = MessageCentralHook()
    bulk = MessageCentralBulkSendOperator(
        task_id="bulk", phone_numbers=["9816100001", "9816100002"], message="Hello", send_window=None
    )
    bulk.execute(task_context(run_id="ok"))
    for index, token in enumerate(world.tokens):
        leak_scanner.secrets.add(f"token #{index + 1}", token)
    assert world.tokens
    for label, obj in {
        "hook": hook,
        "wrong hook": wrong,
        "settings": hook.settings,
        "wrong settings": wrong.settings,
        "operator": op,
        "bulk operator": bulk,
        "bulk operator hook": bulk.hook,
        "receiver": world.receiver,
        "sandbox": world.sandbox,
        "store": get_store(world.reports_url),
    }.items():
        leak_scanner.add(f"repr of {label}", repr(obj))
        leak_scanner.add(f"str of {label}", str(obj))

    with httpx.Client(base_url=world.receiver.url, timeout=10) as client:
        doc = {"messageId": "secret-scan-1", "status": "DELIVRD", "mobile": "919816100001"}
        attempts = [
            client.post(f"/callback/{CALLBACK_SECRET.upper()}", json=doc),
            client.post(f"/callback/{CALLBACK_SECRET[:-1]}", json=doc),
            client.post("/callback", json=doc, headers={"X-Callback-Secret": CALLBACK_SECRET + "x"}),
            client.get("/reports/secret-scan-1", headers={"Authorization": f"Bearer {CALLBACK_SECRET.lower()}"}),
            client.post(f"/callback/{CALLBACK_SECRET}", json={"messageId": ""}),
            client.post(f"/callback/{CALLBACK_SECRET}", json=doc),
            client.get("/reports/secret-scan-1", headers={"Authorization": f"Bearer {CALLBACK_SECRET}"}),
        ]
    assert [r.status_code for r in attempts] == [401, 401, 401, 401, 422, 200, 200]
    for index, response in enumerate(attempts):
        leak_scanner.add(f"receiver answer #{index + 1}", f"{response.headers} {response.text}")


def test_receiver_access_logs_never_show_the_secret(tmp_path: Path, leak_scanner: LeakScanner) -> None:
    """
    The receiver served with uvicorn's access log on at DEBUG (as a user may run it) and the CLI at DEBUG:
    after callbacks with the right and wrong secrets, their output holds no callback secret (the path is
    logged as ``/callback/***``).
    """
    leak_scanner.secrets.add("callback secret", CALLBACK_SECRET)
    url = f"sqlite:///{tmp_path / 'access.db'}"
    env = {**os.environ, "MESSAGECENTRAL_CALLBACK_SECRET": CALLBACK_SECRET}
    commands = {
        "uvicorn access log": [
            sys.executable,
            "-c",
            "import sys, uvicorn\n"
            "from airflow_provider_messagecentral.reports.app import create_app\n"
            "uvicorn.run(create_app(sys.argv[1]), host='127.0.0.1', port=int(sys.argv[2]),"
            " access_log=True, log_level='debug')",
            url,
        ],
        "receiver CLI": [
            sys.executable,
            "-m",
            "airflow_provider_messagecentral.reports",
            "serve",
            "--store-url",
            url,
            "--log-level",
            "debug",
            "--port",
        ],
    }
    for label, command in commands.items():
        port = free_port()
        out = tmp_path / f"{label.replace(' ', '-')}.log"
        with out.open("wb") as handle:
            proc = subprocess.Popen([*command, str(port)], stdout=handle, stderr=subprocess.STDOUT, env=env)
        base = f"http://127.0.0.1:{port}"
        try:

            def up(base: str = base) -> bool:
                try:
                    return httpx.get(f"{base}/health", timeout=1).status_code == 200
                except httpx.HTTPError:
                    return False

            assert wait_until(up, timeout=60), out.read_text()
            doc = {"messageId": f"access-{port}", "status": "DELIVRD"}
            assert httpx.post(f"{base}/callback/{CALLBACK_SECRET}", json=doc).status_code == 200
            assert httpx.post(f"{base}/callback/{CALLBACK_SECRET}?x=1", json=doc).status_code == 200
            assert httpx.post(f"{base}/callback/{CALLBACK_SECRET}x", json=doc).status_code == 401
            assert httpx.post(f"{base}/callback/{CALLBACK_SECRET}", content=b"{").status_code == 422
        finally:
            kill(proc)
        text = out.read_text()
        if label == "uvicorn access log":
            assert "/callback/***" in text, text[-2000:]  # the access log did log the requests
        leak_scanner.add(label, text)


def test_the_scanner_finds_a_planted_secret() -> None:
    """The scanner itself works: a secret planted in a text is reported by name (guards against a blind scan)."""
    probe = LeakScanner()
    probe.secrets.add_password("password", PASSWORD)
    probe.add("planted", f"GET /auth?key={probe.secrets.values['password url-quoted key']}")
    assert probe.leaks(record=False) == ["password url-quoted key found in planted"]
