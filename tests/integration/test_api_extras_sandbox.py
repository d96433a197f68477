"""
The hook and the send operators against the sandbox over real HTTP for what MessageCentral's own app uses beyond
its API docs: pulled delivery reports (``reports/getDetailedReports``) and the credit (``wallet/credits/balance``,
``check_balance``); and every known responseCode surfacing as its named error.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

import pytest
import requests

from airflow_provider_messagecentral.client.error_codes import KNOWN_CODES
from airflow_provider_messagecentral.exceptions import (
    MessageCentralError,
    MessageCentralInsufficientCreditError,
    MessageCentralRetryableError,
    MessageCentralValidationError,
)
from airflow_provider_messagecentral.hooks.messagecentral import MessageCentralHook
from airflow_provider_messagecentral.operators.messagecentral import MessageCentralBulkSendOperator
from airflow_provider_messagecentral.sandbox.faults import BUSINESS_ERRORS

pytestmark = pytest.mark.integration

MIX = "DELIVRD=0.7,UNDELIV=0.1,EXPIRED=0.1,REJECTD=0.1"
NUMBERS = [f"98161{i:05d}" for i in range(10)]


@pytest.fixture
def hook(mc_conn: Any) -> MessageCentralHook:
    return MessageCentralHook()


@pytest.fixture
def window() -> tuple[datetime, datetime]:
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    return now - timedelta(minutes=5), now + timedelta(minutes=5)


@pytest.fixture
def callbacks() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A local endpoint that keeps every delivery report POSTed to it."""
    got: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/callback/s3cret", got
    server.shutdown()
    server.server_close()


def test_pulled_reports_match_the_callbacks_status_for_status(
    hook: MessageCentralHook, sandbox: Any, window: Any, callbacks: Any
) -> None:
    url, posted = callbacks
    sandbox.configure(callback_url=url, callback_delay=0, status_mix=MIX, seed=5)
    numbers = [f"98161{i:05d}" for i in range(230)]
    hook.send_bulk(numbers, "Sale today", chunk_size=100)
    assert sandbox.flush_callbacks(timeout=30)["flushed"]
    pulled = list(hook.get_detailed_reports(*window, page_size=50))
    assert len(pulled) == 230 and len({r.mobile for r in pulled}) == 230
    assert {r.mobile: r.status for r in pulled} == {c["mobile"]: c["status"] for c in posted}
    assert len({r.status for r in pulled}) > 1  # a real mix, not all delivered
    assert {r.message_body for r in pulled} == {"Sale today"}
    delivered = [r for r in pulled if r.status == "DELIVRD"]
    assert all(r.delivered_at is not None and r.error_code == "0" for r in delivered)
    assert all(r.delivered_at is None and r.error_code != "0" for r in pulled if r.status != "DELIVRD")


def test_reports_appear_only_once_their_callback_is_due(hook: MessageCentralHook, sandbox: Any, window: Any) -> None:
    sandbox.configure(callback_delay=3600)
    hook.send_message("9816111111", "later")
    sandbox.configure(callback_delay=0)
    hook.send_message("9816111112", "now")
    assert [(r.mobile, r.message_body) for r in hook.get_detailed_reports(*window)] == [("919816111112", "now")]


def test_pages_are_walked_to_the_end_with_string_fields(hook: MessageCentralHook, sandbox: Any, window: Any) -> None:
    sandbox.configure(callback_delay=0, field_types="strings")
    hook.send_bulk([f"77151{i:05d}" for i in range(25)], "hi", chunk_size=25)
    pulled = list(hook.get_detailed_reports(*window, page_size=10))
    assert sorted(r.mobile for r in pulled) == sorted(f"9177151{i:05d}" for i in range(25))
    assert {r.error_code for r in pulled} == {"0"}


def test_a_window_of_other_days_finds_nothing(hook: MessageCentralHook, sandbox: Any) -> None:
    sandbox.configure(callback_delay=0)
    hook.send_message("9816111111", "hi")
    assert list(hook.get_detailed_reports(datetime(2020, 1, 1), datetime(2020, 1, 2))) == []


def test_otp_reports_are_not_sms_reports(hook: MessageCentralHook, sandbox: Any, window: Any) -> None:
    sandbox.configure(callback_delay=0)
    hook.send_message("9816111111", "hi")
    assert list(hook.get_detailed_reports(*window, message_type="OTP")) == []


def test_sandbox_checks_the_query(sandbox: Any, hook: MessageCentralHook) -> None:
    token = hook.get_token()
    base = {"customerId": hook.settings.customer_id, "from": "1/1/2026", "to": "2/1/2026", "pageNo": "0", "size": "10"}
    cases = [
        ({**base, "type": "SMS", "from": "2026-01-01"}, "'from' must be a date written d/M/yyyy"),
        ({**base, "type": "SMS", "customerId": "C-OTHER"}, "does not match the account"),
        ({**base, "type": "SMS", "size": "0"}, "'size' must be an integer"),
        (base, "missing required parameter 'type'"),
    ]
    for params, reason in cases:
        resp = requests.post(f"{sandbox.url}/reports/getDetailedReports", params=params, headers={"authToken": token})
        assert resp.status_code == 400 and reason in resp.json()["message"]
    resp = requests.post(f"{sandbox.url}/reports/getDetailedReports", params={**base, "type": "SMS"})
    assert resp.status_code == 401


