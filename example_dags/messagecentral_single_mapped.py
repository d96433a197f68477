"""
One SMS per shipped order: TaskFlow plus dynamic task mapping over ``MessageCentralSendOperator``.

``shipped_orders`` stands for a query of today's shipments; ``notifications`` turns each into the keyword
arguments of one send (the customer's number and a text naming the order), and
``MessageCentralSendOperator.partial(...).expand_kwargs(...)`` creates one mapped task instance per order, so
each message is retried, logged and shown in the grid on its own. (For the same text to every number,
``.partial(message=...).expand(mobile_number=numbers)`` is enough; for thousands of numbers use the bulk
operator instead.) Each mapped task instance runs in its own process on whichever worker picks it up, so each
requests its own MessageCentral token (four orders: four token calls); set the connection's ``auth_token``
extra (a pre-issued token) to skip the token call in every one of them.

Connection: ``messagecentral_default`` (type ``messagecentral``). No schedule: unpausing it texts nobody; each
run is a deliberate trigger (UI, ``airflow dags trigger`` or the REST API; it needs no logical date).
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import DAG, task

from airflow_provider_messagecentral.operators.messagecentral import MessageCentralSendOperator

with DAG(
    dag_id="messagecentral_single_mapped",
    description="A shipping notification per order, one mapped task per message",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="Asia/Kolkata"),
    catchup=False,
    tags=["messagecentral", "example"],
) as dag:

    @task
    def shipped_orders() -> list[dict[str, Any]]:
        """Today's shipments (replace with your order database query)."""
        return [
            {"order": "OD-10231", "mobile": "9816111111", "name": "Asha", "eta": "tomorrow"},
            {"order": "OD-10232", "mobile": "+91 77151 31105", "name": "Ravi", "eta": "in 2 days"},
            {"order": "OD-10233", "mobile": "919871234567", "name": "Meera", "eta": "tomorrow"},
            {"order": "OD-10234", "mobile": "08826543210", "name": "Karan", "eta": "in 3 days"},
        ]

    @task
    def notification(order: dict[str, Any]) -> dict[str, str]:
        """The keyword arguments of one send: whom to text, and what."""
        return {
            "mobile_number": order["mobile"],
            "message": f"Hi {order['name']}, your order {order['order']} has shipped and arrives {order['eta']}.",
        }

    MessageCentralSendOperator.partial(
        task_id="notify_customer",
        message_type="TRANSACTIONAL",  # order updates are transactional: no promotional send window applies
        retries=2,
    ).expand_kwargs(notification.expand(order=shipped_orders()))
