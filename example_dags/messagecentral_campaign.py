"""
A daily promotional SMS campaign with per-recipient text, delivery tracking and a summary.

Every day at 09:30 Asia/Kolkata this DAG:

1. ``build_audience`` reads the customers from ``data/audience.csv`` (columns ``mobile``, ``var1`` = first
   name, ``var2`` = cashback amount) — swap it for your CRM query, or pass ``sql=`` to the send operator;
2. ``send_campaign`` sends one SMS per customer with ``MessageCentralFileSendOperator``: the ``##var1##`` and
   ``##var2##`` placeholders are filled from each customer's row (MessageCentral's bulk-file send);
3. ``wait_for_delivery`` waits, deferred (no worker slot held; run ``airflow triggerer``), until 85% of the
   customers have a DELIVRD report, failing early when more than 15% failed; then Airflow emits an event of the
   asset ``CASHBACK_DELIVERED`` (its ``outlets``) carrying the delivery summary, on which
   ``messagecentral_crm_update`` runs;
4. ``report`` logs the delivery summary and returns it.

**It rehearses until you decide otherwise.** The ``messagecentral_dry_run`` param defaults to true, so every
run (the scheduled ones included) is a dry run: audience, per-recipient texts, segments and the send-window
decision are computed and logged as a preview, nothing is sent, and the delivery sensor and ``report`` skip.
Unpausing the DAG therefore texts nobody, although Airflow starts the latest daily run at once (``catchup=False``
still schedules the most recent interval). Sending is a deliberate step: trigger a run with
``{"messagecentral_dry_run": false}``, or, to go live on the schedule, change the param's default to ``False``
in your copy. Runs need no logical date: the UI's Trigger button, ``airflow dags trigger`` and the REST API
(``"logical_date": null``) all work.

Connection: ``messagecentral_default`` (type ``messagecentral``). Its ``reports_url`` extra names the store
the delivery-report receiver writes to, which the sensor reads: run the receiver (``python -m
airflow_provider_messagecentral.reports serve`` or the api-server plugin) and register its callback URL with
MessageCentral. ``./scripts/demo.sh`` runs this DAG against the local sandbox.

Params (trigger with config): ``messagecentral_dry_run`` (default true: see above), ``audience_csv`` (another
CSV with the same columns), ``audience_limit`` (send to the first N rows only), ``message_type`` (default
``PROMOTIONAL``), ``send_window`` (``"off"`` sends at any hour).
"""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG, Asset, Param, get_current_context, task

from airflow_provider_messagecentral.operators.messagecentral import MessageCentralFileSendOperator
from airflow_provider_messagecentral.sensors.messagecentral import MessageCentralDeliverySensor

AUDIENCE_CSV = Path(__file__).parent / "data" / "audience.csv"
MESSAGE = "Hi ##var1##, your Rs ##var2## cashback is waiting for you. Shop by midnight: example.com/sale"
# How often the deferred sensor reads the report store. A real campaign's reports trickle in over minutes to
# hours: poll every minute. The demo and the tests set a short interval through this variable.
POLL_SECONDS = float(os.environ.get("MESSAGECENTRAL_EXAMPLE_POLL_SECONDS", "60"))
# Where delivery reports come from: "callbacks" (a receiver at a callback URL registered with MessageCentral),
# "api" (the sensor pulls them from MessageCentral: no receiver, no public URL) or "both".
REPORT_SOURCE = os.environ.get("MESSAGECENTRAL_EXAMPLE_REPORT_SOURCE", "callbacks")
# Emitted when a campaign of this DAG reached its delivery target; the event's extra is the delivery summary.
CASHBACK_DELIVERED = Asset(
    name="messagecentral_cashback_delivered", uri="messagecentral://campaigns/messagecentral_campaign/delivered"
)

log = logging.getLogger(__name__)


@task
def build_audience() -> list[dict[str, str]]:
    """The campaign's rows: ``mobile``, ``var1`` (first name), ``var2`` (cashback), from the CSV param."""
    params = get_current_context()["params"]
    path = Path(params["audience_csv"] or AUDIENCE_CSV)
    limit = params["audience_limit"]
    rows: list[dict[str, str]] = []
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if limit is not None and len(rows) >= limit:
                break
            rows.append({"mobile": row["mobile"], "var1": row["var1"], "var2": row["var2"]})
    log.info("Audience: %d customer(s) from %s", len(rows), path)
    return rows


@task
def report(summary: dict[str, Any]) -> dict[str, Any]:
    """Log the delivery summary (the sensor's XCom) and hand it on, e.g. to a dashboard or an e-mail."""
    by_status = ", ".join(f"{status} {count}" for status, count in summary["by_status"].items())
    log.info(
        "Campaign %s: %d of %d delivered (%.1f%%), %d failed, %d pending (%s)",
        summary["campaign"],
        summary["delivered"],
        summary["recipients"],
        100 * summary["delivered_ratio"],
        summary["failed"],
        summary["pending"],
        by_status or "no reports yet",
    )
    return summary


with DAG(
    dag_id="messagecentral_campaign",
    description="Daily promotional SMS with per-recipient text, waiting on delivery reports",
    schedule="30 9 * * *",
    start_date=pendulum.datetime(2024, 1, 1, tz="Asia/Kolkata"),
    catchup=False,
    params={
        # Rehearse by default: unpausing (which starts the latest daily run at once) must not text anyone.
        "messagecentral_dry_run": Param(
            True, type="boolean", description="preview only, send nothing; trigger with false to send"
        ),
        "audience_csv": Param(str(AUDIENCE_CSV), type="string", description="CSV with mobile, var1, var2"),
        "audience_limit": Param(None, type=["null", "integer"], minimum=1, description="first N rows only"),
        "message_type": Param("PROMOTIONAL", enum=["PROMOTIONAL", "TRANSACTIONAL"]),
        "send_window": Param(
            "09:00-21:00 Asia/Kolkata", type="string", description="'off' sends at any hour (rehearsals, demo)"
        ),
    },
    tags=["messagecentral", "example"],
) as dag:
    send = MessageCentralFileSendOperator(
        task_id="send_campaign",
        rows=build_audience(),
        message=MESSAGE,
        # Promotional SMS to Indian numbers only goes out 09:00-21:00 Asia/Kolkata; the 09:30 schedule is
        # inside it. Outside the window the task defers (no worker slot held) until it opens.
        message_type="{{ params.message_type }}",
        send_window="{{ params.send_window }}",
        on_invalid="skip",  # a bad number in the CRM must not stop everyone else's message
    )
    wait = MessageCentralDeliverySensor(
        task_id="wait_for_delivery",
        campaign=send.output,
        min_delivered_ratio=0.85,
        max_failed_ratio=0.15,
        deferrable=True,
        poke_interval=POLL_SECONDS,
        report_source=REPORT_SOURCE,
        pull_interval=POLL_SECONDS,
        timeout=6 * 3600,
        outlets=[CASHBACK_DELIVERED],  # the event carries the delivery summary: see messagecentral_crm_update
    )
    report(wait.output)
