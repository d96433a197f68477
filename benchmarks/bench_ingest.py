"""
Figure 4: callback ingest. Our receiver (``create_app`` under uvicorn, 1 worker: callbacks validated on the
event loop, stored by the group-commit writer) storing into SQLite — and PostgreSQL when its server binaries
are installed — against a bare FastAPI endpoint that reads and parses the body and stores nothing.

32 concurrent keep-alive clients post 20,000 reports: 85% distinct messages (each matched to a recipient of
a 17,000-recipient campaign), 10% exact duplicates, 5% stale ``UNKNOWN`` reports arriving after the final
status (out of order). Reported: reports/s, p50/p99 latency, and lost reports counted in the store (every
distinct message must be there with its final status).

Load generator: ``benchmarks/loadgen.py`` (asyncio, raw sockets, keep-alive, one prepared body per request)
in its own process. ``ab`` cannot vary the body (every post after the first would be a duplicate); it is
used once against the bare endpoint to show that our generator is not the bottleneck.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
import sys
import tempfile
from contextlib import AbstractContextManager, ExitStack, nullcontext
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psutil
import requests

from benchmarks.common import ROOT, Figure, Stats, bench_env, free_port, log, stop_process, wait_port

SECRET = "bench-callback-secret-0123456789"
CONCURRENCY = 32
#: Goals of figure 4: receiver reports/s / bare endpoint reports/s, per backend; p99 latency.
RATIO_GOALS = {"sqlite": 0.80, "postgresql": 0.60}
P99_GOAL_MS = 50.0
STATUS_MIX = (("DELIVRD", 0.90), ("UNDELIV", 0.05), ("EXPIRED", 0.05))


def make_reports(
    total: int, tag: str, seed: int = 7, mobile_base: int = 0
) -> tuple[list[str], dict[str, str], list[str]]:
    """(bodies in arrival order, messageId -> expected final status, campaign mobiles)."""
    rng = random.Random(seed)
    unique = round(total * 0.85)
    stale = round(total * 0.05)
    dups = total - unique - stale
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    submit = now.strftime("%Y-%m-%d %H:%M:%S")
    done = (now + timedelta(seconds=4)).strftime("%Y-%m-%d %H:%M:%S")
    statuses = [s for s, _ in STATUS_MIX]
    weights = [w for _, w in STATUS_MIX]
    originals: list[dict[str, Any]] = []
    for i in range(unique):
        originals.append(
            {
                "apiKey": None,
                "clientId": None,
                "messageId": f"{tag}-{i:08d}-{rng.getrandbits(64):016x}",
                "status": rng.choices(statuses, weights)[0],
                "errorCode": 0,
                "countryCode": None,
                "mobile": f"9198{mobile_base + i:08d}",
                "submitDate": submit,
                "doneDate": done,
            }
        )
    keyed: list[tuple[float, str]] = [(float(i), json.dumps(doc)) for i, doc in enumerate(originals)]
    for _ in range(dups):
        i = rng.randrange(unique)
        keyed.append((i + rng.uniform(1, 2000), json.dumps(originals[i])))
    for _ in range(stale):
        i = rng.randrange(unique)
        old = {**originals[i], "status": "UNKNOWN", "doneDate": None}
        keyed.append((i + rng.uniform(1, 2000), json.dumps(old)))
    keyed.sort(key=lambda kv: kv[0])
    expected = {doc["messageId"]: doc["status"] for doc in originals}
    return [body for _, body in keyed], expected, [doc["mobile"] for doc in originals]


def prepare_store(url: str, run_id: str, mobiles: list[str]) -> str:
    """Create the schema and a bulk campaign whose recipients the reports match; returns its key."""
    from airflow_provider_messagecentral.campaign.keys import make_campaign_key
    from airflow_provider_messagecentral.reports.store import ReportStore

    store = ReportStore(url)
    key = make_campaign_key("bench_ingest", run_id, "send")
    store.ensure_campaign(key, dag_id="bench_ingest", run_id=run_id, task_id="send", kind="bulk")
    for start in range(0, len(mobiles), 500):
        store.mark_accepted(
            key,
            f"chunk-{start // 500 + 1}",
            transaction_id=f"tx-{run_id}-{start}",
            verification_id=None,
            response={"responseCode": "200"},
            mobiles=mobiles[start : start + 500],
        )
    store.dispose()
    return key


def verify_store(url: str, key: str, expected: dict[str, str], posts: int) -> dict[str, int]:
    """Count what the store holds for this run: lost messages, wrong statuses, raw bodies, matched recipients."""
    from sqlalchemy import func, select

    from airflow_provider_messagecentral.reports.store import ReportStore
    from airflow_provider_messagecentral.reports.store import tables as t

    store = ReportStore(url, migrate=False)
    try:
        with store.engine.connect() as conn:
            tag = next(iter(expected)).split("-", 1)[0]
            rows = dict(
                conn.execute(
                    select(t.reports.c.message_id, t.reports.c.status).where(t.reports.c.message_id.like(f"{tag}-%"))
                ).all()
            )
            matched = conn.execute(
                select(func.count())
                .select_from(t.recipients)
                .where(t.recipients.c.campaign_key == key, t.recipients.c.status.is_not(None))
            ).scalar_one()
            raw = conn.execute(select(func.count()).select_from(t.raw_reports)).scalar_one()
    finally:
        store.dispose()
    lost = sum(1 for mid in expected if mid not in rows)
    wrong = sum(1 for mid, status in expected.items() if mid in rows and rows[mid] != status)
    return {"expected": len(expected), "lost": lost, "wrong_status": wrong, "matched": int(matched), "raw": int(raw)}


class Server(AbstractContextManager["Server"]):
    def __init__(self, kind: str, store_url: str | None = None) -> None:
        self.kind, self.store_url = kind, store_url
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        args = [sys.executable, str(ROOT / "benchmarks" / "servers.py"), self.kind, str(self.port)]
        if self.store_url:
            args.append(self.store_url)
        self.proc = subprocess.Popen(args, env=bench_env(MESSAGECENTRAL_CALLBACK_SECRET=SECRET))
        wait_port(self.port, timeout=60, proc=self.proc)
        with requests.Session() as s:
            s.get(f"http://127.0.0.1:{self.port}/health", timeout=30).raise_for_status()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            stop_process(self.proc)


def load(port: int, bodies_file: Path, max_seconds: float) -> dict[str, Any]:
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "loadgen.py"),
            str(port),
            f"/callback/{SECRET}",
            str(bodies_file),
            str(CONCURRENCY),
            str(max_seconds),
        ],
        capture_output=True,
        text=True,
        timeout=max_seconds + 60,
        env=bench_env(),
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"load generator failed: {proc.stderr[-1500:]}")
    result = dict(json.loads(proc.stdout.strip().splitlines()[-1]))
    if result["timed_out"] or result["client_errors"]:
        raise RuntimeError(f"load generator did not finish cleanly: {result}")
    return result


def load_all_ok(port: int, bodies_file: Path, max_seconds: float) -> dict[str, Any]:
    """:func:`load` whose every answer must be 200 (the bare baseline once answered 422 unread: no baseline)."""
    result = load(port, bodies_file, max_seconds)
    if result["ok"] != result["requests"]:
        raise RuntimeError(f"the bare endpoint answered non-200: {result['statuses']}")
    return result


def ab_check(port: int, body: str, count: int, tmp: Path) -> dict[str, Any] | None:
    """``ab -k -c 32`` posting one fixed body to the bare endpoint (None when ab is not installed)."""
    ab = shutil.which("ab")
    if ab is None:
        return None
    body_file = tmp / "ab-body.json"
    body_file.write_text(body)
    proc = subprocess.run(
        [
            ab,
            "-q",
            "-k",
            "-c",
            str(CONCURRENCY),
            "-n",
            str(count),
            "-s",
            "30",
            "-p",
            str(body_file),
            "-T",
            "application/json",
            f"http://127.0.0.1:{port}/callback/{SECRET}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    rps = re.search(r"Requests per second:\s+([\d.]+)", proc.stdout)
    keep = re.search(r"Keep-Alive requests:\s+(\d+)", proc.stdout)
    failed = re.search(r"Failed requests:\s+(\d+)", proc.stdout)
    return {
        "rps": float(rps.group(1)) if rps else None,
        "keep_alive_requests": int(keep.group(1)) if keep else None,
        "failed": int(failed.group(1)) if failed else None,
        "requests": count,
    }


def warm_up(port: int, tmp: Path, tag: str, count: int = 200) -> None:
    """Reports of messages outside the campaign: threads, connections and imports warmed."""
    bodies, _, _ = make_reports(count, f"warm{tag}", seed=1)
    path = tmp / f"warm-{tag}.jsonl"
    path.write_text("\n".join(bodies) + "\n")
    load(port, path, 60)


def measured_cpu(
    server: Server, measure: Any, bodies_file: Path, max_seconds: float, db_cpu: Any = None
) -> dict[str, Any]:
    """
    ``measure`` (:func:`load`) against ``server``, with the CPU time its process spent per request
    (``cpu_us``) and, given ``db_cpu`` (seconds used so far by the database server's processes), the
    database's (``db_cpu_us``). On a 2-core machine the ratio follows the CPU all of them need per report.
    """
    assert server.proc is not None
    process = psutil.Process(server.proc.pid)
    before, db_before = sum(process.cpu_times()[:2]), db_cpu() if db_cpu else 0.0
    result: dict[str, Any] = measure(server.port, bodies_file, max_seconds)
    result["cpu_us"] = (sum(process.cpu_times()[:2]) - before) / result["requests"] * 1e6
    if db_cpu is not None:
        result["db_cpu_us"] = (db_cpu() - db_before) / result["requests"] * 1e6
    return result


def backend_rounds(
    backend: str, total: int, repeats: int, tmp: Path, new_url: Any, quick: bool, db_cpu: Any = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, int]]]:
    """
    Interleaved rounds: (receiver load results, bare load results, store checks).

    A full run starts both servers afresh on a fresh store for every round; ``quick`` keeps one receiver
    and one bare server for all rounds (one store, a campaign and distinct messages per round).
    """
    ours: list[dict[str, Any]] = []
    bare: list[dict[str, Any]] = []
    checks: list[dict[str, int]] = []
    max_seconds = 60 if quick else 900
    shared_url = new_url(0) if quick else None
    with ExitStack() as stack:
        shared: dict[str, Server] = {}
        if shared_url is not None:
            for kind in ("receiver", "bare"):
                shared[kind] = stack.enter_context(Server(kind, shared_url if kind == "receiver" else None))
                warm_up(shared[kind].port, tmp, f"{backend}{kind}", count=64)
        for i in range(repeats):
            tag = f"r{i}"
            bodies, expected, mobiles = make_reports(total, tag, seed=100 + i, mobile_base=i * total)
            bodies_file = tmp / f"{backend}-{tag}.jsonl"
            bodies_file.write_text("\n".join(bodies) + "\n")
            url = shared_url or new_url(i)
            key = prepare_store(url, f"{backend}-{tag}", mobiles)
            order = ("bare", "receiver") if i % 2 == 0 else ("receiver", "bare")
            for kind in order:
                measure = load if kind == "receiver" else load_all_ok
                if kind in shared:
                    result = measured_cpu(shared[kind], measure, bodies_file, max_seconds, db_cpu)
                else:
                    with Server(kind, url if kind == "receiver" else None) as server:
                        warm_up(server.port, tmp, f"{backend}{kind}{i}")
                        result = measured_cpu(server, measure, bodies_file, max_seconds, db_cpu)
                (ours if kind == "receiver" else bare).append(result)
            checks.append(verify_store(url, key, expected, len(bodies)))
            log(
                f"figure 4 {backend} #{i + 1}: receiver {ours[-1]['rps']:.0f}/s, bare {bare[-1]['rps']:.0f}/s, "
                f"lost {checks[-1]['lost']}, wrong {checks[-1]['wrong_status']}"
            )
    return ours, bare, checks


def figures_for(
    backend: str, total: int, ours: list[dict[str, Any]], bare: list[dict[str, Any]], checks: list[dict[str, int]]
) -> list[Figure]:
    ratio = Stats.of([o["rps"] / b["rps"] for o, b in zip(ours, bare, strict=True)])
    non_200 = sum(o["requests"] - o["ok"] for o in ours)
    lost = sum(c["lost"] + c["wrong_status"] for c in checks)
    expected = sum(c["expected"] for c in checks)
    params = {"reports": total, "concurrency": CONCURRENCY, "duplicates": 0.10, "stale_out_of_order": 0.05}
    return [
        Figure(
            figure="4",
            name=f"ingest_{backend}",
            title=f"callback ingest, {backend}, {total:,} reports, {CONCURRENCY} clients",
            unit="rep/s",
            value=Stats.of([o["rps"] for o in ours]),
            baseline=Stats.of([b["rps"] for b in bare]),
            baseline_name="bare FastAPI, stores nothing",
            ratio=ratio,
            ratio_meaning="receiver reports/s / bare FastAPI endpoint reports/s (same uvicorn, same load)",
            goal=f">= {RATIO_GOALS[backend]:.2f}",
            goal_met=ratio.median >= RATIO_GOALS[backend],
            parameters=params,
            details={
                "receiver_p50_ms": Stats.of([o["p50_ms"] for o in ours]).median,
                "bare_p50_ms": Stats.of([b["p50_ms"] for b in bare]).median,
                # CPU per report (µs, medians): the receiver's process (event loop + writer), the bare
                # endpoint's, and the database server's (PostgreSQL; SQLite runs inside the receiver).
                "receiver_cpu_us": round(Stats.of([o["cpu_us"] for o in ours]).median),
                "bare_cpu_us": round(Stats.of([b["cpu_us"] for b in bare]).median),
                "database_cpu_us": round(Stats.of([o.get("db_cpu_us", 0.0) for o in ours]).median),
                "receiver_non_200": non_200,
                "store_checks": checks,
            },
        ),
        Figure(
            figure="4",
            name=f"ingest_{backend}_p99",
            title=f"callback ingest p99 latency, {backend}",
            unit="ms",
            value=Stats.of([o["p99_ms"] for o in ours]),
            baseline=Stats.of([b["p99_ms"] for b in bare]),
            baseline_name="bare FastAPI",
            ratio=Stats.of([o["p99_ms"] / b["p99_ms"] for o, b in zip(ours, bare, strict=True)]),
            ratio_meaning="receiver p99 latency / bare endpoint p99 latency",
            goal=f"<= {P99_GOAL_MS:.0f} ms",
            goal_met=Stats.of([o["p99_ms"] for o in ours]).median <= P99_GOAL_MS,
            parameters=params,
        ),
        Figure(
            figure="4",
            name=f"ingest_{backend}_lost",
            title=f"lost or overwritten reports, {backend} (store counted)",
            unit="reports",
            value=Stats.of([c["lost"] + c["wrong_status"] for c in checks]),
            baseline=Stats.of([c["expected"] for c in checks]),
            baseline_name="distinct messages posted",
            ratio=Stats.of([(c["expected"] - c["lost"]) / c["expected"] for c in checks]),
            ratio_meaning="distinct messages found in the store with their final status / distinct messages posted",
            goal="0 lost",
            goal_met=lost == 0 and non_200 == 0,
            parameters=params,
            details={"lost_total": lost, "expected_total": expected, "non_200": non_200},
        ),
    ]


def run(quick: bool, repeats: int) -> list[Figure]:
    from benchmarks.pg import PostgresServer, pg_bin

    total = 300 if quick else 20_000
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="mc-bench-ingest-") as tmp_name:
        tmp = Path(tmp_name)
        log(f"figure 4: SQLite, {repeats} x {total:,} reports, receiver vs bare")
        ours, bare, checks = backend_rounds(
            "sqlite", total, repeats, tmp, lambda i: f"sqlite:///{tmp}/reports-{i}.db", quick
        )
        figures += figures_for("sqlite", total, ours, bare, checks)
        # Is the generator the bottleneck? ab (one fixed body) against the bare endpoint, same concurrency.
        ab = None
        with Server("bare") as server:
            body = make_reports(1, "ab")[0][0]
            ab = ab_check(server.port, body, total, tmp)
        figures[0].details["ab_bare"] = ab
        figures[0].details["loadgen_bare_rps_median"] = figures[0].baseline.median if figures[0].baseline else None
        figures[0].details["load_generator"] = "benchmarks/loadgen.py (asyncio + uvloop, raw sockets, keep-alive)"

        pg_context: Any = PostgresServer() if pg_bin() is not None else nullcontext(None)
        with pg_context as pg:
            if pg is None:
                log("figure 4: PostgreSQL binaries not installed; skipped")
            else:
                log(f"figure 4: PostgreSQL, {repeats} x {total:,} reports, receiver vs bare")
                ours, bare, checks = backend_rounds(
                    "postgresql", total, repeats, tmp, lambda i: pg.create_database(), quick, pg.cpu_seconds
                )
                figures += figures_for("postgresql", total, ours, bare, checks)
    return figures
