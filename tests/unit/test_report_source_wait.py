"""
report_source="api"/"both" in the sensor (poke) and the trigger (deferred), MessageCentral faked at the HTTP
transport (``fake_http``): the hook's paging, token and retries run for real, the store is a real SQLite file.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fake_http import FakeMessageCentral, install, status

from airflow_provider_messagecentral.campaign.keys import make_campaign_key
from airflow_provider_messagecentral.compat import AirflowFailException, TaskDeferred
from airflow_provider_messagecentral.reports.models import DeliveryReport
from airflow_provider_messagecentral.reports.store import get_store
from airflow_provider_messagecentral.reports.store.engine import utcnow
from airflow_provider_messagecentral.sensors.messagecentral import MessageCentralDeliverySensor
from airflow_provider_messagecentral.triggers.messagecentral import MessageCentralDeliveryTrigger

NUMBERS = [f"98161{i:05d}" for i in range(5)]  # national numbers; the store holds them with "91"


@pytest.fixture
def store_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mocker: Any) -> str:
    """``messagecentral_default`` at a ``*.invalid`` host (the fake) naming a fresh SQLite report store."""
    url = f"sqlite:///{tmp_path / 'reports.db'}"
    conn = {"conn_type": "messagecentral", "host": "https://mc.invalid", "login": "C-1", "password": "pw-s3cret"}
    extra = {"email": "a@b.c", "country": "91", "reports_url": url}
    monkeypatch.setenv("AIRFLOW_CONN_MESSAGECENTRAL_DEFAULT", json.dumps({**conn, "extra": extra}))
    mocker.patch("airflow_provider_messagecentral.client.retries.time.sleep")
    return url


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeMessageCentral:
    return install(monkeypatch, FakeMessageCentral())


def campaign(url: str) -> str:
    store = get_store(url)
    key = make_campaign_key("dag", "run", "send")
    store.ensure_campaign(key, dag_id="dag", run_id="run", task_id="send", kind="bulk")
    mobiles = [f"91{n}" for n in NUMBERS]
    store.mark_accepted(key, "c0", transaction_id="tx", verification_id="v", response={}, mobiles=mobiles)
    return key


def page(statuses: list[str]) -> dict[str, Any]:
    """A getDetailedReports answer: one row per number, created a few seconds ago."""
    created = (utcnow() - timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%S.000")
    rows = [
        {
            "countryCode": "91",
            "mobileNumber": number,
            "senderId": "UTOMOB",
            "messageBody": "Sale today",
            "status": state,
            "errorCode": 0 if state == "DELIVRD" else 5,
            "createdAt": created,
            "deliveredAt": created if state == "DELIVRD" else None,
        }
        for number, state in zip(NUMBERS, statuses, strict=False)
    ]
    return {"json": {"responseCode": 200, "message": "SUCCESS", "data": {"data": rows, "count": len(rows)}}}


def pulls(fake: FakeMessageCentral) -> int:
    return len([c for c in fake.calls if c.path.endswith("/reports/getDetailedReports")])


def run_trigger(trigger: MessageCentralDeliveryTrigger) -> list[Any]:
    async def collect() -> list[Any]:
        return [event.payload async for event in trigger.run()]

    return asyncio.run(asyncio.wait_for(collect(), timeout=60))


def trigger(key: str, **kwargs: Any) -> MessageCentralDeliveryTrigger:
    kwargs.setdefault("poll_interval", 0.05)
    kwargs.setdefault("pull_interval", 0.05)
    return MessageCentralDeliveryTrigger(campaign=key, deadline=time.time() + 30, **kwargs)


def test_the_trigger_succeeds_on_pulled_reports_with_no_receiver(store_url: str, fake: FakeMessageCentral) -> None:
    key = campaign(store_url)
    fake.send_replies.extend([page(["DELIVRD", "DELIVRD"]), page(["DELIVRD"] * 5)])
    (event,) = run_trigger(trigger(key, report_source="api", min_delivered_ratio=1.0))
    assert event["status"] == "success"
    assert (event["summary"]["delivered"], event["summary"]["recipients"]) == (5, 5)
    assert pulls(fake) == 2  # the second pull brought the rest


def test_a_failed_pull_is_logged_and_the_next_one_goes_on(
    store_url: str, fake: FakeMessageCentral, capsys: pytest.CaptureFixture[str]
) -> None:
    key = campaign(store_url)
    fake.send_replies.extend([status(400, {"responseCode": 400, "message": "bad"}), page(["DELIVRD"] * 5)])
    (event,) = run_trigger(trigger(key, report_source="api"))
    assert event["status"] == "success"
    out = capsys.readouterr().out
    assert "delivery reports from MessageCentral failed (tried again in" in out and "HTTP 400" in out
    assert "pulled 5 delivery report(s) from MessageCentral" in out
    assert "pw-s3cret" not in out


def test_callbacks_only_never_asks_messagecentral(store_url: str, fake: FakeMessageCentral) -> None:
    key = campaign(store_url)
    reports = [
        DeliveryReport.model_validate({"messageId": f"m{i}", "status": "DELIVRD", "mobile": f"91{n}"})
        for i, n in enumerate(NUMBERS)
    ]
    get_store(store_url).ingest(reports, [])
    (event,) = run_trigger(trigger(key))
    assert event["status"] == "success"
    assert fake.calls == []


def test_both_keeps_one_row_per_message_at_its_final_status(store_url: str, fake: FakeMessageCentral) -> None:
    key = campaign(store_url)
    now = utcnow().strftime("%Y-%m-%d %H:%M:%S")
    callbacks = [
        DeliveryReport.model_validate(
            {"messageId": f"m{i}", "status": "UNKNOWN", "mobile": f"91{n}", "submitDate": now}
        )
        for i, n in enumerate(NUMBERS)
    ]
    store = get_store(store_url)
    store.ingest(callbacks, [])
    fake.send_replies.append(page(["DELIVRD"] * 5))
    (event,) = run_trigger(trigger(key, report_source="both"))
    assert event["status"] == "success"
    items = store.campaign_reports(key)["items"]
    assert sorted((item["message_id"], item["status"]) for item in items) == [(f"m{i}", "DELIVRD") for i in range(5)]
    assert store.stats()["reports"] == 5


def test_the_sensor_pulls_in_poke_mode(store_url: str, fake: FakeMessageCentral) -> None:
    key = campaign(store_url)
    fake.send_replies.extend([page(["DELIVRD", "UNDELIV"]), page(["DELIVRD", "UNDELIV", "DELIVRD", "DELIVRD"])])
    sensor = MessageCentralDeliverySensor(
        task_id="wait", campaign=key, report_source="api", pull_interval=0.001, min_delivered_ratio=0.6, timeout=30
    )
    first = sensor.poke({})  # type: ignore[arg-type]
    assert not first.is_done
    time.sleep(0.01)
    second = sensor.poke({})  # type: ignore[arg-type]
    assert second.is_done and second.xcom_value["delivered"] == 3
    assert second.xcom_value["by_status"] == {"DELIVRD": 3, "UNDELIV": 1}


def test_the_sensor_fails_on_pulled_failures(store_url: str, fake: FakeMessageCentral) -> None:
    key = campaign(store_url)
    fake.send_replies.append(page(["UNDELIV"] * 5))
    sensor = MessageCentralDeliverySensor(
        task_id="wait", campaign=key, report_source="api", max_failed_ratio=0.5, timeout=30
    )
    with pytest.raises(AirflowFailException, match=r"failed ratio 100\.0% exceeds max_failed_ratio"):
        sensor.poke({})  # type: ignore[arg-type]


def test_the_deferred_sensor_hands_its_pull_options_to_the_trigger(store_url: str, fake: FakeMessageCentral) -> None:
    key = campaign(store_url)
    fake.send_replies.append(page([]))
    sensor = MessageCentralDeliverySensor(
        task_id="wait", campaign=key, report_source="both", pull_interval=timedelta(minutes=2), pull_page_size=200,
        deferrable=True, timeout=30,
    )  # fmt: skip
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})  # type: ignore[arg-type]
    kwargs = deferred.value.trigger.serialize()[1]
    assert (kwargs["report_source"], kwargs["pull_interval"], kwargs["pull_page_size"]) == ("both", 120.0, 200)
    assert pulls(fake) == 1  # the sensor's first look pulled once already
    assert "pw-s3cret" not in json.dumps(kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"report_source": "webhook"}, "report_source must be one of"),
        ({"pull_page_size": 0}, "pull_page_size must be"),
        ({"pull_interval": -1}, "pull_interval must be"),
    ],
)
def test_bad_pull_options_fail_when_the_dag_is_parsed(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=rf"{match}.*\(task 'wait'\)"):
        MessageCentralDeliverySensor(task_id="wait", campaign="mc-1", **kwargs)
    with pytest.raises(ValueError, match=match):
        MessageCentralDeliveryTrigger(campaign="mc-1", deadline=0, **kwargs)
