"""
A person approves a big campaign before it goes out: dry run, Airflow's human-in-the-loop approval, real send.

1. ``build_audience`` reads the customers from ``data/audience.csv`` (as ``messagecentral_campaign`` does);
2. ``rehearse`` is the send with ``dry_run=True``: audience, per-recipient texts, segments, estimated cost and the
   send-window decision are worked out, nothing is sent; its XCom is the preview;
3. ``needs_approval`` sends small campaigns straight on (``auto_approved``) and asks a person when the campaign
   has ``approval_over`` recipients or more;
4. ``approve`` is the standard provider's ``ApprovalOperator`` (Airflow 3.1+): the Required Actions page shows
   the preview, rendered by :func:`~airflow_provider_messagecentral.safety.approval.approval_body` (recipients,
   requests, segments, estimated cost, send window, sample messages with the numbers mostly hidden).
   **Approve** runs ``send``; **Reject** skips it, and so does no answer within ``response_timeout`` (the
   default option is Reject): nothing is sent;
5. ``send`` sends what was approved: the same rows (the ``build_audience`` XCom both tasks read) and the same
   text, through the send ledger (exactly once, across retries too). Its asset event (``CASHBACK_SENT``)
   carries the send summary for the DAGs that follow the campaign.

On Airflow 3.3 the approval waits in the ``awaiting_input`` state; on 3.1 and 3.2 it defers to the triggerer
(run ``airflow triggerer``). Answer in the UI (Browse -> Required Actions, or the task's page) or through the
REST API: ``PATCH /api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/approve/-1/hitlDetails`` with
``{"chosen_options": ["Approve"], "params_input": {}}``.

Connection: ``messagecentral_default`` (type ``messagecentral``). No schedule: unpausing it texts nobody; trigger
it by hand. Params: ``audience_limit`` (first N rows), ``approval_over`` (ask from this many recipients),
``send_window`` (``"off"`` sends at any hour).
"""

from __future__ import annotations

import csv
from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import DAG, Asset, Param, get_current_context, task

from airflow_provider_messagecentral.operators.messagecentral import MessageCentralFileSendOperator
from airflow_provider_messagecentral.safety.approval import approval_body

AUDIENCE_CSV = Path(__file__).parent / "data" / "audience.csv"
CASHBACK_SENT = Asset(
    name="messagecentral_cashback_sent", uri="messagecentral://campaigns/messagecentral_approval/sent"
)
MESSAGE = "Hi ##var1##, your Rs ##var2## cashback is waiting for you. Shop by midnight: example.com/sale"


@task
def build_audience() -> list[dict[str, str]]:
    """The campaign's rows (``mobile``, ``var1``, ``var2``): the rehearsal and the send read this one XCom."""
    limit = get_current_context()["params"]["audience_limit"]
    with AUDIENCE_CSV.open(newline="", encoding="utf-8") as handle:
        rows = [{"mobile": r["mobile"], "var1": r["var1"], "var2": r["var2"]} for r in csv.DictReader(handle)]
    return rows[:limit] if limit else rows


@task.branch
def needs_approval(preview: dict[str, Any]) -> str:
    """Ask a person when the rehearsal counted ``approval_over`` recipients or more."""
    over = get_current_context()["params"]["approval_over"]
    return "approve" if preview["recipients"] >= over else "auto_approved"


with DAG(
    dag_id="messagecentral_approval",
    description="Dry run, a person approves the preview, then the real send (rejected: nothing is sent)",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="Asia/Kolkata"),
    catchup=False,
    params={
        "audience_limit": Param(None, type=["null", "integer"], minimum=1, description="first N rows only"),
        "approval_over": Param(100, type="integer", minimum=0, description="ask a person from this many recipients"),
        "send_window": Param("09:00-21:00 Asia/Kolkata", type="string", description="'off': any hour"),
    },
    # The approval form's body: the rehearsal's XCom as Markdown.
    user_defined_filters={"messagecentral_preview": approval_body},
    tags=["messagecentral", "example"],
) as dag:
    audience = build_audience()
    campaign = {"rows": audience, "message": MESSAGE, "send_window": "{{ params.send_window }}", "on_invalid": "skip"}
    rehearse = MessageCentralFileSendOperator(task_id="rehearse", dry_run=True, **campaign)
    approve = ApprovalOperator(
        task_id="approve",
        subject="Send the cashback SMS to {{ ti.xcom_pull(task_ids='rehearse')['recipients'] }} customers?",
        body="{{ ti.xcom_pull(task_ids='rehearse') | messagecentral_preview }}",
        defaults="Reject",  # no answer in time: nothing is sent
        response_timeout=timedelta(hours=4),
    )
    auto_approved = EmptyOperator(task_id="auto_approved")
    send = MessageCentralFileSendOperator(
        task_id="send", trigger_rule="none_failed_min_one_success", outlets=[CASHBACK_SENT], **campaign
    )
    needs_approval(rehearse.output) >> [approve, auto_approved] >> send
