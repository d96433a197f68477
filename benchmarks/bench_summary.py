"""
Figure 5: sensor poke cost. ``ReportStore.campaign_summary`` (what every sensor poke and trigger poll runs)
on SQLite stores holding 10k, 100k and 1M reports, for a campaign of 100k recipients: median query time,
growth from the smallest to the largest store, and the query plans (they must use the indexes).

The stores are generated once with bulk inserts into the store's own tables (schema created by
``ReportStore``) and cached under ``benchmarks/out/`` (gitignored), so reruns are quick. Store of N reports:
the target campaign of C recipients with min(N, C) of them reported (status copied onto the recipient row,
as ingest does), plus (N - C) / C other fully reported campaigns of C recipients each.
"""

from __future__ import annotations

import random
import statistics
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.common import OUT_DIR, Figure, Stats, log

GENERATOR_VERSION = 1
TARGET = "bench-summary-target"
STATUSES = (("DELIVRD", 0.88), ("UNDELIV", 0.04), ("EXPIRED", 0.03), ("REJECTD", 0.01), ("UNKNOWN", 0.04))
CALLS_PER_REPEAT = 20


def _ts(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")  # how SQLAlchemy stores DateTime in SQLite


def store_path(reports: int, campaign: int) -> Path:
    from airflow_provider_messagecentral.reports.store.tables import LATEST_VERSION

    return OUT_DIR / f"summary-s{LATEST_VERSION}-g{GENERATOR_VERSION}-{reports}-{campaign}.db"


def build_store(path: Path, reports: int, campaign: int) -> None:
    """Generate a store of ``reports`` reports (see the module docstring) with bulk inserts."""
    from airflow_provider_messagecentral.reports.store import ReportStore

    tmp = path.with_suffix(".tmp")
    for leftover in path.parent.glob(tmp.name + "*"):
        leftover.unlink()
    store = ReportStore(f"sqlite:///{tmp}")
    rng = random.Random(reports)
    names = [s for s, _ in STATUSES]
    weights = [w for _, w in STATUSES]
    sent = datetime(2026, 11, 1, 9, 0, 0)
    others = max(0, (reports - campaign + campaign - 1) // campaign)
    keys = [TARGET, *[f"bench-summary-other-{i:03d}" for i in range(others)]]
    raw = store.engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("BEGIN")
        cur.executemany(
            "INSERT INTO mc_campaigns (campaign_key, dag_id, run_id, task_id, map_index, kind, created_at, "
            "first_send_at, last_send_at, window_start, window_end, recipients) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            [
                (
                    key,
                    "bench",
                    f"run-{i}",
                    "send",
                    -1,
                    "bulk",
                    _ts(sent),
                    _ts(sent),
                    _ts(sent),
                    _ts(sent - timedelta(minutes=1)),
                    _ts(sent + timedelta(days=3)),
                    campaign,
                )
                for i, key in enumerate(keys)
            ],
        )
        left = reports
        for c, key in enumerate(keys):
            recipient_rows: list[tuple[Any, ...]] = []
            report_rows: list[tuple[Any, ...]] = []
            for i in range(campaign):
                mobile = f"91{60 + c % 40:02d}{c // 40:02d}{i:06d}"
                unit = f"chunk-{i // 500 + 1}"
                if left > 0:
                    left -= 1
                    status = rng.choices(names, weights)[0]
                    mid = f"m-{c:03d}-{i:07d}"
                    done = sent + timedelta(seconds=rng.randint(1, 600))
                    final = 0 if status == "UNKNOWN" else 1
                    report_rows.append(
                        (mid, status, final, 0, mobile, "91", _ts(sent), _ts(done), _ts(done + timedelta(seconds=1)))
                    )
                    recipient_rows.append(
                        (key, unit, mobile, f"tx-{c}-{i // 500}", _ts(sent), mid, "mobile", _ts(sent), status, 0)
                    )
                else:
                    recipient_rows.append(
                        (key, unit, mobile, f"tx-{c}-{i // 500}", _ts(sent), None, None, None, None, None)
                    )
            cur.executemany(
                "INSERT INTO mc_campaign_recipients (campaign_key, unit_key, mobile, message_id, sent_at, "
                "report_message_id, match_kind, match_date, status, error_code) VALUES (?,?,?,?,?,?,?,?,?,?)",
                recipient_rows,
            )
            cur.executemany(
                "INSERT INTO mc_reports (message_id, status, is_final, error_code, mobile, country_code, "
                "submit_date, done_date, received_at) VALUES (?,?,?,?,?,?,?,?,?)",
                report_rows,
            )
        cur.execute("COMMIT")
        cur.execute("ANALYZE")
        cur.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        cur.close()
    finally:
        raw.close()
        store.dispose()
    tmp.rename(path)
    for leftover in path.parent.glob(tmp.name + "*"):
        leftover.unlink()


def ensure_store(reports: int, campaign: int) -> Path:
    path = store_path(reports, campaign)
    if not path.exists():
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        log(f"figure 5: generating a store of {reports:,} reports (cached as {path.name})")
        start = time.perf_counter()
        build_store(path, reports, campaign)
        log(f"figure 5: generated in {time.perf_counter() - start:.0f}s")
    return path


def query_plans(store: Any) -> list[dict[str, Any]]:
    """The SQL ``campaign_summary`` runs, captured at the cursor, with SQLite's EXPLAIN QUERY PLAN of each."""
    from sqlalchemy import event

    seen: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", capture)
    try:
        store.campaign_summary(TARGET)
    finally:
        event.remove(store.engine, "before_cursor_execute", capture)
    plans = []
    with store.engine.connect() as conn:
        for statement, parameters in seen:
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
            plans.append({"sql": " ".join(statement.split()), "plan": [str(r[-1]) for r in rows]})
    return plans


def time_summary(path: Path, capture_plans: bool) -> tuple[float, dict[str, Any], list[dict[str, Any]]]:
    """One repeat on a fresh store object (engine): the median of CALLS_PER_REPEAT calls after a warm-up call."""
    from airflow_provider_messagecentral.reports.store import ReportStore

    store = ReportStore(f"sqlite:///{path}")
    try:
        summary = store.campaign_summary(TARGET) or {}  # warm: connection, statement cache, page cache
        calls = []
        for _ in range(CALLS_PER_REPEAT):
            start = time.perf_counter()
            store.campaign_summary(TARGET)
            calls.append(time.perf_counter() - start)
        plans = query_plans(store) if capture_plans else []
    finally:
        store.dispose()
    return statistics.median(calls), summary, plans


def run(quick: bool, repeats: int) -> list[Figure]:
    campaign = 5_000 if quick else 100_000
    sizes = [1_000, 5_000, 50_000] if quick else [10_000, 100_000, 1_000_000]
    paths = {size: ensure_store(size, campaign) for size in sizes}
    results: dict[int, list[float]] = {size: [] for size in sizes}
    summaries: dict[int, dict[str, Any]] = {}
    plans: dict[int, list[dict[str, Any]]] = {}
    log(f"figure 5: campaign_summary on {sizes} reports, {repeats} x {CALLS_PER_REPEAT} calls each, sizes interleaved")
    for r in range(repeats):
        for size in sizes:
            median, summaries[size], found = time_summary(paths[size], capture_plans=r == 0)
            results[size].append(median)
            if r == 0:
                plans[size] = found
    small, large = sizes[0], sizes[-1]
    growth = Stats.of([b / a for a, b in zip(results[small], results[large], strict=True)])
    at_large = Stats.of(results[large])
    plan_text = " | ".join(step for p in plans[large] for step in p["plan"])
    uses_index = "mc_recipients_campaign_status_idx" in plan_text and "SCAN mc_campaign_recipients" not in plan_text
    return [
        Figure(
            figure="5",
            name="summary_query",
            title=f"campaign_summary, {large:,} reports, campaign {campaign:,}",
            unit="s",
            value=at_large,
            baseline=Stats.of(results[small]),
            baseline_name=f"same at {small:,} reports",
            ratio=growth,
            ratio_meaning=f"median summary time at {large:,} reports / at {small:,} reports",
            goal="<= 50 ms; growth <= 2x",
            goal_met=at_large.median <= 0.050 and growth.median <= 2.0 and uses_index,
            parameters={"sizes": sizes, "campaign_recipients": campaign, "calls_per_repeat": CALLS_PER_REPEAT},
            details={
                "median_s_by_size": {str(s): Stats.of(v).median for s, v in results.items()},
                "summary_at_largest": summaries[large],
                "query_plans": plans[large],
                "plan_uses_covering_index": uses_index,
                "store_files": {str(s): str(p.relative_to(OUT_DIR.parent.parent)) for s, p in paths.items()},
            },
        )
    ]
