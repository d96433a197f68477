"""
Build the bulk-file workbooks of an audience in one pass: validate, de-duplicate, suppress, count, write.

The bulk file send uploads an .xlsx whose first row holds headers: the number column, then one column per
placeholder of the message. :func:`build_workbooks` streams any iterable of rows into such workbooks,
validating every row on the way, so nothing is uploaded before the whole audience is known to be good. In the
same pass it leaves suppressed numbers out, counts each recipient's text (segments, ``max_segments``), keeps
a few samples, and records each workbook's recipients and a digest of its rows: the send ledger's unit key
(:func:`airflow_provider_messagecentral.campaign.ledger.unit_key`). Nothing reads a built workbook back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import xlsxwriter

from airflow_provider_messagecentral.audience.rows import (
    ERRORS_SHOWN,
    MISSING,
    InvalidCell,
    check_columns,
    check_on_invalid,
    invalid_text,
    number_problem,
    placeholders,
    render,
    value_problem,
)
from airflow_provider_messagecentral.exceptions import MessageCentralValidationError
from airflow_provider_messagecentral.safety.cost import SegmentTally
from airflow_provider_messagecentral.safety.preview import SAMPLES, sample
from airflow_provider_messagecentral.safety.segments import SegmentInfo

EXCEL_MAX_ROWS = 1_048_576
#: Numbers looked up in the suppression list at once.
SUPPRESSION_BATCH = 1_000
# XlsxWriter writes these non-characters as ``_xFFFE_``/``_xFFFF_``; a part's digest is of the text as the
# workbook holds it, as it was when the digest was computed by reading the workbook back.
_AS_STORED = str.maketrans({"\ufffe": "_xFFFE_", "\uffff": "_xFFFF_"})

#: Given msisdns, returns those that are suppressed (:meth:`SuppressionList.lookup`).
Suppressed = Callable[[Iterable[str]], Collection[str]]


def check_rows_per_file(value: object) -> int:
    """Rows per workbook: an integer from 1 to one sheet's rows (the builder's and the operator's one rule)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise MessageCentralValidationError(f"rows_per_file must be an integer, got {value!r}")
    if not 1 <= value < EXCEL_MAX_ROWS:
        raise MessageCentralValidationError(
            f"rows_per_file must be between 1 and {EXCEL_MAX_ROWS - 1} (one sheet), got {value}"
        )
    return value


@dataclass
class WorkbookPart:
    """
    One written workbook of an audience.

    :param path: where the .xlsx is.
    :param rows: data rows in it (the header row not counted).
    :param first_row: position (1-based) of its first data row in the whole audience (before suppression).
    :param index: which part of the audience it is (1-based, see :attr:`BuiltWorkbooks.part_count`).
    :param mobiles: its recipients (msisdn), in row order.
    :param digest: SHA-256 of its rows, independent of their order: with ``mobiles``, the ledger unit key.
    """

    path: Path
    rows: int
    first_row: int
    index: int = 1
    mobiles: list[str] = field(default_factory=list, repr=False)
    digest: bytes = field(default=b"", repr=False)

    def label(self, part_count: int) -> str:
        """``"workbook 2/3 (rows 3-4)"``: how logs and errors name the part."""
        return f"workbook {self.index}/{part_count} (rows {self.first_row}-{self.first_row + self.rows - 1})"


@dataclass
class BuiltWorkbooks:
    """
    What :func:`build_workbooks` wrote.

    :param parts: the workbooks, in order (a part whose every number is suppressed is not written).
    :param rows: recipients written (valid, de-duplicated, not suppressed).
    :param invalid: problems found (with ``on_invalid="skip"``: the rows left out for them).
    :param duplicates: rows left out because their number came earlier.
    :param columns: the header row of every part: the number column, then one column per placeholder.
    :param skipped: rows left out for being invalid.
    :param input_rows: rows read from the input.
    :param country_codes: dialling code -> recipients written with it.
    :param suppressed: rows left out because their number is suppressed.
    :param part_count: parts the audience was split into, written or not.
    :param samples: the first few recipients' texts (with a ``tally``), as a dry run shows them.
    """

    parts: list[WorkbookPart]
    rows: int
    invalid: list[InvalidCell]
    duplicates: int
    columns: list[str]
    skipped: int = 0
    input_rows: int = 0
    country_codes: dict[str, int] = field(default_factory=dict)
    suppressed: int = 0
    part_count: int = 0
    samples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def country_code(self) -> str | None:
        """The dialling code of every recipient; ``None`` when they mix codes (numbers carry their own)."""
        return next(iter(self.country_codes)) if len(self.country_codes) == 1 else None


