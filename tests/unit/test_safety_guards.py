"""
Suppression, segments/cost guards, dry runs and send windows on the send operators, with HTTP faked at the
transport (``tests/unit/fake_http.py``) and a real SQLite store.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pendulum
import pytest
from fake_http import Call, FakeMessageCentral, install, ok_send

from airflow_provider_messagecentral.compat import AirflowFailException, AirflowSkipException, TaskDeferred
from airflow_provider_messagecentral.exceptions import MessageCentralValidationError
from airflow_provider_messagecentral.operators.messagecentral import (
    MessageCentralBulkSendOperator,
    MessageCentralFileSendOperator,
    MessageCentralSendOperator,
)
from airflow_provider_messagecentral.reports.__main__ import main as reports_cli
from airflow_provider_messagecentral.safety import send_window
from airflow_provider_messagecentral.safety.cost import SegmentTally, check_budget
from airflow_provider_messagecentral.safety.preview import dry_run_reason, truthy
from airflow_provider_messagecentral.safety.suppression import (
    list_suppression,
    load_suppression,
    suppress,
    unsuppress,
)
from airflow_provider_messagecentral.triggers.send_window import SendWindowTrigger

IST = "Asia/Kolkata"
NUMBERS = [f"98162{i:05d}" for i in range(6)]


def sent_text(api: FakeMessageCentral) -> str:
    """Everything the sends carried (parameters and bodies), to search for a number."""
    return repr([(c.params, c.body) for c in api.send_calls])


def uploaded_workbook(call: Call, path: Path) -> Path:
    """Write the .xlsx of a file send's multipart body to ``path``."""
    boundary = call.headers["Content-Type"].split("boundary=", 1)[1].encode()
    for part in (call.body or b"").split(b"--" + boundary):
        head, _, content = part.partition(b"\r\n\r\n")
        if b'name="file"' in head:
            path.write_bytes(content.removesuffix(b"\r\n"))
            return path
    raise AssertionError("no file in the upload")


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeMessageCentral:
    extra = {"email": "ops@example.com", "auth_token": "tok", "reports_url": f"sqlite:///{tmp_path / 'r.db'}"}
    conn = {"conn_type": "messagecentral", "host": "http://mc.invalid", "login": "C-1", "password": "p", "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_MESSAGECENTRAL_DEFAULT", json.dumps(conn))
    monkeypatch.delenv("AIRFLOW_VAR_MESSAGECENTRAL_DRY_RUN", raising=False)
    fake = install(monkeypatch, FakeMessageCentral(send_replies=[ok_send(f"tx-{n}") for n in range(1, 101)]))
    fake.reports_url = extra["reports_url"]  # type: ignore[attr-defined]
    fake.conn = conn  # type: ignore[attr-defined]
    return fake


