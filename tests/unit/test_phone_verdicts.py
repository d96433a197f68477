"""
The fast number check gives libphonenumber's verdicts: property tests across regions and number shapes.

``reference_parse`` is ``parse_number`` as it was before the metadata was compiled (every validity check a
``phonenumbers`` call, every ``0``-prefixed national number through ``phonenumbers.parse``): the new one must
return the same number, or refuse with the same reason, for every generated input.
"""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType

from airflow_provider_messagecentral.audience.numbering import plan_for
from airflow_provider_messagecentral.audience.phone import PhoneNumber, normalize_numbers, parse_number

# -- the reference: parse_number before the fast path was compiled -------------------------------------------

_SEPARATORS = str.maketrans("", "", " -().\u00a0")


def _reference_valid(country_code: str, national: str) -> bool:
    if not national or national[0] == "0" or not national.isdigit() or len(national) > 14:
        return False
    number = phonenumbers.PhoneNumber(country_code=int(country_code), national_number=int(national))
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(int(country_code), ())
    if len(regions) == 1:
        return bool(phonenumbers.is_valid_number_for_region(number, regions[0]))
    return bool(phonenumbers.is_valid_number(number))


def _reference_fast(text: str, code: str) -> PhoneNumber | None:
    compact = text.translate(_SEPARATORS)
    if compact.startswith("+"):
        digits = compact[1:]
    elif compact.startswith("00"):
        digits = compact[2:]
    else:
        if not compact.isdigit():
            return None
        if len(compact) > 10 and compact.startswith(code) and _reference_valid(code, compact[len(code) :]):
            return PhoneNumber(code, compact[len(code) :])
        return PhoneNumber(code, compact) if _reference_valid(code, compact) else None
    if not digits.isdigit():
        return None
    for size in (1, 2, 3):
        cc = digits[:size]
        if int(cc) in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            return PhoneNumber(cc, digits[size:]) if _reference_valid(cc, digits[size:]) else None
    return None


def reference_parse(raw: object, default_country: str = "91") -> PhoneNumber:
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        raise ValueError(f"expected a phone number as text or integer, got {type(raw).__name__}")
    text = str(raw).strip()
    if not text:
        raise ValueError("empty phone number")
    code = str(default_country).strip().lstrip("+")
    region = phonenumbers.region_code_for_country_code(int(code))
    fast = _reference_fast(text, code)
    if fast is not None:
        return fast
    candidates = [text]
    digits = "".join(ch for ch in text if ch.isdigit())
    if not text.startswith(("+", "00")) and digits.startswith(code) and len(digits) > 10:
        candidates.insert(0, "+" + digits)
    last_error = "not a valid number"
    for candidate in candidates:
        try:
            parsed = phonenumbers.parse(candidate, region)
        except NumberParseException as err:
            last_error = str(err.args[0]) if err.args else "unparseable"
            continue
        if phonenumbers.is_valid_number(parsed):
            national = phonenumbers.format_number(parsed, PhoneNumberFormat.E164)
            cc = str(parsed.country_code)
            return PhoneNumber(cc, national[1 + len(cc) :])
        last_error = f"not a valid number for country code +{parsed.country_code}"
    raise ValueError(last_error)


def _outcome(parse: object, text: str, code: str) -> tuple[str, object]:
    try:
        return "number", parse(text, code)  # type: ignore[operator]
    except ValueError as err:
        return "refused", str(err)


# -- generated numbers ---------------------------------------------------------------------------------------

_KINDS = (
    PhoneNumberType.MOBILE,
    PhoneNumberType.FIXED_LINE,
    PhoneNumberType.TOLL_FREE,
    PhoneNumberType.PREMIUM_RATE,
    PhoneNumberType.VOIP,
    PhoneNumberType.UAN,
)


def _examples() -> list[tuple[str, str]]:
    """(dialling code, national significant number) of libphonenumber's example numbers, every region."""
    found: set[tuple[str, str]] = set()
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in _KINDS:
            example = phonenumbers.example_number_for_type(region, kind)
            if example is not None:
                found.add((str(example.country_code), phonenumbers.national_significant_number(example)))
    for code in sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS):
        example = phonenumbers.example_number_for_non_geo_entity(code)
        if example is not None:
            found.add((str(code), phonenumbers.national_significant_number(example)))
    return sorted(found)


EXAMPLES = _examples()
CODES = sorted({code for code, _ in EXAMPLES})
DEFAULTS = ["91", "1", "44", "49", "7", "39", "61", "86", "971", "65", "234", "55", "33", "81", "358", "262", "47"]


@st.composite
def nationals(draw: st.DrawFn) -> tuple[str, str]:
    """A dialling code and a national number: an example, its last digits changed, or one digit more or less."""
    code, national = draw(st.sampled_from(EXAMPLES))
    keep = draw(st.integers(min_value=0, max_value=len(national)))
    tail = draw(st.text(alphabet="0123456789", min_size=0, max_size=len(national) - keep + 2))
    how = draw(st.sampled_from(["same", "tail", "tail", "shorter", "longer"]))
    if how == "tail":
        national = national[:keep] + tail[: len(national) - keep]
    elif how == "shorter":
        national = national[:-1]
    elif how == "longer":
        national = national + tail[:1]
    return code, national


