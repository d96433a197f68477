from __future__ import annotations

import datetime
import zipfile
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest

from airflow_provider_messagecentral.audience.rows import PLACEHOLDER_RE, cell_text, placeholders, render
from airflow_provider_messagecentral.audience.workbook_build import build_workbooks
from airflow_provider_messagecentral.audience.workbook_check import check_workbook, column_letter, iter_workbook_rows
from airflow_provider_messagecentral.exceptions import MessageCentralValidationError

MESSAGE = "Hello ##var1##, your balance is ##var2## on ##var3##"


def people(n: int, start: int = 9816100000) -> list[dict[str, object]]:
    return [
        {"mobile": str(start + i), "var1": f"Asha {i}", "var2": 100 + i, "var3": datetime.date(2024, 1, 5)}
        for i in range(n)
    ]


def read_back(path: Path) -> list[list[object]]:
    book = openpyxl.load_workbook(path, read_only=True)
    try:
        return [list(row) for row in book.active.iter_rows(values_only=True)]
    finally:
        book.close()


def save_openpyxl(path: Path, rows: list[list[object]]) -> Path:
    book = openpyxl.Workbook()
    for row in rows:
        book.active.append(row)
    book.save(path)
    return path


# placeholders and render


def test_placeholders_are_ordered_and_unique():
    assert placeholders("##var2## then ##var1## and ##var2## again, ##first_name##, ## not ##") == [
        "var2",
        "var1",
        "first_name",
    ]
    assert placeholders("no placeholders") == []
    assert PLACEHOLDER_RE.fullmatch("##var_10##")


def test_render_substitutes_text_as_written_in_the_workbook():
    values = {"var1": "Asha", "var2": 1500.0, "var3": datetime.date(2024, 1, 5)}
    assert render(MESSAGE, values) == "Hello Asha, your balance is 1500 on 2024-01-05"
    assert render("Pay ##var1##", {"var1": Decimal("12.50")}) == "Pay 12.50"


def test_render_refuses_missing_or_empty_values():
    with pytest.raises(MessageCentralValidationError, match=r"##var2## has no value"):
        render(MESSAGE, {"var1": "Asha", "var3": "x"})
    with pytest.raises(MessageCentralValidationError, match=r"##var1## has an empty value"):
        render(MESSAGE, {"var1": " ", "var2": 1, "var3": "x"})


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (9816111111.0, "9816111111"),
        (9816111111, "9816111111"),
        (12.5, "12.5"),
        (0.1 + 0.2, "0.3"),
        (True, "True"),
        (datetime.datetime(2024, 1, 5, 9, 30), "2024-01-05T09:30:00"),
        (Decimal("1E+3"), "1000"),
        (None, None),
        ("", None),
        ("   ", None),
        (float("nan"), None),
    ],
)
def test_cell_text(value, text):
    assert cell_text(value) == text


def test_column_letters():
    assert [column_letter(i) for i in (0, 2, 25, 26, 27, 701, 702)] == ["A", "C", "Z", "AA", "AB", "ZZ", "AAA"]


# build_workbooks


def test_build_round_trip(tmp_path):
    rows = people(3)
    rows[0]["mobile"] = 9816100000.0  # a float from pandas must never come out as 9816100000.0
    built = build_workbooks(rows, MESSAGE, tmp_path)
    assert built.rows == 3
    assert built.columns == ["mobile", "var1", "var2", "var3"]
    assert [p.rows for p in built.parts] == [3]
    assert built.country_codes == {"91": 3}
    assert read_back(built.parts[0].path) == [
        ["mobile", "var1", "var2", "var3"],
        ["919816100000", "Asha 0", "100", "2024-01-05"],
        ["919816100001", "Asha 1", "101", "2024-01-05"],
        ["919816100002", "Asha 2", "102", "2024-01-05"],
    ]


