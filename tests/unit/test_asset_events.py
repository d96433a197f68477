"""Asset events: send operators and the delivery sensor put their summary on the extra of their outlets' events."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pendulum
import pytest
from airflow.sdk import Asset, AssetAlias
from airflow.sdk.execution_time.context import OutletEventAccessors
from fake_http import FakeMessageCentral, install, ok_send

from airflow_provider_messagecentral.campaign.keys import make_campaign_key
from airflow_provider_messagecentral.operators.messagecentral import MessageCentralBulkSendOperator
from airflow_provider_messagecentral.operators.outlets import asset_extra, attach_to_outlets
from airflow_provider_messagecentral.reports.models import DeliveryReport
from airflow_provider_messagecentral.reports.store import get_store
from airflow_provider_messagecentral.safety import send_window
from airflow_provider_messagecentral.sensors.messagecentral import MessageCentralDeliverySensor

SENT = Asset("messagecentral_test_sent")
DELIVERED = Asset("messagecentral_test_delivered")
NUMBERS = [f"98161{i:05d}" for i in range(4)]


@pytest.fixture
def reports_url(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """``messagecentral_default`` at a fake MessageCentral (four accepted sends) with a fresh report store."""
    url = f"sqlite:///{tmp_path / 'reports.db'}"
    conn = {
        "conn_type": "messagecentral",
        "host": "http://messagecentral.invalid",
        "login": "C-TEST",
        "password": "pw",
        "extra": {"email": "ops@example.com", "auth_token": "tok", "country": "91", "reports_url": url},
    }
    monkeypatch.setenv("AIRFLOW_CONN_MESSAGECENTRAL_DEFAULT", json.dumps(conn))
    install(monkeypatch, FakeMessageCentral(send_replies=[ok_send(f"tx-{n}") for n in range(1, 5)]))
    monkeypatch.setattr(send_window, "now", lambda: pendulum.datetime(2024, 5, 1, 12, 0, tz="Asia/Kolkata"))
    return url


def context(**extra: Any) -> dict[str, Any]:
    ti = SimpleNamespace(dag_id="dag", run_id="run-1", task_id="send", map_index=-1, try_number=1)
    return {"ti": ti, "outlet_events": OutletEventAccessors(), "params": {}, **extra}


def test_the_extra_is_the_summary_with_its_stage_without_private_keys() -> None:
    when = datetime(2024, 5, 1, tzinfo=timezone.utc)
    extra = asset_extra(
        {"campaign": "mc-1", "recipients": 2, "samples": [{"mobile": "+919816100000"}], "at": when}, stage="dry_run"
    )
    assert extra == {"campaign": "mc-1", "recipients": 2, "at": str(when), "stage": "dry_run"}


def test_only_asset_outlets_get_the_extra_and_a_task_without_outlets_changes_nothing() -> None:
    ctx = context()
    task = SimpleNamespace(outlets=[SENT, AssetAlias("campaigns"), DELIVERED])
    assert attach_to_outlets(task, ctx, {"campaign": "mc-1"}, stage="sent") == 2
    assert (
        ctx["outlet_events"][SENT].extra
        == ctx["outlet_events"][DELIVERED].extra
        == {
            "campaign": "mc-1",
            "stage": "sent",
        }
    )
    assert attach_to_outlets(SimpleNamespace(outlets=[]), ctx, {"campaign": "mc-2"}, stage="sent") == 0
    assert attach_to_outlets(task, {"ti": None}, {"campaign": "mc-2"}, stage="sent") == 0  # no outlet_events


def test_a_send_puts_its_summary_on_its_asset_events(reports_url: str) -> None:
    op = MessageCentralBulkSendOperator(
        task_id="send", phone_numbers=NUMBERS, message="Sale", chunk_size=2, outlets=[SENT]
    )
    ctx = context()
    summary = op.execute(ctx)
    extra = ctx["outlet_events"][SENT].extra
    assert extra == {**summary, "stage": "sent"}
    assert (extra["recipients"], extra["accepted"], extra["skipped"], extra["invalid"]) == (4, 4, 0, 0)
    assert extra["campaign"] == make_campaign_key("dag", "run-1", "send")


def test_a_dry_run_says_so_and_keeps_numbers_and_texts_out(reports_url: str) -> None:
    op = MessageCentralBulkSendOperator(
        task_id="send", phone_numbers=NUMBERS, message="Sale", dry_run=True, outlets=[SENT]
    )
    ctx = context()
    preview = op.execute(ctx)
    extra = ctx["outlet_events"][SENT].extra
    assert preview["samples"] and "samples" not in extra
    assert extra["stage"] == "dry_run" and extra["dry_run"] is True and extra["accepted"] == 0
    assert "98161" not in json.dumps(extra)


def _delivered_campaign(url: str) -> str:
    store = get_store(url)
    key = make_campaign_key("dag", "run-1", "send")
    store.ensure_campaign(key, dag_id="dag", run_id="run-1", task_id="send", kind="bulk")
    mobiles = [f"91{n}" for n in NUMBERS]
    now = datetime.now(timezone.utc)
    store.mark_accepted(key, "u", transaction_id="tx", verification_id="v", response={}, mobiles=mobiles, sent_at=now)
    stamp = now.strftime("%Y-%m-%d %H:%M:%S")
    store.ingest(
        [
            DeliveryReport.model_validate({"messageId": f"m{i}", "status": "DELIVRD", "mobile": m, "submitDate": stamp})
            for i, m in enumerate(mobiles)
        ],
        [],
    )
    return key


@pytest.mark.parametrize("deferrable", [False, True])
def test_the_sensor_puts_the_delivery_summary_on_its_asset_events(reports_url: str, deferrable: bool) -> None:
    key = _delivered_campaign(reports_url)
    sensor = MessageCentralDeliverySensor(
        task_id="wait", campaign=key, deferrable=deferrable, poke_interval=0, timeout=5, outlets=[DELIVERED]
    )
    ctx = context()
    summary = sensor.execute(ctx)  # type: ignore[arg-type]
    extra = ctx["outlet_events"][DELIVERED].extra
    assert extra == {**summary, "stage": "delivered"}
    assert (extra["campaign"], extra["delivered"], extra["delivered_ratio"]) == (key, 4, 1.0)
    assert extra["by_status"] == {"DELIVRD": 4}


def test_the_sensor_resumed_by_its_trigger_puts_the_summary_on_its_asset_events() -> None:
    sensor = MessageCentralDeliverySensor(task_id="wait", campaign="mc-1", outlets=[DELIVERED])
    ctx = context()
    summary = {"campaign": "mc-1", "recipients": 1, "delivered": 1, "failed": 0, "pending": 0}
    sensor.execute_complete(ctx, {"status": "success", "summary": summary, "message": "done"})  # type: ignore[arg-type]
    assert ctx["outlet_events"][DELIVERED].extra == {**summary, "stage": "delivered"}
