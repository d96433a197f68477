"""Send operators with HTTP faked at the transport (``tests/unit/fake_http.py``) and a real SQLite ledger."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests
from fake_http import Call, FakeMessageCentral, install, ok_send

from airflow_provider_messagecentral.exceptions import (
    MessageCentralBulkError,
    MessageCentralUncertainError,
    MessageCentralValidationError,
)
from airflow_provider_messagecentral.operators.messagecentral import (
    MessageCentralBulkSendOperator,
    MessageCentralFileSendOperator,
    MessageCentralSendOperator,
)
from airflow_provider_messagecentral.reports.store import get_store

PASSWORD = "s3cret-Pa55word"
TOKEN = "pre.issued.token-XYZ"


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeMessageCentral:
    """MessageCentral behind the transport: the nth send answers ``tx-n`` unless a test scripts it otherwise."""
    conn = {
        "conn_type": "messagecentral",
        "host": "http://messagecentral.invalid",
        "login": "C-TEST",
        "password": PASSWORD,
        "extra": {
            "email": "ops@example.com",
            "auth_token": TOKEN,
            "country": "91",
            "sender_id": "UTOMOB",
            "reports_url": f"sqlite:///{tmp_path / 'reports.db'}",
        },
    }
    monkeypatch.setenv("AIRFLOW_CONN_MESSAGECENTRAL_DEFAULT", json.dumps(conn))
    fake = install(monkeypatch, FakeMessageCentral(send_replies=[ok_send(f"tx-{n}") for n in range(1, 101)]))
    fake.reports_url = conn["extra"]["reports_url"]  # type: ignore[attr-defined]
    return fake


def phone_numbers(api: FakeMessageCentral) -> list[list[str]]:
    """The ``phoneNumbers`` of every bulk request, split."""
    return [c.params["phoneNumbers"].split(", ") for c in api.send_calls]


def refused(code: int, reason: str) -> dict[str, Any]:
    """A send MessageCentral answers (HTTP 200) with a business error: not sent, not retried."""
    return {"json": {"responseCode": code, "message": reason, "data": None}}


def uploaded_workbook(call: Call, path: Path) -> Path:
    """Write the .xlsx of a file send's multipart body to ``path``."""
    boundary = call.headers["Content-Type"].split("boundary=", 1)[1].encode()
    for part in (call.body or b"").split(b"--" + boundary):
        head, _, content = part.partition(b"\r\n\r\n")
        if b'name="file"' in head:
            path.write_bytes(content.removesuffix(b"\r\n"))
            return path
    raise AssertionError("no file in the upload")


@pytest.fixture(autouse=True)
def _daytime_in_india(monkeypatch: pytest.MonkeyPatch) -> None:
    """
    These tests send PROMOTIONAL (the connection's default) to +91 numbers, which only goes out 09:00-21:00
    Asia/Kolkata: pin the clock to noon there so they pass at any hour (send windows: test_safety_*).
    """
    import pendulum

    from airflow_provider_messagecentral.safety import send_window

    monkeypatch.setattr(send_window, "now", lambda: pendulum.datetime(2024, 5, 1, 12, 0, tz="Asia/Kolkata"))


def context(run_id: str = "run-1", task_id: str = "send", map_index: int = -1, try_number: int = 1) -> dict:
    ti = SimpleNamespace(dag_id="dag", run_id=run_id, task_id=task_id, map_index=map_index, try_number=try_number)
    return {"ti": ti}


NUMBERS = [f"98161{i:05d}" for i in range(7)]