def test_build_splits_into_parts_with_headers(tmp_path):
    built = build_workbooks(people(5), MESSAGE, tmp_path, rows_per_file=2, name_prefix="june")
    assert [(p.path.name, p.rows, p.first_row) for p in built.parts] == [
        ("june-001.xlsx", 2, 1),
        ("june-002.xlsx", 2, 3),
        ("june-003.xlsx", 1, 5),
    ]
    for part in built.parts:
        content = read_back(part.path)
        assert content[0] == ["mobile", "var1", "var2", "var3"]
        assert len(content) == part.rows + 1
    assert read_back(built.parts[2].path)[1][0] == "919816100004"


def test_build_maps_placeholders_to_source_columns(tmp_path):
    rows = [{"phone": "+91 98161 00000", "first_name": "Asha", "due": "5 Jan"}]
    built = build_workbooks(
        rows,
        "Hi ##var1##, due ##var2##",
        tmp_path,
        number_column="phone",
        columns={"var1": "first_name", "var2": "due"},
    )
    assert read_back(built.parts[0].path) == [["phone", "var1", "var2"], ["919816100000", "Asha", "5 Jan"]]


def test_build_missing_number_column_lists_keys(tmp_path):
    with pytest.raises(MessageCentralValidationError, match=r"number column 'mobile' not found.*'phone', 'var1'"):
        build_workbooks([{"phone": "9816100000", "var1": "x"}], "Hi ##var1##", tmp_path)


def test_build_placeholder_without_source_column(tmp_path):
    with pytest.raises(MessageCentralValidationError, match=r"##var2## \(column 'balance'\)"):
        build_workbooks(
            [{"mobile": "9816100000", "var1": "x"}], "##var1## ##var2##", tmp_path, columns={"var2": "balance"}
        )


def test_build_fail_names_row_and_column_and_leaves_nothing(tmp_path):
    rows = people(4)
    rows[1]["var2"] = None
    rows[2]["mobile"] = "12345"
    rows[3]["var1"] = ""
    with pytest.raises(MessageCentralValidationError) as err:
        build_workbooks(rows, MESSAGE, tmp_path)
    text = str(err.value)
    assert "3 problem(s) in 3 row(s)" in text
    assert "row 2, column 'var2': empty, needed by ##var2##" in text
    assert "row 3, column 'mobile':" in text and "'12345'" in text
    assert "row 4, column 'var1': empty, needed by ##var1##" in text
    assert list(tmp_path.iterdir()) == []


def test_build_fail_lists_at_most_20_with_total(tmp_path):
    rows = [{"mobile": "1", "var1": "x"} for _ in range(25)]
    with pytest.raises(MessageCentralValidationError) as err:
        build_workbooks(rows, "##var1##", tmp_path)
    text = str(err.value)
    assert text.startswith("25 problem(s) in 25 row(s)")
    assert "row 20, column 'mobile'" in text and "row 21," not in text and "and 5 more" in text


def test_build_skip_reports_invalid_and_counts_duplicates(tmp_path):
    rows = people(4)
    rows[1]["var3"] = None
    rows.append(dict(rows[0], mobile="+91 " + str(rows[0]["mobile"])))  # same number, other spelling
    built = build_workbooks(rows, MESSAGE, tmp_path, on_invalid="skip")
    assert built.rows == 3
    assert built.duplicates == 1
    assert built.skipped == 1
    assert [p.describe() for p in built.invalid] == ["row 2, column 'var3': empty, needed by ##var3##"]
    assert [r[0] for r in read_back(built.parts[0].path)[1:]] == ["919816100000", "919816100002", "919816100003"]


def test_build_row_missing_a_key_later_on(tmp_path):
    rows = [*people(1), {"mobile": "9816100009", "var1": "x", "var2": 1}]
    with pytest.raises(MessageCentralValidationError, match=r"row 2, column 'var3': missing, needed by ##var3##"):
        build_workbooks(rows, MESSAGE, tmp_path)