class _PartWriter:
    """Writes rows into numbered workbooks (header repeated), recording each part's recipients and digest."""

    def __init__(self, out_dir: Path, prefix: str, header: list[str]) -> None:
        self.out_dir, self.prefix, self.header = out_dir, prefix, header
        self.parts: list[WorkbookPart] = []
        self.total = 0
        self._book: Any = None
        self._sheet: Any = None
        self._lines: list[bytes] = []  # the part's rows as UTF-8 (byte order is code point order)

    def _open(self, index: int, first_row: int) -> None:
        self._close_book()
        path = self.out_dir / f"{self.prefix}-{index:03d}.xlsx"
        self._book = xlsxwriter.Workbook(
            str(path),
            {"constant_memory": True, "strings_to_formulas": False, "strings_to_urls": False},
        )
        self._sheet = self._book.add_worksheet()
        # Numbers are deliberately text: stop Excel flagging every cell of the number column.
        self._sheet.ignore_errors({"number_stored_as_text": "A1:XFD1048576"})
        for col, name in enumerate(self.header):
            self._sheet.write_string(0, col, name)
        self.parts.append(WorkbookPart(path=path, rows=0, first_row=first_row, index=index))

    def write(self, cells: list[str], index: int, first_row: int) -> None:
        """Write one row into part ``index`` (opened, and the previous part closed, on its first row)."""
        if self._sheet is None or self.parts[-1].index != index:
            self._open(index, first_row)
        part = self.parts[-1]
        write_string = self._sheet.write_string
        row = part.rows + 1
        for col, text in enumerate(cells):
            write_string(row, col, text)
        part.rows += 1
        part.mobiles.append(cells[0])
        line = "\x1f".join(f"{name}={text}" for name, text in zip(self.header, cells, strict=True))
        if "\ufffe" in line or "\uffff" in line:
            line = line.translate(_AS_STORED)
        self._lines.append(line.encode("utf-8"))
        self.total += 1

    def _close_book(self) -> None:
        if self._book is not None:
            self._book.close()
            self._book = self._sheet = None
            digest = hashlib.sha256()
            for line in sorted(self._lines):
                digest.update(line)
                digest.update(b"\n")
            self.parts[-1].digest = digest.digest()
            self._lines = []

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
    check_on_invalid(on_invalid)
    check_rows_per_file(rows_per_file)
    if not isinstance(number_column, str) or not number_column.strip():
        raise MessageCentralValidationError(f"number_column must be a column name, got {number_column!r}")
    if not name_prefix or any(sep in name_prefix for sep in ("/", "\\", "\0")) or name_prefix.startswith("."):
        raise MessageCentralValidationError(f"name_prefix must be a plain file name, got {name_prefix!r}")


