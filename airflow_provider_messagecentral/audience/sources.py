"""
Audiences of the send operators: phone numbers from a list, an XCom, a CSV or a text file; rows for workbooks.

Numbers are normalised with :func:`airflow_provider_messagecentral.audience.phone.normalize_numbers` (E.164 with a
default country), de-duplicated, and invalid ones are reported with their position (and, for files, the
line they came from). Rows for per-recipient workbooks come from a DataFrame or a SQL query.
"""

from __future__ import annotations

import ast
import csv
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_provider_messagecentral.audience.phone import Audience, normalize_numbers
from airflow_provider_messagecentral.exceptions import MessageCentralValidationError

#: Header words that mark the number column of a CSV file (first match wins, case-insensitive).
NUMBER_HEADER_WORDS = ("mobile", "phone", "msisdn", "number", "cell", "contact")
NUMBER_FILE_SUFFIXES = (".csv", ".tsv", ".txt")
SQL_FETCH_SIZE = 5_000


@dataclass
class NumberSource:
    """
    Raw numbers read from wherever the user keeps them.

    :param values: the raw values, in order.
    :param origin: where they came from (``"list"``, ``"file 'x.csv'"``).
    :param lines: for files, the line of each value (same length as ``values``); else empty.
    """

    values: list[object]
    origin: str = "list"
    lines: list[int] = field(default_factory=list)

    def where(self, position: int) -> str:
        """``#3`` or ``#3 (line 4)`` for the 1-based ``position``."""
        if self.lines and 0 < position <= len(self.lines):
            return f"#{position} (line {self.lines[position - 1]})"
        return f"#{position}"


def _looks_like_file(text: str) -> bool:
    stripped = text.strip()
    return (
        "\n" not in stripped
        and "," not in stripped
        and (stripped.lower().endswith(NUMBER_FILE_SUFFIXES) or "/" in stripped or "\\" in stripped)
    )


def load_numbers(value: object) -> NumberSource:
    """
    Read the raw numbers of ``phone_numbers``.

    :param value: a list/tuple/set of numbers (what an XCom or a Python callable returns); a path to a
        ``.csv``/``.tsv`` (the column named like mobile/phone/number, else the first) or ``.txt`` file (one
        number per line, ``#`` comments and blank lines ignored); or the text of a list, as a template renders
        an XCom list without native rendering (``"['+9198...', '...']"`` or JSON).
    :raises MessageCentralValidationError: for any other type, a missing file or a plain string.
    """
    if isinstance(value, (list, tuple)):
        return NumberSource(list(value))
    if isinstance(value, (set, frozenset)):
        return NumberSource(sorted(value, key=str))
    if isinstance(value, Path):
        return read_number_file(value)
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("[") and text.endswith("]"):
            return NumberSource(_parse_list_text(text), origin="list")
        if _looks_like_file(text):
            return read_number_file(Path(text))
        raise MessageCentralValidationError(
            "phone_numbers is a string that is neither a list nor a path to a .csv/.txt file: "
            "pass a list of numbers (e.g. an XCom), or the path of a file with one number per line"
        )
    if isinstance(value, Iterable) and not isinstance(value, (bytes, Mapping)):
        return NumberSource(list(value))
    raise MessageCentralValidationError(
        f"phone_numbers must be a list of numbers or a path to a .csv/.txt file, got {type(value).__name__}"
    )


def _parse_list_text(text: str) -> list[object]:
    parsed: Any
    try:
        parsed = json.loads(text)
    except ValueError:
        try:
            parsed = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise MessageCentralValidationError(
                f"phone_numbers looks like a list but cannot be read as one: {text[:60]!r}"
            ) from None
    if not isinstance(parsed, (list, tuple)):
        raise MessageCentralValidationError("phone_numbers text must hold a list of numbers")
    return list(parsed)


