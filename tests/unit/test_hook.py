"""MessageCentralHook against a faked HTTP boundary: token, caching, refresh, retries, limits, secrets."""

from __future__ import annotations

import base64
import json
import logging
import threading
from typing import Any

import pytest
import requests
from fake_http import FakeMessageCentral, ok_send, status

from airflow_provider_messagecentral.client.tokens import TokenCache, jwt_expiry
from airflow_provider_messagecentral.exceptions import (
    MessageCentralAuthError,
    MessageCentralBulkError,
    MessageCentralError,
    MessageCentralRetryableError,
    MessageCentralUncertainError,
    MessageCentralValidationError,
)
from airflow_provider_messagecentral.hooks.messagecentral import MessageCentralHook

PASSWORD = "S3cret-pass!"
KEY = base64.b64encode(PASSWORD.encode()).decode()


def make_jwt(exp: int) -> str:
    def enc(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{enc({'alg': 'HS512'})}.{enc({'sub': 'C-1', 'iat': exp - 100, 'exp': exp})}.c2ln"


@pytest.fixture
def sleeps(mocker: Any) -> list[float]:
    waited: list[float] = []
    mocker.patch("airflow_provider_messagecentral.client.retries.time.sleep", side_effect=waited.append)
    return waited


@pytest.fixture
def conn_env(monkeypatch: pytest.MonkeyPatch):
    def set_conn(**extra: Any) -> None:
        conn = {
            "conn_type": "messagecentral",
            "host": "https://mc.example.test",
            "login": "C-24C217810E09483",
            "password": PASSWORD,
            "extra": {"email": "ops@example.com", "country": "91", "sender_id": "UTOMOB", **extra},
        }
        monkeypatch.setenv("AIRFLOW_CONN_MC_UNIT", json.dumps(conn))

    set_conn()
    return set_conn


@pytest.fixture
def fake() -> FakeMessageCentral:
    return FakeMessageCentral()


@pytest.fixture
def make_hook(conn_env: Any, fake: FakeMessageCentral, sleeps: list[float]):
    def make(cache: TokenCache | None = None) -> MessageCentralHook:
        hook = MessageCentralHook("mc_unit", token_cache=cache or TokenCache())
        hook.get_conn().mount("https://", fake)
        return hook

    return make


def test_token_request_carries_documented_parameters(make_hook: Any, fake: FakeMessageCentral) -> None:
    hook = make_hook()
    assert hook.get_token() == "tok-1"
    (call,) = fake.token_calls
    assert call.method == "GET"
    assert call.path == "/auth/v1/authentication/token"
    assert call.params == {
        "customerId": "C-24C217810E09483",
        "key": KEY,
        "scope": "NEW",
        "country": "91",
        "email": "ops@example.com",
    }
    assert call.headers["accept"] == "*/*"


def test_token_under_data_is_accepted(make_hook: Any, fake: FakeMessageCentral) -> None:
    fake.token_replies.append({"json": {"responseCode": 200, "data": {"token": "nested"}}})
    assert make_hook().get_token() == "nested"


def test_many_sends_fetch_one_token(make_hook: Any, fake: FakeMessageCentral) -> None:
    hook = make_hook()
    for _ in range(50):
        hook.send_message("9999999999", "hi")
    assert len(fake.token_calls) == 1
    assert len(fake.send_calls) == 50
    assert all(c.headers["authToken"] == "tok-1" for c in fake.send_calls)


def test_hooks_of_one_connection_share_the_process_cache(make_hook: Any, fake: FakeMessageCentral) -> None:
    cache = TokenCache()
    make_hook(cache).send_message("9999999999", "a")
    make_hook(cache).send_message("9999999999", "b")
    assert len(fake.token_calls) == 1


def test_threads_fetch_one_token(make_hook: Any, fake: FakeMessageCentral) -> None:
    gate = threading.Event()

    def slow_token(request: requests.PreparedRequest) -> dict[str, Any]:
        gate.wait(0.2)
        return {"json": {"token": "tok-threads"}}

    fake.token_replies.append(slow_token)
    hook = make_hook()
    tokens: list[str] = []
    threads = [threading.Thread(target=lambda: tokens.append(hook.get_token())) for _ in range(8)]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join()
    assert tokens == ["tok-threads"] * 8
    assert len(fake.token_calls) == 1


def test_token_cached_until_shortly_before_jwt_expiry(make_hook: Any, fake: FakeMessageCentral) -> None:
    now = [1_000_000.0]
    cache = TokenCache(clock=lambda: now[0])
    first = make_jwt(exp=int(now[0]) + 3600)
    fake.token_replies += [{"json": {"token": first}}, {"json": {"token": "second"}}]
    hook = make_hook(cache)
    assert hook.get_token() == first
    now[0] += 3600 - 120  # still two minutes to go: cached
    assert hook.get_token() == first
    now[0] += 90  # thirty seconds left, within the refresh margin
    assert hook.get_token() == "second"
    assert len(fake.token_calls) == 2


def test_token_without_exp_uses_configured_lifetime(conn_env: Any, make_hook: Any, fake: FakeMessageCentral) -> None:
    conn_env(token_lifetime=600)
    now = [0.0]
    hook = make_hook(TokenCache(clock=lambda: now[0]))
    hook.get_token()
    now[0] = 500
    hook.get_token()
    now[0] = 545  # 600 s lifetime minus the 60 s margin
    hook.get_token()
    assert len(fake.token_calls) == 2


def test_jwt_expiry_reads_exp_and_tolerates_garbage() -> None:
    assert jwt_expiry(make_jwt(exp=123)) == 123.0
    assert jwt_expiry("not-a-jwt") is None
    assert jwt_expiry("a.!!!.c") is None


def test_401_refreshes_once_and_repeats_once(make_hook: Any, fake: FakeMessageCentral) -> None:
    fake.token_replies += [{"json": {"token": "old"}}, {"json": {"token": "new"}}]
    fake.send_replies += [status(401), ok_send("tx-after-refresh")]
    result = make_hook().send_message("9999999999", "hi")
    assert result["transactionId"] == "tx-after-refresh"
    assert [c.headers["authToken"] for c in fake.send_calls] == ["old", "new"]
    assert len(fake.token_calls) == 2


def test_second_401_raises_auth_error(make_hook: Any, fake: FakeMessageCentral) -> None:
    fake.send_replies += [status(401), status(403)]
    with pytest.raises(MessageCentralAuthError, match="freshly issued token"):
        make_hook().send_message("9999999999", "hi")
    assert len(fake.send_calls) == 2
    assert len(fake.token_calls) == 2


def test_bad_credentials_name_the_connection_not_the_secret(make_hook: Any, fake: FakeMessageCentral) -> None:
    fake.token_replies.append(status(401))
    with pytest.raises(MessageCentralAuthError) as info:
        make_hook().get_token()
    assert "mc_unit" in str(info.value)
    assert PASSWORD not in str(info.value) and KEY not in str(info.value)


def test_pre_issued_token_skips_the_token_call(conn_env: Any, make_hook: Any, fake: FakeMessageCentral) -> None:
    conn_env(auth_token="pre-issued")
    make_hook().send_message("9999999999", "hi")
    assert fake.token_calls == []
    assert fake.send_calls[0].headers["authToken"] == "pre-issued"


@pytest.mark.parametrize("code", [500, 502, 503, 504])
def test_5xx_is_retried(code: int, make_hook: Any, fake: FakeMessageCentral, sleeps: list[float]) -> None:
    fake.send_replies += [status(code), status(code), ok_send()]
    assert make_hook().send_message("9999999999", "hi")["transactionId"] == "tx-1"
    assert len(fake.send_calls) == 3
    assert len(sleeps) == 2


def test_429_honours_retry_after_seconds(make_hook: Any, fake: FakeMessageCentral, sleeps: list[float]) -> None:
    fake.send_replies += [status(429, **{"Retry-After": "1.5"}), ok_send()]
    make_hook().send_message("9999999999", "hi")
    assert sleeps == [1.5]


def test_429_honours_retry_after_http_date(make_hook: Any, fake: FakeMessageCentral, sleeps: list[float]) -> None:
    import email.utils
    import time

    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    fake.send_replies += [status(429, **{"Retry-After": when}), ok_send()]
    make_hook().send_message("9999999999", "hi")
    assert len(sleeps) == 1 and 25 <= sleeps[0] <= 30


def test_retry_after_is_capped(conn_env: Any, make_hook: Any, fake: FakeMessageCentral, sleeps: list[float]) -> None:
    conn_env(max_retry_wait=5)
    fake.send_replies += [status(429, **{"Retry-After": "3600"}), ok_send()]
    make_hook().send_message("9999999999", "hi")
    assert sleeps == [5.0]


def test_retries_are_bounded(conn_env: Any, make_hook: Any, fake: FakeMessageCentral, sleeps: list[float]) -> None:
    conn_env(max_retries=3)
    fake.send_replies += [status(503)] * 10
    with pytest.raises(MessageCentralRetryableError, match="HTTP 503"):
        make_hook().send_message("9999999999", "hi")
    assert len(fake.send_calls) == 4


@pytest.mark.parametrize("code", [400, 404, 409, 422])
def test_other_4xx_is_final(code: int, make_hook: Any, fake: FakeMessageCentral) -> None:
    fake.send_replies.append(status(code, {"responseCode": 601, "message": "INVALID_MOBILE_NUMBER"}))
    with pytest.raises(MessageCentralError, match="INVALID_MOBILE_NUMBER") as info:
        make_hook().send_message("9999999999", "hi")
    assert not isinstance(info.value, MessageCentralRetryableError)
    assert info.value.code == 601
    assert len(fake.send_calls) == 1


def test_business_failure_in_http_200_is_final(make_hook: Any, fake: FakeMessageCentral) -> None:
    body = {
        "responseCode": 402,
        "message": "INSUFFICIENT_BALANCE",
        "data": {"responseCode": "402", "errorMessage": "Insufficient balance", "transactionId": None},
    }
    fake.send_replies.append({"json": body})
    with pytest.raises(MessageCentralError, match="INSUFFICIENT_BALANCE - Insufficient balance") as info:
        make_hook().send_message("9999999999", "hi")
    assert info.value.code == 402
    assert len(fake.send_calls) == 1


def test_error_message_with_200_code_is_a_failure(make_hook: Any, fake: FakeMessageCentral) -> None:
    body = ok_send()["json"]
    body["data"]["errorMessage"] = "Route blocked"
    fake.send_replies.append({"json": body})
    with pytest.raises(MessageCentralError, match="Route blocked"):
        make_hook().send_message("9999999999", "hi")


def test_connect_error_is_retried(make_hook: Any, fake: FakeMessageCentral, sleeps: list[float]) -> None:
    fake.send_replies += [requests.ConnectTimeout("boom"), ok_send()]
    make_hook().send_message("9999999999", "hi")
    assert len(fake.send_calls) == 2


@pytest.mark.parametrize(
    "exc",
    [requests.ReadTimeout("read timed out"), requests.ConnectionError("Connection aborted. RemoteDisconnected")],
)
def test_send_that_may_have_arrived_is_not_retried(exc: Exception, make_hook: Any, fake: FakeMessageCentral) -> None:
    fake.send_replies += [exc, ok_send()]
    with pytest.raises(MessageCentralUncertainError):
        make_hook().send_message("9999999999", "hi")
    assert len(fake.send_calls) == 1


def test_token_request_read_timeout_is_retried_without_leaking_the_url(
    make_hook: Any, fake: FakeMessageCentral, sleeps: list[float]
) -> None:
    url = f"https://mc.example.test/auth/v1/authentication/token?key={KEY}"
    fake.token_replies += [requests.ReadTimeout(f"Read timed out. (url: {url})")] * 10
    with pytest.raises(MessageCentralError) as info:
        make_hook().get_token()
    assert KEY not in str(info.value)
    assert info.value.__context__ is None or KEY not in str(info.value.__context__)
    assert len(fake.token_calls) == 6  # 1 + max_retries (5)


def test_bulk_formats_phone_numbers_and_chunks(make_hook: Any, fake: FakeMessageCentral) -> None:
    numbers = ["9816111111", "+91 7715131105", "919816111112", "9816111111"]
    results = make_hook().send_bulk(numbers, "Sale!", chunk_size=2)
    assert [c.params["phoneNumbers"] for c in fake.send_calls] == [
        "91 9816111111, 91 7715131105",
        "91 9816111112",
    ]
    assert all(c.params["countryCode"] == "91" and "mobileNumber" not in c.params for c in fake.send_calls)
    assert [r["recipients"] for r in results] == [["919816111111", "917715131105"], ["919816111112"]]


def test_bulk_groups_numbers_by_country(make_hook: Any, fake: FakeMessageCentral) -> None:
    make_hook().send_bulk(["9816111111", "+14155552671", "7715131105"], "hi", chunk_size=10)
    sent = {(c.params["countryCode"], c.params["phoneNumbers"]) for c in fake.send_calls}
    assert sent == {("91", "91 9816111111, 91 7715131105"), ("1", "1 4155552671")}


def test_bulk_rejects_invalid_numbers_before_sending(make_hook: Any, fake: FakeMessageCentral) -> None:
    with pytest.raises(MessageCentralValidationError, match=r"#2 '12345'.*#4 'abc'"):
        make_hook().send_bulk(["9816111111", "12345", "7715131105", "abc"], "hi")
    assert fake.calls == []


def test_bulk_failure_names_sent_and_unsent_chunks(make_hook: Any, fake: FakeMessageCentral) -> None:
    fake.send_replies += [ok_send("a"), ok_send("b"), status(400, {"responseCode": 705, "message": "ROUTE_BLOCKED"})]
    numbers = [f"98161111{i:02d}" for i in range(10)]
    with pytest.raises(MessageCentralBulkError) as info:
        make_hook().send_bulk(numbers, "hi", chunk_size=2)
    text = str(info.value)
    assert "chunk 3/5 failed" in text and "ROUTE_BLOCKED" in text
    assert "Chunks 1-2 (4 recipients) were accepted" in text and "chunks 3-5 were not sent" in text
    assert [r["transactionId"] for r in info.value.accepted] == ["a", "b"]


def test_file_send_uploads_xlsx_multipart(make_hook: Any, fake: FakeMessageCentral, tmp_path: Any) -> None:
    import openpyxl

    path = tmp_path / "audience.xlsx"
    wb = openpyxl.Workbook()
    wb.active.append(["mobile", "var1"])
    wb.active.append(["919816111111", "Asha"])
    wb.save(path)
    make_hook().send_file(path, "Hi ##var1##")
    (call,) = fake.send_calls
    assert call.params["message"] == "Hi ##var1##" and call.params["countryCode"] == "91"
    assert b'name="file"; filename="audience.xlsx"' in call.body
    assert b"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" in call.body


def test_file_send_refuses_non_xlsx(make_hook: Any, fake: FakeMessageCentral, tmp_path: Any) -> None:
    path = tmp_path / "audience.xlsx"
    path.write_text("mobile,var1\n9816111111,Asha\n")
    with pytest.raises(MessageCentralValidationError, match=r"not an \.xlsx"):
        make_hook().send_file(path, "Hi ##var1##")
    assert fake.calls == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"template_id": "T1"}, "template_id and entity_id go together"),
        ({"entity_id": "E1"}, "template_id and entity_id go together"),
        ({"flow_type": "FAX"}, "flow_type must be one of"),
        ({"message_type": "SPAM"}, "message_type must be one of"),
        ({"colour": "red"}, "unknown send option"),
    ],
)
def test_bad_options_fail_before_any_request(
    kwargs: dict[str, Any], match: str, make_hook: Any, fake: FakeMessageCentral
) -> None:
    with pytest.raises(MessageCentralValidationError, match=match):
        make_hook().send_message("9999999999", "hi", **kwargs)
    assert fake.calls == []


