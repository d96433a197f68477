"""A bulk send whose chunk lost its answer, retried: its delivery reports make the retry count it as accepted."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests
from fake_http import FakeMessageCentral, install, ok_send
from helpers import report

from airflow_provider_messagecentral.campaign.ledger import UnitResult
from airflow_provider_messagecentral.campaign.plan import SendUnit, stopped_at
from airflow_provider_messagecentral.exceptions import MessageCentralError, MessageCentralUncertainError
from airflow_provider_messagecentral.operators.messagecentral import MessageCentralBulkSendOperator
from airflow_provider_messagecentral.reports.store import get_store

NUMBERS = [f"98161{i:05d}" for i in range(6)]
COUNTED = "will be counted if MessageCentral reports deliveries for them"


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeMessageCentral:
    """MessageCentral behind the transport; the second send's answer is lost (read timeout)."""
    reports_url = f"sqlite:///{tmp_path / 'reports.db'}"
    conn = {
        "conn_type": "messagecentral",
        "host": "http://messagecentral.invalid",
        "login": "C-TEST",
        "password": "pw",
        "extra": {"email": "ops@example.com", "auth_token": "tok", "country": "91", "reports_url": reports_url},
    }
    monkeypatch.setenv("AIRFLOW_CONN_MESSAGECENTRAL_DEFAULT", json.dumps(conn))
    replies: list[Any] = [ok_send(f"tx-{n}") for n in range(1, 10)]
    replies[1] = requests.ReadTimeout()
    fake = install(monkeypatch, FakeMessageCentral(send_replies=replies))
    fake.reports_url = reports_url  # type: ignore[attr-defined]
    return fake


def _context(try_number: int) -> dict[str, Any]:
    ti = SimpleNamespace(dag_id="dag", run_id="run-1", task_id="send", map_index=-1, try_number=try_number)
    return {"ti": ti}


def _operator(on_uncertain: str) -> MessageCentralBulkSendOperator:
    return MessageCentralBulkSendOperator(
        task_id="send",
        phone_numbers=NUMBERS,
        message="Sale",
        chunk_size=2,
        on_uncertain=on_uncertain,
        send_window=None,
    )


def _deliver(api: FakeMessageCentral, numbers: list[str]) -> None:
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    reports = [report(f"dlr-{n}", "DELIVRD", mobile=f"91{n}", submitDate=now) for n in numbers]
    get_store(api.reports_url).ingest(reports, [])  # type: ignore[attr-defined]


@pytest.mark.parametrize("on_uncertain", ["skip", "resend"])
def test_retry_counts_the_reconciled_chunk_as_accepted(api: FakeMessageCentral, on_uncertain: str) -> None:
    with pytest.raises(MessageCentralUncertainError) as err:
        _operator(on_uncertain).execute(_context(1))
    assert f"It may or may not have been sent (left 'pending' in the ledger): its recipients {COUNTED}." in str(
        err.value
    )
    _deliver(api, NUMBERS[2:3])  # MessageCentral did text chunk 2: a report for one of its numbers

    summary = _operator(on_uncertain).execute(_context(2))
    assert len(api.send_calls) == 3  # chunk 2 is never sent again, even with on_uncertain="resend"
    assert (summary["accepted"], summary["skipped"], summary["reconciled"]) == (6, 0, 2)
    assert summary["transaction_ids"] == ["tx-1", "tx-3"]
    store = get_store(api.reports_url)  # type: ignore[attr-defined]
    counts = store.campaign_summary(summary["campaign"])
    assert counts is not None and (counts["recipients"], counts["delivered"]) == (6, 1)


def test_reports_after_the_retry_reach_the_summary_but_not_the_retrys_xcom(api: FakeMessageCentral) -> None:
    with pytest.raises(MessageCentralUncertainError):
        _operator("skip").execute(_context(1))
    summary = _operator("skip").execute(_context(2))
    assert (summary["accepted"], summary["skipped"]) == (4, 2) and "reconciled" not in summary
    store = get_store(api.reports_url)  # type: ignore[attr-defined]
    assert store.campaign_summary(summary["campaign"])["recipients"] == 4  # type: ignore[index]

    _deliver(api, NUMBERS[2:4])
    assert store.campaign_summary(summary["campaign"])["recipients"] == 6  # type: ignore[index]
    again = _operator("skip").execute(_context(3))
    assert (again["accepted"], again["skipped"], again["reconciled"]) == (6, 0, 2) and len(api.send_calls) == 3


def test_the_stop_error_says_what_happens_to_skipped_uncertain_units() -> None:
    units = [SendUnit(f"u{i}", f"chunk {i}/3", ["1", "2"], lambda: {}) for i in (1, 2, 3)]
    results = [UnitResult("u1", "chunk 1/3", 2, "uncertain_skipped"), UnitResult("u2", "chunk 2/3", 2, "sent")]
    err = stopped_at(MessageCentralError("blocked", code=705), results, units, 2)
    assert (
        f"Outcome unknown from an earlier try, not resent: 2 recipients (they may or may not have been texted; "
        f"they {COUNTED})." in str(err)
    )
