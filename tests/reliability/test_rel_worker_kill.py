"""
A worker SIGKILLed half-way through a 5,000-recipient bulk campaign, then the task retried.

The task runs in a child process (a small script that runs the operator's ``execute`` with the task
instance's identity); the sandbox runs in the test process, so it survives the kill and its request log is
the witness. The retry is a new process for the same dag_id/run_id/task_id/map_index: the same campaign key
and ledger. With the sandbox's delivery reports flowing into a receiver on the connection's store, the chunk
whose answer the kill lost is reconciled from its reports: the campaign's summary counts every texted recipient.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import wait_until
from rel_support import RECEIVER_SECRET, after_accepted_sends, count, kill, msisdn, numbers

from airflow_provider_messagecentral.campaign.keys import make_campaign_key
from airflow_provider_messagecentral.reports.server import ReceiverServer
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


@pytest.fixture
def deliver(sandbox: Any, mc_conn: Any) -> Iterator[Callable[[], None]]:
    """
    A receiver on the connection's store taking the sandbox's delivery reports (final statuses with some
    duplicates and stale UNKNOWNs, one POST per report). The sandbox holds the reports until the test calls the
    returned function, which sends every report queued so far and waits until all were stored.
    """
    with ReceiverServer(mc_conn.reports_url, RECEIVER_SECRET) as receiver:
        sandbox.configure(
            callback_url=f"{receiver.url}/callback/{RECEIVER_SECRET}",
            callback_delay=3600,
            status_mix="DELIVRD=0.9,UNDELIV=0.05,EXPIRED=0.05",
            duplicates=0.05,
            out_of_order=0.05,
            seed=13,
        )

        def deliver_now() -> None:
            done = sandbox.flush_callbacks(timeout=300, expedite=True)
            assert done["flushed"] and done["callbacks_failed"] == 0, done

        yield deliver_now


def _kill_mid_request(
    sandbox: Any, mc_conn: Any, tmp_path: Path, run_id: str, on_uncertain: str
) -> tuple[subprocess.Popen[str], set[str], str]:
    """
    Start the task and SIGKILL it while the sandbox holds its answer to chunk 26 of 50 (the request arrived and
    its recipients were texted). Returns the retry's process (started, waiting for :func:`_go`), chunk 26's
    recipients and the campaign key.
    """
    mc_conn(timeout=120)
    restore = after_accepted_sends(sandbox, {25: {"hang": {"count": 1, "seconds": 20}}})
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
    return retry, uncertain, campaign


@pytest.mark.parametrize("on_uncertain", ["skip", "resend"])
def test_sigkill_mid_request_then_retry(sandbox: Any, mc_conn: Any, tmp_path: Path, on_uncertain: str) -> None:
    """
    The worker is SIGKILLed while MessageCentral holds its answer to chunk 26 of 50 (the request arrived: the
    sandbox logged it). The retry sends chunks 27-50 and never repeats chunks 1-25. With on_uncertain="skip"
    every recipient ends up texted exactly once (chunk 26 reported as skipped); with "resend" chunk 26 is sent
    again, so exactly its 100 recipients are texted twice and everyone else once. (No delivery reports here.)
    """
    retry, uncertain, campaign = _kill_mid_request(sandbox, mc_conn, tmp_path, f"kill-{on_uncertain}", on_uncertain)
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


@pytest.mark.parametrize(
    ("on_uncertain", "reports"), [("skip", "before_retry"), ("skip", "after_retry"), ("resend", "before_retry")]
)
def test_sigkill_mid_request_then_reports_reconcile_the_chunk(
    sandbox: Any, mc_conn: Any, deliver: Callable[[], None], tmp_path: Path, on_uncertain: str, reports: str
) -> None:
    """
    As above, with the sandbox's delivery reports flowing into a receiver on the connection's store (from after
    the kill). Chunk 26's request had gone out, so its reports arrive and reconcile it. Arriving before the retry,
    they make the retry count chunk 26 as accepted (XCom ``reconciled``) and never send it again, even with
    on_uncertain="resend"; arriving after, the retry skips it and the summary counts it once they are stored.
    Either way nobody is texted twice and the campaign's summary counts every one of the 5,000 texted recipients.
    """
    run_id = f"kill-{on_uncertain}-reports-{reports}"
    retry, uncertain, campaign = _kill_mid_request(sandbox, mc_conn, tmp_path, run_id, on_uncertain)
    if reports == "before_retry":
        deliver()
    _go(retry)
    assert retry.wait(timeout=180) == 0, (tmp_path / "try2.out").read_text()[-3000:]
    xcom = _summary(tmp_path, "try2")
    deliver()

    texted = _texted(sandbox)
    assert set(texted) == {msisdn(n) for n in numbers(RECIPIENTS)} and max(texted.values()) == 1
    store = get_store(mc_conn.reports_url)
    summary = store.campaign_summary(campaign)
    units = store.get_units(campaign).values()
    assert summary is not None and summary["recipients"] == len(texted) == RECIPIENTS
    assert summary["final"] == summary["delivered"] + summary["failed"] == RECIPIENTS
    assert Counter(u.state for u in units) == Counter({"accepted": 50})
    assert [u.recipients for u in units if u.reconciled] == [CHUNK]
    recipients = store.campaign_reports(campaign, page_size=1000, search="DELIVRD")["total"]
    assert recipients == summary["delivered"]
    if reports == "before_retry":
        assert (xcom["accepted"], xcom["skipped"], xcom["reconciled"]) == (RECIPIENTS, 0, CHUNK)
    else:
        assert (xcom["accepted"], xcom["skipped"], xcom.get("reconciled")) == (RECIPIENTS - CHUNK, CHUNK, None)
    print(  # the figures of this case (pytest -s shows them)
        f"KILL {on_uncertain}/{reports}: texted {len(texted)} (uncertain chunk {len(uncertain)}), retry XCom "
        f"accepted {xcom['accepted']} skipped {xcom['skipped']} reconciled {xcom.get('reconciled', 0)}; summary "
        f"recipients {summary['recipients']} delivered {summary['delivered']} failed {summary['failed']}"
    )
    count("recipients_reconciled", CHUNK)
    count("texted_recipients_not_counted", len(texted) - summary["recipients"])
    count("recipients_texted_twice_unexpectedly", sum(1 for n in texted.values() if n > 1))
    count("faults_survived")


def test_sigkill_at_a_random_moment_then_retry(
    sandbox: Any, mc_conn: Any, deliver: Callable[[], None], tmp_path: Path
) -> None:
    """
    The worker is SIGKILLed at whatever point it has reached once about half of the 5,000 recipients were
    texted (sends paced by 20 ms of sandbox latency). After the retry (on_uncertain="skip"): nobody was texted
    twice, every recipient outside the one chunk the ledger left 'pending' was texted exactly once, and that
    chunk's recipients at most once. Once the delivery reports (held until after the retry) are stored, the
    campaign's summary counts exactly the texted recipients: the pending chunk too if its request had gone out.
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

    deliver()
    counted = get_store(mc_conn.reports_url).campaign_summary(campaign)
    assert counted is not None and counted["recipients"] == len(texted)
    reconciled = [u.recipients for u in get_store(mc_conn.reports_url).get_units(campaign).values() if u.reconciled]
    print(
        f"KILL random: texted {len(texted)}, retry XCom accepted {summary['accepted']} skipped {summary['skipped']}; "
        f"summary recipients {counted['recipients']} (reconciled {sum(reconciled)})"
    )
    count("recipients_reconciled", sum(reconciled))
    count("texted_recipients_not_counted", len(texted) - counted["recipients"])
    count("faults_survived")
