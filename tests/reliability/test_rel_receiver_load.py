"""
The receiver under load and across a crash: 64,000 reports from 32 concurrent clients while a sensor-like
poller reads the campaign summary, and a receiver SIGKILLed mid-load then restarted on the same store.

The receiver runs as its own process (``python -m airflow_provider_messagecentral.reports serve``), as in
production, so the clients, the poller and the server do not share one interpreter.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import free_port, wait_until
from rel_support import RECEIVER_SECRET, count, kill

from airflow_provider_messagecentral.campaign.keys import make_campaign_key
from airflow_provider_messagecentral.reports.store import ReportStore, get_store

pytestmark = pytest.mark.reliability

CLIENTS = 32
REPORTS_PER_CLIENT = 2_000
BATCH = 50  # reports per request: the receiver accepts JSON arrays
TRANSPORT_RETRIES = 2
TRANSPORT_RETRY = -1  # keys of the retry counts in the status counter
UNAVAILABLE_RETRY = -503
FINALS = ("DELIVRD", "DELIVRD", "DELIVRD", "UNDELIV", "EXPIRED", "REJECTD")


class Receiver:
    """The receiver CLI as a subprocess on a fixed port (so a restart keeps the URL)."""

    def __init__(self, store_url: str, workdir: Path) -> None:
        self.store_url = store_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.outputs: list[Path] = []

    def start(self) -> None:
        out = self.workdir / f"receiver-{len(self.outputs)}.log"
        self.outputs.append(out)
        with out.open("wb") as handle:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "airflow_provider_messagecentral.reports",
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--store-url",
                    self.store_url,
                    "--log-level",
                    "warning",
                ],
                stdout=handle,
                stderr=subprocess.STDOUT,
                env={**os.environ, "MESSAGECENTRAL_CALLBACK_SECRET": RECEIVER_SECRET},
            )

        def healthy() -> bool:
            assert self.proc is not None and self.proc.poll() is None, self.output()
            try:
                return httpx.get(f"{self.url}/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        assert wait_until(healthy, timeout=60, interval=0.1), self.output()

    def kill(self) -> None:
        if self.proc is not None:
            kill(self.proc)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        return "\n".join(p.read_text("utf-8", "replace") for p in self.outputs if p.exists())


def _campaign(store: ReportStore, mobiles: list[str]) -> str:
    key = make_campaign_key("rel_load", "run", "send")
    store.ensure_campaign(key, dag_id="rel_load", run_id="run", task_id="send", kind="bulk")
    for start in range(0, len(mobiles), 5_000):
        part = mobiles[start : start + 5_000]
        store.mark_accepted(key, f"unit-{start}", transaction_id=None, verification_id=None, response={}, mobiles=part)
    return key


def _workload(seed: int) -> tuple[list[list[dict[str, Any]]], dict[str, str], dict[str, str]]:
    """
    64,000 reports for 25,600 messages: each message's final report, a stale ``UNKNOWN`` (earlier doneDate)
    and, for half of them, a duplicate of the final one — shuffled across the 32 clients, so the reports of
    one message race each other on different connections and arrive in any order.
    """
    rng = random.Random(seed)
    messages = CLIENTS * REPORTS_PER_CLIENT * 2 // 5
    now = datetime.now(timezone.utc).replace(microsecond=0, tzinfo=None)
    submit = (now + timedelta(seconds=5)).strftime("%Y-%m-%d %H:%M:%S")
    early = (now + timedelta(seconds=10)).strftime("%Y-%m-%d %H:%M:%S")
    late = (now + timedelta(seconds=20)).strftime("%Y-%m-%d %H:%M:%S")
    final: dict[str, str] = {}
    mobile: dict[str, str] = {}
    reports: list[dict[str, Any]] = []
    for i in range(messages):
        mid = f"load-{seed}-{i:06d}"
        final[mid] = rng.choice(FINALS)
        mobile[mid] = f"9199{i:08d}"
        base = {"messageId": mid, "mobile": mobile[mid], "submitDate": submit, "apiKey": None, "clientId": None}
        reports.append(
            {**base, "status": final[mid], "errorCode": 0 if final[mid] == "DELIVRD" else 1, "doneDate": late}
        )
        reports.append({**base, "status": "UNKNOWN", "errorCode": 0, "doneDate": early})
        if i % 2 == 0:
            reports.append(
                {**base, "status": final[mid], "errorCode": 0 if final[mid] == "DELIVRD" else 1, "doneDate": late}
            )
    assert len(reports) == CLIENTS * REPORTS_PER_CLIENT
    rng.shuffle(reports)
    per_client = [reports[c * REPORTS_PER_CLIENT : (c + 1) * REPORTS_PER_CLIENT] for c in range(CLIENTS)]
    return per_client, final, mobile


async def _send_all(url: str, per_client: list[list[dict[str, Any]]]) -> Counter[int]:
    statuses: Counter[int] = Counter()
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:

        async def one_client(reports: list[dict[str, Any]]) -> None:
            for start in range(0, len(reports), BATCH):
                for attempt in range(TRANSPORT_RETRIES + 1):
                    try:
                        response = await client.post(
                            f"/callback/{RECEIVER_SECRET}", json=reports[start : start + BATCH]
                        )
                    except (httpx.ReadError, httpx.RemoteProtocolError):
                        # The connection closed without an answer: a sender retries (the body is idempotent).
                        if attempt == TRANSPORT_RETRIES:
                            raise
                        statuses[TRANSPORT_RETRY] += 1
                        continue
                    if response.status_code != 503 or attempt == TRANSPORT_RETRIES:
                        break
                    statuses[UNAVAILABLE_RETRY] += 1  # a sender retries a 503 as well
                statuses[response.status_code] += 1

        await asyncio.gather(*(one_client(r) for r in per_client))
    return statuses


class Poller(threading.Thread):
    """A sensor-like reader: ``campaign_summary`` in a loop through the store API, as the sensor reads it."""

    def __init__(self, store: ReportStore, campaign: str) -> None:
        super().__init__(daemon=True)
        self.store, self.campaign = store, campaign
        self.stop = threading.Event()
        self.polls = 0
        self.errors: list[str] = []
        self.finals: list[int] = []

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                summary = self.store.campaign_summary(self.campaign)
                assert summary is not None
                self.finals.append(summary["final"])
                self.polls += 1
            except Exception as err:
                self.errors.append(f"{type(err).__name__}: {err}")
            time.sleep(0.02)


class LoadRun:
    """What one load run left behind, for the assertions of several tests."""

    def __init__(self, backend: str, store_url: str, workdir: Path) -> None:
        self.backend = backend
        self.receiver = Receiver(store_url, workdir)
        self.per_client, self.final, self.mobiles = _workload(seed=7)
        self.store = get_store(store_url)
        self.campaign = _campaign(self.store, sorted(self.mobiles.values()))
        self.poller = Poller(self.store, self.campaign)
        self.statuses: Counter[int] = Counter()

    def run(self) -> None:
        self.receiver.start()
        self.poller.start()
        try:
            self.statuses = asyncio.run(_send_all(self.receiver.url, self.per_client))
        except httpx.HTTPError as err:
            proc = self.receiver.proc
            raise AssertionError(
                f"{type(err).__name__} from the receiver (exit code {proc and proc.poll()}): "
                f"{self.receiver.output()[-3000:]}"
            ) from err
        finally:
            self.poller.stop.set()
            self.poller.join(30)
            self.receiver.stop()
        count("reports_sent", CLIENTS * REPORTS_PER_CLIENT)


def _module_pg_database(pg_server: dict[str, Any]) -> str:
    import psycopg

    name = f"rel_load_{os.getpid()}_{int(time.time() * 1000) % 10**8}"
    dsn = f"host={pg_server['host']} port={pg_server['port']} user=postgres dbname=postgres"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql+psycopg://postgres@{pg_server['host']}:{pg_server['port']}/{name}"


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def load_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> LoadRun:
    """One load run per backend (SQLite, PostgreSQL), shared by the tests that check what it left."""
    workdir = tmp_path_factory.mktemp(f"load-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite:///{workdir / 'load.db'}"
    else:
        url = _module_pg_database(request.getfixturevalue("pg_server"))
    run = LoadRun(request.param, url, workdir)
    run.run()
    return run


def test_64000_reports_from_32_clients_nothing_lost_final_status_wins(load_run: LoadRun) -> None:
    """
    32 concurrent clients post 2,000 reports each (64,000; as arrays of 50 per request, 1,280 requests, to fit
    the time budget on 2 cores) with duplicates and stale out-of-order ``UNKNOWN`` reports, while a
    sensor-like poller reads the campaign summary: every request is answered 200 in the end (a request whose
    connection closed without an answer, or that got a 503, is sent again, as MessageCentral does, and counted;
    on SQLite no 503 is allowed at all) (a locked SQLite would
    surface as 503), the store holds every message with its final status (0 lost; duplicates and stale
    reports never win), every request body is in the raw audit table, the poller never fails, and
    "database is locked" never appears in the receiver's output.
    """
    requests_made = CLIENTS * REPORTS_PER_CLIENT // BATCH
    statuses = Counter(load_run.statuses)
    retried = statuses.pop(TRANSPORT_RETRY, 0)
    unavailable = statuses.pop(UNAVAILABLE_RETRY, 0)
    count("load_transport_retries", retried)
    count("load_503_retries", unavailable)
    assert statuses == Counter({200: requests_made}), (load_run.statuses, load_run.receiver.output()[-2000:])
    assert retried <= CLIENTS, f"{retried} requests lost their connection without an answer"
    if load_run.backend == "sqlite":
        assert unavailable == 0, load_run.receiver.output()[-2000:]
    # PostgreSQL: a 503 here would be an ingest transaction that failed all its attempts (see
    # test_overlapping_batches_from_many_senders_are_all_stored); the sender's retry then stores the batch.
    store, final = load_run.store, load_run.final
    stats = store.stats()
    assert requests_made <= stats["raw_reports"] <= requests_made + retried
    assert stats["reports"] == len(final)
    stored = _statuses(store)
    lost = [mid for mid in final if mid not in stored]
    count("reports_stored", len(stored))
    count("reports_lost", len(lost))
    assert not lost, f"{len(lost)} messages lost, e.g. {lost[:3]}"
    wrong = {mid: (stored[mid], want) for mid, want in final.items() if stored[mid] != want}
    assert not wrong, f"{len(wrong)} messages lost their final status, e.g. {list(wrong.items())[:3]}"
    assert load_run.poller.errors == [] and load_run.poller.polls > 0
    assert "database is locked" not in load_run.receiver.output()
    assert "Traceback" not in load_run.receiver.output()


def test_campaign_summary_under_load_counts_every_recipient_final(load_run: LoadRun) -> None:
    """
    After the load, the campaign summary the sensor reads agrees with the stored reports: every recipient
    final, none pending, counts by status equal to the final statuses sent; and while the load ran the number
    of final recipients the poller saw never went down (a final status is never replaced by UNKNOWN).
    """
    summary = load_run.store.campaign_summary(load_run.campaign)
    assert summary is not None
    final = load_run.final
    assert summary["by_status"] == dict(sorted(Counter(final.values()).items()))
    assert summary["recipients"] == summary["final"] == len(final) and summary["pending"] == 0
    assert load_run.poller.finals == sorted(load_run.poller.finals)


def _statuses(store: ReportStore) -> dict[str, str]:
    from sqlalchemy import select

    from airflow_provider_messagecentral.reports.store import tables as t

    with store.engine.connect() as conn:
        return dict(conn.execute(select(t.reports.c.message_id, t.reports.c.status)).all())  # type: ignore[arg-type]


def test_receiver_killed_mid_load_keeps_every_acknowledged_report(tmp_path: Path) -> None:
    """
    Clients post reports while the receiver is SIGKILLed and then restarted on the same SQLite store: every
    report acknowledged with 200 before the kill is in the store afterwards (commit before acknowledging);
    reports whose request failed during the outage are sent again after the restart, as MessageCentral
    retries, and are stored once.
    """
    server = Receiver(f"sqlite:///{tmp_path / 'restart.db'}", tmp_path)
    server.start()
    clients, batches, size = 8, 60, 20
    acked: set[str] = set()
    acked_before_kill: set[str] = set()
    lock = threading.Lock()
    killed = threading.Event()
    failures = Counter[str]()

    def client(c: int) -> None:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for b in range(batches):
                ids = [f"restart-{c}-{b}-{i}" for i in range(size)]
                body = [{"messageId": mid, "status": "DELIVRD", "mobile": "919816111111"} for mid in ids]
                while True:
                    try:
                        response = http.post(f"/callback/{RECEIVER_SECRET}", json=body)
                    except httpx.HTTPError as err:
                        with lock:
                            failures[type(err).__name__] += 1
                        time.sleep(0.05)
                        continue
                    if response.status_code == 200:
                        with lock:
                            acked.update(ids)
                            if not killed.is_set():
                                acked_before_kill.update(ids)
                        break
                    with lock:
                        failures[str(response.status_code)] += 1
                    time.sleep(0.05)

    threads = [threading.Thread(target=client, args=(c,), daemon=True) for c in range(clients)]
    for thread in threads:
        thread.start()
    try:
        assert wait_until(lambda: len(acked) >= clients * batches * size // 3, timeout=120)
        with lock:
            killed.set()
            snapshot = set(acked_before_kill)
        server.kill()
        count("faults_injected")
        server.start()
        for thread in threads:
            thread.join(180)
        assert not any(t.is_alive() for t in threads)
    finally:
        server.stop()
    store = ReportStore(server.store_url)
    try:
        stored = set(_statuses(store))
    finally:
        store.dispose()
    total = clients * batches * size
    count("reports_sent", total)
    count("reports_stored", len(stored))
    missing_acked = snapshot - stored
    count("reports_lost", len(missing_acked))
    assert not missing_acked, f"{len(missing_acked)} reports acknowledged before the kill are gone"
    assert len(snapshot) >= total // 3 and acked == stored and len(stored) == total
    assert sum(failures.values()) > 0, "the kill interrupted no request: it did not happen mid-load"
    count("faults_survived")


ROUNDS, SENDERS = 3, 8


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_overlapping_batches_from_many_senders_are_all_stored(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """
    8 senders post the same 200 messages at once, each in its own order and with its own mix of UNKNOWN and
    final reports (MessageCentral retries and duplicates do exactly this), for 3 rounds: every request is
    answered 200 (no deadlock or lock timeout surfaces as a 503) and every message ends with its final status.
    """
    url = f"sqlite:///{tmp_path / 'overlap.db'}" if backend == "sqlite" else str(request.getfixturevalue("pg_url"))
    server = Receiver(url, tmp_path)
    server.start()
    rng = random.Random(3)
    statuses: Counter[int] = Counter()
    try:

        async def rounds() -> None:
            limits = httpx.Limits(max_connections=SENDERS, max_keepalive_connections=SENDERS)
            async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=120) as client:
                for r in range(ROUNDS):
                    ids = [f"overlap-{r}-{i}" for i in range(200)]
                    bodies = []
                    for _ in range(SENDERS):
                        order = ids[:]
                        rng.shuffle(order)
                        bodies.append(
                            [
                                {
                                    "messageId": mid,
                                    "mobile": "919816111111",
                                    "status": rng.choice(("UNKNOWN", "DELIVRD")),
                                    "submitDate": "2024-01-01 10:00:00",
                                    "doneDate": f"2024-01-01 10:{rng.randrange(60):02d}:00",
                                }
                                for mid in order
                            ]
                        )
                    responses = await asyncio.gather(
                        *(client.post(f"/callback/{RECEIVER_SECRET}", json=b) for b in bodies)
                    )
                    statuses.update(resp.status_code for resp in responses)

        asyncio.run(rounds())
    finally:
        server.stop()
    count("reports_sent", ROUNDS * SENDERS * 200)
    assert statuses == Counter({200: ROUNDS * SENDERS}), (statuses, server.output()[-1500:])
    store = ReportStore(url)
    try:
        stored = _statuses(store)
    finally:
        store.dispose()
    assert len(stored) == ROUNDS * 200
