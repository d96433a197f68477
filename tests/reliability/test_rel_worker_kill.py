"""
A worker SIGKILLed half-way through a 5,000-recipient bulk campaign, then the task retried.

The task runs in a child process (a small script that runs the operator's ``execute`` with the task
instance's identity); the sandbox runs in the test process, so it survives the kill and its request log is
the witness. The retry is a new process for the same dag_id/run_id/task_id/map_index: the same campaign key
and ledger.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import wait_until
from rel_support import after_accepted_sends, count, kill, msisdn, numbers

from airflow_provider_messagecentral.campaign.keys import make_campaign_key
from airflow_provider_messagecentral.reports.store import get_store

pytestmark = pytest.mark.reliability

RECIPIENTS = 5_000
CHUNK = 100
TASK = textwrap.dedent(
    """
    import json, sys
    from types import SimpleNamespace
    from airflow_provider_messagecentral.operators.messagecentral import MessageCentralBulkSendOperator

    run_id, on_uncertain, recipients, chunk = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    sys.stdin.readline()  # imported and ready: wait for the go
    ti = SimpleNamespace(dag_id="rel_kill", run_id=run_id, task_id="send", map_index=-1, try_number=1)
    op = MessageCentralBulkSendOperator(
        task_id="send",
        phone_numbers=[f"98{i:08d}" for i in range(recipients)],
        message="Festival offer: 30% off until Sunday",
        chunk_size=chunk,
        on_uncertain=on_uncertain,
        send_window=None,
    )
    print("SUMMARY " + json.dumps(op.execute({"ti": ti, "task_instance": ti})), flush=True)
    """
)


_STARTED: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def _reap() -> Iterator[None]:
    """Kill any task process a failed test left waiting."""
    yield
    while _STARTED:
        kill(_STARTED.pop())


def _start(tmp_path: Path, run_id: str, on_uncertain: str, name: str) -> subprocess.Popen[str]:
    """Start a task process; it imports everything, then waits for :func:`_go` (imports overlap the test)."""
    script = tmp_path / "send_task.py"
    script.write_text(TASK)
    proc = subprocess.Popen(
        [sys.executable, str(script), run_id, on_uncertain, str(RECIPIENTS), str(CHUNK)],
        stdin=subprocess.PIPE,
        stdout=(tmp_path / f"{name}.out").open("w"),
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ),
    )
    _STARTED.append(proc)
    return proc


def _go(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()


def _summary(tmp_path: Path, name: str) -> dict[str, Any]:
    output = (tmp_path / f"{name}.out").read_text()
    lines = [line for line in output.splitlines() if line.startswith("SUMMARY ")]
    assert lines, output[-3000:]
    return dict(json.loads(lines[-1][len("SUMMARY ") :]))


def _texted(sandbox: Any) -> Counter[str]:
    return Counter(m["mobile"] for m in sandbox.messages())


@pytest.mark.parametrize("on_uncertain", ["skip", "resend"])
def test_sigkill_mid_request_then_retry(sandbox: Any, mc_conn: Any, tmp_path: Path, on_uncertain: str) -> None:
    """
    The worker is SIGKILLed while MessageCentral holds its answer to chunk 26 of 50 (the request arrived: the
    sandbox logged it). The retry sends chunks 27-50 and never repeats chunks 1-25. With on_uncertain="skip"
    every recipient ends up texted exactly once (chunk 26 reported as skipped); with "resend" chunk 26 is sent
    again, so exactly its 100 recipients are texted twice and everyone else once.
    """
    mc_conn(timeout=120)
    restore = after_accepted_sends(sandbox, {25: {"hang": {"count": 1, "seconds": 20}}})
    run_id = f"kill-{on_uncertain}"
    worker = _start(tmp_path, run_id, on_uncertain, "try1")
    retry = _start(tmp_path, run_id, on_uncertain, "try2")  # the retry's process, waiting to be told to run
    try:
        _go(worker)
        try:
            assert wait_until(lambda: any(r["hung"] for r in sandbox.requests()), timeout=120), (
                tmp_path / "try1.out"
            ).read_text()[-3000:]
        finally:
            kill(worker)
        count("faults_injected")
    finally:
        restore()
    assert worker.returncode == -9
    hung = [r for r in sandbox.requests() if r["hung"]]
    assert len(sandbox.requests()) == 26 and len(hung) == 1
    uncertain = {m["mobile"] for m in hung[0]["recipients"]}
    campaign = make_campaign_key("rel_kill", run_id, "send", -1)
    states = Counter(u.state for u in get_store(mc_conn.reports_url).get_units(campaign).values())
    assert states == Counter({"accepted": 25, "pending": 1})

    _go(retry)
    assert retry.wait(timeout=180) == 0, (tmp_path / "try2.out").read_text()[-3000:]
    summary = _summary(tmp_path, "try2")

    texted = _texted(sandbox)
    everyone = {msisdn(n) for n in numbers(RECIPIENTS)}
    assert set(texted) == everyone
    twice = {mobile for mobile, n in texted.items() if n > 1}
    assert max(texted.values()) <= 2
    states = Counter(u.state for u in get_store(mc_conn.reports_url).get_units(campaign).values())
    if on_uncertain == "skip":
        assert twice == set()
        assert summary["skipped"] == CHUNK and summary["accepted"] == RECIPIENTS - CHUNK
        assert states == Counter({"accepted": 49, "pending": 1})
    else:
        assert twice == uncertain
        assert summary["skipped"] == 0 and summary["accepted"] == RECIPIENTS
        assert states == Counter({"accepted": 50})
    count("recipients_texted_twice_unexpectedly", len(twice - uncertain))
    count("faults_survived")


def test_sigkill_at_a_random_moment_then_retry(sandbox: Any, mc_conn: Any, tmp_path: Path) -> None:
    """
    The worker is SIGKILLed at whatever point it has reached once about half of the 5,000 recipients were
    texted (sends paced by 20 ms of sandbox latency). After the retry (on_uncertain="skip"): nobody was texted
    twice, every recipient outside the one chunk the ledger left 'pending' was texted exactly once, and that
    chunk's recipients at most once.
    """
    sandbox.set_faults(latency=0.02)
    run_id = "kill-random"
    worker = _start(tmp_path, run_id, "skip", "try1")
    retry = _start(tmp_path, run_id, "skip", "try2")
    _go(worker)
    try:
        assert wait_until(lambda: len(sandbox.messages()) >= RECIPIENTS // 2, timeout=120), (
            tmp_path / "try1.out"
        ).read_text()[-3000:]
    finally:
        kill(worker)
    count("faults_injected")
    campaign = make_campaign_key("rel_kill", run_id, "send", -1)
    units = get_store(mc_conn.reports_url).get_units(campaign)
    accepted = sum(1 for u in units.values() if u.state == "accepted")
    pending = [u for u in units.values() if u.state == "pending"]
    assert len(pending) <= 1 and 0 < accepted < RECIPIENTS // CHUNK

    _go(retry)
    assert retry.wait(timeout=180) == 0, (tmp_path / "try2.out").read_text()[-3000:]
    summary = _summary(tmp_path, "try2")

    texted = _texted(sandbox)
    audience = numbers(RECIPIENTS)
    maybe = {msisdn(n) for n in audience[accepted * CHUNK : (accepted + 1) * CHUNK]} if pending else set()
    assert max(texted.values()) == 1, "somebody was texted twice"
    assert {msisdn(n) for n in audience} - set(texted) <= maybe
    assert summary["skipped"] == (CHUNK if pending else 0)
    assert summary["accepted"] + summary["skipped"] == RECIPIENTS
    count("faults_survived")
