"""Sandbox building blocks without HTTP: tokens, number rules, bulk format, workbooks, settings."""

from __future__ import annotations

import base64
import io
import json

import openpyxl
import pytest

from airflow_provider_messagecentral.sandbox.auth import TokenError, issue_token, verify_token
from airflow_provider_messagecentral.sandbox.config import SandboxConfig, parse_status_mix, redact_url
from airflow_provider_messagecentral.sandbox.state import SandboxState
from airflow_provider_messagecentral.sandbox.validation import SendRejected, bulk_recipients, number_problem
from airflow_provider_messagecentral.sandbox.xlsx import check_xlsx, file_recipients, split_number


def _workbook(rows: list[list[object]]) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def test_token_is_hs512_jwt_with_sub_iat_exp():
    token = issue_token(b"k", "C-1", ttl=60, now=1_000_000)
    header, payload, _ = token.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    assert json.loads(base64.urlsafe_b64decode(pad(header))) == {"alg": "HS512", "typ": "JWT"}
    assert json.loads(base64.urlsafe_b64decode(pad(payload))) == {"sub": "C-1", "iat": 1_000_000, "exp": 1_000_060}
    assert verify_token(b"k", token, now=1_000_059)["sub"] == "C-1"


@pytest.mark.parametrize(
    ("secret", "now", "reason"),
    [(b"other", 1_000_001, "signature"), (b"k", 1_000_060, "expired")],
)
def test_token_rejected_when_signed_elsewhere_or_expired(secret, now, reason):
    token = issue_token(b"k", "C-1", ttl=60, now=1_000_000)
    with pytest.raises(TokenError, match=reason) as err:
        verify_token(secret, token, now=now)
    assert token not in str(err.value)


@pytest.mark.parametrize(
    ("code", "national", "ok"),
    [
        ("91", "9816111111", True),
        ("91", "5816111111", False),
        ("91", "981611111", False),
        ("44", "7700900123", True),
        ("1", "12345", False),
        ("1", "1234567890123456", False),
        ("91", "98161x1111", False),
    ],
)
def test_number_rules(code, national, ok):
    assert (number_problem(code, national) is None) is ok


@pytest.mark.parametrize(
    ("value", "bad_entry"),
    [
        ("91 9816111111,91 7715131105", "#1"),
        ("91 9816111111, 91 7715131105, ", "#3"),
        ("91 9816111111,  91 7715131105", "#2"),
        ("+91 9816111111", "#1"),
        ("919816111111", "#1"),
        ("91-9816111111", "#1"),
    ],
)
def test_bulk_format_is_strict_and_names_the_entry(value, bad_entry):
    with pytest.raises(SendRejected, match=f"entry {bad_entry} ") as err:
        bulk_recipients(value, "hi")
    assert err.value.http_status == 400


def test_bulk_invalid_number_is_601():
    with pytest.raises(SendRejected, match="INVALID_MOBILE_NUMBER: phoneNumbers entry #2") as err:
        bulk_recipients("91 9816111111, 91 1234567890", "hi")
    assert err.value.response_code == 601


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("9816111111", ("91", "9816111111")),
        ("919816111111", ("91", "9816111111")),
        ("+91 98161 11111", ("91", "9816111111")),
        ("+447700900123", ("44", "7700900123")),
        ("00919816111111", ("91", "9816111111")),
    ],
)
def test_workbook_numbers_with_or_without_country_code(raw, expected):
    assert split_number(raw, "91") == expected


def test_workbook_renders_each_row_and_finds_the_number_column():
    content = _workbook([["var1", "Mobile_Number", "var2"], ["Asha", 919816111111, 12.5], ["Ravi", "7715131105", 3]])
    recipients = file_recipients(content, "Hi ##var1##, you owe ##var2##", "91")
    assert [(r.mobile, r.text) for r in recipients] == [
        ("919816111111", "Hi Asha, you owe 12.5"),
        ("917715131105", "Hi Ravi, you owe 3"),
    ]


def test_workbook_errors_name_placeholder_row_and_column():
    content = _workbook([["mobile", "var1"], ["9816111111", "Asha"], ["7715131105", None]])
    with pytest.raises(SendRejected, match=r"'##var9##' has no column 'var9'"):
        file_recipients(content, "Hi ##var9##", "91")
    with pytest.raises(SendRejected, match=r"row 3: column 'var1' is empty"):
        file_recipients(content, "Hi ##var1##", "91")
    bad = _workbook([["mobile"], ["12"]])
    with pytest.raises(SendRejected, match=r"file row 2 column 'mobile' '12'") as err:
        file_recipients(bad, "Hi", "91")
    assert err.value.response_code == 601


def test_only_real_xlsx_files_pass():
    with pytest.raises(SendRejected, match=r"must be an \.xlsx"):
        check_xlsx("numbers.csv", b"mobile\n9816111111\n")
    with pytest.raises(SendRejected, match="not a zip"):
        check_xlsx("numbers.xlsx", b"mobile\n9816111111\n")
    check_xlsx("numbers.XLSX", _workbook([["mobile"], ["9816111111"]]))


def test_status_mix_and_settings_validation():
    assert parse_status_mix("DELIVRD=0.9,UNDELIV=0.05,EXPIRED=0.05") == pytest.approx(
        {"DELIVRD": 0.9, "UNDELIV": 0.05, "EXPIRED": 0.05}
    )
    with pytest.raises(ValueError, match="unknown status 'DELIVERED'"):
        parse_status_mix("DELIVERED=1")
    with pytest.raises(ValueError, match="duplicates"):
        SandboxConfig(duplicates=1.5)


def test_secrets_stay_out_of_repr_and_public_view():
    config = SandboxConfig(password="hunter2", callback_url="http://127.0.0.1:9/callback/s3cret")
    assert "hunter2" not in repr(config) and "s3cret" not in repr(config)
    view = json.dumps(config.public_view())
    assert "hunter2" not in view and "s3cret" not in view
    assert redact_url("http://user:pw@host:9/callback/s3cret?x=1") == "http://host:9/…"


def test_token_key_never_reaches_the_rejected_log():
    state = SandboxState()
    params = {"customerId": "C-SANDBOX0000001", "key": "d3Jvbmc=", "scope": "NEW", "country": "91", "email": "x@y"}
    with pytest.raises(SendRejected) as err:
        state.issue_token(params)
    state.record_rejected("token", err.value, params)
    assert "d3Jvbmc=" not in json.dumps(state.rejected())
    state.close()