def test_build_empty_audience(tmp_path):
    with pytest.raises(MessageCentralValidationError, match="no rows"):
        build_workbooks([], MESSAGE, tmp_path)
    with pytest.raises(MessageCentralValidationError, match="no recipient left: 1 row"):
        build_workbooks([{"mobile": "123", "var1": "a"}], "##var1##", tmp_path, on_invalid="skip")


def test_build_rejects_bad_arguments(tmp_path):
    for kwargs in ({"on_invalid": "ignore"}, {"rows_per_file": 0}, {"name_prefix": "../x"}):
        with pytest.raises(MessageCentralValidationError):
            build_workbooks(people(1), MESSAGE, tmp_path, **kwargs)


def test_build_streams_a_generator(tmp_path):
    pulled = 0
    written_when_pulled: list[int] = []

    def rows() -> Iterator[dict[str, object]]:
        nonlocal pulled
        for row in people(7):
            # The parts written so far prove earlier rows were handled before this one was pulled.
            written_when_pulled.append(sum(1 for _ in tmp_path.glob("*.xlsx")))
            pulled += 1
            yield row
        raise AssertionError("generator resumed after it was exhausted")  # pragma: no cover

    gen = rows()
    with pytest.raises(AssertionError, match="resumed"):
        build_workbooks(gen, MESSAGE, tmp_path, rows_per_file=2)
    assert pulled == 7
    # part 1 (rows 1-2) is on disk when row 4 is pulled, part 2 when row 6 is: written while streaming
    assert written_when_pulled == [0, 0, 0, 1, 1, 2, 2]
    assert list(tmp_path.glob("*.xlsx")) == []  # the failed build removed its parts


def test_build_consumes_an_iterator_once(tmp_path):
    consumed: list[int] = []

    class OneShot:
        def __iter__(self) -> Iterator[dict[str, object]]:
            consumed.append(1)
            yield from people(3)

    built = build_workbooks(OneShot(), MESSAGE, tmp_path)
    assert built.rows == 3
    assert consumed == [1]


# check_workbook


def good_workbook(path: Path) -> Path:
    return save_openpyxl(
        path,
        [
            ["mobile", "var1", "var2", "var3"],
            [9816100000, "Asha", 1500, datetime.date(2024, 1, 5)],  # numeric cells, as Excel stores them
            [919816100001, "Ravi", 20.5, "5 Jan"],
            [None, None, None, None],  # blank row: not a recipient
            ["+91 98161 00002", "Mira", 0, "6 Jan"],
        ],
    )


def test_check_good_workbook_with_numeric_cells(tmp_path):
    check = check_workbook(good_workbook(tmp_path / "a.xlsx"), MESSAGE)
    assert check.rows == 3
    assert check.columns == ["mobile", "var1", "var2", "var3"]
    assert check.number_column == "mobile"
    assert check.sample[0] == {"mobile": "9816100000", "var1": "Asha", "var2": "1500", "var3": "2024-01-05"}
    assert check.sample[1]["mobile"] == "919816100001"
    assert check.sheet_rows == (2, 5)


def test_check_accepts_what_build_writes(tmp_path):
    built = build_workbooks(people(3), MESSAGE, tmp_path)
    check = check_workbook(built.parts[0].path, MESSAGE)
    assert check.rows == 3 and check.duplicates == 0


def test_check_csv_renamed(tmp_path):
    path = tmp_path / "a.xlsx"
    path.write_text("mobile,var1\n9816100000,Asha\n")
    with pytest.raises(
        MessageCentralValidationError, match=r"a\.xlsx: not an \.xlsx: this is CSV or plain text.*'mobile,var1'"
    ):
        check_workbook(path, "##var1##")


def test_check_ole2_file(tmp_path):
    path = tmp_path / "a.xlsx"
    path.write_bytes(bytes.fromhex("D0CF11E0A1B11AE1") + b"\0" * 504)
    with pytest.raises(MessageCentralValidationError, match=r"legacy \.xls or a password-protected/encrypted"):
        check_workbook(path, "##var1##")


