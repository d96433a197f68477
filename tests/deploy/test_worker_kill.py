"""
A 20,000-number bulk send on the deployment whose task process is SIGKILLed mid-campaign, retried by Airflow.

``deploy_bulk_kill`` (tests/deploy/dags) sends 100 numbers per request, ``on_uncertain="skip"``, one retry.
Half-way through, the sandbox is told to hold its answer to the next request (the request arrives and its
numbers are texted, but the worker never hears back): that is the moment the test SIGKILLs the task process
(the pid Airflow records for the running try, a descendant of one of our Celery workers). Airflow sees the
task die, puts it up for retry, and the retry (on whichever worker) consults the send ledger in the report
store: it skips every chunk already accepted, reports the one whose outcome it cannot know as skipped, and
sends the rest. Per the sandbox nobody is texted twice, and every number is accounted for: ledger-accepted +
skipped-uncertain = audience.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from deploy_support import FIGURES, Api
from mc_cluster import Cluster

from airflow_provider_messagecentral.reports.store import get_store

pytestmark = pytest.mark.deploy

DAG_ID, TASK_ID = "deploy_bulk_kill", "send"
RECIPIENTS, CHUNK = 20_000, 100
LATENCY = 0.05  # seconds per sandbox answer: the campaign takes ~10 s, long enough to strike in the middle
HOLD = 25.0  # the held answer (< the connection's 30 s read timeout: a failed kill cannot look like a pass)


def _ancestors(pid: int) -> list[int]:
    chain = []
    while pid > 1:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            break
        pid = int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))
        chain.append(pid)
    return chain


def test_sigkilled_bulk_send_is_retried_by_airflow_and_texts_nobody_twice(cluster: Cluster, api: Api) -> None:
    started = time.monotonic()
    api.wait_for_dags({DAG_ID})
    api.sandbox("POST", "reset")
    # 20,000 delivery reports would only load the api-server: this test is about sends.
    api.sandbox("POST", "config", json={"callback_url": None})
    api.sandbox("POST", "faults", json={"latency": LATENCY})
    try:
        api.unpause(DAG_ID)
        run_id = api.trigger(DAG_ID, {"recipients": RECIPIENTS})

        # Half-way: hold the answer to the next request, and wait until a request is being held.
        deadline = time.monotonic() + 240
        while api.sandbox("GET", "stats")["messages"] < RECIPIENTS // 2:
            assert time.monotonic() < deadline, f"the campaign did not get half-way: {api.sandbox('GET', 'stats')}"
            time.sleep(0.05)
        api.sandbox("POST", "faults", json={"hang": {"count": 1, "seconds": HOLD}})
        while api.sandbox("GET", "faults")["hang"] is not None:
            assert time.monotonic() < deadline, "no request reached the held answer"
            time.sleep(0.05)

        ti = api.task_instance(DAG_ID, run_id, TASK_ID)
        assert ti["state"] == "running" and ti["try_number"] == 1, ti
        pid = ti["pid"]
        worker_pids = {p.pid for p in cluster.state.processes if p.name.startswith("worker")}  # type: ignore[union-attr]
        assert worker_pids & set(_ancestors(pid)), f"pid {pid} is not a task of our Celery workers"
        os.kill(pid, signal.SIGKILL)
        killed_at = api.sandbox("GET", "stats")["messages"]
        api.sandbox("POST", "faults", json={"latency": 0})

        run = api.wait_run(DAG_ID, run_id, timeout=300)
    finally:
        api.sandbox("POST", "faults", json={"latency": 0, "hang": None})
        api.sandbox("POST", "config", json={"callback_url": cluster.callback_url})

    assert run["state"] == "success", run
    ti = api.task_instance(DAG_ID, run_id, TASK_ID)
    assert ti["state"] == "success" and ti["try_number"] == 2, ti  # Airflow retried the killed try
    tries = api.json("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}/taskInstances/{TASK_ID}/tries")
    assert [t["state"] for t in tries["task_instances"]][:1] == ["failed"], tries  # the killed try failed
    hosts = [t["hostname"] for t in tries["task_instances"]] + [ti["hostname"]]

    summary: dict[str, Any] = api.xcom(DAG_ID, run_id, TASK_ID)
    requests = api.sandbox("GET", "requests")
    texted = Counter(m["mobile"] for m in api.sandbox("GET", "messages"))
    everyone = {f"9198{i:08d}" for i in range(RECIPIENTS)}
    held = [r for r in requests if r["hung"]]
    units = Counter(u.state for u in get_store(cluster.reports_url).get_units(summary["campaign"]).values())

    FIGURES["kill"] = {
        "audience": RECIPIENTS,
        "texted_when_killed": killed_at,
        "texted": len(texted),
        "texted_twice": sum(1 for n in texted.values() if n > 1),
        "accepted": summary["accepted"],
        "skipped_uncertain": summary["skipped"],
        "ledger": dict(units),
        "requests": len(requests),
        "hosts_of_tries": hosts,
        "seconds": round(time.monotonic() - started, 1),
    }
    assert max(texted.values()) == 1, "somebody was texted twice"
    assert set(texted) == everyone  # the held chunk was texted too: the worker just never heard back
    assert len(held) == 1 and len(held[0]["recipients"]) == CHUNK
    assert summary["accepted"] + summary["skipped"] == RECIPIENTS
    assert summary["skipped"] == CHUNK  # exactly the chunk whose answer the killed try never saw
    assert units == Counter({"accepted": RECIPIENTS // CHUNK - 1, "pending": 1})
    assert len(requests) == RECIPIENTS // CHUNK  # no chunk was sent twice
