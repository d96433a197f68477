"""
Group commit on PostgreSQL across processes: two receivers (two writers) ingest the same messages at once,
with duplicates and out-of-order reports; the final status wins, nothing acknowledged is lost, and every
report is counted once (stored, duplicate or stale) by the receiver that answered it.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from helpers import REPORT_T0, free_port, report_time, wait_until

from airflow_provider_messagecentral.campaign.keys import make_campaign_key
from airflow_provider_messagecentral.reports.store import ReportStore

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

SECRET = "pg-batching-secret-0123456789"
MESSAGES = 300
FINALS = ("DELIVRD", "UNDELIV", "EXPIRED")


@pytest.fixture
def receivers(pg_url: str) -> Iterator[list[str]]:
    """Two receiver processes (``reports serve``) on one PostgreSQL store."""
    ReportStore(pg_url).dispose()  # schema created once, before both start
    procs: list[subprocess.Popen[bytes]] = []
    urls: list[str] = []
    for _ in range(2):
        port = free_port()
        command = [sys.executable, "-m", "airflow_provider_messagecentral.reports", "serve", "--host", "127.0.0.1"]
        command += ["--port", str(port), "--store-url", pg_url, "--log-level", "warning"]
        procs.append(subprocess.Popen(command, env={**os.environ, "MESSAGECENTRAL_CALLBACK_SECRET": SECRET}))
        urls.append(f"http://127.0.0.1:{port}")

    def up(url: str) -> bool:
        try:
            return requests.get(f"{url}/health", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    try:
        assert all(wait_until(lambda u=u: up(u), timeout=90) for u in urls)
        yield urls
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(30)


def _workload(seed: int) -> tuple[list[list[dict[str, Any]]], dict[str, str]]:
    """Bodies (1-5 reports each): per message an UNKNOWN, its final status, and copies of both, shuffled."""
    rng = random.Random(seed)
    reports: list[dict[str, Any]] = []
    final: dict[str, str] = {}
    for i in range(MESSAGES):
        mid, mobile = f"pg-{i:04d}", f"9197{i:08d}"
        final[mid] = rng.choice(FINALS)
        last = {"messageId": mid, "status": final[mid], "mobile": mobile, "doneDate": report_time(5)}
        first = {"messageId": mid, "status": "UNKNOWN", "mobile": mobile, "doneDate": report_time(1)}
        reports += [first, last] + [dict(rng.choice([first, last])) for _ in range(rng.randint(1, 3))]
    rng.shuffle(reports)
    bodies: list[list[dict[str, Any]]] = []
    while reports:
        size = rng.randint(1, 5)
        bodies.append(reports[:size])
        reports = reports[size:]
    return bodies, final


def test_two_receivers_on_one_postgresql_store_keep_the_final_status(pg_url: str, receivers: list[str]) -> None:
    store = ReportStore(pg_url)
    key = make_campaign_key("dag", "run", "send")
    store.ensure_campaign(key, dag_id="dag", run_id="run", task_id="send", kind="bulk")
    store.mark_accepted(
        key,
        "u",
        transaction_id=None,
        verification_id=None,
        response={},
        mobiles=[f"9197{i:08d}" for i in range(MESSAGES)],
        sent_at=REPORT_T0,
    )
    bodies, final = _workload(11)
    answers: list[dict[str, int]] = []
    failures: list[str] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        with requests.Session() as session:
            for i in range(n, len(bodies), 16):
                url = receivers[i % 2]  # the same messages reach both receivers
                got = session.post(f"{url}/callback/{SECRET}", json=bodies[i], timeout=60)
                with lock:
                    if got.status_code == 200:
                        answers.append(got.json())
                    else:
                        failures.append(f"{got.status_code} {got.text[:200]}")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    try:
        assert not failures, failures[:5]
        assert len(answers) == len(bodies)
        posted = sum(len(b) for b in bodies)
        assert sum(sum(a.values()) for a in answers) == posted  # every report counted once
        stored = {mid: (store.get_report(mid) or {}).get("status") for mid in final}
        assert stored == final  # nothing lost, the final status won everywhere
        summary = store.campaign_summary(key)
        assert summary is not None
        assert summary["by_status"] == {s: list(final.values()).count(s) for s in set(final.values())}
        assert store.stats()["raw_reports"] == len(bodies)
    finally:
        store.dispose()
