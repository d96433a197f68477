"""
A streaming writer of one-sheet .xlsx workbooks of text cells: the parts of a bulk-file send.

XlsxWriter in ``constant_memory`` mode spends several microseconds of Python on every cell (dimension checks,
a cell object, attribute lists, escapes), which made writing most of a 100,000-row build. :class:`SheetWriter`
renders a row in one go, appends it to a temporary file, and on :meth:`~SheetWriter.close` zips the sheet into
a package that XlsxWriter itself wrote for the same header: content types, workbook, styles, theme, properties
and the sheet's frame (dimension, views, ignored errors) are XlsxWriter's, the rows are in its
``constant_memory`` form (inline strings, the same escapes, ``xml:space="preserve"`` for edge whitespace).
``tests/unit/test_xlsx_writer.py`` compares the sheet with XlsxWriter's, byte for byte.

One difference on purpose: XlsxWriter copies a text that looks like rich-text XML (``<r>...</r>``) into the
sheet unescaped; here every text is escaped, so a recipient's data can never break the workbook's XML.
"""

from __future__ import annotations

import re
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import xlsxwriter

#: Excel's longest cell text, in UTF-16 units (XlsxWriter truncates longer ones the same way).
MAX_CELL_UNITS = 32_767
_SHORT = MAX_CELL_UNITS // 2  # a text this long cannot be over the limit
_SHEET = "xl/worksheets/sheet1.xml"
_ROWS_PER_WRITE = 2_000
_COPY_CHUNK = 1 << 20
#: Anything that needs more than ``<t>text</t>``: XML specials, control characters, Excel's ``_xHHHH_``
#: escapes, the two non-characters, whitespace at either end (XlsxWriter's ``^\s`` / ``\s$``).
_SPECIAL = re.compile("[&<>\x00-\x08\x0b-\x1f\ufffe\uffff]|_x[0-9a-fA-F]{4}_|^\\s|\\s$")
_LITERAL_ESCAPE = re.compile("(_x[0-9a-fA-F]{4}_)")
_CONTROL = re.compile("([\x00-\x08\x0b-\x1f])")
_EDGE_SPACE = re.compile("^\\s|\\s$")


def column_letter(index: int) -> str:
    """Spreadsheet column letter of a 0-based column index: 0 -> ``A``, 27 -> ``AB``."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def _truncated(text: str) -> str:
    """``text`` cut to Excel's cell limit in UTF-16 units, never inside a character above U+FFFF."""
    units = 0
    for index, char in enumerate(text):
        units += 2 if ord(char) > 0xFFFF else 1
        if units > MAX_CELL_UNITS:
            return text[:index]
    return text


def cell_xml(text: str) -> tuple[str, str]:
    """The ``<t>`` attribute and content of one text cell, escaped as XlsxWriter's ``constant_memory`` does."""
    if len(text) > _SHORT:
        text = _truncated(text)
    text = _LITERAL_ESCAPE.sub(r"_x005F\1", text)
    text = _CONTROL.sub(lambda match: f"_x{ord(match.group(1)):04X}_", text)
    text = text.replace("\ufffe", "_xFFFE_").replace("\uffff", "_xFFFF_")
    attribute = ' xml:space="preserve"' if _EDGE_SPACE.search(text) else ""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return attribute, text


