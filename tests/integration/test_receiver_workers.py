"""
``reports serve --workers N``: several uvicorn worker processes writing one store. Concurrent duplicates and
out-of-order reports of the same messages race each other on different workers: nothing is lost and the final
status wins, on PostgreSQL and on SQLite (WAL + busy_timeout: one writer at a time, across processes too).
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from receiver_process import SECRET, Serve

from airflow_provider_messagecentral.campaign.keys import make_campaign_key
from airflow_provider_messagecentral.reports.store import get_store

pytestmark = pytest.mark.integration

WORKERS = 3
CLIENTS = 16
MESSAGES = 400


def _children(pid: int) -> list[int]:
    """The worker processes of ``pid`` (uvicorn spawns them; multiprocessing's resource tracker is not one)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"resource_tracker" not in cmdline:
            found.append(int(entry.name))
    return found


def _sockets_to(port: int) -> set[str]:
    """Inodes of the TCP sockets connected to 127.0.0.1:``port`` (this host's /proc/net/tcp)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[2].split(":")[1], 16) == port:
            inodes.add(fields[9])
    return inodes


def _uses(pid: int, store: str, pg_port: int | None) -> bool:
    """Whether process ``pid`` holds the store open: the SQLite file, or a connection to PostgreSQL."""
    sockets = _sockets_to(pg_port) if pg_port else set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if (pg_port is None and target == store) or (target.startswith("socket:[") and target[8:-1] in sockets):
            return True
    return False


def _workload(seed: int) -> tuple[list[list[dict[str, Any]]], dict[str, str], list[str]]:
    """
    Per message: an early ``ACCEPTD``, an ``UNKNOWN``, the final report, two duplicates of it and a stale
    ``UNKNOWN`` with an *older* doneDate arriving later — shuffled into bodies of 1-5 reports, so the reports
    of one message race each other on different connections (and workers) in any order.
    """
    rng = random.Random(seed)
    now = datetime.now(timezone.utc).replace(microsecond=0, tzinfo=None)

    def at(seconds: int) -> str:
        return (now + timedelta(seconds=seconds)).strftime("%Y-%m-%d %H:%M:%S")

    final: dict[str, str] = {}
    mobiles: list[str] = []
    reports: list[dict[str, Any]] = []
    for n in range(MESSAGES):
        mid, mobile = f"w-{seed}-{n}", f"9198170{n:05d}"
        final[mid] = rng.choice(("DELIVRD", "DELIVRD", "DELIVRD", "UNDELIV", "EXPIRED"))
        mobiles.append(mobile)
        base = {"messageId": mid, "mobile": mobile, "submitDate": at(1), "errorCode": 0}
        reports += [
            {**base, "status": "ACCEPTD", "doneDate": at(2)},
            {**base, "status": "UNKNOWN", "doneDate": at(3)},
            *[{**base, "status": final[mid], "doneDate": at(10)}] * 3,
            {**base, "status": "UNKNOWN", "doneDate": at(5)},
        ]
    rng.shuffle(reports)
    bodies = []
    while reports:
        size = rng.randint(1, 5)
        bodies.append(reports[:size])
        del reports[:size]
    return bodies, final, mobiles


def _post_all(url: str, bodies: list[list[dict[str, Any]]]) -> tuple[Counter[int], list[float]]:
    """Post every body from CLIENTS threads, each request on a new connection (so every worker gets some)."""
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    lock = threading.Lock()

    def client(part: list[list[dict[str, Any]]]) -> None:
        with httpx.Client(base_url=url, timeout=60, headers={"connection": "close"}) as http:
            for body in part:
                started = time.perf_counter()
                code = http.post(f"/callback/{SECRET}", json=body if len(body) > 1 else body[0]).status_code
                with lock:
                    statuses[code] += 1
                    latencies.append(time.perf_counter() - started)

    threads = [threading.Thread(target=client, args=(bodies[i::CLIENTS],)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses, latencies


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The store the workers write: ``url``, ``args``/``env`` naming it, and what to look for in /proc."""
    if request.param == "sqlite":
        path = tmp_path / "reports.db"
        url = f"sqlite:///{path}"
        conn = {"conn_type": "messagecentral", "host": "http://messagecentral.invalid", "extra": {"reports_url": url}}
        # The store from the connection, as the operators and the sensor see it.
        yield {
            "url": url,
            "args": [],
            "env": {"AIRFLOW_CONN_MESSAGECENTRAL_DEFAULT": json.dumps(conn)},
            "file": str(path),
            "pg_port": None,
        }
    else:
        url = str(request.getfixturevalue("pg_url"))
        pg_port = int(request.getfixturevalue("pg_server")["port"])
        yield {"url": url, "args": ["--store-url", url], "env": {}, "file": "", "pg_port": pg_port}


def test_several_workers_lose_nothing_and_the_final_status_wins(store: dict[str, Any], tmp_path: Path) -> None:
    db = get_store(store["url"])
    bodies, final, mobiles = _workload(seed=13)
    key = make_campaign_key("workers", store["url"][:6], "send")
    db.ensure_campaign(key, dag_id="workers", run_id="run", task_id="send", kind="bulk")
    db.mark_accepted(key, "c0", transaction_id=None, verification_id=None, response={}, mobiles=mobiles)

    serve = Serve(tmp_path, ["--workers", str(WORKERS), "--log-level", "warning", *store["args"]], store["env"])
    try:
        workers = _children(serve.proc.pid)
        assert len(workers) == WORKERS, (workers, serve.output())
        health = httpx.get(f"{serve.url}/health", timeout=5).json()
        started = time.perf_counter()
        statuses, latencies = _post_all(serve.url, bodies)
        elapsed = time.perf_counter() - started
        writers = [pid for pid in workers if _uses(pid, store["file"], store["pg_port"])]
    finally:
        serve.stop()

    latencies.sort()
    figures = {
        "store": store["url"].split(":", 1)[0],
        "workers": WORKERS,
        "workers_that_wrote": len(writers),
        "requests": len(bodies),
        "reports": sum(len(b) for b in bodies),
        "statuses": dict(statuses),
        "seconds": round(elapsed, 2),
        "reports_per_second": round(sum(len(b) for b in bodies) / elapsed),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 1),
    }
    print("multi-worker ingest:", json.dumps(figures))
    assert health["store"] == store["url"]
    assert statuses == Counter({200: len(bodies)}), (statuses, serve.output()[-3000:])
    assert len(writers) == WORKERS, f"only {len(writers)} of {WORKERS} workers wrote: not a multi-worker test"
    lost = [mid for mid in final if db.get_report(mid) is None]
    wrong = {mid: (db.get_report(mid) or {}).get("status") for mid in final if mid not in lost}
    wrong = {mid: status for mid, status in wrong.items() if status != final[mid]}
    assert not lost and not wrong, (len(lost), wrong)
    summary = db.campaign_summary(key)
    assert summary is not None
    delivered = sum(1 for status in final.values() if status == "DELIVRD")
    assert (summary["recipients"], summary["delivered"], summary["pending"]) == (MESSAGES, delivered, 0)
    assert summary["failed"] == MESSAGES - delivered
    assert db.stats()["raw_reports"] == len(bodies)  # every acknowledged body was kept, once
