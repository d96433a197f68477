"""The send operators as real Airflow tasks (``dag.test()``) against the sandbox, with the ledger in SQLite."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

DAG_FILE = Path(__file__).parent / "dags" / "send_operators.py"


@pytest.fixture
def dags(load_dag_file: Any, mc_conn: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("MC_TEST_WORKDIR", str(tmp_path))
    return load_dag_file(DAG_FILE)


def _states(dag_run: Any) -> dict[tuple[str, int], tuple[str, int]]:
    return {(ti.task_id, ti.map_index): (str(ti.state), ti.try_number) for ti in dag_run.get_task_instances()}


def _xcom(dag_run: Any, task_id: str, map_index: int = -1) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.scalars(
            XComModel.get_many(
                run_id=dag_run.run_id,
                key="return_value",
                dag_ids=dag_run.dag_id,
                task_ids=task_id,
                map_indexes=map_index,
            )
        ).first()
        assert row is not None, f"no XCom from {task_id}"
        return XComModel.deserialize_value(row)


def _texted(sandbox: Any) -> Counter[str]:
    return Counter(m["mobile"] for m in sandbox.messages())


def test_single_mapped_and_csv_bulk_sends(dags: Any, sandbox: Any, tmp_path: Path) -> None:
    (tmp_path / "audience.csv").write_text("name,Mobile Number\nA,9816100011\nB,+91 98161 00012\nC,9816100011\n")

    dag_run = dags.basic_dag.test()

    states = _states(dag_run)
    assert {state for state, _ in states.values()} == {"success"}, states
    sends = sandbox.requests()
    singles = [(r["recipients"][0]["mobile"], r["recipients"][0]["text"]) for r in sends if r["kind"] == "single"]
    assert sorted(singles) == sorted(
        [
            ("919816100001", "Hello from mc_ops_basic"),
            ("919816111111", "Your code is ready"),
            ("917715131105", "Your code is ready"),
            ("919816122222", "Your code is ready"),
        ]
    )
    bulk = [r for r in sends if r["kind"] == "bulk"]
    assert [[m["mobile"] for m in r["recipients"]] for r in bulk] == [["919816100011", "919816100012"]]
    assert bulk[0]["recipients"][0]["text"].startswith("Store opening on 20")
    # Mapped tasks in one process share the hook's token cache: one token for the whole run.
    assert sandbox.stats()["token_requests"] == 1

    single = _xcom(dag_run, "single")
    assert single["recipients"] == single["accepted"] == single["chunks"] == 1
    first = next(r for r in sends if r["recipients"][0]["mobile"] == "919816100001")
    assert single["transaction_ids"] == [first["transaction_id"]]
    csv_summary = _xcom(dag_run, "bulk_csv")
    assert {k: csv_summary[k] for k in ("recipients", "accepted", "skipped", "invalid", "duplicates", "chunks")} == {
        "recipients": 2,
        "accepted": 2,
        "skipped": 0,
        "invalid": 0,
        "duplicates": 1,
        "chunks": 1,
    }
    mapped_keys = {_xcom(dag_run, "mapped", i)["campaign"] for i in range(3)}
    assert len(mapped_keys) == 3  # one campaign per mapped task instance


def test_bulk_final_error_on_chunk_3_then_retry_texts_everyone_exactly_once(
    dags: Any, sandbox: Any, mc_conn: Any
) -> None:
    from airflow_provider_messagecentral.reports.store import get_store

    sandbox.set_faults(fail_on_send={"nth": 3, "code": 705})

    dag_run = dags.bulk_retry_dag.test()

    assert _states(dag_run)[("bulk", -1)] == ("success", 2)  # failed on try 1, finished on try 2
    texted = _texted(sandbox)
    assert set(texted) == {f"91{n}" for n in dags.BULK_NUMBERS}
    assert max(texted.values()) == 1  # nobody texted twice
    assert sandbox.stats()["rejected"] == 1  # the refused chunk 3 of try 1

    summary = _xcom(dag_run, "bulk")
    assert summary["recipients"] == summary["accepted"] == 10
    assert summary["duplicates"] == 1 and summary["chunks"] == 5 and summary["skipped"] == 0
    units = get_store(mc_conn.reports_url).get_units(summary["campaign"])
    assert sorted(u.state for u in units.values()) == ["accepted"] * 5
    assert sorted(summary["transaction_ids"]) == sorted(r["transaction_id"] for r in sandbox.requests())


def test_file_sends_from_a_10000_row_workbook_and_from_rows(dags: Any, sandbox: Any) -> None:
    dag_run = dags.file_dag.test()

    assert {state for state, _ in _states(dag_run).values()} == {"success"}
    files = [r for r in sandbox.requests() if r["kind"] == "file"]
    by_size = sorted(files, key=lambda r: len(r["recipients"]))
    assert [len(r["recipients"]) for r in by_size] == [2, 2000, 4000, 4000]
    rows_texts = {m["mobile"]: m["text"] for m in by_size[0]["recipients"]}
    assert rows_texts["919816100001"].startswith("Hi Asha, see you on 20")
    assert rows_texts["919816100002"].startswith("Hi Ravi, see you on 20")
    texts = {m["mobile"]: m["text"] for r in by_size[1:] for m in r["recipients"]}
    assert len(texts) == dags.WORKBOOK_ROWS
    assert texts["919800000001"] == "Hello Customer 1, your balance is 10"
    assert texts["919800010000"] == "Hello Customer 10000, your balance is 100000"
    summary = _xcom(dag_run, "file_workbook")
    assert (summary["recipients"], summary["accepted"], summary["chunks"]) == (10_000, 10_000, 3)


def test_bad_inputs_fail_before_anything_is_sent(dags: Any, sandbox: Any, tmp_path: Path) -> None:
    (tmp_path / "renamed_csv.xlsx").write_text("mobile,var1\n9816100001,Asha\n")

    dag_run = dags.bad_inputs_dag.test()

    states = _states(dag_run)
    assert len(states) == 7
    assert {state for state, _ in states.values()} == {"failed"}, states
    assert sandbox.requests() == []
    assert sandbox.stats()["send_requests"] == 0
