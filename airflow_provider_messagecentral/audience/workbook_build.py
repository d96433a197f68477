"""
Build the bulk-file workbooks of an audience in one pass: validate, de-duplicate, suppress, count, write.

The bulk file send uploads an .xlsx whose first row holds headers: the number column, then one column per
placeholder of the message. :func:`build_workbooks` streams any iterable of rows into such workbooks,
validating every row on the way, so nothing is uploaded before the whole audience is known to be good. In the
same pass it leaves suppressed numbers out, counts each recipient's text (segments, ``max_segments``), keeps
a few samples, and records each workbook's recipients and a digest of its rows: the send ledger's unit key
(:func:`airflow_provider_messagecentral.campaign.ledger.unit_key`). Nothing reads a built workbook back.

Each row is read once into its cell texts; a clean row (a usable number, every value plain text) takes a
short path, and any row with a problem is examined again by the rules of :mod:`.rows`, which name it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from airflow_provider_messagecentral.audience.phone import PhoneNumber, number_reader
from airflow_provider_messagecentral.audience.rows import (
    ERRORS_SHOWN,
    EXCEL_MAX_CELL_CHARS,
    MISSING,
    InvalidCell,
    cell_text,
    check_columns,
    check_on_invalid,
    invalid_text,
    message_template,
    number_problem,
    placeholders,
    value_problem,
)
from airflow_provider_messagecentral.audience.workbook_parts import BuiltWorkbooks, PartWriter, WorkbookPart
from airflow_provider_messagecentral.exceptions import MessageCentralValidationError
from airflow_provider_messagecentral.safety.cost import SegmentTally
from airflow_provider_messagecentral.safety.preview import SAMPLES, sample
from airflow_provider_messagecentral.safety.segments import SegmentInfo

EXCEL_MAX_ROWS = 1_048_576
#: Numbers looked up in the suppression list at once.
SUPPRESSION_BATCH = 1_000

#: Given msisdns, returns those that are suppressed (:meth:`SuppressionList.lookup`).
Suppressed = Callable[[Iterable[str]], Collection[str]]

__all__ = [
    "AudienceBuilder",
    "BuildOptions",
    "BuiltWorkbooks",
    "WorkbookPart",
    "build_workbooks",
    "check_rows_per_file",
    "start_build",
]


def check_rows_per_file(value: object) -> int:
    """Rows per workbook: an integer from 1 to one sheet's rows (the builder's and the operator's one rule)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise MessageCentralValidationError(f"rows_per_file must be an integer, got {value!r}")
    if not 1 <= value < EXCEL_MAX_ROWS:
        raise MessageCentralValidationError(
            f"rows_per_file must be between 1 and {EXCEL_MAX_ROWS - 1} (one sheet), got {value}"
        )
    return value


def _check_arguments(number_column: str, rows_per_file: int, on_invalid: str, name_prefix: str) -> None:
    check_on_invalid(on_invalid)
    check_rows_per_file(rows_per_file)
    if not isinstance(number_column, str) or not number_column.strip():
        raise MessageCentralValidationError(f"number_column must be a column name, got {number_column!r}")
    if not name_prefix or any(sep in name_prefix for sep in ("/", "\\", "\0")) or name_prefix.startswith("."):
        raise MessageCentralValidationError(f"name_prefix must be a plain file name, got {name_prefix!r}")


