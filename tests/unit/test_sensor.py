"""MessageCentralDeliverySensor: campaign argument, thresholds, modes and the events it resumes with."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowException

from airflow_provider_messagecentral.campaign.keys import make_campaign_key
from airflow_provider_messagecentral.compat import (
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    TaskDeferred,
)
from airflow_provider_messagecentral.reports.models import DeliveryReport
from airflow_provider_messagecentral.reports.store import get_store
from airflow_provider_messagecentral.sensors.messagecentral import MessageCentralDeliverySensor, campaign_key_from
from airflow_provider_messagecentral.triggers.messagecentral import MessageCentralDeliveryTrigger


@pytest.fixture
def store_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """``messagecentral_default`` (env-var connection) naming a fresh SQLite report store."""
    url = f"sqlite:///{tmp_path / 'reports.db'}"
    conn = {"conn_type": "messagecentral", "host": "http://127.0.0.1:9", "login": "C-1", "password": "pw"}
    monkeypatch.setenv(
        "AIRFLOW_CONN_MESSAGECENTRAL_DEFAULT", json.dumps({**conn, "extra": {"email": "a@b.c", "reports_url": url}})
    )
    return url


def seed(url: str, statuses: list[str | None], task_id: str = "send") -> str:
    """A campaign of ``len(statuses)`` recipients; a report with each non-None status (matched by mobile)."""
    store = get_store(url)
    key = make_campaign_key("dag", "run", task_id)
    store.ensure_campaign(key, dag_id="dag", run_id="run", task_id=task_id, kind="bulk")
    mobiles = [f"9198161{i:05d}" for i in range(len(statuses))]
    now = datetime.now(timezone.utc)
    store.mark_accepted(
        key, "chunk-0", transaction_id="tx-" + task_id, verification_id="v", response={}, mobiles=mobiles, sent_at=now
    )
    report(url, task_id, list(zip(mobiles, statuses, strict=True)))
    return key


def report(url: str, task_id: str, pairs: list[tuple[str, str | None]]) -> None:
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    reports = [
        DeliveryReport.model_validate(
            {"messageId": f"m-{task_id}-{mobile}", "status": status, "mobile": mobile, "submitDate": now}
        )
        for mobile, status in pairs
        if status is not None
    ]
    get_store(url).ingest(reports, [])


def sensor(campaign: Any, **kwargs: Any) -> MessageCentralDeliverySensor:
    kwargs.setdefault("poke_interval", 0)
    kwargs.setdefault("timeout", 30)
    return MessageCentralDeliverySensor(task_id="wait", campaign=campaign, **kwargs)


# --------------------------------------------------------------------------- campaign argument


def test_campaign_accepts_the_send_xcom_dict_or_the_key() -> None:
    assert campaign_key_from({"campaign": "mc-1", "recipients": 3}) == "mc-1"
    assert campaign_key_from(" mc-1 ") == "mc-1"


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ({"recipients": 3}, "no 'campaign' key .*recipients"),
        ("", "empty string"),
        ("   ", "empty string"),
        (42, "got int"),
        ({"campaign": None}, "got NoneType"),
        (["mc-1"], "got list"),
    ],
)
def test_bad_campaign_is_a_clear_error(value: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        campaign_key_from(value)
    with pytest.raises(ValueError, match=match):
        sensor(value)


def test_bad_campaign_after_rendering_fails_without_retries(store_url: str) -> None:
    s = sensor("mc-1")
    s.campaign = {"transaction_ids": []}  # what a template could render to
    with pytest.raises(AirflowFailException, match="no 'campaign' key"):
        s.poke({})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"min_delivered_ratio": 1.5}, "min_delivered_ratio must be between 0 and 1"),
        ({"min_delivered_ratio": -0.1}, "min_delivered_ratio must be between 0 and 1"),
        ({"min_delivered_ratio": "0.9"}, "min_delivered_ratio must be a number"),
        ({"min_delivered_ratio": True}, "min_delivered_ratio must be a number"),
        ({"max_failed_ratio": 2}, "max_failed_ratio must be between 0 and 1"),
        ({"max_failed_ratio": float("nan")}, "max_failed_ratio must be between 0 and 1"),
    ],
)
def test_ratios_are_validated_when_the_dag_is_parsed(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        sensor("mc-1", **kwargs)


def test_campaign_is_templated() -> None:
    assert "campaign" in MessageCentralDeliverySensor.template_fields


# --------------------------------------------------------------------------- thresholds


def summary(recipients: int, delivered: int, failed: int, pending: int) -> dict[str, Any]:
    return {"campaign": "mc-x", "recipients": recipients, "delivered": delivered, "failed": failed, "pending": pending}


def test_poke_succeeds_with_the_summary_as_xcom(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    key = seed(store_url, ["DELIVRD"] * 19 + ["UNDELIV"])
    result = sensor({"campaign": key, "recipients": 20}).execute({})  # type: ignore[arg-type]
    assert result["campaign"] == key
    assert (result["recipients"], result["delivered"], result["failed"], result["pending"]) == (20, 19, 1, 0)
    assert result["delivered_ratio"] == 0.95
    json.dumps(result)  # XCom-able
    assert "19 of 20 delivered (95.0%), 1 failed (5.0%), 0 pending" in capsys.readouterr().out


def test_poke_waits_while_short_and_logs_progress(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    key = seed(store_url, ["DELIVRD", None, None, None])
    result = sensor(key).poke({})  # type: ignore[arg-type]
    assert not result
    assert "1 of 4 delivered (25.0%), 0 failed (0.0%), 3 pending" in capsys.readouterr().out


def test_fails_fast_when_the_failed_ratio_passes_its_bound(store_url: str) -> None:
    key = seed(store_url, ["UNDELIV", "EXPIRED", None, None, None, None, None, None, None, "DELIVRD"])
    with pytest.raises(AirflowFailException, match=r"failed ratio 20\.0% exceeds max_failed_ratio 10\.0%"):
        sensor(key, max_failed_ratio=0.1).execute({})  # type: ignore[arg-type]


def test_fails_when_every_recipient_is_final_and_the_ratio_is_short(store_url: str) -> None:
    key = seed(store_url, ["DELIVRD", "DELIVRD", "DELIVRD", "REJECTD"])
    with pytest.raises(AirflowFailException, match=r"3 of 4 delivered \(75.0%\).*every recipient has a final"):
        sensor(key, min_delivered_ratio=0.9).execute({})  # type: ignore[arg-type]


def test_unknown_campaign_fails_at_once(store_url: str) -> None:
    with pytest.raises(AirflowFailException, match=r"campaign 'mc-nope' is unknown .*messagecentral_default"):
        sensor("mc-nope").execute({})  # type: ignore[arg-type]


def test_poke_mode_times_out_or_soft_fails(store_url: str) -> None:
    key = seed(store_url, [None, None])
    with pytest.raises(AirflowSensorTimeout):
        sensor(key, timeout=0).execute({})  # type: ignore[arg-type]
    with pytest.raises(AirflowSkipException):
        sensor(key, timeout=0, soft_fail=True).execute({})  # type: ignore[arg-type]


def test_soft_fail_skips_a_threshold_failure(store_url: str) -> None:
    key = seed(store_url, ["UNDELIV"])
    with pytest.raises(AirflowSkipException):
        sensor(key, soft_fail=True).execute({})  # type: ignore[arg-type]
    with pytest.raises(AirflowSkipException):
        sensor(key, soft_fail=True, deferrable=True).execute({})  # type: ignore[arg-type]


def test_a_dry_run_send_is_skipped() -> None:
    with pytest.raises(AirflowSkipException, match="dry run"):
        sensor({"campaign": "mc-1", "dry_run": True}).execute({})  # type: ignore[arg-type]


# --------------------------------------------------------------------------- deferrable


def test_deferrable_returns_at_once_when_already_done(store_url: str) -> None:
    key = seed(store_url, ["DELIVRD"])
    assert sensor(key, deferrable=True).execute({})["delivered"] == 1  # type: ignore[arg-type]


def test_deferrable_defers_to_the_trigger_with_a_deadline(store_url: str) -> None:
    key = seed(store_url, ["DELIVRD", None])
    s = sensor(key, deferrable=True, timeout=600, poke_interval=5, min_delivered_ratio=0.9, max_failed_ratio=0.2)
    before = time.time()
    with pytest.raises(TaskDeferred) as deferred:
        s.execute({})  # type: ignore[arg-type]
    assert deferred.value.method_name == "execute_complete"
    assert deferred.value.timeout is not None and deferred.value.timeout.total_seconds() == 600
    trigger = deferred.value.trigger
    assert isinstance(trigger, MessageCentralDeliveryTrigger)
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_messagecentral.triggers.messagecentral.MessageCentralDeliveryTrigger"
    assert before + 600 <= kwargs["deadline"] <= time.time() + 600
    assert kwargs["campaign"] == key
    assert (kwargs["min_delivered_ratio"], kwargs["max_failed_ratio"], kwargs["poll_interval"]) == (0.9, 0.2, 5.0)
    assert kwargs["messagecentral_conn_id"] == "messagecentral_default"
    assert "sqlite" not in json.dumps(kwargs)  # the store URL is resolved in the trigger, never serialized


def test_the_deferred_trigger_carries_the_no_report_warning(store_url: str) -> None:
    key = seed(store_url, [None, None])
    before = time.time()
    with pytest.raises(TaskDeferred) as deferred:
        sensor(key, deferrable=True, no_report_warning_after=timedelta(minutes=2)).execute({})  # type: ignore[arg-type]
    _, kwargs = deferred.value.trigger.serialize()
    assert kwargs["no_report_warning_after"] == 120.0
    assert before <= kwargs["waiting_since"] <= time.time()


def test_deferrable_defaults_from_config(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    import airflow_provider_messagecentral.sensors.messagecentral as module

    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "True")
    try:
        reloaded = importlib.reload(module)
        assert reloaded.MessageCentralDeliverySensor(task_id="w", campaign="mc-1").deferrable is True
    finally:
        monkeypatch.delenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE")
        importlib.reload(module)


def test_execute_complete_success_returns_the_summary() -> None:
    event = {"status": "success", "summary": summary(2, 2, 0, 0), "message": "done"}
    assert sensor("mc-x").execute_complete({}, event) == summary(2, 2, 0, 0)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("event", "error"),
    [
        ({"status": "failure", "summary": None, "message": "campaign mc-x: 1 of 2"}, AirflowFailException),
        ({"status": "timeout", "summary": summary(2, 1, 0, 1), "message": "timed out"}, AirflowSensorTimeout),
        ({"status": "error", "summary": None, "message": "store down"}, AirflowException),
        ({"status": "success", "summary": None, "message": ""}, AirflowException),
        ({"status": "bogus"}, AirflowException),
        (None, AirflowException),
    ],
)
def test_execute_complete_raises_on_other_events(event: Any, error: type[Exception]) -> None:
    with pytest.raises(error) as raised:
        sensor("mc-x").execute_complete({}, event)  # type: ignore[arg-type]
    if error is AirflowException:
        assert not isinstance(raised.value, (AirflowFailException, AirflowSensorTimeout))
    if event and event.get("message"):
        assert event["message"] in str(raised.value)


def test_resumed_timeout_and_failure_are_skipped_with_soft_fail() -> None:
    s = sensor("mc-x", soft_fail=True, deferrable=True)
    for status in ("timeout", "failure"):
        with pytest.raises(AirflowSkipException):
            s.resume_execution("execute_complete", {"event": {"status": status, "message": "m"}}, {})  # type: ignore[arg-type]


# --------------------------------------------------------------------------- the no-report warning


def _no_report_warnings(text: str) -> list[str]:
    return [line for line in text.splitlines() if "not one delivery report has reached" in line]


def test_poke_mode_warns_once_when_no_report_arrives(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Sends accepted, not one report: one warning naming the store read and the likely causes, not one per poke."""
    key = seed(store_url, [None, None, None])
    # The first poke opens the store and reads the connection: over 50 ms on a loaded machine, so allow 1 s.
    s = sensor(key, no_report_warning_after=1.0)
    assert not s.poke({})  # type: ignore[arg-type]
    assert _no_report_warnings(capsys.readouterr().out) == []  # not yet: the wait just began
    time.sleep(1.0)
    for _ in range(3):
        assert not s.poke({})  # type: ignore[arg-type]
    [warning] = _no_report_warnings(capsys.readouterr().out)
    assert f"campaign {key}: 3 recipients were accepted" in warning
    assert store_url in warning  # SQLite: nothing to mask
    assert "connection 'messagecentral_default'" in warning
    assert "the callback URL is not registered with MessageCentral" in warning
    assert "the receiver writes to another store" in warning and "GET /health" in warning


