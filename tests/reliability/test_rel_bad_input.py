"""
Bad input to the send operators and the hook: each is refused with an error that says what is wrong and
where, before any request reaches MessageCentral (the sandbox's log stays empty: no token call, no send).
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rel_support import count, numbers, task_context

from airflow_provider_messagecentral.exceptions import MessageCentralError, MessageCentralValidationError
from airflow_provider_messagecentral.hooks.messagecentral import MessageCentralHook
from airflow_provider_messagecentral.operators.messagecentral import (
    MessageCentralBulkSendOperator,
    MessageCentralFileSendOperator,
    MessageCentralSendOperator,
)

pytestmark = pytest.mark.reliability

OFF = {"send_window": None}  # promotional quiet hours must not decide these tests


def _assert_nothing_sent(sandbox: Any) -> None:
    stats = sandbox.stats()
    assert stats["token_requests"] == 0 and stats["send_requests"] == 0, stats
    assert sandbox.requests() == [] and sandbox.rejected() == []


def _refused(sandbox: Any, action: Callable[[], Any], *needles: str) -> str:
    """Run ``action``; it must raise a validation error holding every needle, with nothing sent."""
    with pytest.raises(MessageCentralValidationError) as caught:
        action()
    text = str(caught.value)
    for needle in needles:
        assert needle in text, text
    _assert_nothing_sent(sandbox)
    count("bad_inputs_refused")
    return text


def _single(number: Any, message: str = "Hello", **kwargs: Any) -> Callable[[], Any]:
    return lambda: MessageCentralSendOperator(
        task_id="send", mobile_number=number, message=message, **OFF, **kwargs
    ).execute(task_context())


def _bulk(phone_numbers: Any, message: str = "Hello", **kwargs: Any) -> Callable[[], Any]:
    return lambda: MessageCentralBulkSendOperator(
        task_id="send", phone_numbers=phone_numbers, message=message, **OFF, **kwargs
    ).execute(task_context())


def _file(message: str, **kwargs: Any) -> Callable[[], Any]:
    return lambda: MessageCentralFileSendOperator(task_id="send", message=message, **OFF, **kwargs).execute(
        task_context()
    )


@pytest.mark.parametrize(
    ("number", "needle"),
    [
        ("12345", "12345"),
        ("not a number", "not a number"),
        ("+999 1234 5678", "+999 1234 5678"),
        ("98161 1111x", "98161 1111x"),
        ("", "mobile_number"),
        (True, "bool"),
        (9816100001.0, "float"),
        (["9816100001"], "list"),
    ],
    ids=["short", "words", "no-such-country", "letter", "empty", "bool", "float", "list"],
)
def test_malformed_single_numbers(sandbox: Any, mc_conn: Any, number: Any, needle: str) -> None:
    """A malformed mobile number is refused, naming the number (or its wrong type); nothing is sent."""
    _refused(sandbox, _single(number), needle)


def test_malformed_numbers_in_a_list_are_named_with_their_position(sandbox: Any, mc_conn: Any) -> None:
    """Every invalid number of a bulk list is listed with its position; nothing is sent (on_invalid='fail')."""
    text = _refused(
        sandbox,
        _bulk(["9816100001", "98161", "abc", "+91 98161 1111x", None, "9816100002"]),
        "4 invalid phone number(s)",
        "#2",
        "'98161'",
        "#3",
        "'abc'",
        "#4",
        "#5",
    )
    assert "nothing was sent" in text


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda: _bulk([]), "empty"),
        (lambda: _bulk(()), "empty"),
        (lambda: _bulk("[]"), "empty"),
        (lambda: _bulk(["", "  "]), "invalid"),
        (lambda: _file("Hi ##var1##", rows=[]), "empty"),
    ],
    ids=["list", "tuple", "rendered-text", "blank-entries", "no-rows"],
)
def test_empty_audiences(sandbox: Any, mc_conn: Any, make: Callable[[], Callable[[], Any]], needle: str) -> None:
    """An empty audience is refused with an error that says so; nothing is sent."""
    _refused(sandbox, lambda: make()(), needle)


def test_empty_list_to_the_hook(sandbox: Any, mc_conn: Any) -> None:
    """The hook refuses an empty list (and a single string given as the list) before any request."""
    hook = MessageCentralHook()
    _refused(sandbox, lambda: hook.send_bulk([], "Hello"), "empty")
    _refused(sandbox, lambda: hook.send_bulk("9816100001, 9816100002", "Hello"), "not one string")  # type: ignore[arg-type]


def test_a_million_recipients_without_chunk_size_go_out_in_bounded_requests(sandbox: Any, mc_conn: Any) -> None:
    """
    A 1,000,000-number list without ``chunk_size``: the operator never puts them in one request; it sends the
    default 500 per request. Shown from outside: the account has no balance, so MessageCentral refuses the
    first request, which carried 500 numbers, and the error says the other 999,500 were not sent.
    """
    sandbox.set_faults(balance=0)
    audience = numbers(1_000_000, prefix="97")
    with pytest.raises(MessageCentralError) as caught:
        _bulk(audience, message="Big sale")()
    rejected = sandbox.rejected()
    assert len(rejected) == 1 and sandbox.stats()["send_requests"] == 1
    assert len(rejected[0]["params"]["phoneNumbers"].split(", ")) == 500
    assert "[402]" in str(caught.value) and "Not sent: 999500 recipients" in str(caught.value)
    assert sandbox.messages() == []
    count("bad_inputs_refused")


# -- workbooks ------------------------------------------------------------------------------------------------


def _zip_bomb(path: Path) -> Path:
    """A structurally valid .xlsx whose sheet inflates from ~20 KB to 20 MB of blanks (ratio ~1000)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types/>')
        archive.writestr("xl/workbook.xml", '<?xml version="1.0"?><workbook/>')
        with archive.open("xl/worksheets/sheet1.xml", "w") as sheet:
            sheet.write(b'<?xml version="1.0"?><worksheet><sheetData>')
            blank = b" " * 2**20
            for _ in range(20):
                sheet.write(blank)
            sheet.write(b"</sheetData></worksheet>")
    return path


