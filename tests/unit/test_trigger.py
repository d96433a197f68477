"""MessageCentralDeliveryTrigger: serialization and run() against a real store (SQLite, and PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from airflow.triggers.base import TriggerEvent

from airflow_provider_messagecentral.campaign.keys import make_campaign_key
from airflow_provider_messagecentral.reports.models import DeliveryReport
from airflow_provider_messagecentral.reports.store import get_store
from airflow_provider_messagecentral.triggers.messagecentral import MessageCentralDeliveryTrigger


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.integration]),
    ]
)
def store_url(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh report store, named by ``messagecentral_default`` (env-var connection)."""
    url = f"sqlite:///{tmp_path / 'reports.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    conn = {"conn_type": "messagecentral", "host": "http://127.0.0.1:9", "login": "C-1", "password": "s3cret-Passw0rd"}
    monkeypatch.setenv(
        "AIRFLOW_CONN_MESSAGECENTRAL_DEFAULT", json.dumps({**conn, "extra": {"email": "a@b.c", "reports_url": url}})
    )
    return str(url)


def seed(url: str, statuses: list[str | None]) -> tuple[str, list[str]]:
    store = get_store(url)
    key = make_campaign_key("dag", "run", "send")
    store.ensure_campaign(key, dag_id="dag", run_id="run", task_id="send", kind="bulk")
    mobiles = [f"9198161{i:05d}" for i in range(len(statuses))]
    store.mark_accepted(
        key, "c0", transaction_id="tx", verification_id="v", response={}, mobiles=mobiles, sent_at=datetime.now()
    )
    report(url, list(zip(mobiles, statuses, strict=True)))
    return key, mobiles


def report(url: str, pairs: list[tuple[str, str | None]]) -> None:
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    get_store(url).ingest(
        [
            DeliveryReport.model_validate({"messageId": f"m-{m}", "status": s, "mobile": m, "submitDate": now})
            for m, s in pairs
            if s is not None
        ],
        [],
    )


def trigger(campaign: str, **kwargs: Any) -> MessageCentralDeliveryTrigger:
    kwargs.setdefault("deadline", time.time() + 30)
    kwargs.setdefault("poll_interval", 0.05)
    return MessageCentralDeliveryTrigger(campaign=campaign, **kwargs)


def run_trigger(t: MessageCentralDeliveryTrigger) -> list[TriggerEvent]:
    async def collect() -> list[TriggerEvent]:
        return [event async for event in t.run()]

    return asyncio.run(asyncio.wait_for(collect(), timeout=60))


def test_serialize_round_trip_is_json_and_carries_no_store_url() -> None:
    t = trigger("mc-1", deadline=1_900_000_000.5, min_delivered_ratio=0.8, max_failed_ratio=0.1, poll_interval=30)
    classpath, kwargs = t.serialize()
    assert classpath == "airflow_provider_messagecentral.triggers.messagecentral.MessageCentralDeliveryTrigger"
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert kwargs == {
        "campaign": "mc-1",
        "deadline": 1_900_000_000.5,
        "messagecentral_conn_id": "messagecentral_default",
        "min_delivered_ratio": 0.8,
        "max_failed_ratio": 0.1,
        "poll_interval": 30.0,
        "final_statuses": None,
        "no_report_warning_after": 600.0,
        "waiting_since": None,
        "report_source": "callbacks",
        "pull_interval": 60.0,
        "pull_page_size": 500,
    }
    assert MessageCentralDeliveryTrigger(**kwargs).serialize() == (classpath, kwargs)


