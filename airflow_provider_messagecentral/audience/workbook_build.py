"""
Placeholders and the bulk-file workbook: render ``##var1##`` messages and stream an audience into .xlsx files.

The bulk file send uploads an .xlsx whose first row holds headers: the number column, then one column per
placeholder of the message. :func:`build_workbooks` streams any iterable of rows into such workbooks,
validating every row on the way, so nothing is uploaded before the whole audience is known to be good.
"""

from __future__ import annotations

import datetime
import math
import numbers
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import xlsxwriter

from airflow_provider_messagecentral.audience.phone import PhoneNumber, parse_number
from airflow_provider_messagecentral.exceptions import MessageCentralValidationError

PLACEHOLDER_RE = re.compile(r"##([A-Za-z0-9_]+)##")
EXCEL_MAX_ROWS = 1_048_576
EXCEL_MAX_CELL_CHARS = 32_767
ERRORS_SHOWN = 20
_MISSING = object()


def placeholders(message: str) -> list[str]:
    """Placeholder names of ``message`` in first-use order, each once: ``"Hi ##var1##"`` -> ``["var1"]``."""
    return list(dict.fromkeys(PLACEHOLDER_RE.findall(message)))


def _is_utf8(text: str) -> bool:
    """False for text holding lone surrogates, which no .xlsx (UTF-8 XML) can carry."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def cell_text(value: object) -> str | None:
    """
    The text a value stands for in a workbook cell, or ``None`` when it is missing.

    Missing: ``None``, empty or blank text, NaN, pandas ``NA``/``NaT``. Integral numbers lose their ``.0``
    (``9816111111.0`` -> ``"9816111111"``), other floats show up to 15 significant digits as Excel does, dates
    and times are ISO 8601 text.
    """
    if value is None or type(value).__name__ in ("NAType", "NaTType"):
        return None
    if isinstance(value, str):
        return value if value.strip() else None
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, Decimal):
        return None if value.is_nan() else format(value, "f")
    if isinstance(value, numbers.Real):
        number = float(value)
        if math.isnan(number):
            return None
        if number.is_integer():
            return str(int(number))
        return format(number, ".15g")
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, bytes):
        return cell_text(value.decode("utf-8", errors="replace"))
    text = str(value)
    return text if text.strip() else None


def render(message: str, values: Mapping[str, object]) -> str:
    """
    The text a recipient receives: each ``##name##`` replaced by the text of ``values[name]``.

    :param message: the message with placeholders, e.g. ``"Hello ##var1##"``.
    :param values: placeholder name -> value (numbers and dates are written as in the workbook).
    :raises MessageCentralValidationError: when a placeholder has no value or an empty one.
    """

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        text = cell_text(values.get(name))
        if text is None:
            state = "no value" if name not in values else "an empty value"
            raise MessageCentralValidationError(f"placeholder ##{name}## has {state}")
        return text

    return PLACEHOLDER_RE.sub(substitute, message)


@dataclass(frozen=True)
class InvalidCell:
    """
    One problem with one row of an audience.

    :param row: 1-based position of the row in the input (workbooks: the spreadsheet row number).
    :param column: the column (source key or header) holding the problem.
    :param reason: what is wrong, e.g. ``"empty, needed by ##var2##"``.
    :param letter: the spreadsheet column letter, when the row comes from a workbook.
    """

    row: int
    column: str
    reason: str
    letter: str = ""

    def describe(self) -> str:
        where = f"{self.letter} {self.column!r}" if self.letter else repr(self.column)
        return f"row {self.row}, column {where}: {self.reason}"


def invalid_text(problems: list[InvalidCell], total: int, rows: int, what: str) -> str:
    """``"3 problem(s) in 2 row(s) of <what>: row 4, column 'mobile': empty; ..."`` (at most 20 shown)."""
    shown = "; ".join(p.describe() for p in problems[:ERRORS_SHOWN])
    more = f"; and {total - ERRORS_SHOWN} more" if total > ERRORS_SHOWN else ""
    return f"{total} problem(s) in {rows} row(s) of {what}: {shown}{more}"


def number_problem(raw: object, default_country: str) -> tuple[PhoneNumber | None, str | None]:
    """``(number, None)`` for a usable number, ``(None, reason)`` otherwise."""
    text = cell_text(raw)
    if text is None:
        return None, "empty, a phone number is needed"
    try:
        return parse_number(text, default_country), None
    except ValueError as err:
        return None, f"{err} ({text[:40]!r})"


@dataclass
class WorkbookPart:
    """
    One written workbook of an audience.

    :param path: where the .xlsx is.
    :param rows: data rows in it (the header row not counted).
    :param first_row: position (1-based) of its first data row in the whole written audience.
    """

    path: Path
    rows: int
    first_row: int


@dataclass
class BuiltWorkbooks:
    """
    What :func:`build_workbooks` wrote.

    :param parts: the workbooks, in order.
    :param rows: recipients written (valid, de-duplicated).
    :param invalid: problems found (with ``on_invalid="skip"``: the rows left out for them).
    :param duplicates: rows left out because their number came earlier.
    :param columns: the header row of every part: the number column, then one column per placeholder.
    :param skipped: rows left out for being invalid.
    :param input_rows: rows read from the input.
    :param country_codes: dialling code -> recipients written with it.
    """

    parts: list[WorkbookPart]
    rows: int
    invalid: list[InvalidCell]
    duplicates: int
    columns: list[str]
    skipped: int = 0
    input_rows: int = 0
    country_codes: dict[str, int] = field(default_factory=dict)


class _PartWriter:
    """Writes rows into numbered workbooks of at most ``rows_per_file`` data rows, header repeated."""

    def __init__(self, out_dir: Path, prefix: str, header: list[str], rows_per_file: int):
        self.out_dir, self.prefix, self.header, self.rows_per_file = out_dir, prefix, header, rows_per_file
        self.parts: list[WorkbookPart] = []
        self.total = 0
        self._book: Any = None
        self._sheet: Any = None

    def _next_part(self) -> None:
        self._close_book()
        path = self.out_dir / f"{self.prefix}-{len(self.parts) + 1:03d}.xlsx"
        self._book = xlsxwriter.Workbook(
            str(path),
            {"constant_memory": True, "strings_to_formulas": False, "strings_to_urls": False},
        )
        self._sheet = self._book.add_worksheet()
        # Numbers are deliberately text: stop Excel flagging every cell of the number column.
        self._sheet.ignore_errors({"number_stored_as_text": "A1:XFD1048576"})
        for col, name in enumerate(self.header):
            self._sheet.write_string(0, col, name)
        self.parts.append(WorkbookPart(path=path, rows=0, first_row=self.total + 1))

    def write(self, cells: list[str]) -> None:
        if self._sheet is None or self.parts[-1].rows >= self.rows_per_file:
            self._next_part()
        part = self.parts[-1]
        write_string = self._sheet.write_string
        row = part.rows + 1
        for col, text in enumerate(cells):
            write_string(row, col, text)
        part.rows += 1
        self.total += 1

    def _close_book(self) -> None:
        if self._book is not None:
            self._book.close()
            self._book = self._sheet = None

    def close(self) -> list[WorkbookPart]:
        self._close_book()
        return self.parts

    def discard(self) -> None:
        try:
            self._close_book()
        finally:
            for part in self.parts:
                part.path.unlink(missing_ok=True)
            self.parts = []


def _check_arguments(number_column: str, rows_per_file: int, on_invalid: str, name_prefix: str) -> None:
    if on_invalid not in ("fail", "skip"):
        raise MessageCentralValidationError(f"on_invalid must be 'fail' or 'skip', got {on_invalid!r}")
    if isinstance(rows_per_file, bool) or not isinstance(rows_per_file, int):
        raise MessageCentralValidationError(f"rows_per_file must be an integer, got {rows_per_file!r}")
    if not 1 <= rows_per_file < EXCEL_MAX_ROWS:
        raise MessageCentralValidationError(
            f"rows_per_file must be between 1 and {EXCEL_MAX_ROWS - 1} (one sheet), got {rows_per_file}"
        )
    if not isinstance(number_column, str) or not number_column.strip():
        raise MessageCentralValidationError(f"number_column must be a column name, got {number_column!r}")
    if not name_prefix or any(sep in name_prefix for sep in ("/", "\\", "\0")) or name_prefix.startswith("."):
        raise MessageCentralValidationError(f"name_prefix must be a plain file name, got {name_prefix!r}")


def _check_first_row(row: Mapping[str, object], number_column: str, sources: dict[str, str]) -> None:
    seen = ", ".join(repr(k) for k in list(row)[:30]) or "none"
    if number_column not in row:
        raise MessageCentralValidationError(
            f"number column {number_column!r} not found in the rows (keys seen: {seen}); "
            "pass number_column= to name the key holding the phone numbers"
        )
    missing = [f"##{name}## (column {source!r})" for name, source in sources.items() if source not in row]
    if missing:
        raise MessageCentralValidationError(
            f"no source column for placeholder(s) {', '.join(missing)} (keys seen: {seen}); "
            "add the columns or map them with columns={'var1': 'first_name', ...}"
        )


def build_workbooks(
    rows: Iterable[Mapping[str, object]],
    message: str,
    out_dir: str | Path,
    *,
    number_column: str = "mobile",
    columns: Mapping[str, str] | None = None,
    default_country: str = "91",
    rows_per_file: int = 50_000,
    on_invalid: str = "fail",
    name_prefix: str = "audience",
) -> BuiltWorkbooks:
    """
    Stream an audience into bulk-file workbooks, validating every row before anything is uploaded.

    Each workbook has the header row ``[number_column, *placeholders]``; numbers are written as text in
    msisdn form (``919816111111``), every value as text. Rows are read one at a time (a generator over a
    database cursor works; nothing holds the whole audience), duplicates by number are left out and counted.

    :param rows: mappings (dicts, ``DataFrame.to_dict("records")``, DB rows) with the number and the values.
    :param message: the text with ``##name##`` placeholders.
    :param out_dir: directory for the workbooks (created when missing).
    :param number_column: key of the phone number in each row; also its header in the workbook.
    :param columns: placeholder name -> source key (``{"var1": "first_name"}``); default: the name itself.
    :param default_country: dialling code for numbers written without one.
    :param rows_per_file: data rows per workbook; larger audiences are split into several.
    :param on_invalid: ``"fail"`` raises listing the problems (no workbook is left behind), ``"skip"``
        leaves bad rows out and reports them in ``invalid``.
    :param name_prefix: workbook file names are ``<prefix>-001.xlsx``, ``<prefix>-002.xlsx`` ...
    :raises MessageCentralValidationError: on a missing column, bad rows (with ``"fail"``) or no recipient.

    Example::

        built = build_workbooks(
            ({"mobile": r.phone, "first_name": r.name} for r in cursor),
            "Hello ##var1##",
            tmp_dir,
            columns={"var1": "first_name"},
        )
        for part in built.parts:
            hook.send_file(part.path, "Hello ##var1##")
    """
    _check_arguments(number_column, rows_per_file, on_invalid, name_prefix)
    if not isinstance(message, str) or not message.strip():
        raise MessageCentralValidationError("message is empty")
    names = placeholders(message)
    mapping = dict(columns or {})
    sources = {name: str(mapping.get(name, name)) for name in names if name != number_column}
    header = [number_column, *sources]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    writer = _PartWriter(out, name_prefix, header, rows_per_file)
    fail = on_invalid == "fail"
    problems: list[InvalidCell] = []
    problem_total = bad_rows = duplicates = position = 0
    seen: set[int] = set()
    countries: dict[str, int] = {}
    try:
        for position, row in enumerate(rows, start=1):
            if not isinstance(row, Mapping):
                raise MessageCentralValidationError(
                    f"row {position}: expected a mapping of column -> value, got {type(row).__name__}"
                )
            if position == 1:
                _check_first_row(row, number_column, sources)
            row_problems: list[InvalidCell] = []
            number, reason = number_problem(row.get(number_column), default_country)
            if reason is not None:
                row_problems.append(InvalidCell(position, number_column, reason))
            cells = [number.msisdn if number is not None else ""]
            for name, source in sources.items():
                value = row.get(source, _MISSING)
                text = None if value is _MISSING else cell_text(value)
                if text is None:
                    state = "missing" if value is _MISSING else "empty"
                    row_problems.append(InvalidCell(position, source, f"{state}, needed by ##{name}##"))
                elif len(text) > EXCEL_MAX_CELL_CHARS:
                    row_problems.append(
                        InvalidCell(position, source, f"{len(text)} characters, over Excel's cell limit")
                    )
                elif not _is_utf8(text):
                    row_problems.append(
                        InvalidCell(position, source, "not valid Unicode text (lone surrogate: mis-decoded bytes?)")
                    )
                cells.append(text or "")
            if row_problems:
                bad_rows += 1
                problem_total += len(row_problems)
                if fail:
                    if not problems:
                        writer.discard()  # the build fails: stop writing, keep counting problems
                    problems.extend(row_problems[: max(0, ERRORS_SHOWN - len(problems))])
                else:
                    problems.extend(row_problems)
                continue
            assert number is not None
            key = int(cells[0])  # ints: a set of a million numbers stays small
            if key in seen:
                duplicates += 1
                continue
            seen.add(key)
            if not (fail and problems):
                writer.write(cells)
                countries[number.country_code] = countries.get(number.country_code, 0) + 1
        parts = writer.close()
    except BaseException:
        writer.discard()
        raise

    if fail and problems:
        writer.discard()
        raise MessageCentralValidationError(
            invalid_text(problems, problem_total, bad_rows, "the audience") + "; nothing was written"
        )
    if writer.total == 0:
        writer.discard()
        if position == 0:
            raise MessageCentralValidationError("the audience is empty: no rows were given")
        raise MessageCentralValidationError(
            f"no recipient left: {position} row(s) read, {bad_rows} invalid, {duplicates} duplicate(s)"
            + (f"; {invalid_text(problems, problem_total, bad_rows, 'the audience')}" if problems else "")
        )
    return BuiltWorkbooks(
        parts=parts,
        rows=writer.total,
        invalid=problems,
        duplicates=duplicates,
        columns=header,
        skipped=bad_rows,
        input_rows=position,
        country_codes=countries,
    )
