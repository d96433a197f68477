"""
Pulled delivery reports (issue 17): storing one poll's rows (``ReportStore.store_pulled``, in pages of 500, the
sensor's default) onto a campaign of N recipients, against the baseline of ingesting the same N reports as
callbacks with message ids (``ReportStore.ingest``, same pages), on a fresh store each, SQLite and PostgreSQL.
The ratio is pulled time / ingest time (lower is better); a repeated poll of the same rows (all duplicates) is
reported beside it.

    python -m benchmarks.bench_pulled [--quick] [--repeats N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from datetime import datetime, timedelta
from typing import Any

from benchmarks.common import MIN_REPEATS, Figure, Stats, log

T0 = datetime(2026, 12, 6, 10, 0, 0)
PAGE = 500


def _fresh(url: str, tag: str, total: int) -> tuple[Any, list[str]]:
    from airflow_provider_messagecentral.reports.store import ReportStore

    store = ReportStore(url)
    key = f"bench-pulled-{tag}"
    numbers = [f"91{i:010d}" for i in range(total)]
    store.ensure_campaign(key, dag_id="bench", run_id=key, task_id="send", kind="bulk")
    store.mark_accepted(
        key, "c0", transaction_id=f"tx-{key}", verification_id="v", response={}, mobiles=numbers, sent_at=T0
    )
    return store, numbers


def _ingest(store: Any, numbers: list[str]) -> float:
    from airflow_provider_messagecentral.reports.models import DeliveryReport

    done = T0 + timedelta(seconds=3)
    reports = [
        DeliveryReport(messageId=f"m-{n}", status="DELIVRD", mobile=n, submitDate=T0, doneDate=done) for n in numbers
    ]
    start = time.perf_counter()
    for i in range(0, len(reports), PAGE):
        store.ingest(reports[i : i + PAGE], [])
    return time.perf_counter() - start


def _pulled(store: Any, numbers: list[str]) -> tuple[float, float]:
    from airflow_provider_messagecentral.client.pulled import PulledReport

    done = T0 + timedelta(seconds=3)
    rows = [
        PulledReport(mobile=n, status="DELIVRD", error_code="0", created_at=T0, delivered_at=done, message_body="x")
        for n in numbers
    ]
    times = []
    for _poll in range(2):
        start = time.perf_counter()
        for i in range(0, len(rows), PAGE):
            store.store_pulled(rows[i : i + PAGE])
        times.append(time.perf_counter() - start)
    return times[0], times[1]


def _figures(backend: str, total: int, repeats: int, url_of: Callable[[int], str]) -> list[Figure]:
    ingest, pulled, again = [], [], []
    for i in range(repeats):  # interleaved: baseline, then ours, on fresh stores
        store, numbers = _fresh(url_of(2 * i), f"i{i}", total)
        ingest.append(_ingest(store, numbers))
        store.dispose()
        store, numbers = _fresh(url_of(2 * i + 1), f"p{i}", total)
        first, second = _pulled(store, numbers)
        assert store.campaign_summary(f"bench-pulled-p{i}")["delivered"] == total  # type: ignore[index]
        store.dispose()
        pulled.append(first)
        again.append(second)
    ratio = Stats.of([p / b for p, b in zip(pulled, ingest, strict=True)])
    return [
        Figure(
            figure="pulled",
            name=f"pulled_store_{backend}",
            title=f"store one poll of pulled reports, {backend}",
            unit="s",
            value=Stats.of(pulled),
            baseline=Stats.of(ingest),
            baseline_name="ingest of the same reports as callbacks with ids",
            ratio=ratio,
            ratio_meaning="pulled time / ingest time (lower is better)",
            goal="within 3x of callback ingest",
            goal_met=ratio.median <= 3,
            parameters={"reports": total, "page": PAGE, "repeats": repeats},
            details={
                "pulled_rows_per_s": round(total / Stats.of(pulled).median),
                "ingest_reports_per_s": round(total / Stats.of(ingest).median),
                "repeat_poll_rows_per_s": round(total / Stats.of(again).median),
                "repeat_poll_over_ingest": round(Stats.of(again).median / Stats.of(ingest).median, 3),
            },
        )
    ]


def run(quick: bool, repeats: int) -> list[Figure]:
    from benchmarks.pg import PostgresServer, pg_bin

    total = 500 if quick else 10_000
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="mc-bench-pulled-") as tmp:
        log(f"pulled reports: SQLite, {repeats} x {total:,} rows")
        figures += _figures("sqlite", total, repeats, lambda i: f"sqlite:///{tmp}/r-{i}.db")
    pg_context: Any = PostgresServer() if pg_bin() is not None else nullcontext(None)
    with pg_context as pg:
        if pg is None:
            log("pulled reports: PostgreSQL binaries not installed; skipped")
        else:
            log(f"pulled reports: PostgreSQL, {repeats} x {total:,} rows")
            figures += _figures("postgresql", total, repeats, lambda _i: pg.create_database())
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=MIN_REPEATS)
    args = parser.parse_args()
    for fig in run(args.quick, args.repeats):
        d = fig.details
        assert fig.ratio is not None and fig.baseline is not None
        ratio = f"ratio {fig.ratio.median:.2f} (spread {fig.ratio.spread:.0%})"
        print(f"{fig.name}: {fig.value.median:.3f} s vs ingest {fig.baseline.median:.3f} s -> {ratio}; ", end="")
        rates = (d["pulled_rows_per_s"], d["ingest_reports_per_s"], d["repeat_poll_rows_per_s"])
        print("{:,} rows/s, ingest {:,}/s, repeat poll {:,} rows/s".format(*rates))


if __name__ == "__main__":
    main()
