"""The account's credit: reading wallet/credits/balance, the check_balance guard and the dry run's balance line."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fake_http import FakeMessageCentral, install, ok_send, status

from airflow_provider_messagecentral.client.balance import Balance
from airflow_provider_messagecentral.client.tokens import TokenCache
from airflow_provider_messagecentral.exceptions import (
    MessageCentralAccountError,
    MessageCentralAuthError,
    MessageCentralError,
    MessageCentralInsufficientCreditError,
    MessageCentralValidationError,
)
from airflow_provider_messagecentral.hooks.messagecentral import MessageCentralHook
from airflow_provider_messagecentral.operators.messagecentral import (
    MessageCentralBulkSendOperator,
    MessageCentralFileSendOperator,
)
from airflow_provider_messagecentral.safety.cost import check_credit
from airflow_provider_messagecentral.safety.preview import balance_text, preview_text

NUMBERS = [f"98163{i:05d}" for i in range(6)]


def wallet(credits: Any = 1234.5, **data: Any) -> dict[str, Any]:
    """A balance answer in the shape of MessageCentral's app DTO (WalletBalanceDto)."""
    body = {
        "customerId": "C-1",
        "credits": credits,
        "lastRechargedCredit": 2000.0,
        "createdDateTime": "2026-01-01T00:00:00",
        "updatedDateTime": "2026-12-01T00:00:00",
        "minimumCreditsAllowed": "0",
        "userPaid": True,
        **data,
    }
    return {"json": {"responseCode": 200, "message": "SUCCESS", "data": body}}


# -- the hook -----------------------------------------------------------------------------------------------


