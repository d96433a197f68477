"""
Run the benchmarks, print the table and write ``benchmarks/results.json``.

    python benchmarks/run.py [--quick] [--only NAME ...] [--out benchmarks/results.json] [--repeats N]

Every figure is a ratio against a baseline measured in the same run (medians of >= 5 interleaved repeats,
with their spread). ``--quick`` uses small sizes (CI: under two minutes) and only checks that every
benchmark runs and yields finite ratios; goals are reported, never asserted. The exit status is non-zero
when a benchmark failed or a ratio is missing or not a finite number.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Airflow reads its configuration on first import: isolate it before anything imports it.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="mc-bench-airflow-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")

from benchmarks.common import (  # noqa: E402
    MIN_REPEATS,
    OUT_DIR,
    Figure,
    log,
    machine_facts,
    ratio_ok,
    table,
    write_json,
)

#: Quick mode only checks that everything runs and yields ratios: fewer repeats keep CI under two minutes.
QUICK_REPEATS = 3

#: name -> module; one module per figure, each with ``run(quick, repeats) -> list[Figure]``.
BENCHMARKS = {
    "hook": "benchmarks.bench_hook",
    "bulk": "benchmarks.bench_bulk",
    "workbook": "benchmarks.bench_workbook",
    "ingest": "benchmarks.bench_ingest",
    "ingest_1m": "benchmarks.bench_ingest_1m",
    "summary": "benchmarks.bench_summary",
    "pulled": "benchmarks.bench_pulled",
    "e2e": "benchmarks.bench_e2e",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes; checks that everything runs")
    parser.add_argument("--only", action="append", choices=sorted(BENCHMARKS), help="run only this benchmark")
    parser.add_argument("--out", type=Path, default=None, help="results file (default benchmarks/results.json)")
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help=f"repeats per measurement (full: >= {MIN_REPEATS}, default {MIN_REPEATS}; quick: default {QUICK_REPEATS})",
    )
    args = parser.parse_args(argv)
    if args.repeats is None:
        args.repeats = QUICK_REPEATS if args.quick else MIN_REPEATS
    if args.repeats < (1 if args.quick else MIN_REPEATS):
        parser.error(f"--repeats must be at least {MIN_REPEATS} (1 with --quick)")
    out = args.out
    if out is None:
        # A quick run never overwrites the committed full results.
        out = OUT_DIR / "results-quick.json" if args.quick else ROOT / "benchmarks" / "results.json"
    names = args.only or list(BENCHMARKS)

    started = time.perf_counter()
    figures: list[Figure] = []
    failures: dict[str, str] = {}
    timings: dict[str, float] = {}
    for name in names:
        t0 = time.perf_counter()
        log(f"== {name}")
        try:
            module = importlib.import_module(BENCHMARKS[name])
            got = module.run(quick=args.quick, repeats=args.repeats)
        except Exception:
            failures[name] = traceback.format_exc()
            log(f"!! {name} failed:\n{failures[name]}")
            continue
        finally:
            timings[name] = round(time.perf_counter() - t0, 2)
        if not got:
            failures[name] = "no figure returned"
        for fig in got:
            if not ratio_ok(fig):
                failures[f"{name}:{fig.name}"] = f"ratio missing or not finite: {fig.ratio}"
        figures.extend(got)
        log(f"   {name} took {timings[name]:.1f}s")

    total = time.perf_counter() - started
    print(table(figures))
    if failures:
        print("\nFAILED: " + ", ".join(sorted(failures)))
    print(f"\n{'quick' if args.quick else 'full'} run, {total:.0f}s; results in {out}")
    write_json(
        out,
        figures,
        machine_facts(),
        {
            "mode": "quick" if args.quick else "full",
            "repeats": args.repeats,
            "seconds": round(total, 1),
            "seconds_per_benchmark": timings,
            "failures": failures,
        },
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