@pytest.mark.parametrize(
    ("name", "content", "needles"),
    [
        ("renamed.xlsx", b"mobile,var1\n9816100001,Asha\n", ("CSV or plain text renamed",)),
        (
            "protected.xlsx",
            b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 4088,
            ("password-protected", "OLE2"),
        ),
        ("empty.xlsx", b"", ("empty",)),
        ("random.xlsx", bytes(range(256)) * 16, ("not an .xlsx",)),
        ("truncated.xlsx", b"PK\x03\x04" + b"\x00" * 100, ("damaged or truncated",)),
    ],
    ids=["csv-renamed", "password-protected-ole2", "empty", "random-bytes", "truncated-zip"],
)
def test_wrong_workbook_files(
    sandbox: Any, mc_conn: Any, tmp_path: Path, name: str, content: bytes, needles: tuple[str, ...]
) -> None:
    """A file that is not a usable .xlsx is refused by the file operator, saying what it is; nothing is sent."""
    path = tmp_path / name
    path.write_bytes(content)
    _refused(sandbox, _file("Hi ##var1##", workbook=str(path)), name, *needles)


def test_zip_bomb_like_workbook(sandbox: Any, mc_conn: Any, tmp_path: Path) -> None:
    """A workbook whose sheet inflates ~1000x is refused as a possible zip bomb without being inflated."""
    path = _zip_bomb(tmp_path / "bomb.xlsx")
    _refused(sandbox, _file("Hi ##var1##", workbook=str(path)), "zip bomb", "sheet1.xml")