@pytest.mark.parametrize(
    ("message", "match"),
    [("", "empty"), ("   ", "empty"), (None, "must be text"), (42, "must be text"), ("x" * 1531, "at most 1530")],
)
def test_bad_messages_fail_before_any_request(
    message: Any, match: str, make_hook: Any, fake: FakeMessageCentral
) -> None:
    with pytest.raises(MessageCentralValidationError, match=match):
        make_hook().send_message("9999999999", message)
    assert fake.calls == []


def test_template_and_entity_ids_are_sent(make_hook: Any, fake: FakeMessageCentral) -> None:
    make_hook().send_message("9999999999", "hi", template_id="T1", entity_id="E1", message_type="transactional")
    params = fake.send_calls[0].params
    assert params["templateId"] == "T1" and params["entityId"] == "E1"
    assert params["messageType"] == "TRANSACTIONAL" and params["senderId"] == "UTOMOB"
    assert params["mobileNumber"] == "9999999999" and params["countryCode"] == "91"


def test_rate_limit_is_shared_by_all_sends_of_a_hook(conn_env: Any, make_hook: Any, mocker: Any) -> None:
    conn_env(rate_limit_per_second=2)
    hook = make_hook()
    clock = [0.0]
    waits: list[float] = []

    def fake_sleep(seconds: float) -> None:
        waits.append(seconds)
        clock[0] += seconds

    hook.rate_limiter._clock = lambda: clock[0]
    hook.rate_limiter._sleep = fake_sleep
    hook.rate_limiter._last = 0.0
    for _ in range(6):
        hook.send_message("9999999999", "hi")
    # burst of 2, then one every 0.5 s: 4 more sends wait 2 s in all
    assert sum(waits) == pytest.approx(2.0)


