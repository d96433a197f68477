"""Campaign safety in real Airflow (``dag.test()``) against the sandbox: dry run, suppression, send windows."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pendulum
import pytest

from airflow_provider_messagecentral.safety import send_window

pytestmark = pytest.mark.integration

DAG_FILE = Path(__file__).parent / "dags" / "safety_campaigns.py"
IST = "Asia/Kolkata"


class Clock:
    """A clock the operators and the send-window trigger read; ``step`` advances it on every read."""

    def __init__(self, start: pendulum.DateTime, step_seconds: float = 0.0) -> None:
        self.current = start
        self.step = step_seconds
        self.slept_until: list[pendulum.DateTime] = []
        self.last = start

    def now(self) -> pendulum.DateTime:
        value = self.last = self.current
        self.current = self.current.add(seconds=self.step)
        return value

    async def sleep(self, seconds: float) -> None:
        self.current = self.current.add(seconds=seconds)
        self.slept_until.append(self.current)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Any:
    def install(start: pendulum.DateTime, step_seconds: float = 0.0) -> Clock:
        fake = Clock(start, step_seconds)
        monkeypatch.setattr(send_window, "now", fake.now)
        monkeypatch.setattr(send_window, "sleep", fake.sleep)
        return fake

    return install


@pytest.fixture
def dags(load_dag_file: Any, mc_conn: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("MC_TEST_WORKDIR", str(tmp_path))
    monkeypatch.delenv("AIRFLOW_VAR_MESSAGECENTRAL_DRY_RUN", raising=False)
    return load_dag_file(DAG_FILE)


def _states(dag_run: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


def _xcom(dag_run: Any, task_id: str) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.scalars(
            XComModel.get_many(
                run_id=dag_run.run_id, key="return_value", dag_ids=dag_run.dag_id, task_ids=task_id, map_indexes=-1
            )
        ).first()
        return None if row is None else XComModel.deserialize_value(row)


def _all_request_text(sandbox: Any) -> str:
    """Every accepted or refused request as text: a number absent from it never reached MessageCentral."""
    return repr(sandbox.requests()) + repr(sandbox.rejected())


def test_dry_run_sends_nothing_and_previews_what_a_real_run_sends(
    dags: Any, sandbox: Any, clock: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    clock(pendulum.datetime(2024, 5, 1, 23, 30, tz=IST))  # the promotional window is closed: the preview says so
    dry = dags.dry_run_dag.test()

    assert set(_states(dry).values()) == {"success"}, _states(dry)
    assert sandbox.requests() == [] and sandbox.rejected() == []
    assert sandbox.stats()["send_requests"] == 0
    previews = {task: _xcom(dry, task) for task in ("single", "bulk", "file")}
    for task, preview in previews.items():
        assert preview["dry_run"] is True, task
        assert preview["accepted"] == 0
        assert preview["send_window"]["window"] == "09:00-21:00 Asia/Kolkata"
        assert preview["send_window"]["open"] is False
        assert preview["send_window"]["action"] == "defer"
        assert preview["send_window"]["opens_at"] == "2024-05-02T09:00:00+05:30"
    bulk = previews["bulk"]
    assert (bulk["recipients"], bulk["duplicates"], bulk["invalid"], bulk["suppressed"]) == (6, 1, 1, 0)
    assert (bulk["chunks"], bulk["segments"], bulk["estimated_cost"]) == (3, 6, 1.5)
    file_preview = previews["file"]
    by_mobile = {s["mobile"]: s for s in file_preview["samples"]}
    assert by_mobile["+919816500003"]["encoding"] == "UCS-2"
    assert by_mobile["+919816500001"] == {
        "mobile": "+919816500001",
        "text": "Hi Asha, your balance is Rs 1200. Reply STOP to opt out",
        "encoding": "GSM-7",
        "segments": 1,
    }
    assert file_preview["segments"] == 4 and file_preview["estimated_cost"] == 1.0
    logs = capsys.readouterr().out
    assert "DRY RUN (the DAG run's param messagecentral_dry_run): nothing was sent" in logs
    assert "a real run would defer until 2024-05-02T09:00:00+05:30" in logs

    # The same campaign for real, in the window: the texts are exactly the preview's samples.
    clock(pendulum.datetime(2024, 5, 2, 12, 0, tz=IST))
    real = dags.dry_run_dag.test(run_conf={"messagecentral_dry_run": False})
    assert set(_states(real).values()) == {"success"}, _states(real)
    sent = {f"+{m['mobile']}": m["text"] for m in sandbox.messages()}
    for task, preview in previews.items():
        for item in preview["samples"]:
            assert sent[item["mobile"]] == item["text"], (task, item)
        summary = _xcom(real, task)
        assert summary["accepted"] == preview["recipients"]
        assert summary["segments"] == preview["segments"]
        assert summary["estimated_cost"] == preview["estimated_cost"]
        assert "dry_run" not in summary
    assert sum(p["recipients"] for p in previews.values()) == len(sandbox.messages())


def test_variable_switches_dry_run_on_for_every_send(
    dags: Any, sandbox: Any, clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock(pendulum.datetime(2024, 5, 1, 12, 0, tz=IST))
    monkeypatch.setenv("AIRFLOW_VAR_MESSAGECENTRAL_DRY_RUN", "true")
    # The run's conf says "send", the Variable says "rehearse": a rehearsal is never turned into a real send.
    dag_run = dags.dry_run_dag.test(run_conf={"messagecentral_dry_run": False})
    assert set(_states(dag_run).values()) == {"success"}
    assert sandbox.requests() == []
    assert _xcom(dag_run, "bulk")["dry_run_reason"] == "the Airflow Variable messagecentral_dry_run"


def test_suppressed_numbers_never_reach_messagecentral(dags: Any, sandbox: Any, mc_conn: Any, tmp_path: Path) -> None:
    from airflow_provider_messagecentral.safety.suppression import suppress

    (tmp_path / "optout.txt").write_text("# STOP replies\n+91 98164 00001\n9816400003\n")
    assert suppress(["9816400005", "+919816500004"], reason="REJECTD x3", store_url=mc_conn.reports_url) == 2

    dag_run = dags.suppression_dag.test()

    states = _states(dag_run)
    assert states == {"single": "skipped", "bulk": "success", "file": "success"}, states
    requests = _all_request_text(sandbox)
    for number in ("9816400100", "9816400001", "9816400003", "9816400005", "9816500002", "9816500004"):
        assert number not in requests, number
    texted = Counter(m["mobile"] for m in sandbox.messages())
    assert set(texted) == {"919816400000", "919816400002", "919816400004", "919816500001", "919816500003"}
    assert set(texted.values()) == {1}
    bulk, file_summary = _xcom(dag_run, "bulk"), _xcom(dag_run, "file")
    assert (bulk["recipients"], bulk["accepted"], bulk["suppressed"]) == (3, 3, 3)
    assert (file_summary["recipients"], file_summary["accepted"], file_summary["suppressed"]) == (2, 2, 2)


def test_campaign_pauses_at_window_end_and_finishes_once_when_it_reopens(
    dags: Any, sandbox: Any, clock: Any, mocker: Any
) -> None:
    from airflow_provider_messagecentral.hooks.messagecentral import MessageCentralHook

    # 20:55 IST; every clock read advances one minute: chunk 6 meets the window's end at 21:00.
    fake = clock(pendulum.datetime(2024, 5, 1, 20, 55, tz=IST), step_seconds=60)
    sent_at: list[pendulum.DateTime] = []
    original = MessageCentralHook.send_chunk

    def record(hook: MessageCentralHook, chunk: Any, params: Any) -> Any:
        sent_at.append(fake.last.in_timezone(IST))
        return original(hook, chunk, params)

    mocker.patch.object(MessageCentralHook, "send_chunk", autospec=True, side_effect=record)

    dag_run = dags.window_defer_dag.test()

    assert _states(dag_run) == {"campaign": "success"}
    texted = Counter(m["mobile"] for m in sandbox.messages())
    assert texted == Counter({f"91{n}": 1 for n in dags.CAMPAIGN_NUMBERS})  # everyone, exactly once
    before = [t for t in sent_at if t.day == 1]
    after = [t for t in sent_at if t.day == 2]
    assert before and after and len(before) + len(after) == 10
    assert all(t.hour == 20 for t in before)  # nothing after 21:00
    assert all(t >= pendulum.datetime(2024, 5, 2, 9, 0, tz=IST) for t in after)  # resumed when it reopened
    assert fake.slept_until[-1] >= pendulum.datetime(2024, 5, 2, 9, 0, tz=IST)  # the trigger waited for it
    summary = _xcom(dag_run, "campaign")
    assert (summary["recipients"], summary["accepted"], summary["chunks"]) == (10, 10, 10)


def test_outside_the_window_skip_and_fail_send_nothing_transactional_goes_out(
    dags: Any, sandbox: Any, clock: Any
) -> None:
    clock(pendulum.datetime(2024, 5, 1, 23, 30, tz=IST))

    dag_run = dags.window_skip_fail_dag.test()

    assert _states(dag_run) == {"skip_single": "skipped", "fail_file": "failed", "transactional_bulk": "success"}
    assert {r["params"]["messageType"] for r in sandbox.requests()} == {"TRANSACTIONAL"}
    assert sorted(m["mobile"] for m in sandbox.messages()) == [f"91{n}" for n in dags.BULK_NUMBERS[:2]]
