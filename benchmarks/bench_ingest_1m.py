"""
Figure 4, continued: callback ingest on a store that already holds 1,000,000 reports.

The receiver and the load of figure 4 (20,000 reports from 32 clients: 85% new messages matched to
recipients, 10% duplicates, 5% stale) on a store prefilled with 1,000,000 reports matched to a
1,000,000-recipient campaign, against the same load on an empty store, interleaved: reports/s at 1M stored
and its ratio to an empty store show how the cost of ingest grows with the store (index depth, WAL,
cache). Lost reports are counted as in figure 4.

The prefill goes through ``ReportStore.ingest_batch`` in-process (transactions of 5,000 reports). A
separate entry (``--only ingest_1m``), since the prefill takes minutes; ``--quick`` prefills 20,000 and
loads 2,000.
"""

from __future__ import annotations

import json
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from benchmarks.bench_ingest import (
    CONCURRENCY,
    P99_GOAL_MS,
    Server,
    load,
    make_reports,
    prepare_store,
    verify_store,
    warm_up,
)
from benchmarks.common import Figure, Stats, log

PREFILL = 1_000_000
QUICK_PREFILL = 20_000
LOAD = 20_000
QUICK_LOAD = 2_000
CHUNK = 5_000  # reports per prefill transaction
PER_REQUEST = 50  # reports per prefill request (one raw body each)


def prefill(url: str, total: int) -> float:
    """Store ``total`` reports matched to a campaign of ``total`` recipients; returns the seconds it took."""
    from airflow_provider_messagecentral.campaign.keys import make_campaign_key
    from airflow_provider_messagecentral.reports.models import DeliveryReport
    from airflow_provider_messagecentral.reports.store import ReportStore
    from airflow_provider_messagecentral.reports.store.attribution import IngestRequest

    started = time.perf_counter()
    store = ReportStore(url)
    key = make_campaign_key("bench_ingest_1m", "prefill", "send")
    store.ensure_campaign(key, dag_id="bench_ingest_1m", run_id="prefill", task_id="send", kind="bulk")
    submit = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    # The sends first (as in production: reports arrive after their send), then the reports.
    for start in range(0, total, CHUNK):
        store.mark_accepted(
            key,
            f"chunk-{start // CHUNK + 1}",
            transaction_id=f"tx-prefill-{start}",
            verification_id=None,
            response={"responseCode": "200"},
            mobiles=[f"9170{start + i:08d}" for i in range(min(CHUNK, total - start))],
        )
    for start in range(0, total, CHUNK):
        docs = [
            {"messageId": f"pre-{start + i:09d}", "status": "DELIVRD", "errorCode": 0, "mobile": f"9170{start + i:08d}"}
            | {"submitDate": submit, "doneDate": submit}
            for i in range(min(CHUNK, total - start))
        ]
        requests = [
            IngestRequest(
                [DeliveryReport.model_validate(doc) for doc in docs[j : j + PER_REQUEST]],
                [json.dumps(docs[j : j + PER_REQUEST])],
                "127.0.0.1",
            )
            for j in range(0, len(docs), PER_REQUEST)
        ]
        store.ingest_batch(requests)
        if (start // CHUNK) % 40 == 0:
            log(f"figure 4 (1M): prefilled {start + len(docs):,} of {total:,}")
    store.dispose()
    return time.perf_counter() - started


def measure(
    url: str, tag: str, size: int, tmp: Path, mobile_base: int, seed: int
) -> tuple[dict[str, Any], dict[str, int]]:
    """One figure-4 load of ``size`` reports on ``url`` (fresh receiver, warmed): the load and the store check."""
    bodies, expected, mobiles = make_reports(size, tag, seed=seed, mobile_base=mobile_base)
    bodies_file = tmp / f"{tag}.jsonl"
    bodies_file.write_text("\n".join(bodies) + "\n")
    key = prepare_store(url, tag, mobiles)
    with Server("receiver", url) as server:
        warm_up(server.port, tmp, tag)
        result = load(server.port, bodies_file, 900)
    return result, verify_store(url, key, expected, len(bodies))


def backend(name: str, new_url: Any, total: int, size: int, repeats: int, tmp: Path) -> list[Figure]:
    """Interleaved rounds on the prefilled store and on empty stores."""
    full_url = new_url("full")
    seconds = prefill(full_url, total)
    log(f"figure 4 (1M) {name}: {total:,} reports prefilled in {seconds:.0f}s")
    full: list[dict[str, Any]] = []
    empty: list[dict[str, Any]] = []
    checks: list[dict[str, int]] = []
    for i in range(repeats):
        base = 50_000_000 + i * size  # mobiles outside the prefilled campaign
        order = ("empty", "full") if i % 2 == 0 else ("full", "empty")
        for which in order:
            url = full_url if which == "full" else new_url(f"empty{i}")
            result, check = measure(url, f"{which[0]}{i}", size, tmp, base, seed=300 + i)
            (full if which == "full" else empty).append(result)
            checks.append(check)
        at_full, at_empty = full[-1]["rps"], empty[-1]["rps"]
        log(f"figure 4 (1M) {name} #{i + 1}: at {total:,} stored {at_full:.0f}/s, empty {at_empty:.0f}/s")
    lost = sum(c["lost"] + c["wrong_status"] for c in checks)
    non_200 = sum(r["requests"] - r["ok"] for r in full + empty)
    params = {"stored_before": total, "reports": size, "concurrency": CONCURRENCY, "prefill_seconds": round(seconds)}
    return [
        Figure(
            figure="4",
            name=f"ingest_{name}_at_1m",
            title=f"callback ingest, {name}, {size:,} reports on a store holding {total:,}",
            unit="rep/s",
            value=Stats.of([r["rps"] for r in full]),
            baseline=Stats.of([r["rps"] for r in empty]),
            baseline_name="the same load on an empty store",
            ratio=Stats.of([f["rps"] / e["rps"] for f, e in zip(full, empty, strict=True)]),
            ratio_meaning=f"reports/s with {total:,} stored / reports/s on an empty store (cost growth)",
            goal="-",
            goal_met=None,
            parameters=params,
            details={
                "p99_ms_at_1m": Stats.of([r["p99_ms"] for r in full]).median,
                "p99_ms_empty": Stats.of([r["p99_ms"] for r in empty]).median,
                "p99_goal_ms": P99_GOAL_MS,
                "lost_or_wrong": lost,
                "non_200": non_200,
                "store_checks": checks,
            },
        )
    ]


def run(quick: bool, repeats: int) -> list[Figure]:
    from benchmarks.pg import PostgresServer, pg_bin

    total, size = (QUICK_PREFILL, QUICK_LOAD) if quick else (PREFILL, LOAD)
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="mc-bench-ingest-1m-") as tmp_name:
        tmp = Path(tmp_name)
        figures += backend("sqlite", lambda tag: f"sqlite:///{tmp}/reports-{tag}.db", total, size, repeats, tmp)
        pg_context: Any = PostgresServer() if pg_bin() is not None else nullcontext(None)
        with pg_context as pg:
            if pg is None:
                log("figure 4 (1M): PostgreSQL binaries not installed; skipped")
            else:
                figures += backend("postgresql", lambda tag: pg.create_database(), total, size, repeats, tmp)
    return figures
