"""The send ledger: deterministic unit keys; skip accepted, skip or resend pending, record failures."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_messagecentral.campaign.keys import make_campaign_key
from airflow_provider_messagecentral.campaign.ledger import SendLedger, unit_key
from airflow_provider_messagecentral.exceptions import (
    MessageCentralError,
    MessageCentralUncertainError,
    MessageCentralValidationError,
)
from airflow_provider_messagecentral.reports.store import get_store

MOBILES = ["919816100001", "919816100002"]


def test_unit_key_is_deterministic_and_ignores_recipient_order() -> None:
    options = {"flowType": "SMS", "senderId": "UTOMOB", "templateId": None}
    a = unit_key("bulk", MOBILES, "Sale", options)
    assert a == unit_key("bulk", list(reversed(MOBILES)), "Sale", {"senderId": "UTOMOB", "flowType": "SMS"})
    assert a.startswith("bulk-") and len(a) == len("bulk-") + 32


def test_unit_key_stays_what_earlier_versions_computed() -> None:
    # A retry after an upgrade must find the units an earlier version recorded: the key never changes.
    options = {"sender_id": "MSGCTL", "empty": ""}
    recipients = ["919816111112", "919816111111", "zoë"]
    key = unit_key("file", recipients, "Hi ##var1##", options, content=b"\x01digest")
    assert key == "file-8b7266277714c02164cecdc560fee0d7"
    assert unit_key("bulk", [], "Hi", {}) == "bulk-db7f84712eb89e554873761f781263d0"


@pytest.mark.parametrize(
    "change",
    [
        {"recipients": ["919816100001"]},
        {"message": "Sale!"},
        {"options": {"flowType": "SMS", "senderId": "OTHER"}},
        {"kind": "single"},
        {"content": b"rows-digest"},
    ],
)
def test_unit_key_changes_with_what_recipients_receive(change: dict[str, Any]) -> None:
    base: dict[str, Any] = {
        "kind": "bulk",
        "recipients": MOBILES,
        "message": "Sale",
        "options": {"flowType": "SMS", "senderId": "UTOMOB"},
    }
    changed = {**base, **change}
    content = changed.pop("content", b"")
    assert unit_key(base["kind"], base["recipients"], base["message"], base["options"]) != unit_key(
        changed["kind"], changed["recipients"], changed["message"], changed["options"], content=content
    )


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.db'}"


def _context(run_id: str = "run-1", map_index: int | None = -1) -> dict[str, Any]:
    return {"ti": SimpleNamespace(dag_id="dag", run_id=run_id, task_id="send", map_index=map_index)}


def _ledger(store_url: str, on_uncertain: str = "skip", run_id: str = "run-1") -> SendLedger:
    return SendLedger.for_task(_context(run_id), kind="bulk", store_url=store_url, on_uncertain=on_uncertain)


class Sender:
    def __init__(self, error: Exception | None = None) -> None:
        self.calls = 0
        self.error = error

    def __call__(self) -> dict[str, Any]:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return {"transactionId": f"tx-{self.calls}", "verificationId": "7", "authToken": "must-not-be-stored"}


def test_campaign_key_comes_from_the_task_instance(store_url: str) -> None:
    assert _ledger(store_url).campaign_key == make_campaign_key("dag", "run-1", "send", -1)
    none_index = SendLedger.for_task(_context(map_index=None), kind="bulk", store_url=store_url)
    assert none_index.campaign_key == make_campaign_key("dag", "run-1", "send", -1)


def test_accepted_unit_is_recorded_with_recipients_and_skipped_by_the_next_try(store_url: str) -> None:
    key = unit_key("bulk", MOBILES, "Sale", {})
    send = Sender()
    first = _ledger(store_url).run(key, MOBILES, send, label="chunk 1/1")
    assert (first.status, first.transaction_id, first.recipients) == ("sent", "tx-1", 2)

    store = get_store(store_url)
    unit = store.get_units(first_campaign := _ledger(store_url).campaign_key)[key]
    assert (unit.state, unit.transaction_id, unit.recipients) == ("accepted", "tx-1", 2)
    assert "authToken" not in (unit.response or {})
    assert store.campaign_summary(first_campaign)["recipients"] == 2  # type: ignore[index]

    again = _ledger(store_url).run(key, MOBILES, send, label="chunk 1/1")
    assert (again.status, again.transaction_id, send.calls) == ("accepted_before", "tx-1", 1)


def test_a_new_run_is_a_new_campaign_and_sends_again(store_url: str) -> None:
    key = unit_key("bulk", MOBILES, "Sale", {})
    send = Sender()
    _ledger(store_url).run(key, MOBILES, send, label="chunk")
    result = _ledger(store_url, run_id="run-2").run(key, MOBILES, send, label="chunk")
    assert result.status == "sent" and send.calls == 2


def test_uncertain_send_stays_pending_and_is_skipped_by_default(store_url: str) -> None:
    key = unit_key("bulk", MOBILES, "Sale", {})
    with pytest.raises(MessageCentralUncertainError):
        _ledger(store_url).run(key, MOBILES, Sender(MessageCentralUncertainError("read timeout")), label="c")
    ledger = _ledger(store_url)
    assert ledger.state(key) == "pending"

    send = Sender()
    result = ledger.run(key, MOBILES, send, label="c")
    assert (result.status, result.accepted, send.calls) == ("uncertain_skipped", False, 0)


def test_uncertain_send_is_resent_with_resend(store_url: str) -> None:
    key = unit_key("bulk", MOBILES, "Sale", {})
    with pytest.raises(MessageCentralUncertainError):
        _ledger(store_url).run(key, MOBILES, Sender(MessageCentralUncertainError("reset")), label="c")
    send = Sender()
    result = _ledger(store_url, on_uncertain="resend").run(key, MOBILES, send, label="c")
    assert (result.status, send.calls) == ("sent", 1)
    unit = get_store(store_url).get_units(_ledger(store_url).campaign_key)[key]
    assert (unit.state, unit.attempts) == ("accepted", 2)


def test_final_error_marks_the_unit_failed_and_a_retry_sends_it(store_url: str) -> None:
    key = unit_key("bulk", MOBILES, "Sale", {})
    with pytest.raises(MessageCentralError):
        _ledger(store_url).run(key, MOBILES, Sender(MessageCentralError("blocked", code=705)), label="chunk 3/5")
    unit = get_store(store_url).get_units(_ledger(store_url).campaign_key)[key]
    assert unit.state == "failed" and "chunk 3/5" in (unit.error or "")

    send = Sender()
    assert _ledger(store_url).run(key, MOBILES, send, label="chunk 3/5").status == "sent"


def test_crash_during_send_leaves_the_unit_pending(store_url: str) -> None:
    key = unit_key("bulk", MOBILES, "Sale", {})
    with pytest.raises(KeyboardInterrupt):
        _ledger(store_url).run(key, MOBILES, Sender(KeyboardInterrupt()), label="c")  # type: ignore[arg-type]
    assert _ledger(store_url).state(key) == "pending"


def test_on_uncertain_is_validated(store_url: str) -> None:
    with pytest.raises(MessageCentralValidationError, match="on_uncertain"):
        _ledger(store_url, on_uncertain="always")


def _deliver(store_url: str, mobiles: list[str]) -> None:
    """MessageCentral's delivery reports for ``mobiles``, dated now (the send was just attempted)."""
    from datetime import datetime, timezone

    from helpers import report

    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    reports = [report(f"dlr-{m}", "DELIVRD", mobile=m, submitDate=now, doneDate=now) for m in mobiles]
    get_store(store_url).ingest(reports, [])


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.integration]),
    ]
)
def any_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    return str(request.getfixturevalue("pg_url"))  # tests/conftest.py: a fresh PostgreSQL database