# -- validation at __init__ ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"message": ""}, "message is empty"),
        ({"message": "   "}, "message is empty"),
        ({"message": 42}, "message must be text"),
        ({"message": "x" * 1531, "flow_type": "SMS"}, "SMS allows at most 1530"),
        ({"message": "x" * 5000}, "at most 4096"),
        ({"message": "hi", "flow_type": "FAX"}, "flow_type must be one of"),
        ({"message": "hi", "message_type": "SPAM"}, "message_type must be one of"),
        ({"message": "hi", "template_id": "T1"}, "template_id and entity_id go together"),
        ({"message": "hi", "entity_id": "E1"}, "template_id and entity_id go together"),
        ({"message": "hi", "on_uncertain": "maybe"}, "on_uncertain must be"),
        ({"message": "hi", "country_code": "india"}, "country_code must be a dialling code"),
    ],
)
def test_send_operator_rejects_bad_arguments_at_init(kwargs: dict, error: str) -> None:
    with pytest.raises(MessageCentralValidationError, match=error):
        MessageCentralSendOperator(task_id="t", mobile_number="9816100001", **kwargs)


@pytest.mark.parametrize("number", [True, 98.5, b"98", ["9816100001"], {"n": 1}])
def test_send_operator_rejects_wrong_number_types(number: object) -> None:
    with pytest.raises(MessageCentralValidationError, match="mobile_number must be one number"):
        MessageCentralSendOperator(task_id="t", mobile_number=number, message="hi")  # type: ignore[arg-type]


def test_templated_values_are_checked_at_execute_not_init(api: FakeMessageCentral) -> None:
    op = MessageCentralSendOperator(
        task_id="t", mobile_number="{{ params.n }}", message="{{ params.m }}", flow_type="{{ params.f }}"
    )
    op.mobile_number, op.message, op.flow_type = "9816100001", "hi", "FAX"  # as rendered
    with pytest.raises(MessageCentralValidationError, match="flow_type must be one of"):
        op.execute(context())
    assert api.send_calls == []


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"chunk_size": 0}, "chunk_size must be an integer >= 1"),
        ({"chunk_size": 2.5}, "chunk_size must be an integer >= 1"),
        ({"chunk_size": True}, "chunk_size must be an integer >= 1"),
        ({"on_invalid": "ignore"}, "on_invalid must be"),
        ({"phone_numbers": []}, "phone_numbers is empty"),
        ({"phone_numbers": 9816100001}, "phone_numbers must be a list"),
    ],
)
def test_bulk_operator_rejects_bad_arguments_at_init(kwargs: dict, error: str) -> None:
    kwargs = {"phone_numbers": NUMBERS, "message": "hi", **kwargs}
    with pytest.raises(MessageCentralValidationError, match=error):
        MessageCentralBulkSendOperator(task_id="t", **kwargs)


def test_any_chunk_size_of_at_least_one_is_accepted() -> None:
    assert MessageCentralBulkSendOperator(task_id="t", phone_numbers=NUMBERS, message="hi", chunk_size=1)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({}, "exactly one audience source"),
        ({"rows": [], "workbook": "a.xlsx"}, "got workbook, rows"),
        ({"sql": "SELECT 1"}, "sql= needs sql_conn_id"),
        ({"rows": [{"mobile": "1"}], "rows_per_file": 0}, "rows_per_file must be"),
        ({"rows": [{"mobile": "1"}], "rows_per_file": 2_000_000}, "rows_per_file must be between 1 and 1048575"),
        ({"rows": [{"mobile": "1"}], "on_invalid": "drop"}, "on_invalid must be"),
        ({"rows": "mobile,var1"}, "rows must be a list of mappings"),
        ({"rows": [{"mobile": "1"}], "columns": ["var1"]}, "columns must map"),
    ],
)
def test_file_operator_rejects_bad_arguments_at_init(kwargs: dict, error: str) -> None:
    with pytest.raises(MessageCentralValidationError, match=error):
        MessageCentralFileSendOperator(task_id="t", message="Hi ##var1##", **kwargs)


