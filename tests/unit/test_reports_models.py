"""Delivery-report payloads as MessageCentral sends them, and the ones it must refuse."""

from __future__ import annotations

from datetime import datetime

import pytest
from helpers import DOCUMENTED_REPORT
from pydantic import ValidationError

from airflow_provider_messagecentral.reports.models import (
    ERROR_CODE_MAX,
    ERROR_CODE_MIN,
    MAX_EXTRA_DEPTH,
    DeliveryReport,
    normalize_mobile,
)

DOCUMENTED = DOCUMENTED_REPORT


def test_documented_payload_parses() -> None:
    report = DeliveryReport.model_validate(DOCUMENTED)
    assert report.messageId == "a2e87214-d18c-4a2e-b7f4-802c4465a9b9"
    assert report.status == "DELIVRD"
    assert report.is_final
    assert report.errorCode == 0
    assert report.mobile == "919999999999"
    assert report.submitDate == datetime(2023, 11, 2, 13, 59, 18)
    assert report.doneDate == datetime(2023, 11, 2, 13, 59, 22)
    assert report.extra_fields() == {}


def test_lenient_forms_are_normalised_and_unknown_fields_kept() -> None:
    report = DeliveryReport.model_validate(
        {
            "messageId": 12345,
            "status": " undeliv ",
            "errorCode": "34",
            "mobile": "+91 98161 11111",
            "submitDate": "2023-11-02T13:59:18Z",
            "doneDate": "2023-11-02T19:29:22+05:30",
            "operator": "Jio",
            "segments": 2,
        }
    )
    assert report.messageId == "12345"
    assert report.status == "UNDELIV"
    assert report.errorCode == 34
    assert report.mobile == "919816111111"
    assert report.submitDate == datetime(2023, 11, 2, 13, 59, 18)
    assert report.doneDate == datetime(2023, 11, 2, 13, 59, 22)
    assert report.extra_fields() == {"operator": "Jio", "segments": 2}


def test_unrecognised_status_is_kept_and_not_final() -> None:
    report = DeliveryReport.model_validate({"messageId": "m", "status": "ACCEPTD", "mobile": None})
    assert report.status == "ACCEPTD"
    assert not report.is_final
    assert report.mobile is None


def test_dates_without_zone_use_the_configured_zone() -> None:
    report = DeliveryReport.model_validate(
        {"messageId": "m", "status": "DELIVRD", "submitDate": "2023-11-02 19:29:18"},
        context={"tz": "Asia/Kolkata"},
    )
    assert report.submitDate == datetime(2023, 11, 2, 13, 59, 18)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"status": {"code": "DELIVRD"}}, "status"),
        ({"messageId": ["a", "b"]}, "messageId"),
        ({"messageId": ""}, "messageId"),
        ({"messageId": None}, "messageId"),
        ({"submitDate": "02/11/2023 13:59"}, "submitDate"),
        ({"doneDate": 1699000000}, "doneDate"),
        ({"errorCode": "bad"}, "errorCode"),
        ({"mobile": "call me"}, "mobile"),
        ({"mobile": {"n": 1}}, "mobile"),
    ],
)
def test_wrong_types_are_refused_naming_the_field(change: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        DeliveryReport.model_validate({**DOCUMENTED, **change})
    assert field in str(err.value)


def test_missing_message_id_is_refused() -> None:
    payload = dict(DOCUMENTED)
    del payload["messageId"]
    with pytest.raises(ValidationError, match="messageId"):
        DeliveryReport.model_validate(payload)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+91 98161 11111", "919816111111"),
        ("0091-9816111111", "919816111111"),
        (919816111111, "919816111111"),
        ("", None),
    ],
)
def test_normalize_mobile(raw: object, expected: str | None) -> None:
    assert normalize_mobile(raw) == expected


def test_api_key_is_not_in_repr() -> None:
    report = DeliveryReport.model_validate({**DOCUMENTED, "apiKey": "s3cr3t-key"})
    assert "s3cr3t-key" not in repr(report)


# --------------------------------------------------------------------------- values no database can hold


@pytest.mark.parametrize("code", [ERROR_CODE_MIN, -1, 0, 1, ERROR_CODE_MAX, str(ERROR_CODE_MAX)])
def test_error_code_inside_the_32_bit_range_is_kept(code: object) -> None:
    assert DeliveryReport.model_validate({**DOCUMENTED, "errorCode": code}).errorCode == int(str(code))