def test_check_random_zip(tmp_path):
    path = tmp_path / "a.xlsx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes.txt", "hello")
    with pytest.raises(MessageCentralValidationError, match=r"a zip archive, not an \.xlsx workbook"):
        check_workbook(path, "##var1##")


def test_check_zip_bomb_is_refused_before_parsing(tmp_path, mocker):
    path = tmp_path / "a.xlsx"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "<workbook/>")
        with archive.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as member:
            chunk = b"\0" * (1024 * 1024)
            for _ in range(20):
                member.write(chunk)
    assert path.stat().st_size < 100_000
    parse = mocker.patch("airflow_provider_messagecentral.audience.workbook_check.CalamineWorkbook")
    with pytest.raises(MessageCentralValidationError, match=r"sheet1\.xml' expands \d+x.*zip bomb"):
        check_workbook(path, "##var1##")
    with pytest.raises(MessageCentralValidationError, match=r"declares 20 MB uncompressed.*zip bomb"):
        check_workbook(path, "##var1##", max_uncompressed_bytes=10 * 1024 * 1024)
    parse.from_path.assert_not_called()


def test_check_file_over_max_bytes(tmp_path):
    path = good_workbook(tmp_path / "a.xlsx")
    with pytest.raises(MessageCentralValidationError, match="over the limit of"):
        check_workbook(path, MESSAGE, max_bytes=1000)


def test_check_missing_number_column_lists_headers(tmp_path):
    path = save_openpyxl(tmp_path / "a.xlsx", [["phone", "var1"], ["9816100000", "x"]])
    with pytest.raises(MessageCentralValidationError, match=r"no number column 'mobile'.*found: 'phone', 'var1'"):
        check_workbook(path, "##var1##")


def test_check_missing_placeholder_column(tmp_path):
    path = save_openpyxl(tmp_path / "a.xlsx", [["mobile", "var1"], ["9816100000", "x"]])
    with pytest.raises(MessageCentralValidationError, match=r"no column for placeholder\(s\) ##var2##, ##var3##"):
        check_workbook(path, MESSAGE)


def test_check_no_header_row(tmp_path):
    path = save_openpyxl(tmp_path / "a.xlsx", [["9816100000", "x"]])
    with pytest.raises(MessageCentralValidationError, match="looks like data"):
        check_workbook(path, "##var1##")


def test_check_row_errors_name_sheet_row_and_column_letter(tmp_path):
    path = save_openpyxl(
        tmp_path / "a.xlsx",
        [
            ["mobile", "var1", "var2", "var3"],
            ["9816100000", "a", 1, "x"],
            ["9816100001", "b", None, "x"],
            ["12345", "c", 3, "x"],
        ],
    )
    with pytest.raises(MessageCentralValidationError) as err:
        check_workbook(path, MESSAGE)
    text = str(err.value)
    assert "2 problem(s) in 2 row(s)" in text
    assert "row 3, column C 'var2': empty, needed by ##var2##" in text
    assert "row 4, column A 'mobile':" in text


def test_check_data_not_starting_at_a1(tmp_path):
    book = openpyxl.Workbook()
    sheet = book.active
    sheet["B2"], sheet["C2"] = "mobile", "var1"
    sheet["B3"], sheet["C3"] = 9816100000, "a"
    sheet["B4"] = 9816100001
    book.save(tmp_path / "a.xlsx")
    with pytest.raises(MessageCentralValidationError, match=r"row 4, column C 'var1': empty"):
        check_workbook(tmp_path / "a.xlsx", "##var1##")


def test_check_counts_duplicates(tmp_path):
    path = save_openpyxl(tmp_path / "a.xlsx", [["mobile"], [9816100000], ["+919816100000"]])
    assert check_workbook(path, "Hello").duplicates == 1


