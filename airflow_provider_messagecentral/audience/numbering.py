"""
libphonenumber's validity rules, compiled once per dialling code: the fast check behind :mod:`.phone`.

``phonenumbers.is_valid_number`` walks the metadata of a region on every call (a dozen pattern lookups and
matches, ~10 µs). :func:`plan_for` compiles the same metadata once per dialling code into one regular
expression per number length, so that checking a national significant number costs one ``fullmatch``.
The patterns are the library's own, combined exactly as its ``_number_type_helper`` applies them: a number
is valid when it matches the general description (length and pattern) and at least one number type (each
with its own lengths). Dialling codes shared by several regions (``+1``, ``+44``, ``+7``...) pick the region
as ``region_code_for_number`` does: by ``leading_digits`` where the region has them, else by validity.

Nothing here parses text: :func:`airflow_provider_messagecentral.audience.phone.parse_number` decides which
digits are the national number, and falls back to ``phonenumbers.parse`` for anything unusual.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers
from phonenumbers import PhoneMetadata

#: The number types of libphonenumber's ``_number_type_helper``, in its order (mobile last).
_TYPES = (
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
    "fixed_line",
    "mobile",
)
#: Longest national number the fast path checks (longer ones go to the full parser).
MAX_FAST_DIGITS = 14
_BACKREFERENCE = re.compile(r"\\[1-9]|\(\?P=")


def _lengths(desc: object) -> tuple[int, ...]:
    return tuple(getattr(desc, "possible_length", None) or ())


def _pattern(desc: object) -> str | None:
    pattern = getattr(desc, "national_number_pattern", None) if desc is not None else None
    return pattern or None


@dataclass(frozen=True)
class RegionRule:
    """
    One region's validity check: ``by_length[len(nsn)].fullmatch(nsn)``.

    :param by_length: number length -> the general pattern (as a look-ahead) and every number type's
        pattern allowed at that length.
    :param general_lengths: the general description's possible lengths (``()``: any).
    :param general: the general description's pattern.
    :param leading: the region's ``leading_digits`` (chooses it among regions sharing a dialling code).
    """

    by_length: dict[int, re.Pattern[str]]
    general_lengths: tuple[int, ...]
    general: re.Pattern[str] | None
    leading: re.Pattern[str] | None

    def valid(self, nsn: str) -> bool:
        pattern = self.by_length.get(len(nsn))
        return pattern is not None and pattern.fullmatch(nsn) is not None

    def general_match(self, nsn: str) -> bool:
        """The general description's lengths and pattern (what parsing checks before it strips a prefix)."""
        if self.general is None or (self.general_lengths and len(nsn) not in self.general_lengths):
            return False
        return self.general.fullmatch(nsn) is not None


def _compile_region(metadata: PhoneMetadata) -> RegionRule | None:
    """The region's rule, or ``None`` when its patterns cannot be combined (then the library decides)."""
    general = metadata.general_desc
    general_pattern = _pattern(general)
    general_lengths = _lengths(general)
    types = [name for name in _TYPES if not (name == "mobile" and metadata.same_mobile_and_fixed_line_pattern)]
    descs = [(getattr(metadata, name), _pattern(getattr(metadata, name))) for name in types]
    patterns = [general_pattern, *(p for _, p in descs)]
    if any(p is not None and _BACKREFERENCE.search(p) for p in patterns):
        return None
    by_length: dict[int, re.Pattern[str]] = {}
    if general_pattern is not None:
        for length in range(1, MAX_FAST_DIGITS + 1):
            if general_lengths and length not in general_lengths:
                continue
            allowed = [p for desc, p in descs if p is not None and (not _lengths(desc) or length in _lengths(desc))]
            if allowed:
                alternatives = "|".join(f"(?:{p})" for p in allowed)
                by_length[length] = re.compile(f"(?=(?:{general_pattern})\\Z)(?:{alternatives})")
    leading = re.compile(metadata.leading_digits) if metadata.leading_digits else None
    return RegionRule(
        by_length=by_length,
        general_lengths=general_lengths,
        general=re.compile(general_pattern) if general_pattern is not None else None,
        leading=leading,
    )


@dataclass(frozen=True)
class CodePlan:
    """
    The numbering plan of one dialling code: is a national significant number valid under it?

    :param rules: one rule per region sharing the code, in libphonenumber's order.
    :param main: the code's main region (``region_code_for_country_code``): how numbers written without a
        dialling code are parsed, and its national prefix when it is a plain ``0``.
    :param idd: the main region's international dialling prefix (numbers starting with it are not national).
    :param national_prefix: ``"0"`` when the main region strips a plain ``0`` (no carrier codes, no
        rewriting), else ``""``.

    Example::

        plan_for("91").valid("9816111111")  # True
    """

    rules: tuple[RegionRule, ...]
    main: RegionRule | None
    idd: re.Pattern[str] | None
    national_prefix: str

    def valid(self, nsn: str) -> bool:
        """``phonenumbers.is_valid_number`` of this code and ``nsn`` (ASCII digits, no leading zero)."""
        rules = self.rules
        if len(rules) == 1:
            return rules[0].valid(nsn)
        for rule in rules:
            if rule.leading is not None:
                if rule.leading.match(nsn):
                    return rule.valid(nsn)
            elif rule.valid(nsn):
                return True
        return False


@lru_cache(maxsize=256)
def plan_for(country_code: str) -> CodePlan | None:
    """The compiled plan of a dialling code (digits); ``None`` when the library must decide alone."""
    code = int(country_code)
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(code)
    if not regions:
        return None
    rules: list[RegionRule] = []
    for region in regions:
        metadata = PhoneMetadata.metadata_for_region_or_calling_code(code, region)
        if metadata is None:
            if len(regions) == 1:
                return None
            continue  # region_code_for_number skips a region without metadata too
        rule = _compile_region(metadata)
        if rule is None:
            return None
        rules.append(rule)
    if not rules:
        return None
    main_region = phonenumbers.region_code_for_country_code(code)
    main_metadata = PhoneMetadata.metadata_for_region_or_calling_code(code, main_region)
    main = _compile_region(main_metadata) if main_metadata is not None else None
    plain_zero = (
        main_metadata is not None
        and main_metadata.national_prefix_for_parsing == "0"
        and not main_metadata.national_prefix_transform_rule
    )
    prefix = "0" if plain_zero and main is not None and main.general_lengths else ""
    idd_text = main_metadata.international_prefix if main_metadata is not None else None
    return CodePlan(
        rules=tuple(rules),
        main=main,
        idd=re.compile(idd_text) if idd_text else None,
        national_prefix=prefix,
    )