def test_template_fields_cover_what_users_template() -> None:
    common = {
        "message",
        "country_code",
        "sender_id",
        "flow_type",
        "message_type",
        "template_id",
        "entity_id",
        "send_window",
        "suppression",
    }
    assert set(MessageCentralSendOperator.template_fields) == common | {"mobile_number"}
    assert set(MessageCentralBulkSendOperator.template_fields) == common | {"phone_numbers"}
    assert set(MessageCentralFileSendOperator.template_fields) == common | {
        "workbook",
        "rows",
        "sql",
        "sql_parameters",
        "number_column",
        "columns",
    }
    assert MessageCentralFileSendOperator.template_ext == (".txt", ".sql")


# -- templates: .txt files versus messages that end in .txt --------------------------------------------------


def _render(op: Any, **ctx: Any) -> None:
    op.render_template_fields({"ds": "2024-01-02", **ctx})


def test_message_naming_a_txt_file_is_read_as_a_template(tmp_path: Path) -> None:
    from airflow.sdk import DAG

    (tmp_path / "sale.txt").write_text("Sale on {{ ds }}")
    with DAG("d", schedule=None, template_searchpath=[str(tmp_path)]):
        op = MessageCentralSendOperator(task_id="t", mobile_number="9816100001", message="sale.txt")
    _render(op)
    assert op.message == "Sale on 2024-01-02"


def test_message_ending_in_txt_with_words_stays_a_message() -> None:
    op = MessageCentralSendOperator(
        task_id="t", mobile_number="9816100001", message="Terms on {{ ds }} at example.com/terms.txt"
    )
    _render(op)
    assert op.message == "Terms on 2024-01-02 at example.com/terms.txt"


def test_numbers_file_ending_in_txt_stays_a_path(tmp_path: Path) -> None:
    path = tmp_path / "numbers.txt"
    op = MessageCentralBulkSendOperator(task_id="t", phone_numbers=str(path), message="hi")
    _render(op)
    assert op.phone_numbers == str(path)


# -- single send -----------------------------------------------------------------------------------------------


def test_single_send_returns_a_small_summary_without_secrets(api: FakeMessageCentral) -> None:
    op = MessageCentralSendOperator(
        task_id="t", mobile_number="+91 98161 00001", message="Your parcel is out", message_type="transactional"
    )
    summary = op.execute(context())

    assert [c.params["mobileNumber"] for c in api.send_calls] == ["9816100001"]
    assert api.send_calls[0].params["messageType"] == "TRANSACTIONAL"
    assert set(summary) == {
        "campaign",
        "recipients",
        "accepted",
        "skipped",
        "invalid",
        "duplicates",
        "suppressed",
        "segments",
        "estimated_cost",
        "chunks",
        "transaction_ids",
    }
    assert summary["transaction_ids"] == ["tx-1"]
    assert (summary["recipients"], summary["accepted"], summary["skipped"]) == (1, 1, 0)
    text = json.dumps(summary)
    assert PASSWORD not in text and TOKEN not in text


def test_single_send_is_not_repeated_by_a_retry_but_is_by_a_new_run(api: FakeMessageCentral) -> None:
    op = MessageCentralSendOperator(task_id="t", mobile_number="9816100001", message="hi")
    first = op.execute(context(try_number=1))
    again = op.execute(context(try_number=2))
    assert len(api.send_calls) == 1
    assert again == first  # same campaign, same ids, accepted by the earlier try

    other = op.execute(context(run_id="run-2"))
    assert len(api.send_calls) == 2
    assert other["campaign"] != first["campaign"]


def test_invalid_single_number_fails_before_any_request(api: FakeMessageCentral) -> None:
    op = MessageCentralSendOperator(task_id="t", mobile_number="12345", message="hi")
    with pytest.raises(MessageCentralValidationError, match="mobile_number '12345'"):
        op.execute(context())
    assert api.send_calls == []


# -- bulk: audiences -------------------------------------------------------------------------------------------


