"""Reading the bulk-file (.xlsx) of a send: one recipient per row, per-recipient placeholder values."""

from __future__ import annotations

import datetime as dt
import io
import re
import zipfile
from collections.abc import Sequence

from airflow_provider_messagecentral.sandbox.validation import (
    PLACEHOLDER,
    Recipient,
    SendRejected,
    invalid_number,
    number_problem,
)

NUMBER_HEADERS = ("mobile", "mobilenumber", "mobile_number", "phone", "number")
_REQUIRED_PARTS = ("[Content_Types].xml", "xl/workbook.xml")


def check_xlsx(filename: str, content: bytes) -> None:
    """Refuse anything that is not an .xlsx workbook (by name and by its zip parts)."""
    if not filename.lower().endswith(".xlsx"):
        raise SendRejected(f"parameter 'file' must be an .xlsx workbook, got file name {filename[:60]!r}")
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            names = set(archive.namelist())
    except zipfile.BadZipFile:
        raise SendRejected(f"parameter 'file' {filename[:60]!r} is not an .xlsx workbook (not a zip)") from None
    missing = [part for part in _REQUIRED_PARTS if part not in names]
    if missing:
        raise SendRejected(f"parameter 'file' {filename[:60]!r} is not an .xlsx workbook (no {missing[0]})")


def _read_rows(content: bytes) -> list[list[object]]:
    try:
        from python_calamine import CalamineWorkbook

        workbook = CalamineWorkbook.from_filelike(io.BytesIO(content))
        return [list(row) for row in workbook.get_sheet_by_index(0).to_python(skip_empty_area=False)]
    except ImportError:  # pragma: no cover - calamine is a dependency; openpyxl is the fallback
        import openpyxl

        book = openpyxl.load_workbook(io.BytesIO(content), read_only=True, data_only=True)
        try:
            sheet = book.worksheets[0]
            return [list(row) for row in sheet.iter_rows(values_only=True)]
        finally:
            book.close()


def cell_text(value: object) -> str:
    """A cell as the text a recipient would see (``12.0`` -> ``12``, dates in ISO form)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    return str(value).strip()


def split_number(raw: str, country_code: str) -> tuple[str, str]:
    """``(country code, national)`` of a workbook number; national numbers take ``country_code``."""
    text = raw.strip().replace(" ", "").replace("-", "")
    explicit = text.startswith(("+", "00"))
    digits = text[1:] if text.startswith("+") else text[2:] if text.startswith("00") else text
    if digits.startswith(country_code) and (explicit or number_problem(country_code, digits) is not None):
        rest = digits[len(country_code) :]
        if number_problem(country_code, rest) is None:
            return country_code, rest
    if explicit:
        try:
            import phonenumbers

            parsed = phonenumbers.parse("+" + digits, None)
            code = str(parsed.country_code)
            return code, digits[len(code) :]
        except Exception:
            return country_code, digits
    return country_code, digits


def render(message: str, values: dict[str, str]) -> str:
    """``message`` with every ``##name##`` replaced by ``values[name]``."""

    def substitute(match: re.Match[str]) -> str:
        return values[match.group(1)]

    return PLACEHOLDER.sub(substitute, message)


def _number_column(headers: Sequence[str]) -> int:
    for index, header in enumerate(headers):
        if header.strip().lower() in NUMBER_HEADERS:
            return index
    return 0


def file_recipients(content: bytes, message: str, country_code: str) -> list[Recipient]:
    """
    Recipients of a bulk-file send, each with the message rendered from their row.

    The first row holds the headers; the number column is ``mobile``/``mobilenumber``/``mobile_number``/
    ``phone``/``number`` (any case), else the first column. Every ``##name##`` in ``message`` must be a header.
    """
    try:
        rows = _read_rows(content)
    except SendRejected:
        raise
    except Exception as err:
        raise SendRejected(f"parameter 'file' could not be read as a workbook: {type(err).__name__}") from None
    if not rows:
        raise SendRejected("parameter 'file': the first sheet is empty (expected a header row)")
    headers = [cell_text(value) for value in rows[0]]
    number_index = _number_column(headers)
    by_name = {name: index for index, name in enumerate(headers) if name}
    lowered = {name.lower(): index for name, index in by_name.items()}
    placeholders: dict[str, int] = {}
    for name in dict.fromkeys(PLACEHOLDER.findall(message)):
        index = by_name.get(name, lowered.get(name.lower()))
        if index is None:
            raise SendRejected(
                f"message placeholder '##{name}##' has no column '{name}' in the file "
                f"(columns: {', '.join(h for h in headers if h)[:200]})"
            )
        placeholders[name] = index
    recipients: list[Recipient] = []
    for row_number, row in enumerate(rows[1:], start=2):
        cells = [cell_text(value) for value in row]
        if not any(cells):
            continue
        cells += [""] * (len(headers) - len(cells))
        raw_number = cells[number_index]
        column = headers[number_index] or f"column {number_index + 1}"
        if not raw_number:
            raise SendRejected(f"parameter 'file' row {row_number}: column {column!r} (the number) is empty")
        code, national = split_number(raw_number, country_code)
        problem = number_problem(code, national)
        if problem:
            raise invalid_number(f"file row {row_number} column {column!r} {raw_number[:20]!r}", problem)
        values: dict[str, str] = {}
        for name, index in placeholders.items():
            values[name] = cells[index]
            if not values[name]:
                raise SendRejected(
                    f"parameter 'file' row {row_number}: column {headers[index]!r} is empty "
                    f"but the message needs it for '##{name}##'"
                )
        text = render(message, values) if values else message
        recipients.append(Recipient(code, national, text))
    if not recipients:
        raise SendRejected("parameter 'file' has a header row but no recipient rows")
    return recipients
