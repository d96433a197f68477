"""
Check a bulk-file workbook a user hands us before it is uploaded: container, headers, every row.

The container is inspected first (:mod:`.workbook_container`: no decompression), so a legacy .xls, a CSV
renamed to .xlsx or a zip bomb is refused with a clear message; rows are then read with calamine, which is
fast enough to check every row of a large audience.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from python_calamine import CalamineWorkbook

from airflow_provider_messagecentral.audience.phone import NumberReader, PhoneNumber, number_reader
from airflow_provider_messagecentral.audience.rows import (
    ERRORS_SHOWN,
    InvalidCell,
    cell_text,
    invalid_text,
    number_problem,
    placeholders,
)
from airflow_provider_messagecentral.audience.workbook_container import (
    MAX_COMPRESSION_RATIO,
    MAX_UNCOMPRESSED_BYTES,
    open_checked,
    read_checked,
    refuse,
)
from airflow_provider_messagecentral.audience.xlsx_writer import column_letter

SAMPLE_ROWS = 5


@dataclass
class _Sheet:
    headers: list[str]
    header_row: int  # spreadsheet row number of the header
    col_offset: int
    rows: Iterator[list[Any]]  # data rows after the header, spreadsheet row header_row + 1 onwards
    height: int  # rows in the used range, header included
    header_cells: list[Any] = field(default_factory=list)  # the header row as calamine read it
    sheets: int = 1  # sheets in the workbook


def _open_sheet(path: Path, content: bytes | None = None) -> _Sheet:
    """The first sheet of the workbook at ``path`` (or of its ``content``, already read), from its header row."""
    try:
        if content is None:
            book = CalamineWorkbook.from_path(str(path))
        else:
            book = CalamineWorkbook.from_filelike(io.BytesIO(content))
        sheet = book.get_sheet_by_index(0)
    except Exception as err:  # calamine raises its own error types for XML and zip faults
        raise refuse(path, f"could not read the workbook: {type(err).__name__}: {err}") from None
    rows: Iterator[list[Any]] = iter(sheet.iter_rows())
    start = sheet.start or (0, 0)
    # calamine yields rows from row 1 of the sheet but columns from the first used column.
    for row_number, raw in enumerate(rows, start=1):
        if any(cell_text(v) is not None for v in raw):
            headers = [(cell_text(v) or "").strip() for v in raw]
            return _Sheet(headers, row_number, start[1], rows, sheet.height, list(raw), len(book.sheet_names))
    raise refuse(path, "the first sheet is empty: expected a header row, then one row per recipient")


def _column_index(path: Path, sheet: _Sheet, name: str, role: str) -> int:
    matches = [i for i, header in enumerate(sheet.headers) if header == name]
    if len(matches) > 1:
        letters = ", ".join(column_letter(i + sheet.col_offset) for i in matches)
        raise refuse(path, f"{role} column {name!r} appears more than once in the header row ({letters})")
    if matches:
        return matches[0]
    found = ", ".join(repr(h) for h in sheet.headers if h) or "none"
    hint = ""
    if sheet.headers and number_problem(sheet.headers[0], "91")[1] is None:
        hint = "; row 1 looks like data — add a header row"
    raise refuse(path, f"no {role} column {name!r} in the header row (row {sheet.header_row}); found: {found}{hint}")


@dataclass(frozen=True)
class _Column:
    """A column the check reads: where it is, and the placeholder it fills (none for the number column)."""

    index: int
    header: str
    letter: str
    placeholder: str = ""


def _columns(path: Path, sheet: _Sheet, message: str, number_column: str) -> tuple[_Column, list[_Column]]:
    """The number column and one column per placeholder of ``message``; refuse when one is missing."""
    index = _column_index(path, sheet, number_column, "number")
    number = _Column(index, number_column, column_letter(index + sheet.col_offset))
    needed: list[_Column] = []
    missing: list[str] = []
    for name in placeholders(message):
        if name == number_column:
            continue
        if name in sheet.headers:
            index = _column_index(path, sheet, name, "placeholder")
            needed.append(_Column(index, name, column_letter(index + sheet.col_offset), name))
        else:
            missing.append(f"##{name}##")
    if missing:
        found = ", ".join(repr(h) for h in sheet.headers if h) or "none"
        raise refuse(path, f"no column for placeholder(s) {', '.join(missing)} in the header row; found: {found}")
    return number, needed


def _row_problems(
    raw: list[Any], row_number: int, number: _Column, needed: list[_Column], read: NumberReader
) -> tuple[PhoneNumber | None, list[InvalidCell]]:
    """The row's number, and what is wrong with the row (an unusable number, an empty placeholder value)."""
    width = len(raw)
    parsed, reason = number_problem(raw[number.index] if number.index < width else None, "", read=read)
    problems: list[InvalidCell] = []
    if reason is not None:
        problems.append(InvalidCell(row_number, number.header, reason, number.letter))
    for column in needed:
        if cell_text(raw[column.index] if column.index < width else None) is None:
            reason = f"empty, needed by ##{column.placeholder}##"
            problems.append(InvalidCell(row_number, column.header, reason, column.letter))
    return parsed, problems