@pytest.fixture
def hook(monkeypatch: pytest.MonkeyPatch, mocker: Any) -> tuple[MessageCentralHook, FakeMessageCentral]:
    conn = {
        "conn_type": "messagecentral",
        "host": "https://mc.example.test",
        "login": "C-24C217810E09483",
        "password": "S3cret-pass!",
        "extra": {"email": "ops@example.com"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_MC_BAL", json.dumps(conn))
    mocker.patch("airflow_provider_messagecentral.client.retries.time.sleep")
    fake = FakeMessageCentral()
    h = MessageCentralHook("mc_bal", token_cache=TokenCache())
    h.get_conn().mount("https://", fake)
    return h, fake


def test_balance_as_messagecentral_app_reads_it(hook: Any) -> None:
    h, fake = hook
    fake.send_replies.append(wallet())
    assert h.get_balance() == Balance(credits=1234.5, minimum_allowed=0.0, last_recharged=2000.0, customer_id="C-1")
    (call,) = [c for c in fake.calls if not c.path.endswith("/token")]
    assert (call.method, call.path, call.params) == (
        "GET",
        "/wallet/credits/balance",
        {"customerId": "C-24C217810E09483"},
    )
    assert call.headers["authToken"] == "tok-1"


@pytest.mark.parametrize(
    ("credits", "minimum", "expected", "spendable"),
    [(100, None, 100.0, 100.0), ("99.5", "0", 99.5, 99.5), ("250", "50", 250.0, 200.0), (10, "20", 10.0, 0.0)],
)
def test_credits_and_minimum_as_numbers_or_text(
    hook: Any, credits: Any, minimum: Any, expected: float, spendable: float
) -> None:
    h, fake = hook
    fake.send_replies.append(wallet(credits, minimumCreditsAllowed=minimum))
    balance = h.get_balance()
    assert balance is not None and (balance.credits, balance.spendable) == (expected, spendable)


def test_response_code_as_text_is_read(hook: Any) -> None:
    h, fake = hook
    reply = wallet(5)
    reply["json"]["responseCode"] = "200"
    fake.send_replies.append(reply)
    assert h.get_balance() == Balance(credits=5.0, minimum_allowed=0.0, last_recharged=2000.0, customer_id="C-1")


@pytest.mark.parametrize("code", [404, 405])
def test_no_balance_endpoint_is_none_with_one_warning(hook: Any, code: int, caplog: pytest.LogCaptureFixture) -> None:
    h, fake = hook
    fake.send_replies.append(status(code, {"status": code, "error": "Not Found"}))
    with caplog.at_level(logging.WARNING):
        assert h.get_balance() is None
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "no balance endpoint" in r.getMessage()]
    assert len(warnings) == 1
    assert len(fake.calls) == 2  # the token and one balance request: not retried


def test_refusal_is_its_named_error(hook: Any) -> None:
    h, fake = hook
    fake.send_replies.append({"json": {"responseCode": 501, "message": "INVALID_CUSTOMER_ID", "data": None}})
    with pytest.raises(MessageCentralAccountError, match="INVALID_CUSTOMER_ID"):
        h.get_balance()


@pytest.mark.parametrize("credits", [None, "lots", float("nan")])
def test_answer_without_credits_is_an_error(hook: Any, credits: Any) -> None:
    h, fake = hook
    fake.send_replies.append(wallet(credits))
    with pytest.raises(MessageCentralError, match="no 'credits' number"):
        h.get_balance()


def test_expired_token_is_refreshed_once_and_5xx_retried(hook: Any) -> None:
    h, fake = hook
    fake.token_replies.extend([{"json": {"token": "old"}}, {"json": {"token": "new"}}])
    fake.send_replies.extend([status(401), status(503), wallet(7)])
    balance = h.get_balance()
    assert balance is not None and balance.credits == 7.0


def test_refused_twice_is_an_auth_error(hook: Any) -> None:
    h, fake = hook
    fake.send_replies.extend([status(403), status(403)])
    with pytest.raises(MessageCentralAuthError):
        h.get_balance()


# -- the guard ----------------------------------------------------------------------------------------------


def test_check_credit_names_both_numbers() -> None:
    balance = Balance(credits=50.0)
    assert check_credit(200, 0.25, balance)["covers"] is True
    with pytest.raises(MessageCentralInsufficientCreditError) as info:
        check_credit(1000, 0.25, balance)
    assert "estimated cost 250 (1000 segment(s) x 0.25) is over the account's balance of 50" in str(info.value)
    assert "nothing was sent" in str(info.value)


def test_check_credit_counts_only_what_is_left_and_the_minimum() -> None:
    assert check_credit(1000, 0.25, Balance(credits=100.0), share=0.4)["estimated_cost"] == 100.0
    with pytest.raises(MessageCentralInsufficientCreditError, match=r"for the 40% not sent yet.*\(80 spendable"):
        check_credit(1000, 0.25, Balance(credits=100.0, minimum_allowed=20.0), share=0.4)


def test_dry_run_reports_instead_of_refusing() -> None:
    result = check_credit(1000, 0.25, Balance(credits=50.0), refuse=False)
    assert result == {"credits": 50.0, "spendable": 50.0, "estimated_cost": 250.0, "covers": False}
    assert "BELOW the estimated cost 250; a real run would be refused" in balance_text(result)
    assert "covers the estimated cost 10" in balance_text(check_credit(40, 0.25, Balance(credits=50.0)))
    assert "unknown" in balance_text(None)


# -- the operators ------------------------------------------------------------------------------------------


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeMessageCentral:
    extra = {
        "email": "ops@example.com",
        "auth_token": "tok",
        "reports_url": f"sqlite:///{tmp_path / 'r.db'}",
        "price_per_segment": 0.5,
        "send_window": "off",
    }
    conn = {"conn_type": "messagecentral", "host": "http://mc.invalid", "login": "C-1", "password": "p", "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_MESSAGECENTRAL_DEFAULT", json.dumps(conn))
    monkeypatch.delenv("AIRFLOW_VAR_MESSAGECENTRAL_DRY_RUN", raising=False)
    fake = install(monkeypatch, FakeMessageCentral())
    fake.conn = conn  # type: ignore[attr-defined]
    fake.reports_url = extra["reports_url"]  # type: ignore[attr-defined]
    return fake


def context(run_id: str = "run-1", try_number: int = 1) -> Any:
    ti = SimpleNamespace(dag_id="dag", run_id=run_id, task_id="send", map_index=-1, try_number=try_number)
    return {"ti": ti, "params": {}}


def sends(api: FakeMessageCentral) -> list[Any]:
    return [c for c in api.calls if c.path.endswith("/send")]


def test_overspending_campaign_is_refused_before_any_send(api: FakeMessageCentral) -> None:
    api.send_replies.append(wallet(2.0))
    op = MessageCentralBulkSendOperator(task_id="t", phone_numbers=NUMBERS, message="Sale", check_balance=True)
    with pytest.raises(MessageCentralInsufficientCreditError) as info:
        op.execute(context())
    assert "estimated cost 3 (6 segment(s) x 0.5) is over the account's balance of 2" in str(info.value)
    assert sends(api) == []


def test_campaign_the_balance_covers_is_sent(api: FakeMessageCentral) -> None:
    api.send_replies.extend([wallet(3.0), ok_send("tx-1")])
    op = MessageCentralBulkSendOperator(task_id="t", phone_numbers=NUMBERS, message="Sale", check_balance=True)
    assert op.execute(context())["accepted"] == 6
    assert len(sends(api)) == 1


def test_connection_extra_turns_it_on_and_the_task_argument_off(
    api: FakeMessageCentral, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = api.conn  # type: ignore[attr-defined]
    conn["extra"]["check_balance"] = True
    monkeypatch.setenv("AIRFLOW_CONN_MESSAGECENTRAL_DEFAULT", json.dumps(conn))
    api.send_replies.append(wallet(0))
    with pytest.raises(MessageCentralInsufficientCreditError):
        MessageCentralBulkSendOperator(task_id="t", phone_numbers=NUMBERS, message="Sale").execute(context("a"))
    api.send_replies.append(ok_send("tx-2"))
    op = MessageCentralBulkSendOperator(task_id="t", phone_numbers=NUMBERS, message="Sale", check_balance=False)
    assert op.execute(context("b"))["accepted"] == 6
    assert not any(c.path.endswith("/balance") for c in api.calls[2:])


def test_no_balance_endpoint_only_warns(api: FakeMessageCentral, caplog: pytest.LogCaptureFixture) -> None:
    api.send_replies.extend([status(404), ok_send("tx-1")])
    op = MessageCentralBulkSendOperator(task_id="t", phone_numbers=NUMBERS, message="Sale", check_balance=True)
    assert op.execute(context())["accepted"] == 6
    assert "no balance endpoint" in caplog.text


def test_check_balance_needs_a_price(api: FakeMessageCentral, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = api.conn  # type: ignore[attr-defined]
    del conn["extra"]["price_per_segment"]
    monkeypatch.setenv("AIRFLOW_CONN_MESSAGECENTRAL_DEFAULT", json.dumps(conn))
    op = MessageCentralBulkSendOperator(task_id="t", phone_numbers=NUMBERS, message="Sale", check_balance=True)
    with pytest.raises(MessageCentralValidationError, match="check_balance needs price_per_segment"):
        op.execute(context())
    assert api.calls == []


def test_dry_run_shows_the_balance(
    api: FakeMessageCentral, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    api.send_replies.append(wallet(1.0))
    rows = [{"mobile": n, "name": f"Customer {i}"} for i, n in enumerate(NUMBERS)]
    op = MessageCentralFileSendOperator(task_id="t", message="Hi ##name##", rows=rows, dry_run=True, check_balance=True)
    result = op.execute(context())
    assert result["dry_run"] is True and result["balance"]["covers"] is False
    assert result["balance"]["credits"] == 1.0 and result["balance"]["estimated_cost"] == 3.0
    logged = caplog.text + capsys.readouterr().out
    assert "balance: 1 credit(s) (1 spendable): BELOW the estimated cost 3" in logged
    assert "BELOW the estimated cost 3" in preview_text(result)
    assert sends(api) == []


def test_a_retry_checks_only_what_was_not_sent(api: FakeMessageCentral) -> None:
    api.send_replies.extend([wallet(100), ok_send("tx-1"), {"json": {"responseCode": 805, "message": "NO_CREDIT"}}])
    op = MessageCentralBulkSendOperator(
        task_id="t", phone_numbers=NUMBERS, message="Sale", chunk_size=3, check_balance=True
    )
    with pytest.raises(MessageCentralError, match=r"INSUFFICIENT_CREDITS.*Accepted: 3 recipients"):
        op.execute(context())
    api.send_replies.extend([wallet(1.5), ok_send("tx-2")])  # 3 left x 0.5 = 1.5: just enough
    assert op.execute(context(try_number=2))["accepted"] == 6
