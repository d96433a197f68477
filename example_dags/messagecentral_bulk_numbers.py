"""
The same SMS to a list of numbers, sent in chunks with ``MessageCentralBulkSendOperator``.

A service notice to every account holder: the numbers come from ``data/audience.csv`` (the operator finds
the ``mobile`` column; a text file with one number per line, a Python list or an upstream task's list work
too). They are normalised to E.164, de-duplicated and validated before the first request, then sent
``chunk_size`` numbers per request, with progress logged per chunk. A retry of the task sends only the chunks
MessageCentral has not accepted yet.

Connection: ``messagecentral_default`` (type ``messagecentral``). Trigger it by hand (no schedule); the
``chunk_size`` param sets the numbers per request.
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
    params={"numbers_file": Param(str(NUMBERS_CSV), type="string", description="CSV or text file of numbers")},
    tags=["messagecentral", "example"],
) as dag:
    MessageCentralBulkSendOperator(
        task_id="send_notice",
        phone_numbers="{{ params.numbers_file }}",
        message=(
            "Service notice: net banking is under maintenance on {{ macros.ds_add(ds, 1) }} from 01:00 to 03:00 IST. "
            "UPI and cards keep working."
        ),
        # Service messages to existing customers are transactional: no promotional send window applies.
        message_type="TRANSACTIONAL",
        chunk_size=250,
        on_invalid="skip",
    )
