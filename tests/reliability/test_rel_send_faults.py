"""
Faults while sending a campaign, injected by the sandbox: token expiry, 429 storms, 5xx bursts, answers that
never come, connections reset mid-request, and business refusals. Each promise is checked from the outside:
the sandbox's request log and counters, the ledger in the reports store, and the operator's error text.

The operators run in this process (``execute`` with the task instance's identity in the context), so a
"retry" is simply a second ``execute`` for the same dag_id/run_id/task_id/map_index: the same campaign.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from rel_support import after_accepted_sends, count, msisdn, numbers, task_context

from airflow_provider_messagecentral.exceptions import (
    MessageCentralBulkError,
    MessageCentralError,
    MessageCentralUncertainError,
)
from airflow_provider_messagecentral.operators.messagecentral import (
    MessageCentralBulkSendOperator,
    MessageCentralSendOperator,
)
from airflow_provider_messagecentral.reports.store import get_store

pytestmark = pytest.mark.reliability


def _bulk(audience: list[str], chunk_size: int = 100, **kwargs: Any) -> MessageCentralBulkSendOperator:
    return MessageCentralBulkSendOperator(
        task_id="send",
        phone_numbers=audience,
        message="Flash sale: 20% off today",
        chunk_size=chunk_size,
        send_window=None,  # promotional quiet hours would defer the campaign, depending on the time of day
        **kwargs,
    )


def _texted(sandbox: Any) -> Counter[str]:
    return Counter(m["mobile"] for m in sandbox.messages())


def _ledger_states(mc_conn: Any, campaign: str) -> list[str]:
    return sorted(u.state for u in get_store(mc_conn.reports_url).get_units(campaign).values())


@pytest.fixture
def faults(sandbox: Any) -> Iterator[Any]:
    """``faults({n: {...}})``: switch sandbox faults on right after its n-th accepted send."""
    restores = []

    def plan(steps: dict[int, dict[str, Any]], events: int) -> None:
        """``events``: how many faulty answers the plan makes the client meet (counted as injected)."""
        restores.append(after_accepted_sends(sandbox, steps))
        count("faults_injected", events)

    yield plan
    for restore in restores:
        restore()


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every wait the hook's retry loop makes, in seconds (it still really waits)."""
    import airflow_provider_messagecentral.client.retries as retries

    seen: list[float] = []

    def sleep(seconds: float) -> None:
        seen.append(seconds)
        time.sleep(seconds)

    monkeypatch.setattr(retries, "_sleep", sleep)
    return seen


def test_token_expires_three_times_mid_campaign(sandbox: Any, mc_conn: Any, faults: Any) -> None:
    """
    The sandbox revokes every token three times during a 3,000-recipient campaign (30 chunks): every
    recipient is texted exactly once, the hook makes exactly one token request per expiry (4 in all) and
    repeats only the three refused requests.
    """
    faults({8: {"expire_tokens": True}, 16: {"expire_tokens": True}, 24: {"expire_tokens": True}}, events=3)
    audience = numbers(3_000)

    summary = _bulk(audience).execute(task_context())

    texted = _texted(sandbox)
    assert set(texted) == {msisdn(n) for n in audience} and set(texted.values()) == {1}
    stats = sandbox.stats()
    assert stats["token_requests"] == 4
    assert stats["send_requests"] == 30 + 3 and stats["rejected"] == 3
    assert summary["accepted"] == 3_000 and summary["chunks"] == 30
    count("faults_survived", 3)


@pytest.mark.parametrize(
    ("retry_after", "storms"),
    [("1", {5: 2, 12: 2}), ("http-date", {5: 2})],
    ids=["seconds", "http-date"],
)
def test_429_storms_honour_retry_after_and_complete(
    sandbox: Any, mc_conn: Any, faults: Any, waits: list[float], retry_after: str, storms: dict[int, int]
) -> None:
    """
    Storms of 429 answers mid-campaign (Retry-After in seconds, or as an HTTP date two seconds ahead): the
    campaign completes, every recipient texted once; each wait after a 429 is what Retry-After asked for
    (capped at max_retry_wait = 2 s) rather than the exponential backoff; one extra request per 429.
    """
    faults(
        {after: {"rate_limit": {"count": n, "retry_after": retry_after, "seconds": 2}} for after, n in storms.items()},
        events=sum(storms.values()),
    )
    audience = numbers(2_000)

    _bulk(audience).execute(task_context())

    texted = _texted(sandbox)
    assert set(texted) == {msisdn(n) for n in audience} and set(texted.values()) == {1}
    limited = sum(storms.values())
    assert sandbox.stats()["send_requests"] == 20 + limited
    assert len(waits) == limited
    if retry_after == "1":
        assert waits == [1.0] * limited
    else:  # an HTTP date has whole seconds: the wait is what is left until it, at most 2 s
        assert all(0.0 < w <= 2.0 for w in waits) and max(waits) >= 1.0
    count("faults_survived", limited)


