"""
Approval before a big send (``example_dags/messagecentral_approval.py``) on real Airflow against the sandbox: the
dry run's preview is the approval form, Approve sends once, Reject (and a small campaign) behave as documented.
The answer goes through the handler of Airflow's REST API, as the UI's does.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import airflow
import pytest
from airflow_runs import Approver, asset_events, hitl_form, states, xcoms

pytestmark = pytest.mark.integration

DAG_ID = "messagecentral_approval"
CONF = {"send_window": "off", "audience_limit": 300, "approval_over": 100}
# Before 3.3 the approval defers to the standard provider's HITLTrigger, which dag.test() runs inline without a
# supervisor that answers its requests ("Unhandled request GetHITLDetailResponse"): only a deployment's
# triggerer can run it there. From 3.3 the task waits in the awaiting_input state, which dag.test() supports.
needs_awaiting_input = pytest.mark.skipif(
    tuple(int(p) for p in airflow.__version__.split(".")[:2]) < (3, 3),
    reason="dag.test() cannot run the HITL trigger before Airflow 3.3 (Unhandled request GetHITLDetailResponse)",
)


def run_answering(dag: Any, option: str) -> tuple[Any, Approver]:
    approver = Approver(DAG_ID, "approve", option)
    approver.start()
    dag_run = dag.test(run_conf=CONF)
    approver.join(timeout=30)
    assert approver.error is None, approver.error
    assert approver.run_id == dag_run.run_id
    return dag_run, approver


@needs_awaiting_input
def test_approved_the_campaign_goes_out_once_after_the_form_showed_the_preview(
    load_example: Any, sandbox: Any, mc_conn: Any
) -> None:
    dag = load_example(DAG_ID)
    dag_run, _ = run_answering(dag, "Approve")
    assert states(dag_run) == {
        ("build_audience", -1): "success",
        ("rehearse", -1): "success",
        ("needs_approval", -1): "success",
        ("approve", -1): "success",
        ("auto_approved", -1): "skipped",
        ("send", -1): "success",
    }
    values = xcoms(DAG_ID, dag_run.run_id)
    preview, sent = values[("rehearse", -1)], values[("send", -1)]
    assert preview["dry_run"] is True and preview["recipients"] == 300

    form = hitl_form(DAG_ID, dag_run.run_id, "approve")
    assert form["subject"] == "Send the cashback SMS to 300 customers?"
    assert form["options"] == ["Approve", "Reject"] and form["chosen_options"] == ["Approve"]
    body = form["body"]
    assert "| Recipients | **300** to text (300 given: 0 invalid, 0 duplicate, 0 suppressed) |" in body
    assert "| Segments | 300 (GSM-7: 300 message(s)) |" in body and "| Estimated cost |" in body
    first = preview["samples"][0]
    assert f"+91••••••{first['mobile'][-4:]}" in body and first["mobile"] not in body  # numbers mostly hidden
    assert first["text"].split(",")[0] in body

    # Exactly what was previewed went out, once per customer.
    texted = Counter(m["mobile"] for m in sandbox.messages())
    assert len(texted) == 300 and set(texted.values()) == {1}
    assert (sent["recipients"], sent["accepted"]) == (300, 300)
    [event] = asset_events("messagecentral_cashback_sent", dag_run.run_id)
    assert event["extra"] == {**sent, "stage": "sent"}


@needs_awaiting_input
def test_rejected_nothing_is_sent(load_example: Any, sandbox: Any, mc_conn: Any) -> None:
    dag = load_example(DAG_ID)
    dag_run, _ = run_answering(dag, "Reject")
    task_states = states(dag_run)
    assert task_states[("approve", -1)] == "success" and task_states[("send", -1)] == "skipped"
    assert hitl_form(DAG_ID, dag_run.run_id, "approve")["chosen_options"] == ["Reject"]
    assert sandbox.messages() == [] and sandbox.requests() == []
    assert ("send", -1) not in xcoms(DAG_ID, dag_run.run_id)
    assert asset_events("messagecentral_cashback_sent", dag_run.run_id) == []


def test_a_small_campaign_needs_no_approval(load_example: Any, sandbox: Any, mc_conn: Any) -> None:
    dag = load_example(DAG_ID)
    dag_run = dag.test(run_conf={**CONF, "audience_limit": 5})
    task_states = states(dag_run)
    assert task_states[("approve", -1)] == "skipped" and task_states[("send", -1)] == "success"
    assert len(sandbox.messages()) == 5