def test_hook_refuses_non_xlsx_bytes(sandbox: Any, mc_conn: Any) -> None:
    """``send_file`` refuses bytes that are no zip (an OLE2 encrypted workbook, a CSV) before any request."""
    hook = MessageCentralHook()
    ole2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 512
    _refused(sandbox, lambda: hook.send_file(ole2, "Hi ##var1##", filename="protected.xlsx"), "not an .xlsx")
    _refused(sandbox, lambda: hook.send_file(b"mobile\n9816100001\n", "Hi"), "not an .xlsx")


@pytest.mark.parametrize(
    ("message", "rows", "needles"),
    [
        ("Hi ##var1##, pay ##var2##", [{"mobile": "9816100001", "var1": "Asha"}], ("var2",)),
        ("Hi ##name##", [{"mobile": "9816100001", "var1": "Asha"}], ("name",)),
        ("Hi ##var1##", [{"phone": "9816100001", "var1": "Asha"}], ("mobile",)),
    ],
    ids=["placeholder-without-column", "misnamed-placeholder", "no-number-column"],
)
def test_placeholders_and_columns_that_do_not_match(
    sandbox: Any, mc_conn: Any, message: str, rows: list[dict[str, str]], needles: tuple[str, ...]
) -> None:
    """A placeholder with no column (or no number column) is refused, naming it; nothing is sent."""
    _refused(sandbox, _file(message, rows=rows), *needles)


def test_workbook_placeholder_without_column(sandbox: Any, mc_conn: Any, tmp_path: Path) -> None:
    """A workbook that lacks the column of a placeholder is refused, naming the placeholder; nothing is sent."""
    import xlsxwriter

    path = tmp_path / "audience.xlsx"
    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet()
    for col, value in enumerate(("mobile", "var1")):
        sheet.write_string(0, col, value)
    sheet.write_string(1, 0, "9816100001")
    sheet.write_string(1, 1, "Asha")
    book.close()
    _refused(sandbox, _file("Hi ##var1##, your code is ##var3##", workbook=str(path)), "var3")


@pytest.mark.parametrize(
    "make",
    [
        lambda: _single("9816100001", "Hello \ud800 there"),
        lambda: _bulk(["9816100001"], "Broken \udcff text"),
        lambda: _single("9816100001", "{{ 'x' }} \ud800"),
    ],
    ids=["single", "bulk", "with-jinja"],
)
def test_text_that_is_not_valid_unicode(sandbox: Any, mc_conn: Any, make: Callable[[], Callable[[], Any]]) -> None:
    """Text holding lone surrogates (mis-decoded bytes) cannot be sent as UTF-8: refused; nothing is sent."""
    with pytest.raises(MessageCentralError) as caught:
        make()()
    assert "surrogate" in str(caught.value) or "Unicode" in str(caught.value) or "UTF-8" in str(caught.value)
    _assert_nothing_sent(sandbox)
    count("bad_inputs_refused")


def test_row_value_that_is_not_valid_unicode(sandbox: Any, mc_conn: Any) -> None:
    """A row value holding a lone surrogate is refused with a validation error naming its row and column."""
    rows = [{"mobile": "9816100001", "var1": "Asha"}, {"mobile": "9816100002", "var1": "bad \ud83d value"}]
    _refused(sandbox, _file("Hi ##var1##", rows=rows), "row 2", "var1")


@pytest.mark.parametrize(
    ("flow_type", "length"),
    [("SMS", 1531), ("SAUTH", 1531), ("RCS", 3073), ("WHATSAPP", 4097)],
)
def test_messages_over_the_length_limit(sandbox: Any, mc_conn: Any, flow_type: str, length: int) -> None:
    """A message one character over its flow's limit (GSM-7 or not) is refused, naming its length and the limit."""
    _refused(sandbox, _single("9816100001", "x" * length, flow_type=flow_type), f"{length} characters", str(length - 1))
    _refused(sandbox, _bulk(["9816100001"], "é" * length, flow_type=flow_type), f"{length} characters")