def _logs(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> str:
    """Task logs: the operator logs through Airflow's structlog (stdout), helpers through stdlib logging."""
    return caplog.text + capsys.readouterr().out


def test_bulk_chunks_deduplicates_and_reports_counts(
    api: FakeMessageCentral, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    op = MessageCentralBulkSendOperator(
        task_id="t", phone_numbers=[*NUMBERS, NUMBERS[0], "+91" + NUMBERS[1]], message="Sale", chunk_size=3
    )
    with caplog.at_level(logging.INFO):
        summary = op.execute(context())
    assert phone_numbers(api) == [
        [f"91 {n}" for n in NUMBERS[:3]],
        [f"91 {n}" for n in NUMBERS[3:6]],
        [f"91 {NUMBERS[6]}"],
    ]
    assert {k: v for k, v in summary.items() if k != "campaign"} == {
        "recipients": 7,
        "accepted": 7,
        "skipped": 0,
        "invalid": 0,
        "duplicates": 2,
        "suppressed": 0,
        "segments": 7,
        "estimated_cost": None,
        "chunks": 3,
        "transaction_ids": ["tx-1", "tx-2", "tx-3"],
    }
    logs = _logs(caplog, capsys)
    assert "Removed 2 duplicate number(s)" in logs
    assert "bulk send: chunk 3/3, 7/7 recipients" in logs


def test_bulk_invalid_numbers_fail_before_sending_naming_positions(api: FakeMessageCentral) -> None:
    op = MessageCentralBulkSendOperator(
        task_id="t", phone_numbers=[NUMBERS[0], "12", NUMBERS[1], "abc"], message="Sale"
    )
    with pytest.raises(MessageCentralValidationError) as err:
        op.execute(context())
    assert "2 invalid phone number(s)" in str(err.value)
    assert "#2 '12'" in str(err.value) and "#4 'abc'" in str(err.value)
    assert api.send_calls == []


def test_bulk_on_invalid_skip_sends_to_the_valid_ones(api: FakeMessageCentral) -> None:
    op = MessageCentralBulkSendOperator(
        task_id="t", phone_numbers=[NUMBERS[0], "12", NUMBERS[1]], message="Sale", on_invalid="skip"
    )
    summary = op.execute(context())
    assert phone_numbers(api) == [[f"91 {NUMBERS[0]}", f"91 {NUMBERS[1]}"]]
    assert (summary["recipients"], summary["invalid"]) == (2, 1)


def test_bulk_reads_a_csv_with_a_number_column(api: FakeMessageCentral, tmp_path: Path) -> None:
    path = tmp_path / "audience.csv"
    path.write_text(f"id;name;Phone No\n1;A;{NUMBERS[0]}\n2;B;+91{NUMBERS[1]}\n\n3;C;{NUMBERS[0]}\n")
    summary = MessageCentralBulkSendOperator(task_id="t", phone_numbers=str(path), message="x").execute(context())
    assert phone_numbers(api) == [[f"91 {NUMBERS[0]}", f"91 {NUMBERS[1]}"]]
    assert summary["duplicates"] == 1


def test_bulk_reads_a_headerless_csv_and_a_text_file(api: FakeMessageCentral, tmp_path: Path) -> None:
    csv_path = tmp_path / "plain.csv"
    csv_path.write_text(f"{NUMBERS[0]},x\n{NUMBERS[1]},y\n")
    txt_path = tmp_path / "numbers.txt"
    txt_path.write_text(f"# audience\n{NUMBERS[2]}\n\n{NUMBERS[3]}\n")
    MessageCentralBulkSendOperator(task_id="a", phone_numbers=str(csv_path), message="x").execute(context())
    MessageCentralBulkSendOperator(task_id="b", phone_numbers=str(txt_path), message="x").execute(context(task_id="b"))
    assert phone_numbers(api) == [
        [f"91 {NUMBERS[0]}", f"91 {NUMBERS[1]}"],
        [f"91 {NUMBERS[2]}", f"91 {NUMBERS[3]}"],
    ]


def test_bulk_file_errors_name_the_line(api: FakeMessageCentral, tmp_path: Path) -> None:
    path = tmp_path / "numbers.txt"
    path.write_text(f"{NUMBERS[0]}\n\nnope\n")
    with pytest.raises(MessageCentralValidationError, match=r"#2 \(line 3\) 'nope'"):
        MessageCentralBulkSendOperator(task_id="t", phone_numbers=str(path), message="x").execute(context())
    assert api.send_calls == []


def test_bulk_accepts_a_rendered_list_text(api: FakeMessageCentral) -> None:
    op = MessageCentralBulkSendOperator(task_id="t", phone_numbers=str(NUMBERS[:2]), message="x")
    op.execute(context())
    assert phone_numbers(api) == [[f"91 {NUMBERS[0]}", f"91 {NUMBERS[1]}"]]


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("9816100001", "neither a list nor a path"),
        ("/nowhere/numbers.csv", "does not exist"),
    ],
)
def test_bulk_rejects_strings_that_are_not_lists_or_files(api: FakeMessageCentral, value: str, error: str) -> None:
    with pytest.raises(MessageCentralValidationError, match=error):
        MessageCentralBulkSendOperator(task_id="t", phone_numbers=value, message="x").execute(context())
    assert api.send_calls == []


