"""
A workbook given to the file send operator is read once: the same checks, errors, parts and ledger keys as
checking it and then rebuilding it, and uploaded unchanged when the rebuild would only copy it.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import openpyxl
import pytest
import xlsxwriter
from fake_http import Call, FakeMessageCentral, install, ok_send

from airflow_provider_messagecentral.audience.workbook_build import BuildOptions, build_workbooks
from airflow_provider_messagecentral.audience.workbook_check import check_workbook, iter_workbook_rows
from airflow_provider_messagecentral.audience.workbook_given import read_given_workbook
from airflow_provider_messagecentral.campaign.ledger import unit_key
from airflow_provider_messagecentral.exceptions import MessageCentralValidationError
from airflow_provider_messagecentral.operators.messagecentral import MessageCentralFileSendOperator
from airflow_provider_messagecentral.reports.store import get_store
from airflow_provider_messagecentral.safety.cost import SegmentTally

MESSAGE = "Hi ##var1##, you owe ##var2##"


def write_book(path: Path, rows: list[list[Any]], *, header: list[Any] | None = None, formula: bool = False) -> Path:
    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet()
    sheet.write_row(0, 0, header or ["mobile", "var1", "var2"])
    for number, row in enumerate(rows, start=1):
        for col, value in enumerate(row):
            if isinstance(value, str):
                sheet.write_string(number, col, value)
            elif value is not None:
                sheet.write(number, col, value)
    if formula:
        sheet.write_formula(len(rows) + 1, 0, '="9816100099"', None, "9816100099")
        sheet.write_string(len(rows) + 1, 1, "F")
        sheet.write_string(len(rows) + 1, 2, "9")
    book.close()
    return path


def clean_rows(n: int = 5) -> list[list[Any]]:
    return [[f"98161000{i:02d}", ["Asha", "Ravi ", "Zoë", "😀"][i % 4], f"{i * 1.5:.2f}"] for i in range(n)]


def two_step(path: Path, out: Path, options: BuildOptions) -> tuple[Any, Any]:
    """What the operator did before: check the workbook, then rebuild it from its rows."""
    check = check_workbook(path, MESSAGE, number_column=options.number_column, default_country=options.default_country)
    built = build_workbooks(iter_workbook_rows(path, options.number_column), MESSAGE, out, **options.arguments())
    return check, built


def outcome(fn: Any) -> tuple[str, Any]:
    try:
        check, built = fn()
    except MessageCentralValidationError as err:
        return "refused", str(err)
    parts = [(p.index, p.rows, p.first_row, p.mobiles, p.digest) for p in built.parts]
    counts = (built.rows, built.duplicates, built.skipped, built.suppressed, built.part_count, built.country_codes)
    return "built", (check.rows, check.columns, check.duplicates, check.sheet_rows, parts, counts, built.samples)


SCENARIOS: dict[str, tuple[list[list[Any]], dict[str, Any]]] = {
    "clean": (clean_rows(), {}),
    "clean msisdn": ([[f"91{r[0]}", r[1], r[2]] for r in clean_rows()], {}),
    "plus form": ([["+91 98161 00000", "A", "1"], *clean_rows()[1:]], {}),
    "zero prefix": ([["09816100000", "A", "1"], *clean_rows()[1:]], {}),
    "numeric cells": ([[9816100000, "A", 1.5], *clean_rows()[1:]], {}),
    # Rows after the first that the build would change: it stops copying cells from there on.
    "numeric value later": ([*clean_rows(3), ["9816100007", "Ravi", 7.25], *clean_rows(6)[3:]], {}),
    "padded number later": ([*clean_rows(3), [" 9816100007 ", "Ravi", "7"], *clean_rows(6)[3:]], {}),
    "duplicate": ([*clean_rows(), ["919816100001", "again", "2"]], {}),
    "bad number": ([*clean_rows(), ["12345", "x", "1"]], {}),
    "empty value": ([*clean_rows(), ["9816100009", None, "1"]], {}),
    "blank row": ([*clean_rows(2), [None, None, None], *clean_rows(4)[2:]], {}),
    "split": (clean_rows(7), {"rows_per_file": 3}),
    "suppressed": (clean_rows(), {"suppressed": lambda ms: {"919816100002"} & set(ms)}),
    "too long": ([*clean_rows(), ["9816100009", "x" * 200, "1"]], {"tally": SegmentTally("SMS", max_segments=1)}),
    "too long and bad": (
        [["9816100009", "x" * 200, "1"], *clean_rows(), ["12", "x", "1"]],
        {"tally": SegmentTally("SMS", max_segments=1)},
    ),
    "skip": ([*clean_rows(), ["919816100001", "again", "2"]], {"on_invalid": "skip"}),
    "mapped columns": (clean_rows(), {"columns": {"var2": "var1"}}),
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_one_read_says_and_builds_what_check_then_build_did(tmp_path: Path, name: str) -> None:
    rows, extra = SCENARIOS[name]
    path = write_book(tmp_path / "given.xlsx", rows)
    make = {k: v for k, v in extra.items() if k != "tally"}

    def options() -> BuildOptions:
        tally = extra.get("tally")
        return BuildOptions(**make, tally=SegmentTally("SMS", tally.max_segments) if tally else SegmentTally())

    before = outcome(lambda: two_step(path, tmp_path / "a", options()))

    def one_read() -> tuple[Any, Any]:
        given = read_given_workbook(path, MESSAGE, tmp_path / "b", options())
        return given.check, given.built

    given = outcome(one_read)
    assert given == before


@pytest.mark.parametrize(
    ("name", "as_given"),
    [
        ("clean", True),
        ("clean msisdn", True),
        ("plus form", False),
        ("zero prefix", False),
        ("numeric cells", False),
        ("numeric value later", False),
        ("padded number later", False),
        ("duplicate", False),
        ("blank row", False),
        ("split", False),
        ("suppressed", False),
        ("mapped columns", False),
    ],
)
def test_only_a_workbook_the_build_would_copy_is_sent_as_given(tmp_path: Path, name: str, as_given: bool) -> None:
    rows, extra = SCENARIOS[name]
    path = write_book(tmp_path / "given.xlsx", rows)
    tally = SegmentTally()
    given = read_given_workbook(path, MESSAGE, tmp_path / "out", BuildOptions(**extra, tally=tally))
    assert given.built.as_given is as_given
    assert tally.messages == given.built.rows  # counted once, whichever way
    if as_given:
        part = given.built.parts[0]
        assert part.path == path and part.content == path.read_bytes()
        assert list((tmp_path / "out").iterdir()) == []
    else:
        assert all(p.content is None and p.path.parent == tmp_path / "out" for p in given.built.parts)


@pytest.mark.parametrize(
    "layout",
    ["formula", "number not first", "header with spaces", "two sheets", "another number-like column"],
)
def test_layouts_a_reader_might_take_differently_are_rebuilt(tmp_path: Path, layout: str) -> None:
    path = tmp_path / "given.xlsx"
    rows = clean_rows()
    if layout == "formula":
        write_book(path, rows, formula=True)
    elif layout == "number not first":
        write_book(path, [[r[1], r[0], r[2]] for r in rows], header=["var1", "mobile", "var2"])
    elif layout == "header with spaces":
        write_book(path, rows, header=["mobile", " var1", "var2"])
    elif layout == "another number-like column":
        write_book(path, [[*r, "x"] for r in rows], header=["mobile", "var1", "var2", "phone"])
    else:
        write_book(path, rows)
        book = openpyxl.load_workbook(path)
        book.create_sheet("notes")
        book.save(path)
    try:
        given = read_given_workbook(path, MESSAGE, tmp_path / "out", BuildOptions())
    except MessageCentralValidationError:
        assert layout == "header with spaces"  # " var1" is not the placeholder's column
        return
    assert not given.built.as_given


# -- through the operator --------------------------------------------------------------------------------------


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeMessageCentral:
    conn = {
        "conn_type": "messagecentral",
        "host": "http://messagecentral.invalid",
        "login": "C-TEST",
        "password": "s3cret-Pa55word",
        "extra": {"email": "ops@example.com", "auth_token": "pre.issued.token-XYZ", "country": "91"},
    }
    conn["extra"]["reports_url"] = f"sqlite:///{tmp_path / 'reports.db'}"  # type: ignore[index]
    monkeypatch.setenv("AIRFLOW_CONN_MESSAGECENTRAL_DEFAULT", json.dumps(conn))
    fake = install(monkeypatch, FakeMessageCentral(send_replies=[ok_send(f"tx-{n}") for n in range(1, 21)]))
    fake.reports_url = conn["extra"]["reports_url"]  # type: ignore[attr-defined,index]
    return fake


def uploaded(call: Call) -> tuple[str, bytes]:
    boundary = call.headers["Content-Type"].split("boundary=", 1)[1].encode()
    for part in (call.body or b"").split(b"--" + boundary):
        head, _, content = part.partition(b"\r\n\r\n")
        if b'name="file"' in head:
            name = head.split(b'filename="', 1)[1].split(b'"', 1)[0].decode()
            return name, content.removesuffix(b"\r\n")
    raise AssertionError("no file in the upload")


def send(workbook: Path, **kwargs: Any) -> dict[str, Any]:
    op = MessageCentralFileSendOperator(
        task_id="send", message=MESSAGE, workbook=str(workbook), message_type="TRANSACTIONAL", **kwargs
    )
    ti = SimpleNamespace(dag_id="dag", run_id="run-1", task_id="send", map_index=-1, try_number=1)
    return dict(op.execute({"ti": ti, "params": {}}))  # type: ignore[arg-type]


def test_a_clean_workbook_is_uploaded_unchanged_under_the_key_a_rebuild_had(
    api: FakeMessageCentral, tmp_path: Path
) -> None:
    path = write_book(tmp_path / "customers.xlsx", clean_rows())
    summary = send(path)
    assert (summary["recipients"], summary["accepted"], summary["chunks"], summary["segments"]) == (5, 5, 1, 5)
    (call,) = api.send_calls
    assert uploaded(call) == ("customers.xlsx", path.read_bytes())
    assert call.params["countryCode"] == "91"
    # The unit key is the one the rebuilt workbook had: a retry after an upgrade finds it.
    _, built = two_step(path, tmp_path / "old", BuildOptions())
    options = {"flowType": "SMS", "type": "SMS", "messageType": "TRANSACTIONAL"}
    (part,) = built.parts
    expected = unit_key("file", part.mobiles, MESSAGE, options, content=part.digest)
    assert list(get_store(api.reports_url).get_units(summary["campaign"])) == [expected]  # type: ignore[attr-defined]


def test_a_workbook_that_must_change_is_rebuilt(api: FakeMessageCentral, tmp_path: Path) -> None:
    path = write_book(tmp_path / "customers.xlsx", [["+91 98161 00000", "A", "1"], *clean_rows()[1:]])
    summary = send(path)
    assert summary["accepted"] == 5
    name, content = uploaded(api.send_calls[0])
    assert name == "audience-001.xlsx" and content != path.read_bytes()


def test_a_dry_run_of_a_given_workbook_previews_it(api: FakeMessageCentral, tmp_path: Path) -> None:
    path = write_book(tmp_path / "customers.xlsx", clean_rows())
    preview = send(path, dry_run=True)
    assert (preview["recipients"], preview["segments"], api.send_calls) == (5, 5, [])
    assert preview["samples"][0]["text"] == "Hi Asha, you owe 0.00"
