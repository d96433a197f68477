"""
Text on-call when a DAG run is late: a deadline alert whose callback is ``MessageCentralNotifier``, in the triggerer.

``nightly_export`` must finish within ``DEADLINE`` of being queued. When a run is still not done by then, the
scheduler marks its deadline missed and the triggerer awaits
``MessageCentralNotifier(mobile_numbers=ONCALL, message=..., context=...)``: the notifier's ``async_notify``
sends the SMS through the hook in a worker thread (same retries, rate limit and secret masking as a task-level
callback), so the triggerer's event loop keeps serving the other triggers meanwhile. The run itself carries on;
the alert only tells someone. A failed SMS is logged in the triggerer, never raised.

The triggerer hands the callback a small context: ``dag_run``, the run as the REST API shows it
(``dag_run.dag_id``, ``dag_run.dag_run_id``, ``dag_run.queued_at`` ...), and ``deadline``
(``deadline.deadline_time``); there is no ``ti`` or ``dag`` here.

The export's duration is the ``export_minutes`` param (your real export would take what it takes): a plain trigger
finishes in a minute and texts nobody; trigger with ``{"export_minutes": 45}`` to see the alert. Deadline alerts
need a running scheduler and triggerer (``dag.test()`` does not evaluate them). Airflow 3.1 keeps the deadline
classes in ``airflow.sdk.definitions.deadline`` (experimental there); 3.2+ exports them from ``airflow.sdk``.

Connection: ``messagecentral_default`` (type ``messagecentral``), readable by the triggerer. Put your on-call
number in ``ONCALL``. No schedule: unpausing it texts nobody.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Param, get_current_context, task

try:
    from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference
except ImportError:  # Airflow 3.1
    from airflow.sdk.definitions.deadline import AsyncCallback, DeadlineAlert, DeadlineReference

from airflow_provider_messagecentral.notifications.messagecentral import MessageCentralNotifier

ONCALL = ["+919816100000"]
DEADLINE = timedelta(minutes=30)

with DAG(
    dag_id="messagecentral_deadline",
    description="An SMS to on-call when the nightly export runs past its 30-minute deadline",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="Asia/Kolkata"),
    catchup=False,
    params={"export_minutes": Param(1, type="number", minimum=0, description="how long the export takes")},
    deadline=DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=DEADLINE,
        callback=AsyncCallback(
            MessageCentralNotifier,
            kwargs={
                "mobile_numbers": ONCALL,
                "message": "LATE {{ dag_run.dag_id }}: run {{ dag_run.dag_run_id }} is still running past its deadline "
                "{{ deadline.deadline_time }}",
            },
        ),
    ),
    tags=["messagecentral", "example"],
) as dag:

    @task
    def nightly_export() -> None:
        """Stands for the slow job the deadline watches."""
        time.sleep(60 * get_current_context()["params"]["export_minutes"])

    nightly_export()