@pytest.fixture
def at(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Pin the operators' clock: ``at(hour, minute)`` on 2024-05-01 in India."""

    def pin(hour: int, minute: int = 0) -> None:
        moment = pendulum.datetime(2024, 5, 1, hour, minute, tz=IST)
        monkeypatch.setattr(send_window, "now", lambda: moment)

    pin(12)
    return pin


def context(params: dict[str, Any] | None = None, run_id: str = "run-1") -> Any:
    ti = SimpleNamespace(dag_id="dag", run_id=run_id, task_id="send", map_index=-1, try_number=1)
    return {"ti": ti, "params": params or {}}


# -- suppression sources ------------------------------------------------------------------------------------


def test_suppression_from_list_file_and_sql(tmp_path: Path, mocker: Any) -> None:
    listed = load_suppression(["+91 98162 00001", "09816200002", "n/a"], "91")
    assert listed.numbers == {"919816200001", "919816200002"} and listed.unreadable == 1

    (tmp_path / "optout.csv").write_text("name,mobile\nA,9816200003\nB,+919816200004\n")
    assert load_suppression(str(tmp_path / "optout.csv"), "91").numbers == {"919816200003", "919816200004"}
    (tmp_path / "stop.txt").write_text("# STOP replies\n9816200005\n\n")
    assert load_suppression(tmp_path / "stop.txt", "91").numbers == {"919816200005"}

    rows = mocker.patch(
        "airflow_provider_messagecentral.safety.suppression.sql_rows",
        return_value=iter([{"id": 1, "phone": "9816200006"}, {"id": 2, "phone": None}]),
    )
    from_sql = load_suppression("SELECT id, phone FROM opt_outs", "91", conn_id="crm")
    assert from_sql.numbers == {"919816200006"}
    rows.assert_called_once_with("SELECT id, phone FROM opt_outs", "crm")

    with pytest.raises(MessageCentralValidationError, match="suppression_conn_id"):
        load_suppression("select phone from opt_outs", "91")
    with pytest.raises(MessageCentralValidationError, match="does not exist"):
        load_suppression("/no/such/optout.csv", "91")


def test_suppression_table_api_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    assert suppress(["09816200001", "+91 98162 00002"], reason="STOP", store_url=url) == 2
    assert suppress(["919816200001"], store_url=url) == 0  # already there, same number
    with pytest.raises(MessageCentralValidationError, match="not phone numbers: '12'"):
        suppress(["12"], store_url=url)
    assert reports_cli(["suppression", "add", "9816200003", "--reason", "REJECTD x3", "--store-url", url]) == 0
    assert json.loads(capsys.readouterr().out) == {"added": 1, "given": 1}
    assert reports_cli(["suppression", "remove", "+919816200002", "--store-url", url]) == 0
    assert json.loads(capsys.readouterr().out) == {"removed": 1, "given": 1}
    assert reports_cli(["suppression", "list", "--store-url", url]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(i["mobile"], i["reason"]) for i in listed["items"]] == [
        ("919816200001", "STOP"),
        ("919816200003", "REJECTD x3"),
    ]
    assert unsuppress(["9816200001"], store_url=url) == 1
    assert list_suppression(store_url=url)["total"] == 1


def test_bulk_and_single_leave_suppressed_numbers_out_of_every_request(api: FakeMessageCentral, at: Any) -> None:
    suppress([NUMBERS[1]], store_url=api.reports_url)  # type: ignore[attr-defined]
    op = MessageCentralBulkSendOperator(
        task_id="t", phone_numbers=NUMBERS, message="Sale", chunk_size=2, suppression=[NUMBERS[4]]
    )
    summary = op.execute(context())
    assert NUMBERS[1] not in sent_text(api) and NUMBERS[4] not in sent_text(api)
    assert (summary["recipients"], summary["accepted"], summary["suppressed"]) == (4, 4, 2)

    single = MessageCentralSendOperator(task_id="s", mobile_number=NUMBERS[1], message="hi")
    calls = len(api.send_calls)
    with pytest.raises(AirflowSkipException, match="suppression list"):
        single.execute(context(run_id="run-2"))
    assert len(api.send_calls) == calls


def test_file_send_leaves_suppressed_rows_out_of_the_workbooks(
    api: FakeMessageCentral, at: Any, tmp_path: Path
) -> None:
    from airflow_provider_messagecentral.audience.workbook_check import iter_workbook_rows

    rows = [{"mobile": n, "var1": f"N{i}"} for i, n in enumerate(NUMBERS)]
    op = MessageCentralFileSendOperator(
        task_id="t", message="Hi ##var1##", rows=rows, rows_per_file=2, suppression=[NUMBERS[0], NUMBERS[1], NUMBERS[3]]
    )
    summary = op.execute(context())
    uploaded = [
        [r["mobile"] for r in iter_workbook_rows(uploaded_workbook(call, tmp_path / f"upload-{i}.xlsx"))]
        for i, call in enumerate(api.send_calls)
    ]
    assert uploaded == [["919816200002"], ["919816200004", "919816200005"]]  # part 1 had nobody left
    assert (summary["recipients"], summary["suppressed"], summary["chunks"], summary["segments"]) == (3, 3, 2, 3)


# -- segments and cost --------------------------------------------------------------------------------------


def test_segment_tally_and_budget() -> None:
    tally = SegmentTally("SMS", max_segments=2)
    tally.add("x" * 160, where="row 1")
    tally.add("€" * 80, where="row 2")  # 160 septets: one segment
    tally.add("ü" * 161, where="row 3", recipients=3)  # ü is GSM-7: 2 segments
    assert (tally.messages, tally.segments, tally.encodings) == (5, 8, {"GSM-7": 5})
    with pytest.raises(MessageCentralValidationError, match=r"row 4: the message takes 3 segment\(s\), UCS-2"):
        tally.add("Hello 😀 " + "y" * 140, where="row 4")
    whatsapp = SegmentTally("WHATSAPP", max_segments=1)
    whatsapp.add("z" * 1000, where="row 1")
    assert whatsapp.segments == 1
    assert check_budget(1000, 0.2, 250) == 200.0
    with pytest.raises(MessageCentralValidationError, match=r"estimated cost 200 \(1000 segment\(s\) x 0.2\)"):
        check_budget(1000, 0.2, 100)
    with pytest.raises(MessageCentralValidationError, match="max_cost=100 needs price_per_segment"):
        check_budget(1000, None, 100)


def test_max_segments_names_the_offending_row_before_sending(api: FakeMessageCentral, at: Any) -> None:
    rows = [{"mobile": NUMBERS[0], "note": "short"}, {"mobile": NUMBERS[1], "note": "Привет " * 40}]
    op = MessageCentralFileSendOperator(task_id="t", message="##note##", rows=rows, max_segments=3)
    with pytest.raises(MessageCentralValidationError, match=r"row 2: the message takes 5 segment\(s\), UCS-2.*'П'"):
        op.execute(context())
    bulk = MessageCentralBulkSendOperator(task_id="b", phone_numbers=NUMBERS, message="x" * 500, max_segments=3)
    with pytest.raises(MessageCentralValidationError, match="task 'b': the message takes 4 segment"):
        bulk.execute(context())
    assert api.send_calls == []


def test_max_cost_from_the_connection_refuses_a_campaign(
    api: FakeMessageCentral, at: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = api.conn  # type: ignore[attr-defined]
    conn["extra"].update(price_per_segment="0.5", max_cost="2")
    monkeypatch.setenv("AIRFLOW_CONN_MESSAGECENTRAL_DEFAULT", json.dumps(conn))
    op = MessageCentralBulkSendOperator(task_id="t", phone_numbers=NUMBERS, message="Sale")
    with pytest.raises(MessageCentralValidationError, match="over max_cost=2; nothing was sent"):
        op.execute(context())
    assert api.send_calls == []
    ok = MessageCentralBulkSendOperator(task_id="t", phone_numbers=NUMBERS[:4], message="Sale", max_cost=3)
    assert ok.execute(context())["estimated_cost"] == 2.0


# -- dry run ------------------------------------------------------------------------------------------------


def test_dry_run_switches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_VAR_MESSAGECENTRAL_DRY_RUN", raising=False)
    assert [truthy(v) for v in (True, "true", "YES", "1", 1, False, "false", "0", None, "")] == [True] * 5 + [False] * 5
    assert dry_run_reason(True, {}) == "dry_run=True on the task"
    assert dry_run_reason(False, {"params": {"messagecentral_dry_run": "true"}}) == (
        "the DAG run's param messagecentral_dry_run"
    )
    assert dry_run_reason(False, {"params": {}}) is None
    monkeypatch.setenv("AIRFLOW_VAR_MESSAGECENTRAL_DRY_RUN", "true")
    assert dry_run_reason(False, {"params": {"messagecentral_dry_run": False}}) == (
        "the Airflow Variable messagecentral_dry_run"
    )


def test_dry_run_of_each_operator_sends_and_records_nothing(api: FakeMessageCentral, at: Any) -> None:
    from airflow_provider_messagecentral.reports.store import get_store

    at(23, 30)  # outside the window: a dry run reports the decision instead of deferring
    ops = [
        MessageCentralSendOperator(task_id="s", mobile_number=NUMBERS[0], message="Hi", dry_run=True),
        MessageCentralBulkSendOperator(task_id="b", phone_numbers=NUMBERS, message="Hi", dry_run=True),
        MessageCentralFileSendOperator(
            task_id="f", message="Hi ##var1##", rows=[{"mobile": NUMBERS[0], "var1": "Asha"}], dry_run=True
        ),
    ]
    previews = [op.execute(context()) for op in ops]
    assert api.send_calls == []
    assert get_store(api.reports_url).stats()["campaigns"] == 0  # type: ignore[attr-defined]
    assert [p["recipients"] for p in previews] == [1, 6, 1]
    assert {p["send_window"]["action"] for p in previews} == {"defer"}
    assert previews[2]["samples"] == [
        {"mobile": "+919816200000", "text": "Hi Asha", "encoding": "GSM-7", "segments": 1}
    ]


# -- send windows on the operators --------------------------------------------------------------------------


def test_outside_the_window_defers_to_the_opening(api: FakeMessageCentral, at: Any) -> None:
    at(21, 0)
    op = MessageCentralBulkSendOperator(task_id="t", phone_numbers=NUMBERS, message="Sale")
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context())
    assert api.send_calls == []
    trigger = deferred.value.trigger
    assert isinstance(trigger, SendWindowTrigger)
    assert trigger.moment == "2024-05-02T09:00:00+05:30"
    assert deferred.value.method_name == "execute_in_window"

    at(9, 0)
    summary = op.execute_in_window(context(), event={"status": "open", "moment": trigger.moment})
    assert summary["accepted"] == 6


def test_skip_fail_and_transactional_outside_the_window(api: FakeMessageCentral, at: Any) -> None:
    at(6, 0)
    with pytest.raises(AirflowSkipException, match="on_outside_window='skip'"):
        MessageCentralSendOperator(
            task_id="t", mobile_number=NUMBERS[0], message="Sale", on_outside_window="skip"
        ).execute(context())
    with pytest.raises(AirflowFailException, match=r"09:00-21:00 Asia/Kolkata is closed now"):
        MessageCentralSendOperator(
            task_id="t", mobile_number=NUMBERS[0], message="Sale", on_outside_window="fail"
        ).execute(context())
    assert api.send_calls == []
    sent = MessageCentralSendOperator(
        task_id="t", mobile_number=NUMBERS[0], message="OTP 1234", message_type="OTP"
    ).execute(context())
    assert sent["accepted"] == 1
    with pytest.raises(MessageCentralValidationError, match="on_outside_window must be"):
        MessageCentralSendOperator(task_id="t", mobile_number=NUMBERS[0], message="x", on_outside_window="wait")
    with pytest.raises(MessageCentralValidationError, match="send_window"):
        MessageCentralSendOperator(task_id="t", mobile_number=NUMBERS[0], message="x", send_window=("9", "21", IST))