def _package(header: Sequence[str]) -> tuple[list[tuple[zipfile.ZipInfo, bytes]], str, str, str]:
    """
    XlsxWriter's workbook of ``header`` alone, as zip members, with its sheet split around the rows.

    Returns (members, sheet head up to ``<sheetData>``, the head's dimension element, tail from
    ``</sheetData>``).
    """
    with tempfile.TemporaryDirectory(prefix="mc-sheet-") as tmp:
        path = Path(tmp) / "template.xlsx"
        book = xlsxwriter.Workbook(
            str(path), {"constant_memory": True, "strings_to_formulas": False, "strings_to_urls": False}
        )
        sheet = book.add_worksheet()
        # Numbers are deliberately text: stop Excel flagging every cell of the number column.
        sheet.ignore_errors({"number_stored_as_text": "A1:XFD1048576"})
        for col, name in enumerate(header):
            sheet.write_string(0, col, name)
        book.close()
        with zipfile.ZipFile(path) as template:
            members = [(info, template.read(info)) for info in template.infolist()]
    xml = dict((info.filename, data) for info, data in members)[_SHEET].decode("utf-8")
    head, rest = xml.split("<sheetData>", 1)
    tail = rest[rest.index("</sheetData>") :]
    dimension = re.search(r'<dimension ref="[^"]*"/>', head)
    if dimension is None:  # pragma: no cover - XlsxWriter always writes one
        raise RuntimeError("XlsxWriter's sheet has no dimension element")
    return members, head + "<sheetData>", dimension.group(0), tail


class SheetWriter:
    """
    Write one .xlsx of text cells row by row, in constant memory; the first row is ``header``.

    :param path: the workbook to write (replaced when it exists).
    :param header: the first row.

    Example::

        writer = SheetWriter(Path("audience-001.xlsx"), ["mobile", "var1"])
        writer.write_row(["919816111111", "Asha"])
        writer.close()
    """

    def __init__(self, path: Path, header: Sequence[str]) -> None:
        self.path = path
        self.header = list(header)
        self.rows = 0
        self._letters = [column_letter(i) for i in range(len(self.header))]
        self._pending: list[str] = []
        self._spool: IO[bytes] = tempfile.TemporaryFile(prefix="mc-sheet-")  # noqa: SIM115 - closed by close()
        self.write_row(self.header)

    def write_row(self, cells: Sequence[str]) -> None:
        """Append one row of texts (at most as many as the header has columns)."""
        self.rows = number = self.rows + 1
        xml = [f'<row r="{number}">']
        for letter, text in zip(self._letters, cells, strict=False):
            if len(text) <= _SHORT and _SPECIAL.search(text) is None:
                xml.append(f'<c r="{letter}{number}" t="inlineStr"><is><t>{text}</t></is></c>')
            else:
                attribute, escaped = cell_xml(text)
                xml.append(f'<c r="{letter}{number}" t="inlineStr"><is><t{attribute}>{escaped}</t></is></c>')
        xml.append("</row>")
        pending = self._pending
        pending.append("".join(xml))
        if len(pending) >= _ROWS_PER_WRITE:
            self._spool.write("".join(pending).encode("utf-8"))
            pending.clear()

    def close(self) -> Path:
        """Zip the workbook at :attr:`path`; return it."""
        spool = self._spool
        try:
            if self._pending:
                spool.write("".join(self._pending).encode("utf-8"))
                self._pending = []
            members, head, template_dimension, tail = _package(self.header)
            last = f"{self._letters[-1] if self._letters else 'A'}{self.rows}"
            dimension = f'<dimension ref="{"A1" if last == "A1" else "A1:" + last}"/>'
            head = head.replace(template_dimension, dimension, 1)
            with zipfile.ZipFile(self.path, "w", compression=zipfile.ZIP_DEFLATED) as book:
                for template_info, data in members:
                    info = zipfile.ZipInfo(template_info.filename, template_info.date_time)
                    info.compress_type = template_info.compress_type
                    info.external_attr = template_info.external_attr
                    if info.filename != _SHEET:
                        book.writestr(info, data)
                        continue
                    with book.open(info, "w") as sheet:
                        sheet.write(head.encode("utf-8"))
                        spool.seek(0)
                        while chunk := spool.read(_COPY_CHUNK):
                            sheet.write(chunk)
                        sheet.write(tail.encode("utf-8"))
        finally:
            spool.close()
        return self.path

    def discard(self) -> None:
        """Drop what was written (the file is not created)."""
        self._pending = []
        self._spool.close()