def test_no_warning_when_a_report_arrived_or_when_switched_off(
    store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    key = seed(store_url, ["UNKNOWN", None, None])
    quiet = seed(store_url, [None, None], task_id="send-quiet")
    for s in (sensor(key, no_report_warning_after=0), sensor(quiet, no_report_warning_after=None)):
        s.poke({})  # type: ignore[arg-type]
        s.poke({})  # type: ignore[arg-type]
    assert _no_report_warnings(capsys.readouterr().out) == []


def test_reschedule_mode_warns_at_the_poke_that_crosses_the_delay(
    store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A rescheduled sensor starts afresh at every poke: the wait began at the first one; only one poke warns."""
    key = seed(store_url, [None])

    class FakeTI:
        def __init__(self, first: datetime | None) -> None:
            self.first = first

        def get_first_reschedule_date(self, context: Any) -> datetime | None:
            return self.first

    started = datetime.now(timezone.utc)
    warned = []
    for elapsed in (0, 300, 590, 610, 900, 1500):
        s = sensor(key, mode="reschedule", poke_interval=60, no_report_warning_after=600)
        first = None if elapsed == 0 else started - timedelta(seconds=elapsed)
        s.poke({"ti": FakeTI(first)})  # type: ignore[arg-type]
        warned.append(len(_no_report_warnings(capsys.readouterr().out)))
    assert warned == [0, 0, 0, 1, 0, 0]


@pytest.mark.parametrize("bad", [-1, "10m", True])
def test_no_report_warning_after_is_validated(bad: Any) -> None:
    with pytest.raises(ValueError, match="no_report_warning_after must be"):
        sensor("mc-1", no_report_warning_after=bad)