@st.composite
def written(draw: st.DrawFn) -> tuple[str, str]:
    """(text as a user writes it, default dialling code)."""
    code, national = draw(nationals())
    default = draw(st.sampled_from([code, code, *DEFAULTS]))
    shape = draw(st.sampled_from(["national", "zero", "plus", "plus-spaced", "bare", "zerozero", "dashes", "odd"]))
    if shape == "national":
        text = national
    elif shape == "zero":
        text = "0" + national
    elif shape == "plus":
        text = f"+{code}{national}"
    elif shape == "plus-spaced":
        cut = len(national) // 2
        text = f"+{code} {national[:cut]} {national[cut:]}"
    elif shape == "bare":
        text = f"{code}{national}"
    elif shape == "zerozero":
        text = f"00{code} {national}"
    elif shape == "dashes":
        text = f"({national[:3]}) {national[3:6]}-{national[6:]}"
    else:
        text = draw(st.text(alphabet="0123456789 +-()x#", min_size=1, max_size=18))
    return text, default


# -- properties ----------------------------------------------------------------------------------------------


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nationals())
def test_compiled_validity_is_libphonenumbers(number: tuple[str, str]) -> None:
    code, national = number
    if not national or national[0] == "0" or len(national) > 14:
        return  # never asked: such numbers go to the full parser
    plan = plan_for(code)
    assert plan is not None
    assert plan.valid(national) == _reference_valid(code, national), (code, national)


def test_examples_are_valid_and_half_of_them_mutated_are_not() -> None:
    """The generator reaches both verdicts (a property over only-invalid numbers would prove little)."""
    valid = [plan_for(code).valid(national) for code, national in EXAMPLES if national[0] != "0"]  # type: ignore[union-attr]
    assert len(valid) > 500 and all(valid)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(written())
@example(("09816111111", "91"))
@example(("0 9816111111", "91"))
@example(("07400 123456", "44"))
@example(("07400123456", "44"))
@example(("0016502530000", "1"))
@example(("٩٨١٦١١١١١١", "91"))
@example(("981611111²", "91"))
@example(("01599114386", "972"))
@example(("+39 06 6982 0000", "91"))
def test_parse_number_gives_the_verdicts_it_gave_before(case: tuple[str, str]) -> None:
    text, default = case
    assert _outcome(parse_number, text, default) == _outcome(reference_parse, text, default)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(written(), min_size=1, max_size=12), st.sampled_from(DEFAULTS))
def test_normalize_numbers_gives_the_audience_it_gave_before(cases: list[tuple[str, str]], default: str) -> None:
    texts: list[object] = [text for text, _ in cases]
    texts += texts[:3]  # repeated values are duplicates (or invalid again), whatever the path
    audience = normalize_numbers(texts, default)
    expected_numbers: list[PhoneNumber] = []
    expected_invalid = []
    seen: set[str] = set()
    duplicates = 0
    for position, text in enumerate(texts, start=1):
        kind, result = _outcome(reference_parse, text, default)  # type: ignore[arg-type]
        if kind == "refused":
            expected_invalid.append((position, str(text)[:40], result))
        elif result.msisdn in seen:  # type: ignore[union-attr]
            duplicates += 1
        else:
            seen.add(result.msisdn)  # type: ignore[union-attr]
            expected_numbers.append(result)  # type: ignore[arg-type]
    assert audience.numbers == expected_numbers
    assert [tuple(i) for i in audience.invalid] == expected_invalid
    assert audience.duplicates == duplicates


@pytest.mark.parametrize("value", [9816111111, 919816111111, "9816111111", " +91 98161 11111 "])
def test_integers_and_padded_text_parse_as_before(value: object) -> None:
    assert parse_number(value, "91") == reference_parse(value, "91")


def test_a_valid_result_is_valid_to_phonenumbers_parse() -> None:
    """Every number the fast path accepts is one ``phonenumbers.parse`` of its E.164 form finds valid."""
    for code, national in EXAMPLES:
        for text in (f"+{code}{national}", f"00{code} {national}"):
            try:
                number = parse_number(text, "91")
            except ValueError:
                continue
            parsed = phonenumbers.parse(number.e164, None)
            assert phonenumbers.is_valid_number(parsed), text
            assert (str(parsed.country_code), str(parsed.national_number)) == (
                number.country_code,
                number.national.lstrip("0") or "0",
            ) or number.national.startswith("0")


def test_every_example_in_every_shape_parses_as_before() -> None:
    """A deterministic sweep: each region's examples, some digits changed, written six ways, own default code."""
    import random

    rng = random.Random(7)
    differences = []
    for code, national in EXAMPLES:
        variants = {national}
        for _ in range(8):
            keep = rng.randrange(len(national) + 1)
            variants.add(national[:keep] + "".join(rng.choice("0123456789") for _ in range(len(national) - keep)))
        for variant in variants:
            for text in (f"0{variant}", variant, f"{code}{variant}", f"+{code}{variant}", f"00{code}{variant}"):
                if _outcome(parse_number, text, code) != _outcome(reference_parse, text, code):
                    differences.append((code, text))
    assert differences == []