def test_test_connection_fetches_a_token_only(make_hook: Any, fake: FakeMessageCentral) -> None:
    ok, text = make_hook().test_connection()
    assert ok and "C-24C217810E09483" in text
    assert fake.send_calls == [] and len(fake.token_calls) == 1


def test_test_connection_reports_failure_without_secret(make_hook: Any, fake: FakeMessageCentral) -> None:
    fake.token_replies.append(status(401))
    ok, text = make_hook().test_connection()
    assert not ok and "refused the credentials" in text
    assert PASSWORD not in text and KEY not in text


def test_no_secret_in_logs_or_repr(
    make_hook: Any, fake: FakeMessageCentral, caplog: pytest.LogCaptureFixture, sleeps: list[float]
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.token_replies += [{"json": {"token": "tok-SECRET-1"}}, {"json": {"token": "tok-SECRET-2"}}]
    fake.send_replies += [status(503), status(401), ok_send()]
    hook = make_hook()
    hook.send_bulk(["9816111111", "7715131105"], "hi")
    hook.test_connection()
    text = caplog.text + repr(hook) + repr(hook.settings) + str(hook)
    for secret in (PASSWORD, KEY, "tok-SECRET-1", "tok-SECRET-2"):
        assert secret not in text


def test_missing_credentials_are_named(conn_env: Any, monkeypatch: pytest.MonkeyPatch, make_hook: Any) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_MC_UNIT", json.dumps({"conn_type": "messagecentral", "host": "https://mc.example.test"})
    )
    with pytest.raises(MessageCentralAuthError, match=r"lacks login \(customer id\), password, extra 'email'"):
        make_hook().get_token()


def test_bad_flow_type_extra_names_the_connection_and_the_extra(conn_env: Any, make_hook: Any) -> None:
    conn_env(flow_type="FAX")
    with pytest.raises(MessageCentralValidationError, match="'mc_unit': connection extra 'flow_type' must be one of"):
        make_hook().settings  # noqa: B018 - reading the settings is what fails


def test_urllib3_debug_log_never_shows_the_key(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="urllib3.connectionpool")
    url = f"/auth/v1/authentication/token?customerId=C-1&key={KEY}&scope=NEW"
    logging.getLogger("urllib3.connectionpool").debug(
        '%s://%s:%s "%s %s %s" %s', "https", "h", 443, "GET", url, "", 200
    )
    assert KEY not in caplog.text and "key=***&scope=NEW" in caplog.text


def test_a_copied_hook_shares_the_token_cache_not_the_session(make_hook: Any, fake: FakeMessageCentral) -> None:
    import copy

    hook = make_hook()
    hook.send_message("9999999999", "a")
    clone = copy.deepcopy(hook)
    assert clone.get_conn() is not hook.get_conn()
    clone.get_conn().mount("https://", fake)
    clone.send_message("9999999999", "b")
    assert len(fake.token_calls) == 1 and len(fake.send_calls) == 2
