"""MessageCentralNotifier: rendered with the callback's context, single vs bulk sends, never raises."""

from __future__ import annotations

import asyncio
import json
import threading
from types import SimpleNamespace
from typing import Any

import fake_http
import pytest
from airflow.sdk import DAG
from fake_http import FakeMessageCentral, status

from airflow_provider_messagecentral.exceptions import MessageCentralValidationError
from airflow_provider_messagecentral.notifications.messagecentral import MessageCentralNotifier

try:
    from airflow.serialization.serialized_objects import DagSerialization
except ImportError:  # Airflow 3.1
    from airflow.serialization.serialized_objects import SerializedDAG as DagSerialization  # type: ignore[no-redef]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeMessageCentral:
    conn = {
        "conn_type": "messagecentral",
        "host": "http://messagecentral.invalid",
        "login": "C-TEST",
        "password": "pw",
        "extra": {"email": "ops@example.com", "auth_token": "tok", "country": "91"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_MESSAGECENTRAL_DEFAULT", json.dumps(conn))
    return fake_http.install(monkeypatch, FakeMessageCentral())


def sent(fake: FakeMessageCentral) -> list[dict[str, str]]:
    """The query parameters of every send request, in order."""
    return [call.params for call in fake.send_calls]


def _context(task_id: str = "load", try_number: int = 2) -> dict[str, Any]:
    ti = SimpleNamespace(task_id=task_id, try_number=try_number, log_url="http://airflow/log?x=1")
    return {"ti": ti, "dag": DAG("etl", schedule=None), "run_id": "manual__1"}


def test_renders_the_context_and_sends_one_message(fake: FakeMessageCentral) -> None:
    notifier = MessageCentralNotifier(
        mobile_numbers="9816100001",
        message="{{ ti.task_id }} failed in {{ dag.dag_id }} ({{ run_id }}, try {{ ti.try_number }}) {{ ti.log_url }}",
    )
    notifier(_context())
    assert [(c["mobileNumber"], c["message"], c["messageType"]) for c in sent(fake)] == [
        ("9816100001", "load failed in etl (manual__1, try 2) http://airflow/log?x=1", "TRANSACTIONAL")
    ]
    assert notifier.last_outcome == "sent"


def test_several_numbers_go_in_one_bulk_request(fake: FakeMessageCentral) -> None:
    MessageCentralNotifier(mobile_numbers=["9816100001", "+919816100002"], message="down")(_context())
    assert [c["phoneNumbers"] for c in sent(fake)] == ["91 9816100001, 91 9816100002"]


def test_default_message_names_task_dag_run_and_try(fake: FakeMessageCentral) -> None:
    MessageCentralNotifier(mobile_numbers="9816100001")(_context())
    assert sent(fake)[0]["message"] == "Airflow: load in etl failed (run manual__1, try 2)"


def test_one_instance_serves_many_callbacks(fake: FakeMessageCentral) -> None:
    notifier = MessageCentralNotifier(mobile_numbers="9816100001", message="{{ ti.task_id }} failed")
    notifier(_context("a"))
    notifier(_context("b"))
    assert [c["message"] for c in sent(fake)] == ["a failed", "b failed"]


def test_a_failed_send_is_logged_not_raised(
    fake: FakeMessageCentral, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    fake.send_replies.append(status(200, {"responseCode": 402, "message": "INSUFFICIENT_BALANCE"}))
    notifier = MessageCentralNotifier(mobile_numbers="9816100001", message="x")
    notifier(_context())  # does not raise
    assert notifier.last_outcome is not None and "refused" in notifier.last_outcome
    assert "notification was NOT sent" in caplog.text + capsys.readouterr().out


def test_a_bad_rendered_number_is_logged_not_raised(fake: FakeMessageCentral) -> None:
    notifier = MessageCentralNotifier(mobile_numbers="{{ ti.task_id }}", message="x")
    notifier(_context())
    assert sent(fake) == [] and "mobile number" in (notifier.last_outcome or "")


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"mobile_numbers": []}, "mobile_numbers is empty"),
        ({"mobile_numbers": None}, "mobile_numbers must be"),
        ({"mobile_numbers": "9816100001", "message": ""}, "message must be non-empty"),
        ({"mobile_numbers": "9816100001", "template_id": "T"}, "template_id and entity_id"),
    ],
)
def test_bad_arguments_fail_when_the_dag_is_parsed(kwargs: dict[str, Any], error: str) -> None:
    with pytest.raises(MessageCentralValidationError, match=error):
        MessageCentralNotifier(**kwargs)