@dataclass
class WorkbookCheck:
    """
    A workbook that passed :func:`check_workbook`.

    :param rows: recipient rows (blank rows not counted).
    :param columns: the header row.
    :param number_column: the header of the number column.
    :param sample: the first few rows as header -> text.
    :param duplicates: rows whose number appeared in an earlier row (they would be texted twice).
    :param sheet_rows: spreadsheet row numbers of the first and last recipient rows.

    Example::

        check = check_workbook("audience.xlsx", "Hello ##var1##")
        print(check.rows, check.sample[0])
    """

    rows: int
    columns: list[str]
    number_column: str
    sample: list[dict[str, str]]
    duplicates: int = 0
    sheet_rows: tuple[int, int] = field(default=(0, 0))


def check_workbook(
    path: str | Path,
    message: str,
    *,
    number_column: str = "mobile",
    default_country: str = "91",
    max_bytes: int = 50 * 1024 * 1024,
    max_rows: int = 1_000_000,
    max_uncompressed_bytes: int = MAX_UNCOMPRESSED_BYTES,
    max_ratio: float = MAX_COMPRESSION_RATIO,
) -> WorkbookCheck:
    """
    Check a bulk-file workbook before upload: a real .xlsx, the columns the message needs, every row usable.

    Reads the first sheet. Errors name the spreadsheet row (the header is row 1) and the column letter and
    header, e.g. ``row 7, column C 'var2': empty, needed by ##var2##``; up to 20 are listed with a total.

    :param path: the .xlsx file.
    :param message: the message with ``##name##`` placeholders; each needs a column of that header.
    :param number_column: header of the column holding the phone numbers.
    :param default_country: dialling code for numbers written without one.
    :param max_bytes: largest file accepted.
    :param max_rows: most recipient rows accepted.
    :param max_uncompressed_bytes: largest total declared uncompressed size of the zip's members.
    :param max_ratio: highest compression ratio accepted for a member over 1 MB.
    :raises MessageCentralValidationError: saying what is wrong and where.
    """
    path = open_checked(path, max_bytes=max_bytes, max_uncompressed_bytes=max_uncompressed_bytes, max_ratio=max_ratio)
    check = RowCheck(path, _open_sheet(path), message, number_column, default_country, max_rows)
    for raw in check.sheet.rows:
        check.row(raw)
    return check.finish()