def test_bad_window_is_refused_before_any_request(hook: MessageCentralHook, sandbox: Any, window: Any) -> None:
    with pytest.raises(MessageCentralValidationError, match="before start"):
        hook.get_detailed_reports(window[1], window[0])
    assert sandbox.stats()["token_requests"] == 0


# -- credit -----------------------------------------------------------------------------------------------


def context(run_id: str) -> dict[str, Any]:
    ti = SimpleNamespace(dag_id="extras", run_id=run_id, task_id="send", map_index=-1, try_number=1)
    return {"ti": ti, "task_instance": ti, "params": {}}


def test_balance_is_read_and_sends_consume_it_per_segment(hook: MessageCentralHook, sandbox: Any) -> None:
    sandbox.configure(balance=100, credit_per_segment=0.5)
    before = hook.get_balance()
    assert before is not None and before.credits == 100.0 and before.spendable == 100.0
    hook.send_bulk(["9816111111", "9816111112", "9816111113"], "x" * 200, chunk_size=3)  # 2 segments each
    after = hook.get_balance()
    assert after is not None and after.credits == 97.0


def test_balance_with_string_fields(hook: MessageCentralHook, sandbox: Any) -> None:
    sandbox.configure(balance=12.5, field_types="strings")
    balance = hook.get_balance()
    assert balance is not None and balance.credits == 12.5


@pytest.mark.parametrize("status", [404, 405])
def test_missing_balance_endpoint_only_warns(
    hook: MessageCentralHook, sandbox: Any, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox.set_faults(balance_endpoint=status)
    assert hook.get_balance() is None
    assert "no balance endpoint" in caplog.text


def test_check_balance_refuses_an_overspending_campaign_and_lets_a_smaller_one_through(
    mc_conn: Any, sandbox: Any
) -> None:
    mc_conn(price_per_segment=0.2, check_balance=True, send_window="off")
    sandbox.configure(balance=10, credit_per_segment=0.2)
    big = MessageCentralBulkSendOperator(
        task_id="send", phone_numbers=[f"98162{i:05d}" for i in range(60)], message="Sale"
    )
    with pytest.raises(MessageCentralInsufficientCreditError) as info:
        big.execute(context("big"))
    assert "estimated cost 12 (60 segment(s) x 0.2) is over the account's balance of 10" in str(info.value)
    assert sandbox.stats()["send_requests"] == 0
    small = MessageCentralBulkSendOperator(
        task_id="send", phone_numbers=[f"98163{i:05d}" for i in range(40)], message="Sale"
    )
    assert small.execute(context("small"))["accepted"] == 40
    assert len(sandbox.messages()) == 40


def test_dry_run_preview_shows_the_balance(mc_conn: Any, sandbox: Any) -> None:
    mc_conn(price_per_segment=1, send_window="off")
    sandbox.configure(balance=3)
    op = MessageCentralBulkSendOperator(
        task_id="send", phone_numbers=NUMBERS[:5], message="Sale", dry_run=True, check_balance=True
    )
    preview = op.execute(context("dry"))
    assert preview["balance"] == {"credits": 3.0, "spendable": 3.0, "estimated_cost": 5.0, "covers": False}
    assert sandbox.stats()["send_requests"] == 0


def test_credit_running_out_mid_campaign_stops_it_saying_what_was_sent(mc_conn: Any, sandbox: Any) -> None:
    mc_conn(send_window="off")
    sandbox.configure(balance=250)
    op = MessageCentralBulkSendOperator(
        task_id="send", phone_numbers=[f"98164{i:05d}" for i in range(500)], message="Sale", chunk_size=100
    )
    with pytest.raises(MessageCentralError) as info:
        op.execute(context("out"))
    text = str(info.value)
    assert "[402]" in text and "INSUFFICIENT_BALANCE" in text and "top up" in text
    assert "Accepted: 200 recipients" in text and "Not sent: 200 recipients" in text
    assert isinstance(info.value.__cause__, MessageCentralInsufficientCreditError)


# -- named errors -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", sorted(BUSINESS_ERRORS))
@pytest.mark.parametrize("field_types", ["documented", "strings"])
def test_each_code_surfaces_by_name(hook: MessageCentralHook, sandbox: Any, code: int, field_types: str) -> None:
    sandbox.configure(field_types=field_types)
    sandbox.set_faults(fail_on_send={"nth": 1, "code": code})
    known = KNOWN_CODES[code]
    if issubclass(known.error, MessageCentralRetryableError):
        hook.send_message("9816111111", "hi")  # refused once, retried with backoff, then sent
        assert sandbox.stats()["send_requests"] == 2 and len(sandbox.messages()) == 1
        return
    with pytest.raises(known.error) as info:
        hook.send_message("9816111111", "hi")
    assert info.value.name == known.name and str(info.value.code) == str(code)
    assert known.meaning in str(info.value)
    assert sandbox.stats()["send_requests"] == 1 and sandbox.messages() == []


def test_ids_as_ints_are_kept_as_text(hook: MessageCentralHook, sandbox: Any) -> None:
    sandbox.configure(field_types="ints")
    data = hook.send_message("9816111111", "hi")
    assert isinstance(data["verificationId"], str) and data["verificationId"].isdigit()