class _AudienceBuilder:
    """The state of one :func:`build_workbooks` pass; rows go in one at a time through :meth:`add`."""

    def __init__(
        self,
        writer: _PartWriter,
        *,
        message: str,
        sources: dict[str, str],
        default_country: str,
        rows_per_file: int,
        fail: bool,
        suppressed: Suppressed | None,
        tally: SegmentTally | None,
    ) -> None:
        self.writer, self.message, self.sources = writer, message, sources
        self.default_country, self.rows_per_file, self.fail = default_country, rows_per_file, fail
        self.suppressed, self.tally = suppressed, tally
        self.header = writer.header
        self.problems: list[InvalidCell] = []
        self.problem_total = self.bad_rows = self.duplicates = self.accepted = self.left_out = self.position = 0
        self.seen: set[int] = set()
        self.countries: dict[str, int] = {}
        self.samples: list[dict[str, Any]] = []
        # rows waiting for the suppression lookup: (cells, country code, part index, text, its segment info)
        self.pending: list[tuple[list[str], str, int, str, SegmentInfo | None]] = []

    def add(self, position: int, row: object) -> None:
        """Validate one row; write it (or queue it for the suppression lookup) unless it is left out."""
        self.position = position
        if not isinstance(row, Mapping):
            raise MessageCentralValidationError(
                f"row {position}: expected a mapping of column -> value, got {type(row).__name__}"
            )
        number_column = self.header[0]
        if position == 1:
            check_columns(row, number_column, self.sources)
        row_problems: list[InvalidCell] = []
        number, reason = number_problem(row.get(number_column), self.default_country)
        if reason is not None:
            row_problems.append(InvalidCell(position, number_column, reason))
        cells = [number.msisdn if number is not None else ""]
        for name, source in self.sources.items():
            text, problem = value_problem(row.get(source, MISSING), position, source, name)
            cells.append(text)
            if problem is not None:
                row_problems.append(problem)
        if row_problems:
            self._invalid(row_problems)
            return
        assert number is not None
        text, info = "", None
        if self.tally is not None:
            text = render(self.message, dict(zip(self.header, cells, strict=True)))
            info = self.tally.check(text, where=f"row {position}")
        key = int(cells[0])  # ints: a set of a million numbers stays small
        if key in self.seen:
            self.duplicates += 1
            return
        self.seen.add(key)
        index = self.accepted // self.rows_per_file + 1
        self.accepted += 1
        if not (self.fail and self.problems):
            self.pending.append((cells, number.country_code, index, text, info))
            if self.suppressed is None or len(self.pending) >= SUPPRESSION_BATCH:
                self.flush()

    def _invalid(self, row_problems: list[InvalidCell]) -> None:
        self.bad_rows += 1
        self.problem_total += len(row_problems)
        if self.fail:
            if not self.problems:
                self.writer.discard()  # the build fails: stop writing, keep counting problems
                self.pending = []
            self.problems.extend(row_problems[: max(0, ERRORS_SHOWN - len(self.problems))])
        else:
            self.problems.extend(row_problems)

    def flush(self) -> None:
        """Write the queued rows whose numbers are not suppressed; count and sample them."""
        pending, self.pending = self.pending, []
        if not pending:
            return
        found = self.suppressed([cells[0] for cells, *_ in pending]) if self.suppressed is not None else ()
        for cells, country_code, index, text, info in pending:
            if found and cells[0] in found:
                self.left_out += 1
                continue
            self.writer.write(cells, index, (index - 1) * self.rows_per_file + 1)
            self.countries[country_code] = self.countries.get(country_code, 0) + 1
            if self.tally is not None and info is not None:
                self.tally.count(info)
                if len(self.samples) < SAMPLES:
                    self.samples.append(sample(cells[0], text, segmented=self.tally.segmented, info=info))

    def finish(self) -> BuiltWorkbooks:
        """Close the last workbook; raise for a failed or empty build (nothing is left on disk then)."""
        self.flush()
        parts = self.writer.close()
        what = "the audience"
        if self.fail and self.problems:
            self.writer.discard()
            raise MessageCentralValidationError(
                invalid_text(self.problems, self.problem_total, self.bad_rows, what) + "; nothing was written"
            )
        if self.accepted == 0:
            self.writer.discard()
            if self.position == 0:
                raise MessageCentralValidationError("the audience is empty: no rows were given")
            raise MessageCentralValidationError(
                f"no recipient left: {self.position} row(s) read, {self.bad_rows} invalid, "
                f"{self.duplicates} duplicate(s)"
                + (f"; {invalid_text(self.problems, self.problem_total, self.bad_rows, what)}" if self.problems else "")
            )
        return BuiltWorkbooks(
            parts=parts,
            rows=self.writer.total,
            invalid=self.problems,
            duplicates=self.duplicates,
            columns=list(self.header),
            skipped=self.bad_rows,
            input_rows=self.position,
            country_codes=self.countries,
            suppressed=self.left_out,
            part_count=(self.accepted - 1) // self.rows_per_file + 1,
            samples=self.samples,
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
    suppressed: Suppressed | None = None,
    tally: SegmentTally | None = None,
) -> BuiltWorkbooks:
    """
    Stream an audience into bulk-file workbooks, validating every row before anything is uploaded.

    Each workbook has the header row ``[number_column, *placeholders]``; numbers are written as text in
    msisdn form (``919816111111``), every value as text. Rows are read one at a time (a generator over a
    database cursor works; nothing holds the whole audience), duplicates by number are left out and counted.
    The audience is split into parts of ``rows_per_file`` valid recipients; suppressed numbers are then left
    out of their part (so a retry with a grown suppression list keeps the other parts as they were).

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
    :param suppressed: returns the suppressed numbers among the msisdns it is given (looked up in batches).
    :param tally: counts each recipient's text; its ``max_segments`` refuses a row (named by position)
        whose text is too long. With a tally, ``samples`` holds the first few texts.
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
    mapping = dict(columns or {})
    sources = {name: str(mapping.get(name, name)) for name in placeholders(message) if name != number_column}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    writer = _PartWriter(out, name_prefix, [number_column, *sources])
    builder = _AudienceBuilder(
        writer,
        message=message,
        sources=sources,
        default_country=default_country,
        rows_per_file=rows_per_file,
        fail=on_invalid == "fail",
        suppressed=suppressed,
        tally=tally,
    )
    try:
        for position, row in enumerate(rows, start=1):
            builder.add(position, row)
        return builder.finish()
    except BaseException:
        writer.discard()
        raise
