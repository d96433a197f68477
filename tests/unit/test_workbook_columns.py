"""
A given workbook's clean rows are taken a block at a time, as columns: the same check, parts, digests, ledger
keys, segment counts and errors as reading every row one by one.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneNumberType
from test_workbook_given import outcome, write_book

from airflow_provider_messagecentral.audience import workbook_given
from airflow_provider_messagecentral.audience.phone import number_reader, read_nationals
from airflow_provider_messagecentral.audience.workbook_build import BuildOptions
from airflow_provider_messagecentral.audience.workbook_given import read_given_workbook
from airflow_provider_messagecentral.safety.cost import SegmentTally
from airflow_provider_messagecentral.safety.segments import analyse, plain_gsm7

MESSAGE = "Hi ##var1##, you owe ##var2##"
NAMES = ["Asha", "Ravi", "Meena K", "Joseph"]


def rows(n: int, start: int = 0) -> list[list[Any]]:
    return [[f"98161{i:05d}", NAMES[i % 4], f"{i * 1.5:.2f}"] for i in range(start, start + n)]


def later(row: list[Any], n: int = 40) -> list[list[Any]]:
    """``n`` clean rows with ``row`` among the last block's."""
    return [*rows(n - 3), row, *rows(2, start=n)]


SCENARIOS: dict[str, tuple[list[list[Any]], dict[str, Any]]] = {
    "clean": (rows(40), {}),
    "clean msisdn": ([[f"91{r[0]}", *r[1:]] for r in rows(40)], {}),
    "national and msisdn": ([[f"91{r[0]}" if i % 3 else r[0], *r[1:]] for i, r in enumerate(rows(40))], {}),
    "duplicate in a block": (later(["919816100020", "again", "2"]), {}),
    "duplicate across blocks": ([*rows(20), *rows(20, start=5)], {}),
    "blank row": (later([None, None, None]), {}),
    "blank value": (later(["9816109999", " ", "1"]), {}),
    "bad number": (later(["12345", "x", "1"]), {}),
    "zero prefix": (later(["09816109999", "x", "1"]), {}),
    "other country": (later(["+44 7400 123456", "x", "1"]), {}),
    "numeric value": (later(["9816109999", "x", 7.25]), {}),
    "numeric number": (later([9816109999, "x", "1"]), {}),
    "ucs-2 value": (later(["9816109999", "Zoë", "1"]), {}),
    "extension character": (later(["9816109999", "a^b[c]", "1"]), {}),
    "long value": (later(["9816109999", "x" * 200, "1"]), {}),
    "long value refused": (later(["9816109999", "x" * 200, "1"]), {"tally": ("SMS", 1)}),
    "long value, not segmented": (later(["9816109999", "x" * 200, "1"]), {"tally": ("WHATSAPP", 1)}),
    "near one part": (later(["9816109999", "x" * 135, "1"]), {}),
    "suppressed": (later(["9816109999", "x", "1"]), {"suppressed": lambda ms: {"919816109999"} & set(ms)}),
    "skip": (later(["12345", "x", "1"]), {"on_invalid": "skip"}),
    "split": (rows(40), {"rows_per_file": 25}),
    "number in the text": (rows(40), {"message": "##var1##: ##mobile## owes ##var2##"}),
    "no placeholder": (rows(40), {"message": "Hello all"}),
}


def read(path: Path, out: Path, extra: dict[str, Any]) -> tuple[Any, tuple[Any, ...]]:
    flow, most = extra.get("tally", ("SMS", 6))
    tally = SegmentTally(flow, most)
    make = {k: v for k, v in extra.items() if k not in ("tally", "message")}
    message = extra.get("message", MESSAGE)

    def one_read() -> tuple[Any, Any]:
        given = read_given_workbook(path, message, out, BuildOptions(**make, tally=tally))
        return given.check, given.built

    result = outcome(one_read)
    return result, (tally.messages, tally.segments, tally.encodings, tally.largest)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_blocks_as_columns_say_and_record_what_rows_one_by_one_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    data, extra = SCENARIOS[name]
    path = write_book(tmp_path / "given.xlsx", data)
    monkeypatch.setattr(workbook_given, "BLOCK_ROWS", 8)
    as_columns = read(path, tmp_path / "a", extra)
    monkeypatch.setattr(workbook_given, "take_block", lambda *args: False)
    one_by_one = read(path, tmp_path / "b", extra)
    assert as_columns == one_by_one