class RowCheck:
    """
    The checks of :func:`check_workbook` after the header, one row at a time.

    :func:`check_workbook` runs them over every row; the operator's one read of a workbook it sends runs them
    while it builds the audience (:mod:`.workbook_given`), so both say the same about the same workbook.

    :raises MessageCentralValidationError: at construction for the header (too many rows, a missing column),
        in :meth:`row` past ``max_rows``, and in :meth:`finish` for bad rows or no recipient row.
    """

    def __init__(
        self, path: Path, sheet: _Sheet, message: str, number_column: str, default_country: str, max_rows: int
    ) -> None:
        if sheet.height - 1 > max_rows:
            raise refuse(path, f"{sheet.height - 1} rows under the header, over the limit of {max_rows}")
        self.path, self.sheet, self.number_column, self.max_rows = path, sheet, number_column, max_rows
        self.number, self.needed = _columns(path, sheet, message, number_column)
        self._read = number_reader(default_country)
        self._needed = [column.index for column in self.needed]
        self.problems: list[InvalidCell] = []
        self.problem_total = self.bad_rows = self.count = self.duplicates = self.first = self.last = 0
        self.seen: set[int] = set()
        self.sample: list[dict[str, str]] = []
        self.row_number = sheet.header_row

    def row(self, raw: list[Any]) -> PhoneNumber | None:
        """Check the next row; its number when it is a recipient row without a problem (``None`` otherwise)."""
        self.row_number += 1
        index = self.number.index
        number = raw[index] if index < len(raw) else None
        if (number is None or number == "") and not any(cell_text(v) is not None for v in raw):
            return None  # a blank row is not a recipient
        self.count += 1
        if self.count > self.max_rows:
            raise refuse(self.path, f"more than {self.max_rows} recipient rows (limit)")
        self.first = self.first or self.row_number
        self.last = self.row_number
        parsed = self._clean(raw, number)
        if parsed is None:
            parsed, row_problems = _row_problems(raw, self.row_number, self.number, self.needed, self._read)
            if row_problems:
                self.bad_rows += 1
                self.problem_total += len(row_problems)
                self.problems.extend(row_problems[: max(0, ERRORS_SHOWN - len(self.problems))])
                return None
            assert parsed is not None
        key = int(parsed.country_code + parsed.national)
        if key in self.seen:
            self.duplicates += 1
        self.seen.add(key)
        if len(self.sample) < SAMPLE_ROWS:
            self.sample.append(_as_text(self.sheet.headers, raw))
        return parsed

    def can_take(self, rows: int, keys: set[int]) -> bool:
        """
        :meth:`take` would count ``rows`` rows: under ``max_rows``, the sample full, no number seen before.

        :param keys: the rows' numbers (msisdn digits as ints), one per row: no duplicate among them.
        """
        return (
            len(keys) == rows
            and self.count + rows <= self.max_rows
            and len(self.sample) >= SAMPLE_ROWS
            and self.seen.isdisjoint(keys)
        )

    def take(self, rows: int, keys: set[int]) -> None:
        """
        Count the next ``rows`` rows, each one :meth:`row` would pass (a usable number, every needed value
        present: the caller saw it) and :meth:`can_take` allows: what :meth:`row` records of them, at once.
        """
        self.count += rows
        self.first = self.first or self.row_number + 1
        self.row_number += rows
        self.last = self.row_number
        self.seen.update(keys)

    def _clean(self, raw: list[Any], cell: object) -> PhoneNumber | None:
        """The number of a row without a problem; ``None`` sends the row to :func:`_row_problems`."""
        text = cell_text(cell)
        if text is None:
            return None
        try:
            number = self._read(text)
        except ValueError:
            return None
        width = len(raw)
        for index in self._needed:
            if index >= width or cell_text(raw[index]) is None:
                return None
        return number

    def finish(self) -> WorkbookCheck:
        """The result; raises for bad rows (at most 20 named, with the total) or when no row is a recipient."""
        if self.problems:
            raise refuse(self.path, invalid_text(self.problems, self.problem_total, self.bad_rows, "the workbook"))
        if self.count == 0:
            raise refuse(self.path, f"no recipient rows under the header row (row {self.sheet.header_row})")
        return WorkbookCheck(
            rows=self.count,
            columns=list(self.sheet.headers),
            number_column=self.number_column,
            sample=self.sample,
            duplicates=self.duplicates,
            sheet_rows=(self.first, self.last),
        )


def _as_text(headers: list[str], raw: list[Any]) -> dict[str, str]:
    width = len(raw)
    return {h: (cell_text(raw[i]) or "") if i < width else "" for i, h in enumerate(headers) if h}


def iter_workbook_rows(
    path: str | Path, number_column: str = "mobile", *, max_bytes: int = 50 * 1024 * 1024
) -> Iterator[dict[str, str]]:
    """
    Stream the rows of a workbook as header -> text (numbers without ``.0``, dates as ISO text), for previews.

    The container checks of :func:`check_workbook` run first, and the number column must exist; rows are not
    validated (use :func:`check_workbook` for that) and blank rows are left out.

    :param path: the .xlsx file.
    :param number_column: header of the column holding the phone numbers.
    :param max_bytes: largest file accepted.
    """
    checked = open_checked(path, max_bytes=max_bytes)
    sheet = _open_sheet(checked)
    _column_index(checked, sheet, number_column, "number")
    return _iter_rows(sheet)


def _iter_rows(sheet: _Sheet) -> Iterator[dict[str, str]]:
    for raw in sheet.rows:
        row = _as_text(sheet.headers, raw)
        if any(row.values()):
            yield row


__all__ = [
    "RowCheck",
    "WorkbookCheck",
    "check_workbook",
    "column_letter",
    "iter_workbook_rows",
    "open_checked",
    "read_checked",
]