def test_bulk_summary_leaves_out_transaction_ids_when_there_are_many(api: FakeMessageCentral) -> None:
    numbers = [f"98162{i:05d}" for i in range(21)]
    summary = MessageCentralBulkSendOperator(task_id="t", phone_numbers=numbers, message="x", chunk_size=1).execute(
        context()
    )
    assert summary["chunks"] == 21 and "transaction_ids" not in summary


# -- bulk: the ledger across retries ---------------------------------------------------------------------------


def test_final_error_names_what_was_and_was_not_sent_and_the_retry_sends_the_rest(api: FakeMessageCentral) -> None:
    api.send_replies[2] = refused(705, "ROUTE_BLOCKED")
    op = MessageCentralBulkSendOperator(task_id="t", phone_numbers=NUMBERS[:6], message="Sale", chunk_size=2)

    with pytest.raises(MessageCentralBulkError) as err:
        op.execute(context(try_number=1))
    text = str(err.value)
    assert "chunk 3/3 (2 recipients) failed" in text
    assert "Accepted: 4 recipients (chunk 1/3, chunk 2/3)" in text
    assert err.value.code == 705

    summary = op.execute(context(try_number=2))
    sent = [n for chunk in phone_numbers(api) for n in chunk]
    assert sent.count(f"91 {NUMBERS[4]}") == 2  # chunk 3: refused once, then accepted
    assert len(set(sent)) == 6 and len(api.send_calls) == 4  # chunks 1 and 2 not repeated
    assert (summary["accepted"], summary["skipped"]) == (6, 0)
    units = get_store(api.reports_url).get_units(summary["campaign"])  # type: ignore[attr-defined]
    assert sorted(u.state for u in units.values()) == ["accepted"] * 3