def test_a_clean_block_is_taken_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_book(tmp_path / "given.xlsx", rows(40))
    taken: list[bool] = []
    take = workbook_given.take_block
    monkeypatch.setattr(workbook_given, "take_block", lambda *args: taken.append(take(*args)) or taken[-1])
    monkeypatch.setattr(workbook_given, "BLOCK_ROWS", 8)
    given = read_given_workbook(path, MESSAGE, tmp_path / "out", BuildOptions(tally=SegmentTally()))
    assert given.built.as_given and given.built.rows == 40
    assert taken == [False] + [True] * 5  # the first 5 rows one by one, then rows 6-40 in blocks of 8


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=0x17F), max_size=30))
def test_plain_gsm7_is_one_septet_per_character(text: str) -> None:
    info = analyse(text)
    plain = text.isascii() and info.encoding == "GSM-7" and info.units == len(text)
    assert plain_gsm7(text) is plain
    assert plain_gsm7("\n".join([text, "abc", text])) is plain


CODES = ["91", "1", "44", "7", "33", "971"]


def _examples(code: str) -> list[str]:
    """Mobile and fixed-line example numbers of every region of ``code``, national digits."""
    found = []
    for region in phonenumbers.COUNTRY_CODE_TO_REGION_CODE[int(code)]:
        for kind in (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE):
            example = phonenumbers.example_number_for_type(region, kind)
            if example is not None:
                found.append(str(example.national_number))
    return found


@st.composite
def digit_column(draw: st.DrawFn, code: str) -> list[str]:
    """Digit texts: example numbers with other last digits, national or after the code, or any digits."""
    examples = _examples(code)
    texts = []
    for _ in range(draw(st.integers(1, 6))):
        if draw(st.integers(0, 4)) == 0:
            texts.append(draw(st.text(alphabet=string.digits, min_size=1, max_size=15)))
            continue
        base = draw(st.sampled_from(examples))
        tail = draw(st.text(alphabet=string.digits, min_size=3, max_size=3))
        texts.append(draw(st.sampled_from(["", code, "0"])) + base[:-3] + tail)
    return texts


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(CODES).flatmap(lambda code: st.tuples(st.just(code), digit_column(code))))
def test_a_column_of_digits_reads_as_each_number_does(case: tuple[str, list[str]]) -> None:
    code, texts = case
    read = number_reader(code)
    column = read_nationals(texts, code)
    if column is None:
        return  # read one by one
    assert column[0] == code
    assert [(code, national) for national in column[1]] == [tuple(read(text)) for text in texts]


@pytest.mark.parametrize(
    "texts", [["9816100000", "919816100001"], ["9816100000", "09816100001"], ["9816100000", "12345"], [" 9816100000"]]
)
def test_a_column_is_read_at_once_only_when_each_number_is(texts: list[str]) -> None:
    column = read_nationals(texts, "91")
    read = number_reader("91")
    if column is not None:
        assert [("91", n) for n in column[1]] == [tuple(read(t)) for t in texts]
    assert (column is not None) == (texts == ["9816100000", "919816100001"])


@pytest.mark.parametrize("many_f", [False, True])
@pytest.mark.parametrize("formula", [False, True])
def test_a_workbook_with_a_formula_is_rebuilt_whatever_its_texts(tmp_path: Path, formula: bool, many_f: bool) -> None:
    data = [[r[0], "fee of Jeff" if many_f else r[1], r[2]] for r in rows(600)]
    path = write_book(tmp_path / "given.xlsx", data, formula=formula)
    given = read_given_workbook(path, MESSAGE, tmp_path / "out", BuildOptions(tally=SegmentTally()))
    assert given.built.as_given is not formula
    assert given.check.rows == 600 + formula