def test_a_dag_without_template_env_still_renders(fake: FakeMessageCentral) -> None:
    """DAG-level callbacks under dag.test() get a serialized DAG that has no get_template_env."""
    serialized = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(DAG("etl", schedule=None)))
    assert not hasattr(serialized, "get_template_env")
    context = {**_context(), "dag": serialized}
    MessageCentralNotifier(mobile_numbers="9816100001", message="{{ dag.dag_id }} run {{ run_id }} failed")(context)
    assert [c["message"] for c in sent(fake)] == ["etl run manual__1 failed"]


def test_a_template_error_is_logged_not_raised_and_the_next_call_renders_afresh(fake: FakeMessageCentral) -> None:
    notifier = MessageCentralNotifier(mobile_numbers="9816100001", message="{{ ti.task_id }} failed {{ nope.x }}")
    notifier(_context("a"))  # does not raise
    assert sent(fake) == [] and "UndefinedError" in (notifier.last_outcome or "")
    assert notifier.message == "{{ ti.task_id }} failed {{ nope.x }}"  # the template, ready for the next call


def test_a_notifier_that_has_sent_can_still_be_copied(fake: FakeMessageCentral) -> None:
    """Airflow deep-copies tasks (and their callbacks); the cached hook must not stop that."""
    import copy

    notifier = MessageCentralNotifier(mobile_numbers="9816100001", message="{{ ti.task_id }} failed")
    notifier(_context("a"))
    copy.deepcopy(notifier)(_context("b"))
    assert [c["message"] for c in sent(fake)] == ["a failed", "b failed"]


# -- async: deadline alerts and async callbacks in the triggerer --------------------------------------------

#: What the triggerer hands a deadline alert's callback: the DAG run as the REST API shows it, and the deadline.
DEADLINE_CONTEXT = {
    "dag_run": {"dag_id": "etl", "dag_run_id": "scheduled__2024-05-01"},
    "deadline": {"id": "d-1", "deadline_time": "2024-05-01T06:00:00+00:00"},
}
DEADLINE_MESSAGE = "{{ dag_run.dag_id }} run {{ dag_run.dag_run_id }} missed its deadline {{ deadline.deadline_time }}"


def test_async_notify_sends_the_rendered_message(fake: FakeMessageCentral) -> None:
    notifier = MessageCentralNotifier(mobile_numbers="9816100001", message="{{ ti.task_id }} failed")
    notifier.render_template_fields(_context("late"))
    asyncio.run(notifier.async_notify(_context("late")))
    assert [c["message"] for c in sent(fake)] == ["late failed"] and notifier.last_outcome == "sent"


def test_awaited_as_a_deadline_callback_it_renders_the_triggerer_context(fake: FakeMessageCentral) -> None:
    """What Airflow's callback trigger does: ``await MessageCentralNotifier(**kwargs, context=context)``."""

    async def callback_trigger() -> None:
        await MessageCentralNotifier(mobile_numbers=["9816100001"], message=DEADLINE_MESSAGE, context=DEADLINE_CONTEXT)

    asyncio.run(callback_trigger())
    assert [c["message"] for c in sent(fake)] == [
        "etl run scheduled__2024-05-01 missed its deadline 2024-05-01T06:00:00+00:00"
    ]


def test_async_notify_logs_a_failure_and_does_not_raise(fake: FakeMessageCentral) -> None:
    fake.send_replies.append(status(200, {"responseCode": 402, "message": "INSUFFICIENT_BALANCE"}))
    notifier = MessageCentralNotifier(mobile_numbers="9816100001", message="x", context=DEADLINE_CONTEXT)

    async def awaited() -> None:
        await notifier

    asyncio.run(awaited())  # does not raise
    assert notifier.last_outcome is not None and "refused" in notifier.last_outcome


def test_async_notify_sends_in_another_thread_than_the_event_loop(
    fake: FakeMessageCentral, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[int] = []
    original = MessageCentralNotifier._send

    def spy(self: MessageCentralNotifier) -> None:
        threads.append(threading.get_ident())
        original(self)

    monkeypatch.setattr(MessageCentralNotifier, "_send", spy)

    async def run() -> int:
        await MessageCentralNotifier(mobile_numbers="9816100001", message="x", context=DEADLINE_CONTEXT)
        return threading.get_ident()

    loop_thread = asyncio.run(run())
    assert len(threads) == 1 and threads[0] != loop_thread