def test_5xx_bursts_are_retried_within_the_bound(sandbox: Any, mc_conn: Any, faults: Any) -> None:
    """
    Bursts of 503 and 502 mid-campaign (3 each, within max_retries = 5): the campaign completes, every
    recipient texted once, and the only extra requests are the six refused ones.
    """
    mc_conn(max_retry_wait=1)
    faults({3: {"errors": {"count": 3, "status": 503}}, 10: {"errors": {"count": 3, "status": 502}}}, events=6)
    audience = numbers(1_500)

    summary = _bulk(audience).execute(task_context())

    texted = _texted(sandbox)
    assert set(texted) == {msisdn(n) for n in audience} and set(texted.values()) == {1}
    assert sandbox.stats()["send_requests"] == 15 + 6
    assert summary["accepted"] == 1_500
    count("faults_survived", 6)


def test_5xx_beyond_the_bound_stops_and_says_what_was_and_was_not_sent(sandbox: Any, mc_conn: Any, faults: Any) -> None:
    """
    A server that keeps answering 500 from chunk 3 on: chunk 3 is tried exactly 1 + max_retries (2) times,
    then the task fails with an error naming the failed chunk, the 200 recipients accepted before it and the
    800 not sent; the ledger holds 2 accepted units and 1 failed (nothing uncertain). A retry after the outage
    sends only the rest: everyone texted exactly once.
    """
    mc_conn(max_retries=2, max_retry_wait=0.3)
    faults({2: {"errors": {"count": 1_000, "status": 500}}}, events=3)
    audience = numbers(1_000)
    context = task_context(run_id="bound")

    with pytest.raises(MessageCentralBulkError) as caught:
        _bulk(audience).execute(context)

    text = str(caught.value)
    assert "chunk 3/10 (100 recipients) failed" in text and "HTTP 500" in text
    assert "It was not sent" in text
    assert "Accepted: 200 recipients (chunk 1/10, chunk 2/10)" in text
    assert "Not sent: 700 recipients (chunk 4/10 to chunk 10/10)" in text
    assert sandbox.stats()["send_requests"] == 2 + 3
    assert len(sandbox.messages()) == 200
    campaign = get_store(mc_conn.reports_url).get_units
    assert caught.value.accepted and len(caught.value.accepted) == 2

    sandbox.set_faults(errors=None)
    summary = _bulk(audience).execute(context)

    texted = _texted(sandbox)
    assert set(texted) == {msisdn(n) for n in audience} and set(texted.values()) == {1}
    assert summary["accepted"] == 1_000 and summary["skipped"] == 0
    assert _ledger_states(mc_conn, summary["campaign"]) == ["accepted"] * 10
    assert campaign(summary["campaign"])  # the ledger of the failed try was kept and completed
    count("faults_survived", 3)


@pytest.mark.parametrize("on_uncertain", ["skip", "resend"])
def test_answer_that_never_comes_leaves_the_chunk_uncertain(
    sandbox: Any, mc_conn: Any, faults: Any, on_uncertain: str
) -> None:
    """
    The sandbox accepts chunk 3 but holds its answer past the connection's read timeout: the hook does not
    repeat it (it may have been sent), the task fails saying so, and the ledger leaves that chunk 'pending'.
    The retry obeys on_uncertain: "skip" texts everyone else and reports the chunk as skipped (everyone texted
    exactly once, since the held request did arrive); "resend" sends it again, so exactly that chunk's 100
    recipients get the text twice and nobody else does.
    """
    mc_conn(timeout=0.5)
    faults({2: {"hang": {"count": 1, "seconds": 3}}}, events=1)
    audience = numbers(1_000)
    context = task_context(run_id=f"uncertain-{on_uncertain}")

    with pytest.raises(MessageCentralUncertainError) as caught:
        _bulk(audience, on_uncertain=on_uncertain).execute(context)

    assert "chunk 3/10 (100 recipients) failed" in str(caught.value)
    assert "may or may not have been sent" in str(caught.value)
    assert sandbox.stats()["send_requests"] == 3  # not repeated by the hook
    hung = [r for r in sandbox.requests() if r["hung"]]
    assert len(hung) == 1
    uncertain = {m["mobile"] for m in hung[0]["recipients"]}
    assert len(uncertain) == 100

    summary = _bulk(audience, on_uncertain=on_uncertain).execute(context)

    texted = _texted(sandbox)
    assert set(texted) == {msisdn(n) for n in audience}
    twice = {mobile for mobile, n in texted.items() if n == 2}
    assert max(texted.values()) <= 2
    if on_uncertain == "skip":
        assert twice == set()
        assert summary["skipped"] == 100 and summary["accepted"] == 900
        assert _ledger_states(mc_conn, summary["campaign"]) == ["accepted"] * 9 + ["pending"]
    else:
        assert twice == uncertain
        assert summary["skipped"] == 0 and summary["accepted"] == 1_000
        assert _ledger_states(mc_conn, summary["campaign"]) == ["accepted"] * 10
    count("faults_survived")


