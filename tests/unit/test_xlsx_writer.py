"""The fast sheet writer writes the workbooks XlsxWriter wrote: same package, same sheet XML, byte for byte."""

from __future__ import annotations

import zipfile
from pathlib import Path

import openpyxl
import pytest
import xlsxwriter
from hypothesis import given, settings
from hypothesis import strategies as st
from python_calamine import CalamineWorkbook

from airflow_provider_messagecentral.audience.xlsx_writer import SheetWriter, cell_xml

HEADER = ["mobile", "var1", "var2"]
TRICKY = [
    "plain",
    " leading",
    "trailing ",
    "\tTab",
    "line\nbreak\n",
    "a&b<c>d",
    "quote \"x\" 'y'",
    "ctl\x01\x1fx",
    "_x0041_ looks escaped",
    "_X00e9_ too",
    "\ufffe\uffff",
    "é😀 नमस्ते",
    "x" * 40_000,
    "😀" * 20_000,
    "=SUM(A1:A2)",
    "http://example.com",
    "0009816111111",
    "",
]


def xlsxwriter_book(path: Path, rows: list[list[str]]) -> Path:
    """The builder's former writer: XlsxWriter, constant_memory, one write_string per cell."""
    book = xlsxwriter.Workbook(
        str(path), {"constant_memory": True, "strings_to_formulas": False, "strings_to_urls": False}
    )
    sheet = book.add_worksheet()
    sheet.ignore_errors({"number_stored_as_text": "A1:XFD1048576"})
    for col, name in enumerate(HEADER):
        sheet.write_string(0, col, name)
    for number, row in enumerate(rows, start=1):
        for col, text in enumerate(row):
            sheet.write_string(number, col, text)
    book.close()
    return path


def ours(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> Path:
    writer = SheetWriter(path, header)
    for row in rows:
        writer.write_row(row)
    return writer.close()


def members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as book:
        return {info.filename: book.read(info) for info in book.infolist()}


def tricky_rows() -> list[list[str]]:
    return [[f"91981611{i:04d}", text, TRICKY[(i + 5) % len(TRICKY)]] for i, text in enumerate(TRICKY)]


def test_the_package_is_xlsxwriters_byte_for_byte(tmp_path: Path) -> None:
    rows = tricky_rows()
    theirs = members(xlsxwriter_book(tmp_path / "theirs.xlsx", rows))
    mine = members(ours(tmp_path / "ours.xlsx", rows))
    assert list(mine) == list(theirs)  # same members, same order
    for name in theirs:
        if name != "docProps/core.xml":  # creation time
            assert mine[name] == theirs[name], name


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(st.text(max_size=30), min_size=3, max_size=3), min_size=1, max_size=8))
def test_any_text_is_written_as_xlsxwriter_writes_it(
    tmp_path_factory: pytest.TempPathFactory, rows: list[list[str]]
) -> None:
    rows = [row for row in rows if all(not text.startswith("<r>") for text in row)]
    rows = [[t.encode("utf-8", "surrogatepass").decode("utf-8", "replace") for t in row] for row in rows]
    if not rows:
        return
    tmp = tmp_path_factory.mktemp("xlsx")
    theirs = members(xlsxwriter_book(tmp / "theirs.xlsx", rows))
    mine = members(ours(tmp / "ours.xlsx", rows))
    assert mine["xl/worksheets/sheet1.xml"] == theirs["xl/worksheets/sheet1.xml"]


def test_rich_text_lookalikes_are_escaped_not_copied(tmp_path: Path) -> None:
    """XlsxWriter copies ``<r>...</r>`` into the sheet unescaped; data must never become XML."""
    path = ours(tmp_path / "a.xlsx", [["919816111111", "<r>x</r>", "</t></is></c><c>"]])
    assert CalamineWorkbook.from_path(str(path)).get_sheet_by_index(0).to_python()[1][1:] == [
        "<r>x</r>",
        "</t></is></c><c>",
    ]
    assert cell_xml("<r>x</r>") == ("", "&lt;r&gt;x&lt;/r&gt;")


def test_readers_get_the_texts_back(tmp_path: Path) -> None:
    rows = tricky_rows()
    path = ours(tmp_path / "a.xlsx", rows)
    by_calamine = CalamineWorkbook.from_path(str(path)).get_sheet_by_index(0).to_python()
    book = openpyxl.load_workbook(path, read_only=True)
    by_openpyxl = [list(r) for r in book.active.iter_rows(values_only=True)]
    book.close()
    assert by_calamine[0] == HEADER
    for got in (by_calamine, by_openpyxl):
        assert [row[0] for row in got[1:]] == [row[0] for row in rows]
        assert got[1][1] == "plain" and got[6][1] == "a&b<c>d" and got[12][1] == "é😀 नमस्ते"


def test_many_rows_and_one_column(tmp_path: Path) -> None:
    rows = [[f"9198{i:08d}"] for i in range(5_000)]
    path = ours(tmp_path / "a.xlsx", rows, header=["mobile"])
    assert members(path)["xl/worksheets/sheet1.xml"].startswith(b"<?xml")
    assert b'<dimension ref="A1:A5001"/>' in members(path)["xl/worksheets/sheet1.xml"]
    values = CalamineWorkbook.from_path(str(path)).get_sheet_by_index(0).to_python()
    assert len(values) == 5_001 and values[-1] == ["919800004999"]
    header_only = ours(tmp_path / "b.xlsx", [], header=["mobile"])
    assert b'<dimension ref="A1"/>' in members(header_only)["xl/worksheets/sheet1.xml"]


def test_discard_leaves_no_file(tmp_path: Path) -> None:
    writer = SheetWriter(tmp_path / "a.xlsx", HEADER)
    writer.write_row(["919816111111", "a", "b"])
    writer.discard()
    assert list(tmp_path.iterdir()) == []
