"""Every known responseCode surfaces as its named error with the right retry class; string/int variants parse."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fake_http import FakeMessageCentral, ok_send, status

from airflow_provider_messagecentral.client.error_codes import KNOWN_CODES, code_number, is_success, refusal
from airflow_provider_messagecentral.client.tokens import TokenCache
from airflow_provider_messagecentral.exceptions import (
    MessageCentralAccountError,
    MessageCentralDuplicateError,
    MessageCentralError,
    MessageCentralInsufficientCreditError,
    MessageCentralLimitError,
    MessageCentralRequestError,
    MessageCentralRetryableError,
    MessageCentralServerError,
    MessageCentralUncertainError,
    MessageCentralVerificationError,
)
from airflow_provider_messagecentral.hooks.messagecentral import MessageCentralHook

PASSWORD = "S3cret-pass!"
TOKEN = "tok-abcdef-123456"

EXPECTED: dict[int, tuple[str, type[MessageCentralError]]] = {
    400: ("BAD_REQUEST", MessageCentralRequestError),
    402: ("INSUFFICIENT_BALANCE", MessageCentralInsufficientCreditError),
    409: ("DUPLICATE_RESOURCE", MessageCentralDuplicateError),
    500: ("SERVER_ERROR", MessageCentralServerError),
    501: ("INVALID_CUSTOMER_ID", MessageCentralAccountError),
    505: ("INVALID_VERIFICATION_ID", MessageCentralVerificationError),
    506: ("REQUEST_ALREADY_EXISTS", MessageCentralDuplicateError),
    508: ("INSUFFICIENT_CREDITS", MessageCentralInsufficientCreditError),
    511: ("INVALID_COUNTRY_CODE", MessageCentralRequestError),
    601: ("INVALID_MOBILE_NUMBER", MessageCentralRequestError),
    700: ("VERIFICATION_FAILED", MessageCentralVerificationError),
    702: ("WRONG_OTP_PROVIDED", MessageCentralVerificationError),
    703: ("ALREADY_VERIFIED", MessageCentralVerificationError),
    705: ("VERIFICATION_EXPIRED", MessageCentralVerificationError),
    800: ("MAXIMUM_LIMIT_REACHED", MessageCentralLimitError),
    805: ("INSUFFICIENT_CREDITS", MessageCentralInsufficientCreditError),
}
RETRIED = (MessageCentralLimitError, MessageCentralServerError)


@pytest.fixture
def make_hook(monkeypatch: pytest.MonkeyPatch, mocker: Any) -> Any:
    mocker.patch("airflow_provider_messagecentral.client.retries.time.sleep")

    def make(fake: FakeMessageCentral, **extra: Any) -> MessageCentralHook:
        conn = {
            "conn_type": "messagecentral",
            "host": "https://mc.example.test",
            "login": "C-24C217810E09483",
            "password": PASSWORD,
            "extra": {"email": "ops@example.com", "country": "91", "max_retries": 2, **extra},
        }
        monkeypatch.setenv("AIRFLOW_CONN_MC_CODES", json.dumps(conn))
        fake.default_token = TOKEN
        hook = MessageCentralHook("mc_codes", token_cache=TokenCache())
        hook.get_conn().mount("https://", fake)
        return hook

    return make


def refused(code: Any, *, data_code: Any = None, message: str | None = None) -> dict[str, Any]:
    number = code_number(code)
    name = message or (KNOWN_CODES[number].name if number in KNOWN_CODES else "SOMETHING")
    data = {"verificationId": None, "responseCode": data_code if data_code is not None else str(code)}
    data.update(errorMessage=f"{name} happened", transactionId=None)
    return {"json": {"responseCode": code, "message": name, "data": data}}


def test_the_table_is_the_documented_one() -> None:
    assert {code: (known.name, known.error) for code, known in KNOWN_CODES.items()} == EXPECTED


@pytest.mark.parametrize("code", sorted(EXPECTED))
def test_each_code_surfaces_by_name_with_its_retry_class(code: int, make_hook: Any) -> None:
    name, cls = EXPECTED[code]
    fake = FakeMessageCentral(send_replies=[refused(code) for _ in range(5)])
    with pytest.raises(cls) as info:
        make_hook(fake).send_message("9816111111", "hi")
    err = info.value
    assert type(err) is cls and err.name == name and err.code == code
    assert f"({name}: {KNOWN_CODES[code].meaning})" in str(err) and str(err).startswith(f"[{code}] send to +91")
    retried = issubclass(cls, RETRIED)
    assert isinstance(err, MessageCentralRetryableError) is retried
    assert not isinstance(err, MessageCentralUncertainError)  # an answer came: it was refused, not lost
    assert len(fake.send_calls) == (3 if retried else 1)  # max_retries=2
    assert PASSWORD not in str(err) and TOKEN not in str(err)


@pytest.mark.parametrize(("top", "inner"), [("805", "805"), (805, 805), (200, "805"), ("200", 805), (" 805 ", None)])
def test_codes_as_int_or_string_at_the_top_or_under_data(top: Any, inner: Any, make_hook: Any) -> None:
    fake = FakeMessageCentral(send_replies=[refused(top, data_code=inner, message="NO_CREDIT")])
    with pytest.raises(MessageCentralInsufficientCreditError, match="INSUFFICIENT_CREDITS"):
        make_hook(fake).send_message("9816111111", "hi")


def test_http_error_status_with_a_known_code_in_the_body(make_hook: Any) -> None:
    fake = FakeMessageCentral(send_replies=[status(400, {"responseCode": "511", "message": "INVALID_COUNTRY_CODE"})])
    with pytest.raises(MessageCentralRequestError, match="HTTP 400: INVALID_COUNTRY_CODE") as info:
        make_hook(fake).send_message("9816111111", "hi")
    assert info.value.http_status == 400 and info.value.name == "INVALID_COUNTRY_CODE"


def test_limit_reached_is_retried_with_backoff_then_sent(make_hook: Any) -> None:
    fake = FakeMessageCentral(send_replies=[refused(800), refused(800), ok_send("tx-9")])
    assert make_hook(fake).send_message("9816111111", "hi")["transactionId"] == "tx-9"
    assert len(fake.send_calls) == 3


def test_unknown_code_keeps_the_generic_final_error(make_hook: Any) -> None:
    fake = FakeMessageCentral(send_replies=[refused(999, message="NEW_THING")])
    with pytest.raises(MessageCentralError, match="NEW_THING") as info:
        make_hook(fake).send_message("9816111111", "hi")
    assert type(info.value) is MessageCentralError and info.value.name is None and info.value.code == 999
    assert len(fake.send_calls) == 1


@pytest.mark.parametrize(
    ("top", "inner", "verification"),
    [(200, "200", "1234"), ("200", "200", 1234), (200, 200, 1234), ("200", None, "1234"), (200.0, "200", 1234)],
)
def test_successful_answers_in_every_variant_keep_ids_as_text(
    top: Any, inner: Any, verification: Any, make_hook: Any
) -> None:
    reply = ok_send("tx-1")
    reply["json"]["responseCode"] = top
    reply["json"]["data"].update(responseCode=inner, verificationId=verification)
    data = make_hook(FakeMessageCentral(send_replies=[reply])).send_message("9816111111", "hi")
    assert data["verificationId"] == "1234" and data["transactionId"] == "tx-1"


def test_numeric_transaction_id_is_kept_as_text(make_hook: Any) -> None:
    reply = ok_send()
    reply["json"]["data"]["transactionId"] = 987654321
    assert make_hook(FakeMessageCentral(send_replies=[reply])).send_message("9816111111", "hi")["transactionId"] == (
        "987654321"
    )


@pytest.mark.parametrize(
    ("code", "number"), [(200, 200), ("200", 200), (" 805", 805), (805.0, 805), ("x", None), (True, None), (None, None)]
)
def test_code_number(code: Any, number: int | None) -> None:
    assert code_number(code) == number
    assert is_success(code) is (number == 200)


def test_refusal_keeps_retry_after_on_retried_classes() -> None:
    err = refusal(800, "send", retry_after=7.0)
    assert isinstance(err, MessageCentralLimitError) and err.retry_after == 7.0
    assert refusal("oops", "send").code == "oops"
