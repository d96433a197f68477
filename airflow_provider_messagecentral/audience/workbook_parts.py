"""
The parts of a bulk-file audience: what each workbook holds (recipients, a digest of its rows) and the writer
that numbers them.

A part's digest is the SHA-256 of its rows (``header=text`` joined by ``\\x1f``, UTF-8, sorted), so it does not
depend on how or whether the part is written: with its recipients it makes the send ledger's unit key
(:func:`airflow_provider_messagecentral.campaign.ledger.unit_key`), the same for a rebuilt workbook and for a
user's workbook uploaded as given.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_provider_messagecentral.audience.xlsx_writer import SheetWriter

# XlsxWriter writes these non-characters as ``_xFFFE_``/``_xFFFF_``; a part's digest is of the text as the
# workbook holds it, as it was when the digest was computed by reading the workbook back.
_AS_STORED = str.maketrans({"\ufffe": "_xFFFE_", "\uffff": "_xFFFF_"})
_DIGEST_BATCH = 4_096


@dataclass
class WorkbookPart:
    """
    One workbook of an audience.

    :param path: where the .xlsx is (for a workbook sent as given: the user's file).
    :param rows: data rows in it (the header row not counted).
    :param first_row: position (1-based) of its first data row in the whole audience (before suppression).
    :param index: which part of the audience it is (1-based, see :attr:`BuiltWorkbooks.part_count`).
    :param mobiles: its recipients (msisdn), in row order.
    :param digest: SHA-256 of its rows, independent of their order: with ``mobiles``, the ledger unit key.
    :param content: the bytes to upload when the workbook is sent as the user gave it (read once, checked,
        uploaded unchanged); ``None`` for a written part (its file is uploaded).
    """

    path: Path
    rows: int
    first_row: int
    index: int = 1
    mobiles: list[str] = field(default_factory=list, repr=False)
    digest: bytes = field(default=b"", repr=False)
    content: bytes | None = field(default=None, repr=False)

    def label(self, part_count: int) -> str:
        """``"workbook 2/3 (rows 3-4)"``: how logs and errors name the part."""
        return f"workbook {self.index}/{part_count} (rows {self.first_row}-{self.first_row + self.rows - 1})"


@dataclass
class BuiltWorkbooks:
    """
    What :func:`~airflow_provider_messagecentral.audience.workbook_build.build_workbooks` wrote.

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
    :param as_given: the one part is the user's workbook, uploaded unchanged.
    """

    parts: list[WorkbookPart]
    rows: int
    invalid: list[Any]
    duplicates: int
    columns: list[str]
    skipped: int = 0
    input_rows: int = 0
    country_codes: dict[str, int] = field(default_factory=dict)
    suppressed: int = 0
    part_count: int = 0
    samples: list[dict[str, Any]] = field(default_factory=list)
    as_given: bool = False

    @property
    def country_code(self) -> str | None:
        """The dialling code of every recipient; ``None`` when they mix codes (numbers carry their own)."""
        return next(iter(self.country_codes)) if len(self.country_codes) == 1 else None


class PartWriter:
    """
    Rows into numbered parts (header repeated), recording each part's recipients and digest.

    :param out_dir: where part files go (``<prefix>-001.xlsx``...).
    :param prefix: the file names' prefix.
    :param header: the first row of every part.
    :param write: write the .xlsx files; ``False`` records recipients and digests only (a workbook that
        will be sent as the user gave it).
    """

    def __init__(self, out_dir: Path, prefix: str, header: list[str], *, write: bool = True) -> None:
        self.out_dir, self.prefix, self.header, self.writes = out_dir, prefix, header, write
        self.parts: list[WorkbookPart] = []
        self.total = 0
        self._sheet: SheetWriter | None = None
        self._lines: list[bytes] = []  # the part's rows as UTF-8 (byte order is code point order)
        # A row's digest line: ``name=text`` per cell, joined by \x1f (one ``str.format`` per row).
        self._line = "\x1f".join(name.replace("{", "{{").replace("}", "}}") + "={}" for name in header).format

    def _open(self, index: int, first_row: int) -> None:
        self._close_part()
        path = self.out_dir / f"{self.prefix}-{index:03d}.xlsx"
        if self.writes:
            self._sheet = SheetWriter(path, self.header)
        self.parts.append(WorkbookPart(path=path, rows=0, first_row=first_row, index=index))

    def encoded(self, cells: list[str]) -> bytes | None:
        """The row's digest line (``name=text`` joined by ``\x1f``, UTF-8); ``None`` when UTF-8 cannot hold it."""
        line = self._line(*cells)
        if "\ufffe" in line or "\uffff" in line:
            line = line.translate(_AS_STORED)
        try:
            return line.encode("utf-8")
        except UnicodeEncodeError:
            return None

    def write(self, cells: list[str], index: int, first_row: int, line: bytes | None = None) -> None:
        """
        Write one row into part ``index`` (opened, and the previous part closed, on its first row).

        :param line: the row's :meth:`encoded` line, when the caller has it.
        """
        if not self.parts or self.parts[-1].index != index:
            self._open(index, first_row)
        part = self.parts[-1]
        if self._sheet is not None:
            self._sheet.write_row(cells)
        part.rows += 1
        part.mobiles.append(cells[0])
        if line is None:
            line = self._line(*cells).translate(_AS_STORED).encode("utf-8")
        self._lines.append(line)
        self.total += 1

    def encoded_columns(self, columns: list[list[str]]) -> list[bytes] | None:
        """
        :meth:`encoded` of many rows given as columns (each a list of cell texts, the header's order);
        ``None`` when a row's line is not plain UTF-8 of its texts (then encode the rows one by one).
        """
        lines = list(map(self._line, *columns))
        joined = "\n".join(lines)
        if "\ufffe" in joined or "\uffff" in joined:
            return None
        try:
            joined.encode("utf-8")
        except UnicodeEncodeError:
            return None
        return list(map(str.encode, lines))

    def write_lines(self, mobiles: list[str], lines: list[bytes], index: int, first_row: int) -> None:
        """
        :meth:`write` of many rows that are recorded, not written (``write=False``): their msisdns and their
        :meth:`encoded` lines.
        """
        if self.writes:
            raise RuntimeError("write_lines records rows of a part that is not written")
        if not self.parts or self.parts[-1].index != index:
            self._open(index, first_row)
        part = self.parts[-1]
        part.rows += len(mobiles)
        part.mobiles.extend(mobiles)
        self._lines.extend(lines)
        self.total += len(mobiles)

    def _close_part(self) -> None:
        if self._sheet is not None:
            self._sheet.close()
            self._sheet = None
        if self.parts and not self.parts[-1].digest and self._lines:
            lines = self._lines
            lines.sort()
            digest = hashlib.sha256()
            for start in range(0, len(lines), _DIGEST_BATCH):  # a few joins, never one copy of every row
                digest.update(b"\n".join(lines[start : start + _DIGEST_BATCH]) + b"\n")
            self.parts[-1].digest = digest.digest()
            self._lines = []

    def close(self) -> list[WorkbookPart]:
        self._close_part()
        return self.parts

    def discard(self) -> None:
        if self._sheet is not None:
            self._sheet.discard()
            self._sheet = None
        self._lines = []
        for part in self.parts:
            part.path.unlink(missing_ok=True)
        self.parts = []
