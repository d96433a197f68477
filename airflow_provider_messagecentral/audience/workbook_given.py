"""
A workbook the user gives the file send operator: read once, checked, and uploaded as given when nothing in it
must change.

The workbook is read into memory once (what is checked is what is uploaded), its first sheet is read with
calamine once, and each row goes through :func:`~.workbook_check.check_workbook`'s checks and the audience
builder (:mod:`.workbook_build`: de-duplication, suppression, segments, samples, each part's recipients and
digest) in the same pass. The builder's errors wait until the check has seen every row, so a workbook is
refused with the same error as when it was checked first and built after.

It is sent as given when the build would only copy it: one part, no row left out (invalid, duplicate or
suppressed), numbers written as digits in national or international form of one dialling code, every value
plain text, the header in row 1 from column A with the number column first and a name on every column, one
sheet and no formulas. Otherwise it is rebuilt, as before. Either way its ledger unit key is the same: the
digest is of the rows' texts, not of the file.
"""

from __future__ import annotations

import io
import itertools
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from airflow_provider_messagecentral.audience.phone import PhoneNumber, collector_paused
from airflow_provider_messagecentral.audience.rows import cell_text
from airflow_provider_messagecentral.audience.workbook_build import (
    AudienceBuilder,
    BuildOptions,
    BuiltWorkbooks,
    build_workbooks,
    start_build,
)
from airflow_provider_messagecentral.audience.workbook_check import (
    RowCheck,
    WorkbookCheck,
    _as_text,
    _open_sheet,
    _Sheet,
    read_checked,
)
from airflow_provider_messagecentral.audience.workbook_columns import BLOCK_ROWS, FIRST_ROWS, take_block
from airflow_provider_messagecentral.exceptions import MessageCentralValidationError
from airflow_provider_messagecentral.safety.cost import SegmentTally

#: Headers a reader of the upload might take for the number column (other than the number column itself).
NUMBER_LIKE_HEADERS = frozenset(
    {"mobile", "mobilenumber", "mobile_number", "phone", "phone_number", "number", "msisdn"}
)
MAX_ROWS = 1_000_000
_FORMULA = re.compile(rb"<(?:\w+:)?f[\s>/]")
_FEW_F = 1_000


@dataclass
class GivenWorkbook:
    """
    What the file send operator sends for a given workbook.

    :param check: what :func:`~.workbook_check.check_workbook` says of it.
    :param built: its parts: the workbook itself (``built.as_given``), or the workbooks rebuilt from it.
    """

    check: WorkbookCheck
    built: BuiltWorkbooks


def _as_is_layout(sheet: _Sheet, options: BuildOptions, message: str) -> bool:
    """Header row 1 from column A, number column first, every column named once, no other number-like name."""
    if sheet.header_row != 1 or sheet.col_offset != 0 or sheet.sheets != 1 or sheet.height - 1 > options.rows_per_file:
        return False
    headers = sheet.headers
    if not headers or headers[0] != options.number_column or any(not h for h in headers):
        return False
    if list(map(str, sheet.header_cells)) != headers or len(set(headers)) != len(headers):
        return False  # a header that is not plain text, has spaces around it, or repeats
    if any(h.lower() in NUMBER_LIKE_HEADERS for h in headers[1:]):
        return False
    return all(source == name for name, source in options.sources(message).items())


def _has_formulas(content: bytes) -> bool:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        for name in archive.namelist():
            if not (name.startswith("xl/worksheets/") and name.endswith(".xml")):
                continue
            if _formula_in(archive.read(name)):
                return True
    return False


def _formula_in(sheet: bytes) -> bool:
    """
    A formula is an ``<f>`` element (perhaps ``<x:f>``): an ``f`` right after ``<`` or ``:``. Most sheets hold
    few ``f`` bytes (Excel keeps texts in the shared strings), counted and found at ``memchr`` speed, so a sheet
    with a few is read once for them; one with many is searched for ``<f`` and ``:f``.
    """
    if sheet.count(b"f") > _FEW_F:
        return (b"<f" in sheet or b":f" in sheet) and _FORMULA.search(sheet) is not None
    at = sheet.find(b"f", 1)
    while at > 0:
        if sheet[at - 1] in b"<:":
            return _FORMULA.search(sheet) is not None
        at = sheet.find(b"f", at + 1)
    return False


