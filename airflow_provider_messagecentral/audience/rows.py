"""
Rows of a per-recipient audience: ``##name##`` placeholders, cell text, rendering, and the problems of a row.

The rules here are shared by the workbook builder (:mod:`.workbook_build`: rows from lists, DataFrames or SQL)
and the checker of users' workbooks (:mod:`.workbook_check`), so both read a cell and a number the same way.
"""

from __future__ import annotations

import datetime
import math
import numbers
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from airflow_provider_messagecentral.audience.phone import NumberReader, PhoneNumber, parse_number
from airflow_provider_messagecentral.client.request import check_text
from airflow_provider_messagecentral.exceptions import MessageCentralValidationError

PLACEHOLDER_RE = re.compile(r"##([A-Za-z0-9_]+)##")
#: Problems listed in one error (the total is given too).
ERRORS_SHOWN = 20
#: Longest text of one workbook cell.
EXCEL_MAX_CELL_CHARS = 32_767
#: ``row.get(column, MISSING)``: a column the row does not have (as opposed to an empty value).
MISSING = object()
#: What the operators do with an invalid number or row: fail before sending, or leave it out.
ON_INVALID = ("fail", "skip")


def check_on_invalid(value: object) -> str:
    """``on_invalid`` of the bulk and file sends: ``"fail"`` or ``"skip"``."""
    if value not in ON_INVALID:
        raise MessageCentralValidationError(f"on_invalid must be 'fail' or 'skip', got {value!r}")
    return str(value)


def placeholders(message: str) -> list[str]:
    """Placeholder names of ``message`` in first-use order, each once: ``"Hi ##var1##"`` -> ``["var1"]``."""
    return list(dict.fromkeys(PLACEHOLDER_RE.findall(message)))


def cell_text(value: object) -> str | None:
    """
    The text a value stands for in a workbook cell, or ``None`` when it is missing.

    Missing: ``None``, empty or blank text, NaN, pandas ``NA``/``NaT``. Integral numbers lose their ``.0``
    (``9816111111.0`` -> ``"9816111111"``), other floats show up to 15 significant digits as Excel does, dates
    and times are ISO 8601 text.
    """
    if type(value) is str:  # the common cases first, before the abstract base classes
        return value if value.strip() else None
    if type(value) is int:
        return str(value)
    if type(value) is float:
        return _float_text(value)
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
        return _float_text(float(value))
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, bytes):
        return cell_text(value.decode("utf-8", errors="replace"))
    text = str(value)
    return text if text.strip() else None


def _float_text(number: float) -> str | None:
    if math.isnan(number):
        return None
    if number.is_integer():
        return str(int(number))
    return format(number, ".15g")


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


def message_template(message: str, names: Sequence[str]) -> Callable[..., str]:
    """
    :func:`render` compiled for rows whose values are already cell text, given in ``names`` order.

    ``message_template("Hi ##var1##", ["mobile", "var1"])("919816111111", "Asha")`` is ``"Hi Asha"``: one
    ``str.format`` per row instead of a substitution callback per placeholder.

    :raises KeyError: for a placeholder that is not one of ``names``.
    """
    index = {name: position for position, name in enumerate(names)}  # the last of a repeated name, as a dict
    pieces = PLACEHOLDER_RE.split(message)
    parts = [
        f"{{{index[piece]}}}" if odd else piece.replace("{", "{{").replace("}", "}}")
        for odd, piece in ((i % 2 == 1, piece) for i, piece in enumerate(pieces))
    ]
    return "".join(parts).format


@dataclass(frozen=True)
class InvalidCell:
    """
    One problem with one row of an audience.

    :param row: 1-based position of the row in the input (workbooks: the spreadsheet row number).
    :param column: the column (source key or header) holding the problem.
    :param reason: what is wrong, e.g. ``"empty, needed by ##var2##"``.
    :param letter: the spreadsheet column letter, when the row comes from a workbook.

    Example::

        InvalidCell(4, "mobile", "empty, a phone number is needed").describe()
        # "row 4, column 'mobile': empty, a phone number is needed"
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


def number_problem(
    raw: object, default_country: str, *, read: NumberReader | None = None
) -> tuple[PhoneNumber | None, str | None]:
    """
    ``(number, None)`` for a usable number, ``(None, reason)`` otherwise.

    :param read: a :func:`~airflow_provider_messagecentral.audience.phone.number_reader` of the default code,
        when many cells are read (``default_country`` is then not used).
    """
    text = cell_text(raw)
    if text is None:
        return None, "empty, a phone number is needed"
    try:
        return (read(text) if read is not None else parse_number(text, default_country)), None
    except ValueError as err:
        return None, f"{err} ({text[:40]!r})"


def value_problem(value: object, position: int, source: str, name: str) -> tuple[str, InvalidCell | None]:
    """The cell text of one placeholder value, and what is wrong with it (``None``: nothing)."""
    text = None if value is MISSING else cell_text(value)
    if text is None:
        state = "missing" if value is MISSING else "empty"
        return "", InvalidCell(position, source, f"{state}, needed by ##{name}##")
    if len(text) > EXCEL_MAX_CELL_CHARS:
        return text, InvalidCell(position, source, f"{len(text)} characters, over Excel's cell limit")
    try:
        check_text(text, source)
    except MessageCentralValidationError:
        return text, InvalidCell(position, source, "not valid Unicode text (lone surrogate: mis-decoded bytes?)")
    return text, None


def check_columns(row: Mapping[str, object], number_column: str, sources: dict[str, str]) -> None:
    """The first row of an audience holds the number column and each placeholder's source column."""
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