def test_check_empty_sheet_and_header_only(tmp_path):
    with pytest.raises(MessageCentralValidationError, match="sheet is empty"):
        check_workbook(save_openpyxl(tmp_path / "a.xlsx", []), "Hello")
    with pytest.raises(MessageCentralValidationError, match="no recipient rows"):
        check_workbook(save_openpyxl(tmp_path / "b.xlsx", [["mobile"]]), "Hello")


def test_iter_workbook_rows(tmp_path):
    rows = list(iter_workbook_rows(good_workbook(tmp_path / "a.xlsx"), "mobile"))
    assert [r["mobile"] for r in rows] == ["9816100000", "919816100001", "+91 98161 00002"]
    assert rows[1]["var2"] == "20.5"
    with pytest.raises(MessageCentralValidationError, match="no number column 'phone'"):
        iter_workbook_rows(tmp_path / "a.xlsx", "phone")


def test_row_value_with_a_lone_surrogate_names_row_and_column(tmp_path: Path) -> None:
    rows = [{"mobile": "9816100001", "var1": "Asha"}, {"mobile": "9816100002", "var1": "bad \ud83d value"}]
    with pytest.raises(MessageCentralValidationError, match=r"row 2, column 'var1': not valid Unicode"):
        build_workbooks(rows, "Hi ##var1##", tmp_path)


def test_build_suppresses_counts_samples_and_digests_in_one_pass(tmp_path: Path) -> None:
    import hashlib

    from airflow_provider_messagecentral.safety.cost import SegmentTally

    lookups: list[list[str]] = []

    def suppressed(msisdns: Iterator[str]) -> set[str]:
        batch = list(msisdns)
        lookups.append(batch)
        return {"919816100001", "919816100002"} & set(batch)

    tally = SegmentTally("SMS", max_segments=6)
    built = build_workbooks(people(5), MESSAGE, tmp_path, rows_per_file=2, suppressed=suppressed, tally=tally)
    # Parts are cut before suppression (rows 1-2, 3-4, 5), so a grown suppression list keeps the other parts.
    assert [(p.path.name, p.index, p.rows, p.first_row, p.mobiles) for p in built.parts] == [
        ("audience-001.xlsx", 1, 1, 1, ["919816100000"]),
        ("audience-002.xlsx", 2, 1, 3, ["919816100003"]),
        ("audience-003.xlsx", 3, 1, 5, ["919816100004"]),
    ]
    assert built.parts[1].label(built.part_count) == "workbook 2/3 (rows 3-3)"
    assert (built.rows, built.suppressed, built.part_count, built.country_codes) == (3, 2, 3, {"91": 3})
    assert [len(batch) for batch in lookups] == [5]  # looked up in one batch, not per row
    assert (tally.messages, tally.segments) == (3, 3)
    assert built.samples[0] == {
        "mobile": "+919816100000",
        "text": "Hello Asha 0, your balance is 100 on 2024-01-05",
        "encoding": "GSM-7",
        "segments": 1,
    }
    for part in built.parts:  # the digest is of the rows as the workbook holds them, in any order
        header, *rows = read_back(part.path)
        digest = hashlib.sha256()
        for line in sorted("\x1f".join(f"{h}={v}" for h, v in zip(header, row, strict=True)) for row in rows):
            digest.update(line.encode() + b"\n")
        assert part.digest == digest.digest()


def test_build_max_segments_names_the_row_and_leaves_nothing(tmp_path: Path) -> None:
    from airflow_provider_messagecentral.safety.cost import SegmentTally

    rows = [{"mobile": "9816100001", "var1": "short"}, {"mobile": "9816100002", "var1": "x" * 200}]
    with pytest.raises(MessageCentralValidationError, match=r"row 2: the message takes 2 segment\(s\)"):
        build_workbooks(rows, "##var1##", tmp_path, rows_per_file=1, tally=SegmentTally("SMS", max_segments=1))
    assert list(tmp_path.iterdir()) == []
