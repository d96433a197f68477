"""The sandbox over real HTTP: documented requests, validation, faults, request log and delivery callbacks."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import openpyxl
import pytest
import requests
from helpers import free_port, wait_until

from airflow_provider_messagecentral.sandbox import SandboxConfig, SandboxServer

pytestmark = pytest.mark.integration

CUSTOMER, PASSWORD, EMAIL = "C-SANDBOX0000001", "sandbox", "sandbox@example.com"
KEY = base64.b64encode(PASSWORD.encode()).decode()
SEND = "/verification/v3/send"


def _b64json(part: str) -> dict[str, Any]:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def get_token(url: str, **overrides: str) -> requests.Response:
    params = {"customerId": CUSTOMER, "key": KEY, "scope": "NEW", "country": "91", "email": EMAIL, **overrides}
    return requests.get(f"{url}/auth/v1/authentication/token", params=params, headers={"accept": "*/*"}, timeout=5)


@pytest.fixture
def token(sandbox: SandboxServer) -> str:
    return str(get_token(sandbox.url).json()["token"])


def send(url: str, token: str | None, files: Any = None, timeout: float = 5, **params: str) -> requests.Response:
    query = {
        "countryCode": "91",
        "flowType": "SMS",
        "type": "SMS",
        "senderId": "UTOMOB",
        "messageType": "PROMOTIONAL",
        "message": "Hello",
        **params,
    }
    query = {k: v for k, v in query.items() if v is not None}
    headers = {"authToken": token} if token is not None else {}
    return requests.post(f"{url}{SEND}", params=query, headers=headers, files=files, timeout=timeout)


def workbook(rows: list[list[object]]) -> bytes:
    book = openpyxl.Workbook()
    for row in rows:
        book.active.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


class _Receiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ReceiverHandler)
        self.reports: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.fail_with: int | None = None
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/callback/s3cret"


class _ReceiverHandler(BaseHTTPRequestHandler):
    server: _Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with self.server.lock:
            if self.server.fail_with is None:
                self.server.reports.append(json.loads(body))
                self.server.paths.append(self.path)
        self.send_response(self.server.fail_with or 200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver(sandbox: SandboxServer) -> Iterator[_Receiver]:
    server = _Receiver()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    sandbox.configure(
        callback_url=server.url, callback_delay=0, status_mix="DELIVRD=1", duplicates=0, out_of_order=0, seed=7
    )
    yield server
    sandbox.configure(callback_url=None)
    server.shutdown()
    server.server_close()


# -- token ------------------------------------------------------------------------------------------------


def test_token_call_as_documented_returns_a_five_year_hs512_jwt(sandbox):
    response = get_token(sandbox.url)
    assert response.status_code == 200
    body = response.json()
    assert body["responseCode"] == 200 and body["message"] == "SUCCESS"
    header, payload, signature = body["token"].split(".")
    assert _b64json(header)["alg"] == "HS512" and signature
    claims = _b64json(payload)
    assert claims["sub"] == CUSTOMER
    assert claims["exp"] - claims["iat"] == 1825 * 24 * 3600
    assert sandbox.stats()["token_requests"] == 1


@pytest.mark.parametrize(
    "override", [{"key": base64.b64encode(b"wrong").decode()}, {"customerId": "C-OTHER"}, {"email": "x@example.com"}]
)
def test_bad_credentials_get_401_without_echoing_the_key(sandbox, override):
    response = get_token(sandbox.url, **override)
    assert response.status_code == 401
    assert response.json() == {"responseCode": 401, "message": "UNAUTHORIZED", "data": None}
    assert KEY not in json.dumps(sandbox.rejected()) and override.get("key", "§") not in response.text


def test_token_call_missing_parameter_names_it(sandbox):
    response = requests.get(
        f"{sandbox.url}/auth/v1/authentication/token",
        params={"customerId": CUSTOMER, "key": KEY, "scope": "NEW", "country": "91"},
        timeout=5,
    )
    assert response.status_code == 400 and "'email'" in response.json()["message"]


# -- sends ------------------------------------------------------------------------------------------------


def test_single_send_documented_shape_and_log(sandbox, token):
    response = send(sandbox.url, token, mobileNumber="9816111111", customerId=CUSTOMER)
    assert response.status_code == 200
    body = response.json()
    assert body["responseCode"] == 200 and body["message"] == "SUCCESS"
    data = body["data"]
    assert set(data) == {
        "verificationId",
        "mobileNumber",
        "responseCode",
        "errorMessage",
        "timeout",
        "smsCLI",
        "transactionId",
    }
    assert data["mobileNumber"] == "9816111111" and data["responseCode"] == "200" and data["errorMessage"] is None
    assert data["verificationId"].isdigit() and data["timeout"] == "30.0"
    (entry,) = sandbox.requests()
    assert entry["kind"] == "single" and entry["transaction_id"] == data["transactionId"]
    assert entry["verification_id"] == data["verificationId"]
    assert entry["recipients"] == [{"mobile": "919816111111", "text": "Hello", "message_id": data["transactionId"]}]
    assert "authToken" not in entry["params"] and token not in json.dumps(entry)
    assert entry["params"]["senderId"] == "UTOMOB"
    stats = sandbox.stats()
    assert (stats["send_requests"], stats["accepted_sends"], stats["messages"], stats["rejected"]) == (1, 1, 1, 0)


def test_bulk_send_one_transaction_one_message_id_per_recipient(sandbox, token):
    response = send(sandbox.url, token, phoneNumbers="91 9816111111, 91 7715131105")
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["mobileNumber"] == "9816111111"
    messages = requests.get(f"{sandbox.url}/__sandbox/messages", timeout=5).json()
    assert [m["mobile"] for m in messages] == ["919816111111", "917715131105"]
    assert {m["transaction_id"] for m in messages} == {data["transactionId"]}
    ids = {m["message_id"] for m in messages}
    assert len(ids) == 2 and data["transactionId"] not in ids
    assert all(m["kind"] == "bulk" and m["text"] == "Hello" for m in messages)


def test_file_send_renders_each_row(sandbox, token):
    content = workbook(
        [
            ["mobile", "var1", "var2", "var3"],
            ["919816111111", "Asha", 120, "1 May"],
            ["7715131105", "Ravi", 7.5, "2 May"],
        ]
    )
    response = send(
        sandbox.url,
        token,
        message="Hello ##var1##, your balance is ##var2## on ##var3##",
        files={"file": ("campaign.xlsx", content, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")},
    )
    assert response.status_code == 200, response.text
    (entry,) = sandbox.requests()
    assert entry["kind"] == "file" and entry["file"]["filename"] == "campaign.xlsx"
    assert [(r["mobile"], r["text"]) for r in entry["recipients"]] == [
        ("919816111111", "Hello Asha, your balance is 120 on 1 May"),
        ("917715131105", "Hello Ravi, your balance is 7.5 on 2 May"),
    ]
    assert response.json()["data"]["mobileNumber"] == "9816111111"


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"countryCode": None, "mobileNumber": "9816111111"}, "'countryCode'"),
        ({"countryCode": "9l", "mobileNumber": "9816111111"}, "'countryCode'"),
        ({"flowType": "EMAIL", "mobileNumber": "9816111111"}, "'flowType'"),
        ({"messageType": "SPAM", "mobileNumber": "9816111111"}, "'messageType'"),
        ({"message": "", "mobileNumber": "9816111111"}, "'message'"),
        ({"templateId": "T1", "mobileNumber": "9816111111"}, "'entityId'"),
        ({"entityId": "E1", "mobileNumber": "9816111111"}, "'templateId'"),
        ({"customerId": "C-SOMEONEELSE", "mobileNumber": "9816111111"}, "'customerId'"),
        ({"mobileNumber": "9816111111", "phoneNumbers": "91 7715131105"}, "exactly one of"),
        ({}, "exactly one of"),
        ({"phoneNumbers": "91 9816111111,91 7715131105"}, "entry #1"),
        ({"phoneNumbers": "91 9816111111; 91 7715131105"}, "entry #1"),
    ],
)
def test_validation_errors_are_400_and_name_the_problem(sandbox, token, params, needle):
    response = send(sandbox.url, token, **params)
    assert response.status_code == 400
    body = response.json()
    assert body["responseCode"] == 400 and body["data"] is None and needle in body["message"]
    assert sandbox.requests() == [] and sandbox.rejected()[0]["status"] == 400


@pytest.mark.parametrize(
    "params",
    [
        {"mobileNumber": "1234567890"},
        {"mobileNumber": "98161"},
        {"mobileNumber": "919816111111"},
        {"phoneNumbers": "91 9816111111, 91 0715131105"},
    ],
)
def test_invalid_numbers_are_601(sandbox, token, params):
    response = send(sandbox.url, token, **params)
    assert response.status_code == 400
    assert response.json()["responseCode"] == 601 and "INVALID_MOBILE_NUMBER" in response.json()["message"]


@pytest.mark.parametrize(
    ("filename", "content", "message", "needle"),
    [
        ("n.csv", b"mobile\n9816111111\n", "Hi", ".xlsx"),
        ("n.xlsx", b"not a zip", "Hi", "not a zip"),
        ("n.xlsx", workbook([["mobile", "var1"], ["9816111111", "A"]]), "Hi ##var2##", "'##var2##'"),
        (
            "n.xlsx",
            workbook([["mobile", "var1"], ["9816111111", "A"], ["7715131105", ""]]),
            "Hi ##var1##",
            "row 3: column 'var1'",
        ),
    ],
)
def test_file_send_errors(sandbox, token, filename, content, message, needle):
    response = send(sandbox.url, token, message=message, files={"file": (filename, content)})
    assert response.status_code == 400 and needle in response.json()["message"]


@pytest.mark.parametrize("header", [None, "", "not.a.jwt", "eyJhbGciOiJIUzUxMiJ9.eyJzdWIiOiJDIn0.c2ln"])
def test_send_without_valid_token_is_401(sandbox, header):
    response = send(sandbox.url, header, mobileNumber="9816111111")
    assert response.status_code == 401 and response.json()["message"] == "UNAUTHORIZED"


# -- faults -----------------------------------------------------------------------------------------------


def _post_faults(sandbox: SandboxServer, **faults: Any) -> dict[str, Any]:
    response = requests.post(f"{sandbox.url}/__sandbox/faults", json=faults, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()


def test_expire_tokens_revokes_issued_tokens_once(sandbox, token):
    _post_faults(sandbox, expire_tokens=True)
    assert send(sandbox.url, token, mobileNumber="9816111111").status_code == 401
    fresh = get_token(sandbox.url).json()["token"]
    assert send(sandbox.url, fresh, mobileNumber="9816111111").status_code == 200


def test_short_token_ttl_gives_expired_tokens(sandbox):
    _post_faults(sandbox, token_ttl=0)
    short = get_token(sandbox.url).json()["token"]
    claims = _b64json(short.split(".")[1])
    assert claims["exp"] == claims["iat"]
    assert send(sandbox.url, short, mobileNumber="9816111111").status_code == 401


@pytest.mark.parametrize("retry_after", ["2", "http-date"])
def test_rate_limit_answers_429_with_retry_after(sandbox, token, retry_after):
    _post_faults(sandbox, rate_limit={"count": 2, "retry_after": retry_after, "seconds": 2})
    first, second, third = (send(sandbox.url, token, mobileNumber="9816111111") for _ in range(3))
    assert first.status_code == second.status_code == 429
    value = first.headers["Retry-After"]
    if retry_after == "2":
        assert value == "2"
    else:
        assert parsedate_to_datetime(value).tzinfo is not None
    assert third.status_code == 200
    assert len(sandbox.requests()) == 1 and sandbox.stats()["rejected"] == 2


def test_server_errors_then_recovery(sandbox, token):
    sandbox.set_faults(errors={"count": 2, "status": 502})
    codes = [send(sandbox.url, token, mobileNumber="9816111111").status_code for _ in range(3)]
    assert codes == [502, 502, 200]


def test_balance_runs_out_with_insufficient_balance(sandbox, token):
    _post_faults(sandbox, balance=3)
    assert send(sandbox.url, token, phoneNumbers="91 9816111111, 91 7715131105").status_code == 200
    response = send(sandbox.url, token, phoneNumbers="91 9816111111, 91 7715131105")
    assert response.status_code == 200
    body = response.json()
    assert body["responseCode"] == 402 and body["message"] == "INSUFFICIENT_BALANCE"
    assert body["data"]["responseCode"] == "402" and body["data"]["errorMessage"] == "Insufficient balance"
    assert body["data"]["transactionId"] is None
    assert send(sandbox.url, token, mobileNumber="9816111111").status_code == 200
    assert sandbox.stats()["messages"] == 3


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (705, "VERIFICATION_EXPIRED"),
        (402, "INSUFFICIENT_BALANCE"),
        (601, "INVALID_MOBILE_NUMBER"),
        (800, "MAXIMUM_LIMIT_REACHED"),
    ],
)
def test_fail_on_nth_send(sandbox, token, code, message):
    _post_faults(sandbox, fail_on_send={"nth": 2, "code": code})
    bodies = [send(sandbox.url, token, mobileNumber="9816111111").json() for _ in range(3)]
    assert [b["responseCode"] for b in bodies] == [200, code, 200]
    assert bodies[1]["message"] == message and bodies[1]["data"]["errorMessage"]
    assert len(sandbox.requests()) == 2


def test_hang_records_the_send_then_lets_the_client_time_out(sandbox, token):
    sandbox.set_faults(hang={"count": 1, "seconds": 1.5})
    with pytest.raises(requests.Timeout):
        send(sandbox.url, token, mobileNumber="9816111111", timeout=0.3)
    (entry,) = sandbox.requests()
    assert entry["hung"] is True and entry["recipients"][0]["mobile"] == "919816111111"
    assert send(sandbox.url, token, mobileNumber="9816111111").status_code == 200


def test_latency_delays_answers(sandbox, token):
    sandbox.set_faults(latency=1.0)
    with pytest.raises(requests.Timeout):
        send(sandbox.url, token, mobileNumber="9816111111", timeout=0.2)
    _post_faults(sandbox, latency=None)
    # The server finishes the abandoned request after its sleep: it reached the server, so it is accepted.
    assert wait_until(lambda: len(sandbox.requests()) == 1, timeout=10)
    assert sandbox.state.faults()["latency"] == 0.0


def test_unknown_fault_is_refused(sandbox):
    response = requests.post(f"{sandbox.url}/__sandbox/faults", json={"explode": True}, timeout=5)
    assert response.status_code == 400 and "explode" in response.json()["error"]


def test_reset_clears_log_stats_and_faults(sandbox, token):
    sandbox.set_faults(errors={"count": 5})
    send(sandbox.url, token, mobileNumber="9816111111")
    sandbox.set_faults(errors=None)
    send(sandbox.url, token, mobileNumber="9816111111")
    assert requests.post(f"{sandbox.url}/__sandbox/reset", timeout=5).status_code == 200
    assert sandbox.requests() == [] and sandbox.rejected() == []
    assert requests.get(f"{sandbox.url}/__sandbox/stats", timeout=5).json() == {
        "token_requests": 0,
        "send_requests": 0,
        "accepted_sends": 0,
        "messages": 0,
        "rejected": 0,
        "callbacks_sent": 0,
        "callbacks_failed": 0,
        "callbacks_pending": 0,
    }
    assert requests.get(f"{sandbox.url}/__sandbox/faults", timeout=5).json()["errors"] is None
    assert send(sandbox.url, token, mobileNumber="9816111111").status_code == 200


# -- callbacks --------------------------------------------------------------------------------------------


def _flush(sandbox: SandboxServer) -> dict[str, Any]:
    response = requests.post(f"{sandbox.url}/__sandbox/callbacks/flush", params={"timeout": 10}, timeout=15)
    return response.json()


def test_callbacks_have_the_documented_shape(sandbox, token, receiver):
    single = send(sandbox.url, token, mobileNumber="9816111111").json()["data"]["transactionId"]
    send(sandbox.url, token, phoneNumbers="91 7715131105, 91 9816111112")
    counts = _flush(sandbox)
    assert counts["flushed"] is True and counts["callbacks_sent"] == 3 and counts["callbacks_pending"] == 0
    assert set(receiver.paths) == {"/callback/s3cret"}
    by_mobile = {r["mobile"]: r for r in receiver.reports}
    assert set(by_mobile) == {"919816111111", "917715131105", "919816111112"}
    report = by_mobile["919816111111"]
    assert set(report) == {
        "apiKey",
        "clientId",
        "messageId",
        "status",
        "errorCode",
        "countryCode",
        "mobile",
        "submitDate",
        "doneDate",
    }
    assert report["messageId"] == single and report["status"] == "DELIVRD" and report["errorCode"] == 0
    assert report["apiKey"] is None and report["clientId"] is None and report["countryCode"] is None
    datetime.strptime(report["submitDate"], "%Y-%m-%d %H:%M:%S")
    datetime.strptime(report["doneDate"], "%Y-%m-%d %H:%M:%S")
    logged = {m["mobile"]: m["message_id"] for m in sandbox.messages()}
    assert all(by_mobile[mobile]["messageId"] == mid for mobile, mid in logged.items())


def test_failure_statuses_carry_error_codes(sandbox, token, receiver):
    sandbox.configure(status_mix="UNDELIV=1")
    send(sandbox.url, token, phoneNumbers="91 9816111111, 91 7715131105")
    sandbox.flush_callbacks(timeout=10)
    assert [r["status"] for r in receiver.reports] == ["UNDELIV", "UNDELIV"]
    assert all(r["errorCode"] != 0 for r in receiver.reports)


def test_duplicates_and_out_of_order_when_asked(sandbox, token, receiver):
    requests.post(f"{sandbox.url}/__sandbox/config", json={"duplicates": 1.0, "out_of_order": 1.0}, timeout=5)
    send(sandbox.url, token, phoneNumbers="91 9816111111, 91 7715131105")
    assert sandbox.flush_callbacks(timeout=10)["callbacks_sent"] == 6
    for message in sandbox.messages():
        statuses = [r["status"] for r in receiver.reports if r["messageId"] == message["message_id"]]
        assert statuses == ["DELIVRD", "DELIVRD", "UNKNOWN"]


def test_status_mix_is_reproducible_with_a_seed(sandbox, token, receiver):
    sandbox.configure(status_mix="DELIVRD=0.5,EXPIRED=0.5", seed=3)
    numbers = ", ".join(f"91 98161111{i:02d}" for i in range(20))
    send(sandbox.url, token, phoneNumbers=numbers)
    sandbox.flush_callbacks(timeout=10)
    first = sorted((r["mobile"], r["status"]) for r in receiver.reports)
    assert {status for _, status in first} == {"DELIVRD", "EXPIRED"}
    receiver.reports.clear()
    sandbox.reset()
    sandbox.configure(seed=3)
    send(sandbox.url, token, phoneNumbers=numbers)
    sandbox.flush_callbacks(timeout=10)
    assert sorted((r["mobile"], r["status"]) for r in receiver.reports) == first


def test_failing_receiver_is_retried_then_counted_failed(sandbox, token, receiver):
    receiver.fail_with = 500
    send(sandbox.url, token, mobileNumber="9816111111")
    assert sandbox.flush_callbacks(timeout=10) == {
        "flushed": True,
        "callbacks_sent": 0,
        "callbacks_failed": 1,
        "callbacks_pending": 0,
    }


def test_callback_delay_is_honoured_and_flush_waits(sandbox, token, receiver):
    sandbox.configure(callback_delay=0.5)
    send(sandbox.url, token, mobileNumber="9816111111")
    assert sandbox.stats()["callbacks_pending"] == 1 and receiver.reports == []
    assert _flush(sandbox)["callbacks_sent"] == 1 and len(receiver.reports) == 1


def test_config_endpoint_hides_the_callback_secret(sandbox, receiver):
    view = requests.get(f"{sandbox.url}/__sandbox/config", timeout=5).json()
    assert "s3cret" not in json.dumps(view) and view["callback_url"].startswith("http://127.0.0.1:")
    bad = requests.post(f"{sandbox.url}/__sandbox/config", json={"status_mix": "GREAT=1"}, timeout=5)
    assert bad.status_code == 400 and "GREAT" in bad.json()["error"]


# -- own servers: other accounts, CLI ---------------------------------------------------------------------


def test_custom_account_and_token_ttl():
    config = SandboxConfig(customer_id="C-TEST", password="pä55", email="ops@example.com", country="44", token_ttl=60)
    with SandboxServer(config) as server:
        key = base64.b64encode("pä55".encode()).decode()
        response = get_token(server.url, customerId="C-TEST", key=key, email="ops@example.com", country="44")
        claims = _b64json(response.json()["token"].split(".")[1])
        assert claims["sub"] == "C-TEST" and claims["exp"] - claims["iat"] == 60
        assert get_token(server.url).status_code == 401
        ok = send(server.url, response.json()["token"], countryCode="44", mobileNumber="7700900123")
        assert ok.status_code == 200
    assert "pä55" not in repr(server) + repr(config)


def test_cli_help_and_callback_url_kept_off_the_output(tmp_path):
    assert (
        "--callback-url"
        in subprocess.run(
            [sys.executable, "-m", "airflow_provider_messagecentral.sandbox", "--help"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    port = free_port()
    env = {"MESSAGECENTRAL_SANDBOX_CALLBACK_URL": "http://127.0.0.1:9/callback/t0psecret", "PATH": ""}
    log = tmp_path / "sandbox.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "airflow_provider_messagecentral.sandbox", "--port", str(port), "--seed", "1"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:

        def up() -> bool:
            try:
                return requests.get(f"http://127.0.0.1:{port}/__sandbox/config", timeout=1).ok
            except requests.RequestException:
                return False

        assert wait_until(up, timeout=20)
        view = requests.get(f"http://127.0.0.1:{port}/__sandbox/config", timeout=5).json()
        assert view["callback_url"] == "http://127.0.0.1:9/…" and view["seed"] == 1
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert "t0psecret" not in log.read_text()