def test_uncertain_unit_is_skipped_on_retry_by_default(
    api: FakeMessageCentral, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    api.send_replies[1] = requests.ReadTimeout()
    op = MessageCentralBulkSendOperator(task_id="t", phone_numbers=NUMBERS[:6], message="Sale", chunk_size=2)

    with pytest.raises(MessageCentralUncertainError, match="may or may not have been sent"):
        op.execute(context(try_number=1))
    capsys.readouterr()
    with caplog.at_level(logging.WARNING):
        summary = op.execute(context(try_number=2))

    assert len(api.send_calls) == 3  # chunk 1 and 2 on try 1; only chunk 3 on try 2
    assert (summary["accepted"], summary["skipped"]) == (4, 2)
    assert (
        "2 recipient(s) may or may not have been texted; they will be counted if MessageCentral reports "
        "deliveries for them" in _logs(caplog, capsys)
    )
    units = get_store(api.reports_url).get_units(summary["campaign"])  # type: ignore[attr-defined]
    assert sorted(u.state for u in units.values()) == ["accepted", "accepted", "pending"]


def test_uncertain_unit_is_resent_with_on_uncertain_resend(api: FakeMessageCentral) -> None:
    api.send_replies[1] = requests.ConnectionError(ConnectionResetError(104, "Connection reset by peer"))
    op = MessageCentralBulkSendOperator(
        task_id="t", phone_numbers=NUMBERS[:6], message="Sale", chunk_size=2, on_uncertain="resend"
    )
    with pytest.raises(MessageCentralUncertainError):
        op.execute(context(try_number=1))
    summary = op.execute(context(try_number=2))
    assert phone_numbers(api)[1] == phone_numbers(api)[2]  # chunk 2 sent again
    assert len(api.send_calls) == 4
    assert (summary["accepted"], summary["skipped"]) == (6, 0)


def test_mapped_instances_are_separate_campaigns(api: FakeMessageCentral) -> None:
    op = MessageCentralSendOperator(task_id="t", mobile_number="9816100001", message="hi")
    a = op.execute(context(map_index=0))
    b = op.execute(context(map_index=1))
    assert a["campaign"] != b["campaign"] and len(api.send_calls) == 2


# -- file sends ------------------------------------------------------------------------------------------------


def _rows(count: int) -> list[dict[str, object]]:
    return [{"phone": f"98163{i:05d}", "name": f"N{i}", "amount": i * 1.5} for i in range(count)]


def test_file_send_builds_split_workbooks_and_uploads_each(api: FakeMessageCentral, tmp_path: Path) -> None:
    from airflow_provider_messagecentral.audience.workbook_check import iter_workbook_rows

    op = MessageCentralFileSendOperator(
        task_id="t",
        message="Hi ##var1##, you owe ##var2##",
        rows=_rows(5),
        number_column="phone",
        columns={"var1": "name", "var2": "amount"},
        rows_per_file=2,
    )
    summary = op.execute(context())
    seen = [
        list(iter_workbook_rows(uploaded_workbook(call, tmp_path / f"upload-{i}.xlsx"), "phone"))
        for i, call in enumerate(api.send_calls)
    ]

    assert [len(part) for part in seen] == [2, 2, 1]
    assert seen[0][0] == {"phone": "919816300000", "var1": "N0", "var2": "0"}
    assert seen[2][0] == {"phone": "919816300004", "var1": "N4", "var2": "6"}
    assert api.send_calls[0].params["message"] == "Hi ##var1##, you owe ##var2##"
    assert api.send_calls[0].params["countryCode"] == "91"
    assert {k: summary[k] for k in ("recipients", "accepted", "chunks")} == {
        "recipients": 5,
        "accepted": 5,
        "chunks": 3,
    }

    again = op.execute(context(try_number=2))
    assert len(api.send_calls) == 3 and again["accepted"] == 5


def test_file_send_rejects_rows_missing_a_placeholder_value_naming_row_and_column(api: FakeMessageCentral) -> None:
    rows = _rows(3)
    rows[1]["name"] = ""
    op = MessageCentralFileSendOperator(
        task_id="t", message="Hi ##var1##", rows=rows, number_column="phone", columns={"var1": "name"}
    )
    with pytest.raises(MessageCentralValidationError, match=r"row 2, column 'name': empty, needed by ##var1##"):
        op.execute(context())
    assert api.send_calls == []


def test_file_send_from_a_dataframe_like_object(api: FakeMessageCentral) -> None:
    class Frame:
        columns = ["mobile", "var1"]

        def itertuples(self, index: bool = True, name: str | None = "Pandas") -> Any:
            return iter([("9816300001", "A"), ("9816300002", "B")])

    summary = MessageCentralFileSendOperator(task_id="t", message="Hi ##var1##", dataframe=Frame()).execute(context())
    assert summary["recipients"] == 2 and len(api.send_calls) == 1


def test_file_send_from_sql_streams_rows_through_the_db_hook(api: FakeMessageCentral, mocker: Any) -> None:
    cursor = mocker.MagicMock()
    cursor.description = [("mobile",), ("var1",)]
    cursor.fetchmany.side_effect = [[("9816300001", "A"), ("9816300002", "B")], [("9816300003", "C")], []]
    from airflow.providers.common.sql.hooks.sql import DbApiHook

    db_hook = mocker.MagicMock(spec=DbApiHook)
    db_hook.get_conn.return_value.cursor.return_value = cursor
    from airflow.sdk import BaseHook

    crm = mocker.MagicMock()
    crm.get_hook.return_value = db_hook
    real_get_connection = BaseHook.get_connection
    get_connection = mocker.patch.object(
        BaseHook,
        "get_connection",
        side_effect=lambda conn_id: crm if conn_id == "crm" else real_get_connection(conn_id),
    )

    summary = MessageCentralFileSendOperator(
        task_id="t", message="Hi ##var1##", sql="SELECT mobile, var1 FROM c ORDER BY id", sql_conn_id="crm"
    ).execute(context())

    cursor.execute.assert_called_once_with("SELECT mobile, var1 FROM c ORDER BY id")
    assert summary["recipients"] == 3
    get_connection.assert_any_call("crm")


def test_file_send_rejects_a_workbook_that_is_not_xlsx(api: FakeMessageCentral, tmp_path: Path) -> None:
    path = tmp_path / "audience.xlsx"
    path.write_text("mobile,var1\n9816300001,A\n")
    op = MessageCentralFileSendOperator(task_id="t", message="Hi ##var1##", workbook=str(path))
    with pytest.raises(MessageCentralValidationError, match=r"not an \.xlsx"):
        op.execute(context())
    assert api.send_calls == []


def test_file_send_unit_keys_are_those_of_earlier_versions(api: FakeMessageCentral) -> None:
    """
    A task retried after an upgrade must find its ledger units: these keys were computed by the version that
    read every built workbook back (suppressed rows dropped from parts cut before suppression).
    """
    rows = [
        {"phone": f"98163{i:05d}", "name": ["Asha", "Ravi ", "Zoë", "😀"][i % 4], "amount": i * 1.5} for i in range(5)
    ]
    op = MessageCentralFileSendOperator(
        task_id="t",
        message="Hi ##var1##, you owe ##var2##",
        rows=rows,
        number_column="phone",
        columns={"var1": "name", "var2": "amount"},
        rows_per_file=2,
        suppression=["9816300002"],
    )
    summary = op.execute(context(task_id="send"))
    units = get_store(api.reports_url).get_units(summary["campaign"])  # type: ignore[attr-defined]
    assert sorted(units) == [
        "file-70bb22f0e859a8497521a2e4712f25e1",
        "file-8f2228febb2be1242a98b459b480e1c9",
        "file-eb73d35caec3f6c6e66cc1b7fb3a2f0e",
    ]


def test_file_send_never_reads_a_built_workbook_back(api: FakeMessageCentral, monkeypatch: pytest.MonkeyPatch) -> None:
    """Suppression, digests, segments and samples come from the builder's one pass over the rows."""
    from airflow_provider_messagecentral.audience import workbook_check

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a built workbook was read back")

    monkeypatch.setattr(workbook_check, "_open_sheet", refuse)
    op = MessageCentralFileSendOperator(
        task_id="t", message="Hi ##name##", rows=_rows(5), number_column="phone", rows_per_file=2, dry_run=True
    )
    preview = op.execute(context())
    assert (preview["recipients"], preview["chunks"], preview["segments"]) == (5, 3, 5)
    assert preview["samples"][0] == {"mobile": "+919816300000", "text": "Hi N0", "encoding": "GSM-7", "segments": 1}