class _OnePass:
    """The check and the build over the same rows; tells whether the workbook can go as given."""

    def __init__(self, check: RowCheck, builder: AudienceBuilder, as_is: bool) -> None:
        self.check, self.builder, self.as_is = check, builder, as_is
        self.failure: MessageCentralValidationError | None = None
        self.position = 0
        self._codes: set[str] = set()
        headers = check.sheet.headers
        # What the builder reads of a row (its number is handed over): the columns of its sources.
        self._read = [(h, i) for i, h in enumerate(headers) if h and h in builder.sources.values()]
        # Laid out as given (every source a column of that name, once), the builder's cells are the row's own.
        self._source_at = [headers.index(s) for s in builder.sources.values()] if as_is else []

    def block(self, raws: list[list[Any]]) -> None:
        """The next rows: at once when each is clean and as the build would write it (:mod:`.workbook_columns`)."""
        taken = self.as_is and self.failure is None
        if taken and take_block(self.check, self.builder, raws, self._source_at, self._codes):
            self.position += len(raws)
            return
        for raw in raws:
            self.row(raw)

    def row(self, raw: list[Any]) -> None:
        number = self.check.row(raw)
        if number is None or self.check.problems or self.failure is not None:
            return  # blank, or the check fails: nothing (more) to build
        self.position += 1
        cells = self._unchanged(raw, number) if self.as_is else None
        self.as_is = cells is not None
        try:
            if cells is not None and self.position > 1:
                self.builder.add_cells(self.position, cells, number)
                return
            if self.position == 1:  # the builder looks for its columns among all of them
                row = _as_text(self.check.sheet.headers, raw)
            else:
                width = len(raw)
                row = {h: (cell_text(raw[i]) or "") if i < width else "" for h, i in self._read}
            self.builder.add(self.position, row, number)
        except MessageCentralValidationError as err:
            self.failure = err  # raised once the check has seen every row

    def _unchanged(self, raw: list[Any], number: PhoneNumber) -> list[str] | None:
        """
        The row's cells as the build would write them (the number's digits, the source columns' texts) when
        the row holds exactly them; ``None`` when the build would change it. The check has seen every source
        column of the row present and not blank.
        """
        cell = raw[self.check.number.index]
        msisdn = number.country_code + number.national
        if type(cell) is not str or (cell != number.national and cell != msisdn):
            return None
        if number.country_code not in self._codes:
            self._codes.add(number.country_code)
            if len(self._codes) > 1:
                return None
        cells = [msisdn]
        for index in self._source_at:
            value = raw[index]
            if type(value) is not str:
                return None
            cells.append(value)
        return cells


def _sent_as_given(one: _OnePass, built: BuiltWorkbooks, check: WorkbookCheck) -> bool:
    first, last = check.sheet_rows
    return (
        one.as_is
        and len(built.parts) == built.part_count == 1
        and built.rows == check.rows
        and not (built.duplicates or built.suppressed or built.skipped)
        and (first, last) == (2, check.rows + 1)  # no blank row in between
    )


def _absorb(tally: SegmentTally | None, scratch: SegmentTally | None) -> None:
    """Count what the one pass counted into the task's tally."""
    if tally is None or scratch is None or tally is scratch:
        return
    tally.messages += scratch.messages
    tally.segments += scratch.segments
    for encoding, count in scratch.encodings.items():
        tally.encodings[encoding] = tally.encodings.get(encoding, 0) + count
    tally.largest = max(tally.largest, scratch.largest)


def read_given_workbook(
    path: str | Path, message: str, out_dir: str | Path, options: BuildOptions, *, max_rows: int = MAX_ROWS
) -> GivenWorkbook:
    """
    Check a user's workbook and build its audience in one read; send it as given when nothing must change.

    :param path: the .xlsx.
    :param message: the text with ``##name##`` placeholders.
    :param out_dir: where rebuilt parts go (when it must be rebuilt).
    :param options: as for :func:`~.workbook_build.build_workbooks` (``default_country`` also reads the
        check's numbers).
    :raises MessageCentralValidationError: what :func:`~.workbook_check.check_workbook`, then
        :func:`~.workbook_build.build_workbooks` would raise.
    """
    path = Path(path)
    content = read_checked(path)
    sheet = _open_sheet(path, content)
    check = RowCheck(path, sheet, message, options.number_column, options.default_country, max_rows)
    as_is = _as_is_layout(sheet, options, message) and not _has_formulas(content)
    tally = options.tally
    scratch = SegmentTally(tally.flow_type, tally.max_segments) if as_is and tally is not None else tally
    builder = start_build(message, out_dir, replace(options, tally=scratch), write=not as_is)
    try:
        one = _OnePass(check, builder, as_is)
        with collector_paused():  # rows, numbers and lines hold no cycles (see collector_paused)
            for raws in _blocks(sheet.rows):
                one.block(raws)
        checked = check.finish()
        if one.failure is not None:
            raise one.failure
        built = builder.finish()
    except BaseException:
        builder.writer.discard()
        raise
    if not as_is:
        return GivenWorkbook(checked, built)
    if _sent_as_given(one, built, checked):
        _absorb(tally, scratch)
        part = built.parts[0]
        part.path, part.content = path, content
        built.as_given = True
        return GivenWorkbook(checked, built)
    rows = _rows(_open_sheet(path, content))
    return GivenWorkbook(checked, build_workbooks(rows, message, out_dir, **options.arguments()))


def _blocks(rows: Iterator[list[Any]]) -> Iterator[list[list[Any]]]:
    """The first few rows, then blocks of rows."""
    size = FIRST_ROWS
    while block := list(itertools.islice(rows, size)):
        yield block
        size = BLOCK_ROWS


def _rows(sheet: _Sheet) -> Iterator[dict[str, str]]:
    for raw in sheet.rows:
        row = _as_text(sheet.headers, raw)
        if any(row.values()):
            yield row