@pytest.mark.parametrize("on_uncertain", ["skip", "resend"])
def test_a_retry_after_reconciliation_never_resends(any_store_url: str, on_uncertain: str) -> None:
    store_url = any_store_url
    key = unit_key("bulk", MOBILES, "Sale", {})
    with pytest.raises(MessageCentralUncertainError):
        _ledger(store_url).run(key, MOBILES, Sender(MessageCentralUncertainError("read timeout")), label="c")
    _deliver(store_url, MOBILES[:1])  # the request had gone out: a report for one recipient arrives

    send = Sender()
    ledger = _ledger(store_url, on_uncertain=on_uncertain)  # reads the ledger: the unit is reconciled
    assert ledger.state(key) == "accepted"
    result = ledger.run(key, MOBILES, send, label="c")
    assert (result.status, result.accepted, result.reconciled, send.calls) == ("accepted_before", True, True, 0)
    summary = get_store(store_url).campaign_summary(ledger.campaign_key)
    assert summary is not None and (summary["recipients"], summary["delivered"]) == (2, 1)


def test_uncertain_warning_says_what_will_happen(store_url: str, caplog: pytest.LogCaptureFixture) -> None:
    key = unit_key("bulk", MOBILES, "Sale", {})
    with pytest.raises(MessageCentralUncertainError):
        _ledger(store_url).run(key, MOBILES, Sender(MessageCentralUncertainError("read timeout")), label="c")
    with caplog.at_level("WARNING"):
        result = _ledger(store_url).run(key, MOBILES, Sender(), label="chunk 2/5")
    assert result.status == "uncertain_skipped" and not result.reconciled
    assert (
        "chunk 2/5: an earlier try sent it but recorded no answer (crash or timeout), so its 2 recipient(s) may or "
        "may not have been texted; they will be counted if MessageCentral reports deliveries for them" in caplog.text
    )
    assert "MAY NOT HAVE BEEN TEXTED" not in caplog.text