class _ResettingServer:
    """A TCP server that reads a request, then resets the connection (RST) without answering."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.requests = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                self.requests += 1
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")

    def close(self) -> None:
        self.sock.close()


def test_connection_reset_mid_request_is_uncertain(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """
    A connection reset after the request went out (no answer): the send is uncertain — not repeated by the
    hook (exactly one request reached the server), the task fails saying it may or may not have been sent,
    and the ledger keeps the unit 'pending' so that a retry follows on_uncertain (default "skip": no request).
    """
    server = _ResettingServer()
    try:
        conn = {
            "conn_type": "messagecentral",
            "host": f"http://127.0.0.1:{server.port}",
            "login": "C-RESET",
            "extra": {
                "auth_token": "pre-issued-token",
                "reports_url": f"sqlite:///{tmp_path / 'reports.db'}",
                "max_retry_wait": 0.2,
            },
        }
        monkeypatch.setenv("AIRFLOW_CONN_MC_RESET", json.dumps(conn))
        context = task_context(run_id="reset")
        op = MessageCentralSendOperator(
            task_id="send",
            mobile_number="9816100001",
            message="Hello",
            messagecentral_conn_id="mc_reset",
            send_window=None,
        )
        with pytest.raises(MessageCentralUncertainError) as caught:
            op.execute(context)
        assert "may or may not have been sent" in str(caught.value)
        assert server.requests == 1
        count("faults_injected")

        again = MessageCentralSendOperator(
            task_id="send",
            mobile_number="9816100001",
            message="Hello",
            messagecentral_conn_id="mc_reset",
            send_window=None,
        ).execute(context)
        assert server.requests == 1  # skipped, not resent
        assert again["skipped"] == 1 and again["accepted"] == 0
        states = sorted(u.state for u in get_store(conn["extra"]["reports_url"]).get_units(again["campaign"]).values())
        assert states == ["pending"]
        count("faults_survived")
    finally:
        server.close()


@pytest.mark.parametrize(
    ("code", "words"),
    [(402, "Insufficient balance"), (705, "Verification expired"), (601, "Invalid mobile number")],
    ids=["insufficient-balance", "verification-expired", "invalid-number"],
)
def test_business_refusal_is_not_retried_and_keeps_the_ledger(
    sandbox: Any, mc_conn: Any, code: int, words: str
) -> None:
    """
    MessageCentral refuses chunk 3 with a business error (insufficient balance, an expired verification,
    an invalid number): no retry (exactly 3 requests), an error naming the code, the reason, the chunk and what was and
    was not sent, and a ledger with the 2 accepted chunks and the refused one marked failed (their 200
    recipients recorded on the campaign). A retry of the task sends the rest; everyone texted once.
    """
    sandbox.set_faults(fail_on_send={"nth": 3, "code": code})
    count("faults_injected")
    audience = numbers(500)
    context = task_context(run_id=f"business-{code}")

    with pytest.raises(MessageCentralError) as caught:
        _bulk(audience).execute(context)

    text = str(caught.value)
    assert f"[{code}]" in text and words in text and "chunk 3/5" in text
    assert "Accepted: 200 recipients" in text and "Not sent: 200 recipients" in text
    assert sandbox.stats()["send_requests"] == 3
    store = get_store(mc_conn.reports_url)
    campaign = next(c["campaign"] for c in store.list_campaigns()["items"] if c["run_id"] == f"business-{code}")
    assert _ledger_states(mc_conn, campaign) == ["accepted", "accepted", "failed"]
    assert store.campaign_summary(campaign)["recipients"] == 200  # type: ignore[index]

    summary = _bulk(audience).execute(context)

    texted = _texted(sandbox)
    assert set(texted) == {msisdn(n) for n in audience} and set(texted.values()) == {1}
    assert summary["accepted"] == 500 and _ledger_states(mc_conn, campaign) == ["accepted"] * 5
    count("faults_survived")


def test_single_send_refused_as_invalid_number_is_not_retried(sandbox: Any, mc_conn: Any) -> None:
    """A single send the API refuses as an invalid number fails at once (one request) with the code and reason."""
    sandbox.set_faults(fail_on_send={"nth": 1, "code": 601})
    count("faults_injected")
    with pytest.raises(MessageCentralError) as caught:
        MessageCentralSendOperator(
            task_id="send", mobile_number="9816100001", message="Hello", send_window=None
        ).execute(task_context(run_id="single-601"))
    assert "[601]" in str(caught.value) and "Invalid mobile number" in str(caught.value)
    assert sandbox.stats()["send_requests"] == 1 and sandbox.messages() == []
    count("faults_survived")