class AudienceBuilder:
    """The state of one build (:func:`start_build`); rows go in one at a time through :meth:`add`."""

    def __init__(
        self,
        writer: PartWriter,
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
        # rows waiting for the suppression lookup: (cells, digest line, country code, part index, text, its segments)
        self.pending: list[tuple[list[str], bytes | None, str, int, str, SegmentInfo | None]] = []
        self._read_number = number_reader(default_country)
        self.render = message_template(message, self.header)

    def _cells(self, row: Mapping[str, object], number: PhoneNumber | None) -> tuple[list[str], PhoneNumber] | None:
        """The row's cell texts (msisdn first) when it is clean; ``None`` sends it to :meth:`_examine`."""
        if number is None:
            text = cell_text(row.get(self.header[0]))
            if text is None:
                return None
            try:
                number = self._read_number(text)
            except ValueError:
                return None
        cells = [number.country_code + number.national]
        for source in self.sources.values():
            value = row.get(source, MISSING)
            if type(value) is str:
                if not value.strip():
                    return None
            else:
                value = None if value is MISSING else cell_text(value)
                if value is None:
                    return None
            if len(value) > EXCEL_MAX_CELL_CHARS:
                return None
            cells.append(value)
        return cells, number

    def _examine(
        self, position: int, row: Mapping[str, object]
    ) -> tuple[list[str], PhoneNumber | None, list[InvalidCell]]:
        """Every problem of a row, by the rules of :mod:`.rows` (and its cell texts, for a row that has none)."""
        number_column = self.header[0]
        problems: list[InvalidCell] = []
        number, reason = number_problem(row.get(number_column), self.default_country)
        if reason is not None:
            problems.append(InvalidCell(position, number_column, reason))
        cells = [number.msisdn if number is not None else ""]
        for name, source in self.sources.items():
            text, problem = value_problem(row.get(source, MISSING), position, source, name)
            cells.append(text)
            if problem is not None:
                problems.append(problem)
        return cells, number, problems

    def add(self, position: int, row: object, number: PhoneNumber | None = None) -> None:
        """
        Validate one row; write it (or queue it for the suppression lookup) unless it is left out.

        :param number: the row's number, when the caller already read it from the same text.
        """
        self.position = position
        if not isinstance(row, Mapping):
            raise MessageCentralValidationError(
                f"row {position}: expected a mapping of column -> value, got {type(row).__name__}"
            )
        if position == 1:
            check_columns(row, self.header[0], self.sources)
        clean = self._cells(row, number)
        line = self.writer.encoded(clean[0]) if clean is not None else None
        if clean is None or line is None:  # a problem, or a lone surrogate (UTF-8 cannot hold one): _examine
            cells, found, problems = self._examine(position, row)
            if problems:
                self._invalid(problems)
                return
            assert found is not None
            clean = cells, found
        self._accept(*clean, line)

    def add_cells(self, position: int, cells: list[str], number: PhoneNumber) -> None:
        """
        :meth:`add` of a row (not the first) already read as its cell texts, none blank: the number's msisdn
        (``number``), then one text per source column, in order (a given workbook's row: :mod:`.workbook_given`).
        """
        line = self.writer.encoded(cells)
        if line is None or max(map(len, cells)) > EXCEL_MAX_CELL_CHARS:
            row = dict(zip(self.sources.values(), cells[1:], strict=True))
            self.add(position, {self.header[0]: cells[0], **row}, number)
            return
        self.position = position
        self._accept(cells, number, line)

    def _accept(self, cells: list[str], number: PhoneNumber, line: bytes | None) -> None:
        """Count, de-duplicate and write (or queue for the suppression lookup) a valid row."""
        text, info = "", None
        if self.tally is not None:
            text = self.render(*cells)
            info = self.tally.check(text, where=f"row {self.position}")
        key = int(cells[0])  # ints: a set of a million numbers stays small
        if key in self.seen:
            self.duplicates += 1
            return
        self.seen.add(key)
        index = self.accepted // self.rows_per_file + 1
        self.accepted += 1
        if self.fail and self.problems:
            return
        if self.suppressed is None:
            self._write(cells, line, number.country_code, index, text, info)
            return
        self.pending.append((cells, line, number.country_code, index, text, info))
        if len(self.pending) >= SUPPRESSION_BATCH:
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

    def _write(
        self, cells: list[str], line: bytes | None, country_code: str, index: int, text: str, info: SegmentInfo | None
    ) -> None:
        self.writer.write(cells, index, (index - 1) * self.rows_per_file + 1, line)
        self.countries[country_code] = self.countries.get(country_code, 0) + 1
        if self.tally is not None and info is not None:
            self.tally.count(info)
            if len(self.samples) < SAMPLES:
                self.samples.append(sample(cells[0], text, segmented=self.tally.segmented, info=info))

    def flush(self) -> None:
        """Write the queued rows whose numbers are not suppressed; count and sample them."""
        pending, self.pending = self.pending, []
        if not pending:
            return
        found = self.suppressed([cells[0] for cells, *_ in pending]) if self.suppressed is not None else ()
        for cells, line, country_code, index, text, info in pending:
            if found and cells[0] in found:
                self.left_out += 1
                continue
            self._write(cells, line, country_code, index, text, info)

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
    options = BuildOptions(
        number_column=number_column,
        columns=columns,
        default_country=default_country,
        rows_per_file=rows_per_file,
        on_invalid=on_invalid,
        name_prefix=name_prefix,
        suppressed=suppressed,
        tally=tally,
    )
    builder = start_build(message, out_dir, options)
    try:
        for position, row in enumerate(rows, start=1):
            builder.add(position, row)
        return builder.finish()
    except BaseException:
        builder.writer.discard()
        raise


@dataclass(frozen=True)
class BuildOptions:
    """The arguments of :func:`build_workbooks` after ``rows``, ``message`` and ``out_dir``."""

    number_column: str = "mobile"
    columns: Mapping[str, str] | None = None
    default_country: str = "91"
    rows_per_file: int = 50_000
    on_invalid: str = "fail"
    name_prefix: str = "audience"
    suppressed: Suppressed | None = None
    tally: SegmentTally | None = None

    def arguments(self) -> dict[str, Any]:
        """These options as :func:`build_workbooks`' keyword arguments."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def sources(self, message: str) -> dict[str, str]:
        """Placeholder name -> the row key holding its value (the number column is not a placeholder column)."""
        mapping = dict(self.columns or {})
        return {name: str(mapping.get(name, name)) for name in placeholders(message) if name != self.number_column}


def start_build(message: str, out_dir: str | Path, options: BuildOptions, *, write: bool = True) -> AudienceBuilder:
    """
    A build of :func:`build_workbooks`, to be fed row by row (``builder.add(position, row)``, then ``finish()``;
    ``builder.writer.discard()`` on failure).

    :param write: write the workbooks; ``False`` records each part's recipients and digest only.
    """
    _check_arguments(options.number_column, options.rows_per_file, options.on_invalid, options.name_prefix)
    if not isinstance(message, str) or not message.strip():
        raise MessageCentralValidationError("message is empty")
    sources = options.sources(message)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    writer = PartWriter(out, options.name_prefix, [options.number_column, *sources], write=write)
    return AudienceBuilder(
        writer,
        message=message,
        sources=sources,
        default_country=options.default_country,
        rows_per_file=options.rows_per_file,
        fail=options.on_invalid == "fail",
        suppressed=options.suppressed,
        tally=options.tally,
    )
