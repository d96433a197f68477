"""Phone numbers: parsing, validation, de-duplication, chunking and the API's phoneNumbers format."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from airflow_provider_messagecentral.audience.phone import (
    PhoneNumber,
    _fast_parse,
    chunked,
    format_phone_numbers,
    normalize_numbers,
    parse_number,
)


@pytest.mark.parametrize(
    "raw",
    [
        "9816111111",
        "+919816111111",
        "91 9816111111",
        "919816111111",
        "09816111111",
        "0091 98161 11111",
        "+91-98161-11111",
        "(981) 611-1111",
        9816111111,
    ],
)
def test_indian_forms_normalise_to_one_number(raw: object) -> None:
    number = parse_number(raw, "91")
    assert number == PhoneNumber("91", "9816111111")
    assert number.e164 == "+919816111111"
    assert number.msisdn == "919816111111"
    assert number.api_format == "91 9816111111"


def test_international_numbers_keep_their_country() -> None:
    assert parse_number("+14155552671", "91") == PhoneNumber("1", "4155552671")
    assert parse_number("+39 06 6982 0000", "91") == PhoneNumber("39", "0669820000")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("12345", "not a valid number"),
        ("abc", "did not seem to be a phone number"),
        ("", "empty"),
        (None, "expected a phone number"),
        (True, "expected a phone number"),
        (98.5, "expected a phone number"),
    ],
)
def test_invalid_numbers_say_why(raw: object, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_number(raw, "91")


def test_unknown_default_country_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown country dialling code"):
        parse_number("9816111111", "999")


def test_normalize_reports_positions_and_duplicates() -> None:
    audience = normalize_numbers(["9816111111", "bad", "+919816111111", "7715131105", "123"], "91")
    assert [n.msisdn for n in audience.numbers] == ["919816111111", "917715131105"]
    assert audience.duplicates == 1
    assert [(i.position, i.raw) for i in audience.invalid] == [(2, "bad"), (5, "123")]
    assert "#2 'bad'" in audience.error_text() and "2 invalid phone number(s)" in audience.error_text()
    named = audience.error_text(limit=1, origin="file 'a.txt'", where=lambda position: f"#{position} (line 9)")
    assert named.startswith("2 invalid phone number(s) in the file 'a.txt': #2 (line 9) 'bad': ")
    assert named.endswith(" (and 1 more)")


def test_chunks_stay_within_one_country_and_size() -> None:
    numbers = [parse_number(n) for n in ["9816111111", "+14155552671", "7715131105", "9816111112"]]
    chunks = list(chunked(numbers, 2))
    assert [[n.msisdn for n in c] for c in chunks] == [
        ["919816111111", "917715131105"],
        ["919816111112"],
        ["14155552671"],
    ]
    assert format_phone_numbers(chunks[0]) == "91 9816111111, 91 7715131105"


@pytest.mark.parametrize("size", [0, -1, 1.5, True, "2"])
def test_chunk_size_must_be_a_positive_integer(size: object) -> None:
    with pytest.raises(ValueError, match="chunk_size"):
        list(chunked([parse_number("9816111111")], size))  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@example(cc="91", digits="0003210000000", style="national")  # "00" then "032...": no country code starts with 0
@example(cc="91", digits="000919816111111", style="national")
@given(
    cc=st.sampled_from(["91", "1", "44", "49", "971", "65"]),
    digits=st.text(alphabet="0123456789", min_size=6, max_size=13),
    style=st.sampled_from(["plus", "zerozero", "bare", "national"]),
)
def test_fast_path_agrees_with_libphonenumber(cc: str, digits: str, style: str) -> None:
    text = {"plus": f"+{cc}{digits}", "zerozero": f"00{cc} {digits}", "bare": f"{cc}{digits}", "national": digits}[
        style
    ]
    fast = _fast_parse(text, "91")
    if fast is None:
        return  # the full parser decides
    region = phonenumbers.region_code_for_country_code(91)
    parsed = phonenumbers.parse(f"+{fast.country_code}{fast.national}", region)
    assert phonenumbers.is_valid_number(parsed)
    assert (str(parsed.country_code), str(parsed.national_number)) == (fast.country_code, fast.national)
