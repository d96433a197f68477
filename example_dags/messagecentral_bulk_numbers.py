"""
The same SMS to a list of numbers, sent in chunks with ``MessageCentralBulkSendOperator``.

A service notice to every account holder: the numbers come from ``data/audience.csv`` (the operator finds
the ``mobile`` column; a text file with one number per line, a Python list or an upstream task's list work
too). They are normalised to E.164, de-duplicated and validated before the first request, then sent
``chunk_size`` numbers per request, with progress logged per chunk. A retry of the task sends only the chunks
MessageCentral has not accepted yet.

The notice names the maintenance date: the ``maintenance_date`` param (e.g. ``{"maintenance_date":
"2024-06-01"}``), else the day after the run was triggered (``dag_run.run_after``, UTC date). The template
needs no logical date, so it renders the same from the UI's Trigger button, ``airflow dags trigger``, the REST
API (``"logical_date": null``) and ``airflow dags test``.

Connection: ``messagecentral_default`` (type ``messagecentral``). No schedule: unpausing it texts nobody; each
run is a deliberate trigger. ``chunk_size=250`` below sets the numbers per request.
"""

from __future__ import annotations

from pathlib import Path

import pendulum
from airflow.sdk import DAG, Param

from airflow_provider_messagecentral.operators.messagecentral import MessageCentralBulkSendOperator

NUMBERS_CSV = Path(__file__).parent / "data" / "audience.csv"

with DAG(
    dag_id="messagecentral_bulk_numbers",
    description="One service notice to every account holder, in chunks",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="Asia/Kolkata"),
    catchup=False,
    params={
        "numbers_file": Param(str(NUMBERS_CSV), type="string", description="CSV or text file of numbers"),
        "maintenance_date": Param(
            None, type=["null", "string"], format="date", description="default: the day after the run"
        ),
    },
    tags=["messagecentral", "example"],
) as dag:
    MessageCentralBulkSendOperator(
        task_id="send_notice",
        phone_numbers="{{ params.numbers_file }}",
        # run_after is set for every run (a manual or REST-triggered run has no logical date, so no ``ds``).
        message=(
            "Service notice: net banking is under maintenance on "
            "{{ params.maintenance_date or ((dag_run.run_after + macros.timedelta(days=1)) | ds) }} "
            "from 01:00 to 03:00 IST. UPI and cards keep working."
        ),
        # Service messages to existing customers are transactional: no promotional send window applies.
        message_type="TRANSACTIONAL",
        chunk_size=250,
        on_invalid="skip",
    )