@pytest.mark.parametrize("code", [ERROR_CODE_MAX + 1, ERROR_CODE_MIN - 1, 2**40, 10**30, str(10**30), -(10**30)])
def test_error_code_beyond_the_32_bit_range_is_refused(code: object) -> None:
    """SQLite's INTEGER overflows at 2**63, PostgreSQL's at 2**31: the model refuses what either cannot hold."""
    with pytest.raises(ValidationError) as err:
        DeliveryReport.model_validate({**DOCUMENTED, "errorCode": code})
    assert err.value.errors()[0]["loc"] == ("errorCode",)


@pytest.mark.parametrize("date", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_dates_that_overflow_when_converted_to_utc_are_refused(date: str) -> None:
    with pytest.raises(ValidationError) as err:
        DeliveryReport.model_validate({**DOCUMENTED, "submitDate": date})
    assert err.value.errors()[0]["loc"] == ("submitDate",)
    assert "outside the years 1-9999" in str(err.value)


def test_a_date_without_zone_that_overflows_in_the_configured_zone_is_refused() -> None:
    with pytest.raises(ValidationError, match="doneDate"):
        DeliveryReport.model_validate(
            {**DOCUMENTED, "doneDate": "9999-12-31 23:00:00"}, context={"tz": "America/New_York"}
        )


def test_the_extreme_dates_that_fit_in_utc_are_kept() -> None:
    report = DeliveryReport.model_validate(
        {**DOCUMENTED, "submitDate": "0001-01-01T00:00:00-01:00", "doneDate": "9999-12-31T23:59:59+01:00"}
    )
    assert report.submitDate == datetime(1, 1, 1, 1, 0, 0)
    assert report.doneDate == datetime(9999, 12, 31, 22, 59, 59)


@pytest.mark.parametrize("field", ["messageId", "status", "clientId", "countryCode", "apiKey"])
@pytest.mark.parametrize("bad", ["a\x00b", "a\ud800b"], ids=["nul", "lone-surrogate"])
def test_text_the_store_cannot_hold_is_refused_naming_the_field(field: str, bad: str) -> None:
    """PostgreSQL refuses NUL in text; a lone surrogate is not UTF-8 at all. Neither reaches the store."""
    with pytest.raises(ValidationError) as err:
        DeliveryReport.model_validate({**DOCUMENTED, field: bad})
    assert err.value.errors()[0]["loc"] == (field,)


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ({"note": "a\x00b"}, "field 'note' contains a NUL"),
        ({"note": {"deep": ["ok", "a\x00"]}}, "field 'note'.'deep'[1] contains a NUL"),
        ({"note": {"k\x00": 1}}, "a key inside field 'note' contains a NUL"),
        ({"n\x00te": 1}, "a field name contains a NUL"),
        ({"note": "\udc00"}, "field 'note' contains a lone UTF-16 surrogate"),
        ({"note": float("nan")}, "field 'note' is NaN or infinite"),
        ({"note": [1.5, float("inf")]}, "field 'note'[1] is NaN or infinite"),
        ({"note": -float("inf")}, "field 'note' is NaN or infinite"),
    ],
)
def test_extra_fields_the_store_cannot_hold_are_refused(extra: dict[str, object], words: str) -> None:
    """PostgreSQL's jsonb refuses NUL (\\u0000) and lone surrogates in strings and keys, and NaN/Infinity."""
    with pytest.raises(ValidationError) as err:
        DeliveryReport.model_validate({**DOCUMENTED, **extra})
    assert words in str(err.value)


def _nested(depth: int) -> object:
    value: object = "leaf"
    for _ in range(depth):
        value = [value]
    return value


def test_extra_fields_nested_too_deeply_are_refused() -> None:
    ok = DeliveryReport.model_validate({**DOCUMENTED, "nested": _nested(MAX_EXTRA_DEPTH)})
    assert ok.extra_fields() == {"nested": _nested(MAX_EXTRA_DEPTH)}
    with pytest.raises(ValidationError, match=f"nested more than {MAX_EXTRA_DEPTH} levels"):
        DeliveryReport.model_validate({**DOCUMENTED, "nested": _nested(MAX_EXTRA_DEPTH + 1)})


def test_ordinary_extra_fields_and_unicode_text_are_kept() -> None:
    extra = {"note": "é€😀", "price": 0.25, "big": 10**30, "list": [None, True, {"a": "b"}]}
    report = DeliveryReport.model_validate({**DOCUMENTED, **extra, "clientId": "client-é€😀"})
    assert report.extra_fields() == extra
    assert report.clientId == "client-é€😀"