def read_number_file(path: Path) -> NumberSource:
    """Numbers of a CSV/TSV file (number column detected) or a text file (one per line)."""
    if not path.is_file():
        raise MessageCentralValidationError(f"phone_numbers file {str(path)!r} does not exist")
    origin = f"file {path.name!r}"
    suffix = path.suffix.lower()
    values: list[object] = []
    lines: list[int] = []
    with path.open(newline="", encoding="utf-8-sig") as handle:
        if suffix in (".csv", ".tsv"):
            sample = handle.read(4096)
            handle.seek(0)
            delimiter = "\t" if suffix == ".tsv" else _sniff_delimiter(sample)
            reader = csv.reader(handle, delimiter=delimiter)
            column, header = 0, False
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue
                if not values and not header:
                    found = _number_column(row)
                    if found is not None:
                        column, header = found, True
                        continue
                    if not _is_number_like(row[0]):
                        header = True  # a header without a recognisable name: use the first column
                        continue
                cell = row[column].strip() if column < len(row) else ""
                values.append(cell)
                lines.append(reader.line_num)
        else:
            for number, line in enumerate(handle, start=1):
                text = line.strip()
                if text and not text.startswith("#"):
                    values.append(text)
                    lines.append(number)
    return NumberSource(values, origin=origin, lines=lines)


def _sniff_delimiter(sample: str) -> str:
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def _is_number_like(cell: str) -> bool:
    digits = sum(ch.isdigit() for ch in cell)
    return digits >= 6 and all(ch.isdigit() or ch in "+-() ." for ch in cell.strip())


def _number_column(header: Sequence[str]) -> int | None:
    names = [cell.strip().lower() for cell in header]
    for word in NUMBER_HEADER_WORDS:
        for index, name in enumerate(names):
            if word in name:
                return index
    return None


def load_audience(value: object, default_country: str) -> tuple[NumberSource, Audience]:
    """
    Read ``phone_numbers`` (see :func:`load_numbers`) and normalise them with the one normaliser,
    :func:`~airflow_provider_messagecentral.audience.phone.normalize_numbers`; never raises for bad numbers
    (see ``Audience.invalid``; ``audience.error_text(origin=source.origin, where=source.where)`` names them).

    :raises MessageCentralValidationError: when nothing was given, or the value cannot be read.
    """
    source = load_numbers(value)
    if not source.values:
        raise MessageCentralValidationError(f"phone_numbers is empty: nobody to send to ({source.origin})")
    return source, normalize_numbers(source.values, default_country)


# -- rows for bulk-file workbooks ----------------------------------------------------------------------------


def dataframe_rows(frame: Any) -> Iterator[dict[str, object]]:
    """Rows of a pandas DataFrame (or anything with ``columns`` and ``itertuples``) as dicts, one at a time."""
    if not hasattr(frame, "itertuples") or not hasattr(frame, "columns"):
        raise MessageCentralValidationError(f"dataframe must be a pandas DataFrame, got {type(frame).__name__}")
    names = [str(c) for c in frame.columns]
    for values in frame.itertuples(index=False, name=None):
        yield dict(zip(names, values, strict=True))


def sql_rows(
    sql: str,
    sql_conn_id: str,
    parameters: Mapping[str, Any] | Sequence[Any] | None = None,
    fetch_size: int = SQL_FETCH_SIZE,
) -> Iterator[dict[str, object]]:
    """
    Stream the rows of a query through an Airflow SQL connection (common-sql ``DbApiHook``), as dicts.

    Rows are fetched ``fetch_size`` at a time; the whole result is never held in memory.
    """
    from airflow.sdk import BaseHook

    try:
        from airflow.providers.common.sql.hooks.sql import DbApiHook
    except ImportError:  # pragma: no cover - depends on the installation
        raise MessageCentralValidationError(
            "sql= needs apache-airflow-providers-common-sql (and the provider of your database)"
        ) from None
    db_hook = BaseHook.get_connection(sql_conn_id).get_hook()
    if not isinstance(db_hook, DbApiHook):
        raise MessageCentralValidationError(
            f"sql_conn_id {sql_conn_id!r} is not a SQL connection (its hook is {type(db_hook).__name__})"
        )
    with closing(db_hook.get_conn()) as conn:
        cursor = conn.cursor()
        try:
            if parameters is None:
                cursor.execute(sql)
            else:
                cursor.execute(sql, parameters)
            if cursor.description is None:
                raise MessageCentralValidationError("the sql query returned no result set (is it a SELECT?)")
            names = [str(d[0]) for d in cursor.description]
            while True:
                batch = cursor.fetchmany(fetch_size)
                if not batch:
                    break
                for row in batch:
                    yield dict(zip(names, row, strict=True))
        finally:
            cursor.close()
