"""MessageCentralHook over real HTTP against the sandbox: sends, token expiry, 429 and 5xx bursts."""

from __future__ import annotations

from typing import Any

import openpyxl
import pytest

from airflow_provider_messagecentral.exceptions import MessageCentralError, MessageCentralValidationError
from airflow_provider_messagecentral.hooks.messagecentral import MessageCentralHook

pytestmark = pytest.mark.integration


@pytest.fixture
def hook(mc_conn: Any) -> MessageCentralHook:
    return MessageCentralHook()


def test_single_send_is_texted_once(hook: MessageCentralHook, sandbox: Any) -> None:
    data = hook.send_message("9816111111", "Your order has shipped")
    (msg,) = sandbox.messages()
    assert msg["mobile"] == "919816111111" and msg["text"] == "Your order has shipped"
    assert data["transactionId"] == msg["transaction_id"]
    assert data["mobileNumber"] == "9816111111"


def test_bulk_send_texts_every_number_once(hook: MessageCentralHook, sandbox: Any) -> None:
    numbers = [f"98161{i:05d}" for i in range(250)]
    results = hook.send_bulk(numbers + numbers[:10], "Sale today", chunk_size=100)
    assert len(results) == 3
    texted = [m["mobile"] for m in sandbox.messages()]
    assert sorted(texted) == sorted(f"9198161{i:05d}" for i in range(250))
    assert {m["text"] for m in sandbox.messages()} == {"Sale today"}


def test_file_send_renders_per_recipient_text(hook: MessageCentralHook, sandbox: Any, tmp_path: Any) -> None:
    path = tmp_path / "audience.xlsx"
    wb = openpyxl.Workbook()
    sheet = wb.active
    sheet.append(["mobile", "var1", "var2"])
    sheet.append(["919816111111", "Asha", "120"])
    sheet.append(["919816111112", "Ravi", "75"])
    wb.save(path)
    hook.send_file(path, "Hi ##var1##, your balance is ##var2##")
    texts = {m["mobile"]: m["text"] for m in sandbox.messages()}
    assert texts == {
        "919816111111": "Hi Asha, your balance is 120",
        "919816111112": "Hi Ravi, your balance is 75",
    }


def test_token_expiry_mid_sequence_refreshes_once_per_expiry(hook: MessageCentralHook, sandbox: Any) -> None:
    for i in range(30):
        if i in (10, 20):
            sandbox.set_faults(expire_tokens=True)
        hook.send_message(f"98161{i:05d}", "hi")
    assert sandbox.stats()["token_requests"] == 3
    assert len(sandbox.messages()) == 30
    assert len({m["mobile"] for m in sandbox.messages()}) == 30


def test_thousand_sends_make_one_token_request(hook: MessageCentralHook, sandbox: Any) -> None:
    for i in range(1000):
        hook.send_message(f"98{i:08d}", "hi")
    stats = sandbox.stats()
    assert stats["token_requests"] == 1
    assert stats["messages"] == 1000


@pytest.mark.parametrize("retry_after", ["1", "http-date"])
def test_429_burst_completes(hook: MessageCentralHook, sandbox: Any, retry_after: str) -> None:
    sandbox.set_faults(rate_limit={"count": 2, "retry_after": retry_after, "seconds": 1})
    hook.send_message("9816111111", "hi")
    assert len(sandbox.messages()) == 1
    assert sandbox.stats()["send_requests"] == 3


def test_5xx_burst_completes_without_duplicates(hook: MessageCentralHook, sandbox: Any) -> None:
    sandbox.set_faults(errors={"count": 3, "status": 503})
    hook.send_bulk([f"98161{i:05d}" for i in range(20)], "hi", chunk_size=5)
    texted = [m["mobile"] for m in sandbox.messages()]
    assert len(texted) == 20 == len(set(texted))


def test_business_error_is_not_retried(hook: MessageCentralHook, sandbox: Any) -> None:
    sandbox.set_faults(fail_on_send={"nth": 1, "code": 402})
    with pytest.raises(MessageCentralError, match="INSUFFICIENT_BALANCE") as info:
        hook.send_message("9816111111", "hi")
    assert info.value.code == 402
    assert sandbox.stats()["send_requests"] == 1


def test_sandbox_rejects_what_we_would_not_send(hook: MessageCentralHook, sandbox: Any) -> None:
    with pytest.raises(MessageCentralValidationError):
        hook.send_message("12345", "hi")
    assert sandbox.stats()["send_requests"] == 0


def test_test_connection_against_the_sandbox(mc_conn: Any, sandbox: Any) -> None:
    ok, text = MessageCentralHook().test_connection()
    assert ok, text
    assert sandbox.stats()["send_requests"] == 0
    mc_conn(conn_id="mc_wrong")
    import json
    import os

    conn = json.loads(os.environ["AIRFLOW_CONN_MC_WRONG"])
    conn["password"] = "wrong-password"
    os.environ["AIRFLOW_CONN_MC_WRONG"] = json.dumps(conn)
    ok, text = MessageCentralHook("mc_wrong").test_connection()
    assert not ok and "refused the credentials" in text and "wrong-password" not in text