def test_a_trigger_serialized_by_an_older_version_still_deserializes() -> None:
    """Triggers stored in the metadata DB before no_report_warning_after/waiting_since/report_source existed resume."""
    old_kwargs = {
        "campaign": "mc-1",
        "deadline": 1_900_000_000.5,
        "messagecentral_conn_id": "messagecentral_default",
        "min_delivered_ratio": 0.8,
        "max_failed_ratio": 0.1,
        "poll_interval": 30.0,
        "final_statuses": None,
    }
    t = MessageCentralDeliveryTrigger(**old_kwargs)  # type: ignore[arg-type]
    assert (t.no_report_warning_after, t.waiting_since) == (600.0, None)
    assert t.serialize()[1] == {
        **old_kwargs,
        "no_report_warning_after": 600.0,
        "waiting_since": None,
        "report_source": "callbacks",
        "pull_interval": 60.0,
        "pull_page_size": 500,
    }


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"campaign": ""}, "campaign must be a non-empty"),
        ({"min_delivered_ratio": 3}, "min_delivered_ratio must be between 0 and 1"),
        ({"max_failed_ratio": "x"}, "max_failed_ratio must be a number"),
        ({"poll_interval": -1}, "poll_interval must be a non-negative"),
        ({"no_report_warning_after": -5}, "no_report_warning_after must be a number of seconds >= 0"),
        ({"no_report_warning_after": "10m"}, "no_report_warning_after must be"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        MessageCentralDeliveryTrigger(**{"campaign": "mc-1", "deadline": 0, **kwargs})


def test_success_once_reports_reach_the_ratio(store_url: str) -> None:
    key, mobiles = seed(store_url, ["DELIVRD", None, None, None])
    t = trigger(key, min_delivered_ratio=0.75)
    # The remaining reports arrive while the trigger polls.
    late = threading.Timer(0.3, report, args=(store_url, [(mobiles[1], "DELIVRD"), (mobiles[2], "DELIVRD")]))
    late.start()
    try:
        events = run_trigger(t)
    finally:
        late.cancel()
    assert len(events) == 1
    payload = events[0].payload
    assert payload["status"] == "success"
    assert payload["summary"]["campaign"] == key
    assert (payload["summary"]["delivered"], payload["summary"]["pending"]) == (3, 1)
    assert "3 of 4 delivered (75.0%)" in payload["message"]
    json.dumps(payload)


def test_failure_on_the_failed_ratio(store_url: str) -> None:
    key, _ = seed(store_url, ["UNDELIV", "DELIVRD", None, None])
    [event] = run_trigger(trigger(key, max_failed_ratio=0.2))
    assert event.payload["status"] == "failure"
    assert "failed ratio 25.0% exceeds max_failed_ratio 20.0%" in event.payload["message"]
    assert event.payload["summary"]["failed"] == 1


def test_failure_when_every_recipient_is_final_and_short(store_url: str) -> None:
    key, _ = seed(store_url, ["DELIVRD", "EXPIRED"])
    [event] = run_trigger(trigger(key))
    assert event.payload["status"] == "failure"
    assert "every recipient has a final status" in event.payload["message"]


def test_unknown_campaign_is_a_failure(store_url: str) -> None:
    [event] = run_trigger(trigger("mc-unknown"))
    assert event.payload == {
        "status": "failure",
        "summary": None,
        "message": "campaign 'mc-unknown' is unknown to the report store of connection 'messagecentral_default': "
        "was it sent with that connection?",
    }


def test_timeout_at_the_deadline_with_the_last_summary(store_url: str) -> None:
    key, _ = seed(store_url, ["DELIVRD", None])
    [event] = run_trigger(trigger(key, deadline=time.time() + 0.3))
    assert event.payload["status"] == "timeout"
    assert event.payload["summary"]["pending"] == 1
    assert "1 of 2 delivered (50.0%)" in event.payload["message"]
    assert "timeout passed" in event.payload["message"]


def test_a_past_deadline_still_polls_once(store_url: str) -> None:
    key, _ = seed(store_url, ["DELIVRD"])
    [event] = run_trigger(trigger(key, deadline=time.time() - 10))
    assert event.payload["status"] == "success"


def test_missing_connection_is_an_error_event(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_MC_NOWHERE", raising=False)
    [event] = run_trigger(trigger("mc-1", messagecentral_conn_id="mc_nowhere"))
    assert event.payload["status"] == "error"
    assert "mc_nowhere" in event.payload["message"]


def test_store_errors_are_retried_then_reported(store_url: str, monkeypatch: pytest.MonkeyPatch, mocker: Any) -> None:
    key, _ = seed(store_url, ["DELIVRD", None])
    import airflow_provider_messagecentral.triggers.messagecentral as module

    broken = mocker.patch.object(module, "read_summary", side_effect=OSError("database is locked"))
    [event] = run_trigger(trigger(key))
    assert event.payload["status"] == "error"
    assert "failed 5 times in a row" in event.payload["message"]
    assert broken.call_count == module.MAX_CONSECUTIVE_ERRORS

    # A transient error in between polls does not end the wait.
    mocker.stopall()
    read_summary = module.read_summary
    calls = {"n": 0}

    def flaky(url: str, campaign: str) -> dict[str, Any] | None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError("database is locked")
        return read_summary(url, campaign)

    mocker.patch.object(module, "read_summary", side_effect=flaky)
    [event] = run_trigger(trigger(key, min_delivered_ratio=0.5))
    assert event.payload["status"] == "success"
    assert calls["n"] == 2


def test_password_never_reaches_the_event_or_repr(store_url: str) -> None:
    key, _ = seed(store_url, ["DELIVRD"])
    t = trigger(key)
    [event] = run_trigger(t)
    for text in (json.dumps(event.payload), repr(t), json.dumps(t.serialize())):
        assert "s3cret-Passw0rd" not in text


def test_store_named_by_reports_conn_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "via-conn.db"
    monkeypatch.setenv("AIRFLOW_CONN_MC_REPORTS_DB", json.dumps({"conn_type": "sqlite", "host": str(db)}))
    conn = {"conn_type": "messagecentral", "host": "http://127.0.0.1:9", "login": "C-1", "password": "pw"}
    extra = {"email": "a@b.c", "reports_conn_id": "mc_reports_db"}
    monkeypatch.setenv("AIRFLOW_CONN_MC_VIA_CONN", json.dumps({**conn, "extra": extra}))
    key, _ = seed(f"sqlite:///{db}", ["DELIVRD"])
    [event] = run_trigger(trigger(key, messagecentral_conn_id="mc_via_conn"))
    assert event.payload["status"] == "success"


@pytest.mark.parametrize("bad", ["DELIVRD", ["UNDELIV"], [""], [1], 5, []])
def test_final_statuses_are_validated(bad: object) -> None:
    with pytest.raises(ValueError, match="final_statuses"):
        MessageCentralDeliveryTrigger(campaign="mc-x", deadline=0, final_statuses=bad)  # type: ignore[arg-type]


def test_final_statuses_survive_serialization() -> None:
    trigger = MessageCentralDeliveryTrigger(campaign="mc-x", deadline=1.0, final_statuses=["unknown", "DELIVRD"])
    _, kwargs = trigger.serialize()
    assert kwargs["final_statuses"] == ["DELIVRD", "UNKNOWN"]
    json.dumps(kwargs)
    assert MessageCentralDeliveryTrigger(**kwargs).final_statuses == ("DELIVRD", "UNKNOWN")


# --------------------------------------------------------------------------- the no-report warning


def _no_report_warnings(text: str) -> list[str]:
    return [line for line in text.splitlines() if "not one delivery report has reached" in line]


def test_warns_once_when_an_accepted_campaign_gets_no_report(
    store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    key, _ = seed(store_url, [None, None, None])
    t = trigger(key, deadline=time.time() + 0.4, no_report_warning_after=0.1, waiting_since=time.time())
    [event] = run_trigger(t)
    assert event.payload["status"] == "timeout"
    out = capsys.readouterr()
    [warning] = _no_report_warnings(out.out + out.err)
    assert f"campaign {key}: 3 recipients were accepted" in warning
    assert "callback URL is not registered with MessageCentral" in warning
    assert "receiver writes to another store" in warning
    assert "--conn-id messagecentral_default" in warning
    masked = store_url.replace("s3cret-Passw0rd", "***")
    assert masked.split("@")[-1] in warning  # the store it reads (password masked on PostgreSQL)
    assert "s3cret-Passw0rd" not in warning


def test_no_warning_once_a_report_arrived_or_before_the_delay(
    store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    key, _ = seed(store_url, ["UNKNOWN", None])
    run_trigger(trigger(key, deadline=time.time() + 0.3, no_report_warning_after=0))
    key2 = make_campaign_key("dag", "run", "send-2")
    get_store(store_url).ensure_campaign(key2, dag_id="dag", run_id="run", task_id="send-2", kind="bulk")
    get_store(store_url).mark_accepted(
        key2, "c0", transaction_id="tx2", verification_id="v", response={}, mobiles=["919800000001"], sent_at=None
    )
    run_trigger(trigger(key2, deadline=time.time() + 0.3, no_report_warning_after=3600))
    run_trigger(trigger(key2, deadline=time.time() + 0.3, no_report_warning_after=None))
    out = capsys.readouterr()
    assert _no_report_warnings(out.out + out.err) == []


# -- Airflow versions: Connection.aextra_dejson() is new in task-sdk 1.3.2 (Airflow 3.3.2) ---------------------


class _OldConnection:
    """A Task SDK < 1.3.2 connection: ``extra_dejson`` only; remembers the thread that read it."""

    def __init__(self, extra: dict[str, Any]) -> None:
        self._extra = extra
        self.read_in: int | None = None

    @property
    def extra_dejson(self) -> dict[str, Any]:
        self.read_in = threading.get_ident()
        return dict(self._extra)


def test_extras_are_read_without_aextra_dejson_in_a_thread() -> None:
    from airflow_provider_messagecentral.compat import aextra_dejson

    old = _OldConnection({"reports_url": "sqlite:///x.db"})

    async def read() -> tuple[dict[str, Any], int]:
        return await aextra_dejson(old), threading.get_ident()

    extra, loop_thread = asyncio.run(read())
    assert extra == {"reports_url": "sqlite:///x.db"} and old.read_in not in (None, loop_thread)


def test_the_trigger_resolves_the_store_on_an_sdk_without_aextra_dejson(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    from airflow_provider_messagecentral.hooks.messagecentral import MessageCentralHook

    async def old_sdk_connection(conn_id: str) -> Any:  # what aget_connection returns before task-sdk 1.3.2
        conn = MessageCentralHook.get_connection(conn_id)
        fields = {name: getattr(conn, name) for name in ("host", "login", "port", "schema")}
        return SimpleNamespace(**fields, extra_dejson=conn.extra_dejson)

    monkeypatch.setattr(MessageCentralHook, "aget_connection", staticmethod(old_sdk_connection))
    key, _ = seed(store_url, ["DELIVRD"])
    [event] = run_trigger(trigger(key, min_delivered_ratio=1.0))
    assert event.payload["status"] == "success"
