"""
Phone numbers: parse, validate (E.164, libphonenumber metadata), de-duplicate and format for the API.

:func:`normalize_numbers` is the one normaliser of a list of numbers: the hook, the bulk operator's audiences
(:mod:`.sources`) and the suppression list (:mod:`airflow_provider_messagecentral.safety.suppression`) all use
it; workbook rows are parsed one by one with :func:`number_reader` (:func:`parse_number` for one default code).

libphonenumber is the source of truth. The common shapes (national digits, ``+CC...``, ``CC...`` without
``+``, ``0`` + national, with spaces or dashes) are split here and checked against its metadata compiled once
per dialling code (:mod:`.numbering`); anything else, and every number refused, goes through
``phonenumbers.parse``, which also words the reason. ``tests/unit/test_phone_verdicts.py`` holds the verdicts
to those of the library-only version across every region's example numbers.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import NamedTuple

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat

from airflow_provider_messagecentral.audience.numbering import MAX_FAST_DIGITS, plan_for


class PhoneNumber(NamedTuple):
    """A valid number split the way MessageCentral wants it: dialling code and national number."""

    country_code: str
    national: str

    @property
    def e164(self) -> str:
        return f"+{self.country_code}{self.national}"

    @property
    def msisdn(self) -> str:
        """Country code and number without ``+``: the form delivery reports carry in ``mobile``."""
        return f"{self.country_code}{self.national}"

    @property
    def api_format(self) -> str:
        """``91 9816111111``: one entry of the ``phoneNumbers`` parameter."""
        return f"{self.country_code} {self.national}"


class InvalidNumber(NamedTuple):
    """A number that could not be used, with its position (1-based) in the input and the reason."""

    position: int
    raw: str
    reason: str


#: Reads one number's text (see :func:`number_reader`).
NumberReader = Callable[[str], PhoneNumber]


@dataclass
class Audience:
    """The result of normalising a list of numbers: valid ones in input order, de-duplicated."""

    numbers: list[PhoneNumber] = field(default_factory=list)
    invalid: list[InvalidNumber] = field(default_factory=list)
    duplicates: int = 0

    def error_text(self, limit: int = 20, *, origin: str = "", where: Callable[[int], str] | None = None) -> str:
        """
        ``"2 invalid phone number(s): #2 '12': ...; #4 'abc': ..."``, at most ``limit`` listed.

        :param origin: where the numbers came from (``"file 'a.csv'"``), named after the count.
        :param where: how a 1-based position is shown (default ``#3``; files add the line).
        """
        show = where or (lambda position: f"#{position}")
        shown = "; ".join(f"{show(i.position)} {i.raw!r}: {i.reason}" for i in self.invalid[:limit])
        more = f" (and {len(self.invalid) - limit} more)" if len(self.invalid) > limit else ""
        source = f" in the {origin}" if origin else ""
        return f"{len(self.invalid)} invalid phone number(s){source}: {shown}{more}"


@lru_cache(maxsize=64)
def _region_for(country_code: str) -> str:
    region = phonenumbers.region_code_for_country_code(int(country_code))
    if region == "ZZ":
        raise ValueError(f"unknown country dialling code {country_code!r}")
    return region


def _clean_code(country_code: str | int) -> str:
    code = str(country_code).strip().lstrip("+")
    if not code.isdigit():
        raise ValueError(f"country code must be digits like '91', got {country_code!r}")
    _region_for(code)
    return code


_SEPARATORS = str.maketrans("", "", " -().\u00a0")


def _valid(country_code: str, national: str) -> bool:
    """libphonenumber's validity check on an already split number (skips the costly text parse)."""
    if not national or national[0] == "0" or not national.isdigit() or len(national) > MAX_FAST_DIGITS:
        return False
    if national.isascii() and country_code.isascii():
        plan = plan_for(country_code)
        if plan is not None:
            return plan.valid(national)  # the same rules, compiled once per dialling code
    number = phonenumbers.PhoneNumber(country_code=int(country_code), national_number=int(national))
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(int(country_code), ())
    if len(regions) == 1:
        return bool(phonenumbers.is_valid_number_for_region(number, regions[0]))
    return bool(phonenumbers.is_valid_number(number))


_new_number = tuple.__new__


class _FastParser:
    """
    The common shapes (``9816111111``, ``919816111111``, ``+91 98161 11111``, ``09816111111``) of one default
    dialling code, without a full parse.

    :meth:`parse` returns a number only when libphonenumber deems it valid, and the same number
    ``phonenumbers.parse`` would give; anything else (``None``) goes to the full parser, which also gives the
    precise reason a number is rejected.
    """

    def __init__(self, code: str) -> None:
        self.code = code
        self.plan = plan_for(code) if code.isascii() else None
        # One region behind the code (most codes): its patterns by length, looked up without calls.
        single = self.plan is not None and len(self.plan.rules) == 1
        self._by_length = self.plan.rules[0].by_length if self.plan is not None and single else None

    def _national(self, national: str) -> PhoneNumber | None:
        """``national`` under the default code, when valid (digits, no leading zero)."""
        code = self.code
        plan = self.plan
        if plan is not None and national.isascii():
            if not national or national[0] == "0" or len(national) > MAX_FAST_DIGITS:
                return None
            by_length = self._by_length
            if by_length is not None:
                pattern = by_length.get(len(national))
                valid = pattern is not None and pattern.fullmatch(national) is not None
            else:
                valid = plan.valid(national)
            return _new_number(PhoneNumber, (code, national)) if valid else None
        return PhoneNumber(code, national) if _valid(code, national) else None

    def parse(self, text: str) -> PhoneNumber | None:
        code = self.code
        compact = text if text.isdigit() else text.translate(_SEPARATORS)
        if compact.startswith("+"):
            return self._international(compact[1:])
        if compact.startswith("00"):
            return self._international(compact[2:])
        if compact is not text and not compact.isdigit():
            return None
        if len(compact) > 10 and compact.startswith(code):
            number = self._national(compact[len(code) :])
            if number is not None:
                return number
        number = self._national(compact)
        if number is None and compact is text:
            return self._national_prefixed(text)
        return number

    def nationals(self, texts: list[str]) -> list[str] | None:
        """
        The national numbers :meth:`parse` gives ``texts`` (each ASCII digits, national or with the code in
        front), checked as one column: a ``fullmatch`` of the same patterns per number, no call per text.
        ``None`` when one of them would not come out of :meth:`parse`'s first steps (then read them one by one).
        """
        code, plan = self.code, self.plan
        joined = "".join(texts)
        if plan is None or not texts or not (joined.isascii() and joined.isdigit()):
            return None
        size = len(code)
        if max(map(len, texts)) > 10:
            texts = [t[size:] if len(t) > 10 and t.startswith(code) else t for t in texts]
        lengths = set(map(len, texts))
        # digit texts: the least starts with "0" when one does
        if min(lengths) == 0 or max(lengths) > MAX_FAST_DIGITS or min(texts)[0] == "0":
            return None
        by_length = self._by_length
        if by_length is None:
            return texts if all(map(plan.valid, texts)) else None
        for length in lengths:
            pattern = by_length.get(length)
            column = texts if len(lengths) == 1 else [n for n in texts if len(n) == length]
            if pattern is None or not all(map(pattern.fullmatch, column)):
                return None
        return texts

    def _international(self, digits: str) -> PhoneNumber | None:
        if not digits.isdigit() or digits[0] == "0":  # no country code starts with 0: libphonenumber decides
            return None
        for size in (1, 2, 3):
            cc = digits[:size]
            if int(cc) in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
                return PhoneNumber(cc, digits[size:]) if _valid(cc, digits[size:]) else None
        return None

    def _national_prefixed(self, text: str) -> PhoneNumber | None:
        """
        ``09816111111``: digits only, the main region's plain ``0`` national prefix, then a valid number.

        ``phonenumbers.parse`` strips such a prefix when what follows matches the region's general
        description; anything else (another prefix, carrier codes, an international dialling prefix) is left
        to it.
        """
        plan = self.plan
        if plan is None or plan.national_prefix != "0" or plan.main is None or text[0] != "0" or not text.isascii():
            return None
        if plan.idd is not None and plan.idd.match(text):
            return None
        national = text[1:]
        if not national or national[0] == "0" or len(national) > MAX_FAST_DIGITS:
            return None
        if plan.valid(national) and (self._by_length is not None or plan.main.general_match(national)):
            return _new_number(PhoneNumber, (self.code, national))  # (one region: valid implies general)
        return None


@lru_cache(maxsize=64)
def _parser_for(code: str) -> _FastParser:
    return _FastParser(code)


def _fast_parse(text: str, code: str) -> PhoneNumber | None:
    """The fast path of :func:`parse_number` (see :class:`_FastParser`)."""
    return _parser_for(code).parse(text)


def _full_parse(text: str, code: str) -> PhoneNumber:
    """``phonenumbers.parse`` of what the fast path left; raise ``ValueError`` saying why it is not usable."""
    region = _region_for(code)
    candidates = [text]
    digits = "".join(ch for ch in text if ch.isdigit())
    if not text.startswith(("+", "00")) and digits.startswith(code) and len(digits) > 10:
        # "919999999999" or "91 9999999999": the dialling code written without "+".
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


def _parse_text(text: str, code: str, parser: _FastParser | None = None) -> PhoneNumber:
    if not text:
        raise ValueError("empty phone number")
    return (parser or _parser_for(code)).parse(text) or _full_parse(text, code)


def parse_number(raw: object, default_country: str | int = "91") -> PhoneNumber:
    """
    Parse one number; raise ``ValueError`` saying why it is not usable.

    Accepts ``+919999999999``, ``00919999999999``, ``91 9999999999`` and national forms such as
    ``9999999999`` or ``09999999999`` (read with ``default_country``).
    """
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        raise ValueError(f"expected a phone number as text or integer, got {type(raw).__name__}")
    text = str(raw).strip()
    if not text:
        raise ValueError("empty phone number")
    return _parse_text(text, _clean_code(default_country))


def number_reader(default_country: str | int = "91") -> NumberReader:
    """
    :func:`parse_number` for many texts of one default dialling code: the code is checked once.

    The reader takes text (a workbook cell); like :func:`parse_number` it strips it and raises ``ValueError``
    saying why a number is not usable (an unknown default code is said for every number).
    """
    try:
        code = _clean_code(default_country)
    except ValueError:
        return lambda text: parse_number(text, default_country)
    parser = _parser_for(code)

    def read(text: str) -> PhoneNumber:
        return _parse_text(text.strip(), code, parser)

    return read


def read_nationals(texts: list[str], default_country: str | int) -> tuple[str, list[str]] | None:
    """
    A column of digit texts read as :func:`number_reader` reads each (:meth:`_FastParser.nationals`): the
    dialling code and the national numbers, when every one is valid under ``default_country``; else ``None``.
    """
    try:
        code = _clean_code(default_country)
    except ValueError:
        return None
    nationals = _parser_for(code).nationals(texts)
    return None if nationals is None else (code, nationals)


@contextmanager
def collector_paused() -> Iterator[None]:
    """
    No cyclic garbage collection while a long list of numbers (or rows) is made.

    A :class:`PhoneNumber` is a tuple subclass, which the collector keeps tracking (it untracks only exact
    tuples of atoms), so every full collection during the loop would walk all the numbers made so far again:
    at a million numbers that is a third of the time. They hold no cycles; collection resumes after.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def normalize_numbers(raw_numbers: Iterable[object], default_country: str | int = "91") -> Audience:
    """
    Normalise many numbers: valid ones in input order without duplicates, invalid ones with position.

    A value seen before (the same text or integer) is counted as a duplicate without being parsed again.
    """
    audience = Audience()
    try:
        code = _clean_code(default_country)
    except ValueError:
        code = ""  # every number is refused, with the reason, by parse_number
    parser = _parser_for(code) if code else None
    seen: set[str] = set()
    valid_values: set[object] = set()
    numbers = audience.numbers
    with collector_paused():
        for position, raw in enumerate(raw_numbers, start=1):
            kind = type(raw)
            fast = parser is not None and (kind is str or kind is int)
            if fast and raw in valid_values:
                audience.duplicates += 1
                continue
            try:
                if fast:
                    number = _parse_text((raw if kind is str else str(raw)).strip(), code, parser)  # type: ignore[attr-defined]
                else:
                    number = parse_number(raw, default_country)
            except ValueError as err:
                audience.invalid.append(InvalidNumber(position, str(raw)[:40], str(err)))
                continue
            if fast:
                valid_values.add(raw)
            msisdn = number.country_code + number.national
            if msisdn in seen:
                audience.duplicates += 1
                continue
            seen.add(msisdn)
            numbers.append(number)
    return audience


def chunked(numbers: Sequence[PhoneNumber], chunk_size: int) -> Iterator[list[PhoneNumber]]:
    """Split numbers into chunks of at most ``chunk_size``, each chunk within one country code."""
    if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
        raise ValueError(f"chunk_size must be an integer >= 1, got {chunk_size!r}")
    by_country: dict[str, list[PhoneNumber]] = {}
    for number in numbers:
        by_country.setdefault(number.country_code, []).append(number)
    for group in by_country.values():
        for start in range(0, len(group), chunk_size):
            yield group[start : start + chunk_size]


def format_phone_numbers(numbers: Iterable[PhoneNumber]) -> str:
    """The ``phoneNumbers`` parameter: ``91 9816111111, 91 7715131105``."""
    return ", ".join([f"{code} {national}" for code, national in numbers])  # PhoneNumber.api_format, inlined
