"""
DAGs for the campaign-safety integration tests (dry run, suppression, send windows) on all three send operators.

They use ``messagecentral_default`` (the tests point it at the sandbox), read files from ``MC_TEST_WORKDIR`` and
rely on the tests to pin the clock (``airflow_provider_messagecentral.safety.send_window.now``).
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.sdk import DAG

from airflow_provider_messagecentral.operators.messagecentral import (
    MessageCentralBulkSendOperator,
    MessageCentralFileSendOperator,
    MessageCentralSendOperator,
)

START = datetime(2024, 1, 1)
WORKDIR = Path(os.environ.get("MC_TEST_WORKDIR", "/tmp"))
BULK_NUMBERS = [f"98164{i:05d}" for i in range(6)]
ROWS = [
    {"mobile": "9816500001", "name": "Asha", "amount": 1200},
    {"mobile": "9816500002", "name": "Ravi", "amount": 75.5},
    {"mobile": "9816500003", "name": "Zoë", "amount": 10},  # ë is not GSM-7: this text goes as UCS-2
    {"mobile": "9816500004", "name": "Meera", "amount": 0},
]
FILE_MESSAGE = "Hi ##name##, your balance is Rs ##amount##. Reply STOP to opt out"
CAMPAIGN_NUMBERS = [f"98166{i:05d}" for i in range(10)]


def _dag(dag_id: str, **kwargs: Any) -> DAG:
    return DAG(dag_id=dag_id, schedule=None, start_date=START, catchup=False, tags=["messagecentral-tests"], **kwargs)


def _three_sends(price: float | None = None, **safety: Any) -> None:
    MessageCentralSendOperator(
        task_id="single",
        mobile_number="9816400100",
        message="Your order {{ params.order }} ships today",
        price_per_segment=price,
        **safety,
    )
    MessageCentralBulkSendOperator(
        task_id="bulk",
        phone_numbers=[*BULK_NUMBERS, BULK_NUMBERS[0], "not-a-number"],
        message="Festive sale: 30% off everything until Sunday {{ params.order }}",
        chunk_size=2,
        on_invalid="skip",
        price_per_segment=price,
        **safety,
    )
    MessageCentralFileSendOperator(
        task_id="file",
        rows=ROWS,
        message=FILE_MESSAGE,
        price_per_segment=price,
        **safety,
    )


# A rehearsal: the DAG param switches dry run on for the whole run; trigger with conf to send for real.
with _dag("mc_safety_dry_run", params={"messagecentral_dry_run": True, "order": "A-17"}) as dry_run_dag:
    _three_sends(price=0.25)

# Suppression from a list (single, file), a text file (bulk) and the store's table (all of them; the tests fill it).
with _dag("mc_safety_suppression", params={"order": "B-2"}) as suppression_dag:
    MessageCentralSendOperator(
        task_id="single",
        mobile_number="9816400100",
        message="Your order {{ params.order }} ships today",
        suppression=["+91 98164 00100"],
        send_window=None,
    )
    MessageCentralBulkSendOperator(
        task_id="bulk",
        phone_numbers=BULK_NUMBERS,
        message="Festive sale: 30% off everything until Sunday",
        chunk_size=2,
        suppression=str(WORKDIR / "optout.txt"),
        send_window=None,
    )
    MessageCentralFileSendOperator(
        task_id="file",
        rows=ROWS,
        message=FILE_MESSAGE,
        suppression=["09816500002"],
        send_window=None,
    )

# Default send window (PROMOTIONAL to +91: 09:00-21:00 Asia/Kolkata): a campaign of 10 one-number chunks.
with _dag("mc_safety_window_defer") as window_defer_dag:
    MessageCentralBulkSendOperator(
        task_id="campaign",
        phone_numbers=CAMPAIGN_NUMBERS,
        message="Weekend offer: buy one get one free",
        chunk_size=1,
    )

with _dag("mc_safety_window_skip_fail", params={"order": "C-3"}) as window_skip_fail_dag:
    MessageCentralSendOperator(
        task_id="skip_single",
        mobile_number="9816700001",
        message="Sale starts now",
        on_outside_window="skip",
    )
    MessageCentralFileSendOperator(
        task_id="fail_file",
        rows=ROWS,
        message=FILE_MESSAGE,
        on_outside_window="fail",
    )
    MessageCentralBulkSendOperator(
        task_id="transactional_bulk",  # TRANSACTIONAL traffic has no default window: goes out at night too
        phone_numbers=BULK_NUMBERS[:2],
        message="Your statement is ready",
        message_type="TRANSACTIONAL",
    )
