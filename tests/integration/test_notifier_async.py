"""
MessageCentralNotifier as an async notifier (deadline alerts, async callbacks in the triggerer), over real HTTP to
the sandbox inside a running event loop: it sends, it does not stall the loop, it retries, and no secret reaches
its logs.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from helpers import sandbox_connection

from airflow_provider_messagecentral.client.tokens import TOKEN_CACHE
from airflow_provider_messagecentral.notifications.messagecentral import MessageCentralNotifier
from airflow_provider_messagecentral.sandbox.config import SandboxConfig
from airflow_provider_messagecentral.sandbox.server import SandboxServer

pytestmark = pytest.mark.integration

#: What the triggerer hands a deadline alert's callback.
CONTEXT = {
    "dag_run": {"dag_id": "nightly_export", "dag_run_id": "scheduled__2024-05-01T00:00:00+00:00"},
    "deadline": {"id": "d-1", "deadline_time": "2024-05-01T00:30:00+00:00"},
}
MESSAGE = "LATE {{ dag_run.dag_id }}: run {{ dag_run.dag_run_id }} past {{ deadline.deadline_time }}"
#: Each sandbox request answers this much later: a send (token + send) takes at least twice as long.
LATENCY = 0.25
PASSWORD = "Notifier-Pa55word-7f3e"


async def largest_stall(work: Callable[[], Awaitable[None]], tick: float = 0.005) -> tuple[float, float]:
    """Run ``work`` beside a ticker on the same loop: (seconds ``work`` took, the longest the ticker waited)."""
    stalls: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(tick)
            now = time.perf_counter()
            stalls.append(now - last - tick)
            last = now

    beat = asyncio.create_task(ticker())
    await asyncio.sleep(tick * 3)
    started = time.perf_counter()
    await work()
    took = time.perf_counter() - started
    done.set()
    await beat
    return took, max(stalls)


def test_awaited_like_a_deadline_callback_it_texts_without_stalling_the_event_loop(
    sandbox: Any, mc_conn: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    sandbox.set_faults(latency=LATENCY)

    async def as_the_triggerer_does() -> None:
        await MessageCentralNotifier(mobile_numbers=["9816100000"], message=MESSAGE, context=CONTEXT)

    async def blocking_notify() -> None:  # what a notifier without async_notify would do on the loop
        notifier = MessageCentralNotifier(mobile_numbers=["9816100001"], message=MESSAGE)
        notifier(dict(CONTEXT))

    took, stall = asyncio.run(largest_stall(as_the_triggerer_does))
    TOKEN_CACHE.clear()
    took_inline, stall_inline = asyncio.run(largest_stall(blocking_notify))
    print(
        f"\nevent loop: async_notify took {took * 1000:.0f} ms, longest stall {stall * 1000:.1f} ms; "
        f"inline notify took {took_inline * 1000:.0f} ms, stall {stall_inline * 1000:.0f} ms"
    )
    texts = [(m["mobile"], m["text"]) for m in sandbox.messages()]
    assert texts[0] == (
        "919816100000",
        "LATE nightly_export: run scheduled__2024-05-01T00:00:00+00:00 past 2024-05-01T00:30:00+00:00",
    )
    assert took >= 2 * LATENCY and stall_inline >= 2 * LATENCY  # token + send, each LATENCY late
    assert stall < 0.1, f"the event loop stalled {stall * 1000:.0f} ms during async_notify"


@pytest.fixture
def own_sandbox(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[SandboxServer]:
    """A sandbox whose password is found nowhere else in a log line (the shared one's is "sandbox")."""
    server = SandboxServer(SandboxConfig(password=PASSWORD)).start()
    conn = sandbox_connection(server.url, reports_url=f"sqlite:///{tmp_path / 'reports.db'}")
    monkeypatch.setenv("AIRFLOW_CONN_MESSAGECENTRAL_DEFAULT", json.dumps({**conn, "password": PASSWORD}))
    TOKEN_CACHE.clear()
    yield server
    server.stop()


def test_async_retries_like_the_sync_path_and_keeps_secrets_out_of_its_logs(
    own_sandbox: SandboxServer, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    own_sandbox.set_faults(errors={"count": 2, "status": 503})
    notifier = MessageCentralNotifier(mobile_numbers="9816100000", message=MESSAGE, context=CONTEXT)

    async def awaited() -> None:
        await notifier

    with caplog.at_level(logging.DEBUG):
        asyncio.run(awaited())
    assert notifier.last_outcome == "sent"
    assert len(own_sandbox.messages()) == 1 and len(own_sandbox.rejected()) == 2  # two 503s, then accepted
    token = TOKEN_CACHE.peek(next(iter(TOKEN_CACHE._entries)))

    # A refused alert (the account is out of balance) is logged, never raised.
    own_sandbox.set_faults(balance=0)
    failing = MessageCentralNotifier(mobile_numbers="9816100000", message="x", context=CONTEXT)
    with caplog.at_level(logging.DEBUG):
        asyncio.run(failing.async_notify(CONTEXT))
    assert failing.last_outcome and failing.last_outcome != "sent"

    logs = caplog.text + "".join(capsys.readouterr())
    assert "MessageCentral notification was NOT sent" in logs
    for secret in (PASSWORD, base64.b64encode(PASSWORD.encode()).decode(), token):
        assert secret and secret not in logs
