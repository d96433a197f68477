"""
DAGs for the send operators' integration tests. They use ``messagecentral_default`` (the tests point it at the
sandbox) and read file locations from ``MC_TEST_WORKDIR``. Promotional sends say ``send_window=None`` so the tests
pass at any hour (the default keeps promotional traffic to India within 09:00-21:00 IST; see safety_*.py).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import DAG, task

from airflow_provider_messagecentral.notifications.messagecentral import MessageCentralNotifier
from airflow_provider_messagecentral.operators.messagecentral import (
    MessageCentralBulkSendOperator,
    MessageCentralFileSendOperator,
    MessageCentralSendOperator,
)

START = datetime(2024, 1, 1)
WORKDIR = Path(os.environ.get("MC_TEST_WORKDIR", "/tmp"))
BULK_NUMBERS = [f"98161{i:05d}" for i in range(10)]
MAPPED_NUMBERS = ["9816111111", "+91 77151 31105", "919816122222"]
WORKBOOK_ROWS = 10_000


def _dag(dag_id: str, **kwargs: object) -> DAG:
    return DAG(dag_id=dag_id, schedule=None, start_date=START, catchup=False, tags=["messagecentral-tests"], **kwargs)


with _dag("mc_ops_basic") as basic_dag:
    MessageCentralSendOperator(
        task_id="single",
        mobile_number="9816100001",
        message="Hello from {{ dag.dag_id }}",
        message_type="TRANSACTIONAL",
    )
    MessageCentralSendOperator.partial(task_id="mapped", message="Your code is ready", send_window=None).expand(
        mobile_number=MAPPED_NUMBERS
    )
    MessageCentralBulkSendOperator(
        task_id="bulk_csv",
        phone_numbers=str(WORKDIR / "audience.csv"),
        message="Store opening on {{ ds }}",
        chunk_size=2,
        send_window=None,
    )

with _dag("mc_ops_bulk_retry") as bulk_retry_dag:
    # 10 numbers in 5 chunks of 2; the tests make the sandbox refuse chunk 3 once, and the retry finishes.
    MessageCentralBulkSendOperator(
        task_id="bulk",
        phone_numbers=[*BULK_NUMBERS, BULK_NUMBERS[0]],
        message="Flash sale: 20% off today",
        chunk_size=2,
        send_window=None,
        retries=1,
        retry_delay=timedelta(seconds=0),
    )


@task
def make_workbook() -> str:
    import xlsxwriter

    path = WORKDIR / "customers.xlsx"
    book = xlsxwriter.Workbook(str(path), {"constant_memory": True})
    sheet = book.add_worksheet()
    for col, header in enumerate(("mobile", "var1", "var2")):
        sheet.write_string(0, col, header)
    for row in range(1, WORKBOOK_ROWS + 1):
        sheet.write_string(row, 0, f"98{row:08d}")
        sheet.write_string(row, 1, f"Customer {row}")
        sheet.write_number(row, 2, row * 10)
    book.close()
    return str(path)


with _dag("mc_ops_file") as file_dag:
    MessageCentralFileSendOperator(
        task_id="file_workbook",
        message="Hello ##var1##, your balance is ##var2##",
        workbook=make_workbook(),
        rows_per_file=4_000,
        send_window=None,
    )
    MessageCentralFileSendOperator(
        task_id="file_rows",
        message="Hi ##var1##, see you on {{ ds }}",
        rows=[{"phone": "9816100001", "name": "Asha"}, {"phone": "9816100002", "name": "Ravi"}],
        number_column="phone",
        columns={"var1": "name"},
        send_window=None,
    )

with _dag("mc_ops_bad_inputs") as bad_inputs_dag:
    # Every task fails at execute, before any request: the sandbox's log stays empty.
    MessageCentralSendOperator(task_id="empty_message", mobile_number="9816100001", message="{{ '' }}")
    MessageCentralSendOperator(task_id="bad_number", mobile_number="12345", message="Hello")
    MessageCentralSendOperator(task_id="bad_flow", mobile_number="9816100001", message="Hello", flow_type="{{ 'FAX' }}")
    MessageCentralSendOperator(
        task_id="too_long", mobile_number="9816100001", message="{{ 'x' * 2000 }}", flow_type="SMS"
    )
    MessageCentralBulkSendOperator(
        task_id="invalid_in_list", phone_numbers=["9816100001", "not-a-number", "9816100002"], message="Hello"
    )
    MessageCentralFileSendOperator(
        task_id="missing_placeholder_value",
        message="Hi ##var1##",
        rows=[{"mobile": "9816100001", "var1": "Asha"}, {"mobile": "9816100002", "var1": ""}],
    )
    MessageCentralFileSendOperator(
        task_id="not_xlsx", message="Hi ##var1##", workbook=str(WORKDIR / "renamed_csv.xlsx")
    )


with _dag(
    "mc_ops_notify",
    on_failure_callback=MessageCentralNotifier(
        mobile_numbers="9816188888", message="DAG {{ dag.dag_id }} run {{ run_id }} failed"
    ),
) as notify_dag:

    @task(
        on_failure_callback=MessageCentralNotifier(
            mobile_numbers=["9816199999"],
            message="{{ ti.task_id }} failed in {{ dag.dag_id }}, try {{ ti.try_number }}",
        )
    )
    def fails() -> None:
        raise RuntimeError("boom")

    fails()
