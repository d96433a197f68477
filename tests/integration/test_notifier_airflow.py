"""MessageCentralNotifier as a real task's and DAG's on_failure_callback, texting the sandbox."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

DAG_FILE = Path(__file__).parent / "dags" / "send_operators.py"


def test_task_and_dag_failure_callbacks_text_the_rendered_messages(
    load_dag_file: Any, mc_conn: Any, sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MC_TEST_WORKDIR", str(tmp_path))
    dags = load_dag_file(DAG_FILE)

    dag_run = dags.notify_dag.test()

    assert [str(ti.state) for ti in dag_run.get_task_instances()] == ["failed"]
    assert [(m["mobile"], m["text"]) for m in sandbox.messages()] == [
        ("919816199999", "fails failed in mc_ops_notify, try 1"),  # task-level callback
        ("919816188888", f"DAG mc_ops_notify run {dag_run.run_id} failed"),  # DAG-level callback
    ]
