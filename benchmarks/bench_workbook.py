"""
Figure 3: bulk-file workbooks. 100,000 rows x (number + 3 variables).

- Build: our ``build_workbooks`` (XlsxWriter constant_memory, every row validated) against
  ``pandas.DataFrame(rows).to_excel(engine="openpyxl")``: time ratio (goal: ours >= 2x faster) and peak RSS
  growth (goal <= 50 MB), each run in a fresh subprocess so that memory is measured in isolation.
- Validate: ``check_workbook`` (python-calamine) on the 100k-row workbook (goal <= 1 s) against reading the
  same workbook with openpyxl in read-only mode.
- Growth: a 1,000,000-row build in parts of 50,000 (as the file send operator builds) against 100,000 rows:
  time per row and peak RSS growth.
- The file send task (``benchmarks/campaign_task.py``): from a given workbook against python-calamine reading
  it, and from rows against pandas.

Worker entry (used by the benchmark itself):
``python benchmarks/bench_workbook.py MODE ROWS PATH`` prints ``{"seconds": ..., "rss_growth": ...}``.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import ROOT, Figure, Stats, bench_env, interleaved, log

MESSAGE = "Hello ##var1##, your balance is ##var2## on ##var3##"
MODES = ("ours", "ours_parts", "pandas", "check", "openpyxl_read")


def make_rows(count: int) -> list[dict[str, Any]]:
    """The audience as a user holds it: one dict per recipient (a DB cursor's rows, ``to_dict("records")``)."""
    names = ["Asha", "Ravi", "Meera", "Arjun", "Priya", "Vikram", "Lakshmi", "Rahul"]
    return [
        {
            "mobile": f"98{i:08d}",
            "var1": names[i % len(names)],
            "var2": f"{(i * 37) % 100_000 / 100:.2f}",
            "var3": f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}",
        }
        for i in range(count)
    ]


class PeakRss:
    """Samples this process's RSS every 2 ms in a thread; also reads ru_maxrss (exact peak) at the end."""

    def __init__(self) -> None:
        import psutil

        self._proc = psutil.Process()
        self.start = self._proc.memory_info().rss
        self._maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            time.sleep(0.002)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        maxrss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        if maxrss_after > self._maxrss_before:  # the process's peak was reached during the measured work
            self.peak = max(self.peak, maxrss_after)

    @property
    def growth(self) -> int:
        return max(0, self.peak - self.start)


def worker(mode: str, rows: int, path: Path) -> dict[str, float]:
    """One measurement in this process; the input is prepared before the clock starts."""
    data = make_rows(rows) if mode in ("ours", "ours_parts", "pandas") else None
    if mode.startswith("ours"):
        for old in path.parent.glob(f"{path.stem}-*.xlsx"):
            old.unlink()
    if mode.startswith("ours"):
        from airflow_provider_messagecentral.audience.workbook_build import build_workbooks

        per_file = 1_000_000 if mode == "ours" else 50_000
        with PeakRss() as mem:
            start = time.perf_counter()
            built = build_workbooks(data or [], MESSAGE, path.parent, rows_per_file=per_file, name_prefix=path.stem)
            took = time.perf_counter() - start
        if built.rows != rows:
            raise RuntimeError(f"built {built.rows} rows, expected {rows}")
    elif mode == "pandas":
        import pandas as pd

        with PeakRss() as mem:
            start = time.perf_counter()
            pd.DataFrame(data).to_excel(path, engine="openpyxl", index=False)
            took = time.perf_counter() - start
    elif mode == "check":
        from airflow_provider_messagecentral.audience.workbook_check import check_workbook

        with PeakRss() as mem:
            start = time.perf_counter()
            check = check_workbook(path, MESSAGE)
            took = time.perf_counter() - start
        if check.rows != rows:
            raise RuntimeError(f"checked {check.rows} rows, expected {rows}")
    elif mode == "openpyxl_read":
        import openpyxl

        with PeakRss() as mem:
            start = time.perf_counter()
            book = openpyxl.load_workbook(path, read_only=True)
            count = sum(1 for _ in book.worksheets[0].iter_rows(min_row=2, values_only=True))
            book.close()
            took = time.perf_counter() - start
        if count != rows:
            raise RuntimeError(f"openpyxl read {count} rows, expected {rows}")
    else:
        raise ValueError(f"unknown mode {mode!r}; one of {MODES}")
    return {"seconds": took, "rss_growth": float(mem.growth), "rss_start": float(mem.start)}


def measure(mode: str, rows: int, path: Path, times: int = 1) -> list[dict[str, float]]:
    """Run ``times`` measurements in one fresh subprocess (the first one's memory figure is the clean one)."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_workbook.py"), mode, str(rows), str(path), str(times)],
        capture_output=True,
        text=True,
        env=bench_env(),
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"workbook worker {mode} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return list(json.loads(proc.stdout.strip().splitlines()[-1]))


def build_parts(rows: int, path: Path, runs: dict[str, list[dict[str, float]]], key: str) -> float:
    """A build in parts of 50,000 rows (fresh process); returns seconds per 1,000 rows."""
    result = measure("ours_parts", rows, path)[0]
    runs.setdefault(key, []).append(result)
    return result["seconds"] / rows * 1000


def growth_figures(
    small: int, big: int, small_t: list[float], big_t: list[float], runs: dict[str, Any]
) -> list[Figure]:
    """Per-row time and memory of a ``big`` build against a ``small`` one (both in parts of 50,000)."""
    growth = Stats.of([b / s for b, s in zip(big_t, small_t, strict=True)])
    memory = [r["rss_growth"] for r in runs["big"]]
    return [
        Figure(
            figure="3",
            name="workbook_build_growth",
            title=f"workbook build time per 1,000 rows at {big:,} (parts of 50,000)",
            unit="s",
            value=Stats.of(big_t),
            baseline=Stats.of(small_t),
            baseline_name=f"same at {small:,}",
            ratio=growth,
            ratio_meaning=f"per-1k build time at {big:,} rows / at {small:,} (1.0 = linear)",
            goal="linear: <= 1.20",
            goal_met=growth.median <= 1.20,
            parameters={"rows": [small, big], "rows_per_file": 50_000},
        ),
        Figure(
            figure="3",
            name="workbook_build_memory_growth",
            title=f"workbook build peak RSS growth at {big:,} rows (parts of 50,000)",
            unit="B",
            value=Stats.of(memory),
            baseline=Stats.of([r["rss_growth"] for r in runs["small"]]),
            baseline_name=f"same at {small:,}",
            ratio=Stats.of(
                [b["rss_growth"] / max(s["rss_growth"], 1.0) for b, s in zip(runs["big"], runs["small"], strict=True)]
            ),
            ratio_meaning="peak RSS growth, big build / small (recipients and the duplicate set stay in memory)",
            goal="-",
            goal_met=None,
            parameters={"rows": [small, big], "rows_per_file": 50_000},
        ),
    ]


def measure_builds(quick: bool, repeats: int, rows: int, out: Path, runs: dict[str, Any]) -> list[list[float]]:
    """Build (ours, pandas) and read (check_workbook, openpyxl) times; every measurement's result in ``runs``."""
    if quick:
        # One subprocess per mode doing every repeat: the point is that it runs, not clean memory.
        for mode in ("ours", "pandas"):
            runs[mode] = measure(mode, rows, out / f"{mode}.xlsx", repeats)
        ours_file = next(out.glob("ours-*.xlsx"))
        for mode in ("check", "openpyxl_read"):
            runs[mode] = measure(mode, rows, ours_file, repeats)
        return [[r["seconds"] for r in runs[m]] for m in ("ours", "pandas", "check", "openpyxl_read")]

    def build(mode: str) -> float:
        result = measure(mode, rows, out / f"{mode}.xlsx")[0]
        runs[mode].append(result)
        return float(result["seconds"])

    log(f"figure 3: build {rows:,} rows, ours vs pandas/openpyxl, {repeats} repeats (fresh subprocesses)")
    ours_t, pandas_t, _ = interleaved(lambda: build("ours"), lambda: build("pandas"), repeats)
    ours_file = next(out.glob("ours-*.xlsx"))

    def read(mode: str) -> float:
        result = measure(mode, rows, ours_file)[0]
        runs[mode].append(result)
        return float(result["seconds"])

    log(f"figure 3: validate {rows:,} rows, check_workbook vs openpyxl read-only")
    check_t, openpyxl_t, _ = interleaved(lambda: read("check"), lambda: read("openpyxl_read"), repeats)
    return [ours_t, pandas_t, check_t, openpyxl_t]


def growth_and_tasks(quick: bool, repeats: int, rows: int, out: Path, runs: dict[str, Any]) -> list[Figure]:
    """The 1M-row growth figures and the send-task figures (``benchmarks/campaign_task.py``)."""
    from benchmarks.campaign_task import task_figures

    big = 20_000 if quick else 1_000_000
    log(f"figure 3: build {big:,} rows in parts of 50,000 vs {rows:,} (growth)")
    grow_small, grow_big, _ = interleaved(
        lambda: build_parts(rows, out / "small.xlsx", runs, "small"),
        lambda: build_parts(big, out / "big.xlsx", runs, "big"),
        1 if quick else repeats,
    )
    return growth_figures(rows, big, grow_small, grow_big, runs) + task_figures(quick, repeats, out)


def run(quick: bool, repeats: int) -> list[Figure]:
    rows = 2_000 if quick else 100_000
    with tempfile.TemporaryDirectory(prefix="mc-bench-xlsx-") as tmp:
        out = Path(tmp)
        runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
        ours_t, pandas_t, check_t, openpyxl_t = measure_builds(quick, repeats, rows, out, runs)
        ours_file = next(out.glob("ours-*.xlsx"))
        sizes = {"ours_bytes": ours_file.stat().st_size, "pandas_bytes": (out / "pandas.xlsx").stat().st_size}
        extra = growth_and_tasks(quick, repeats, rows, out, runs)

    speedup = Stats.of([p / o for p, o in zip(pandas_t, ours_t, strict=True)])
    ours_mem = Stats.of([r["rss_growth"] for r in runs["ours"]])
    pandas_mem = Stats.of([r["rss_growth"] for r in runs["pandas"]])
    check_stats = Stats.of(check_t)
    limit_mem = 50 * 10**6
    figures = [
        Figure(
            figure="3",
            name="workbook_build_time",
            title=f"workbook build, {rows:,} rows x 4 columns",
            unit="s",
            value=Stats.of(ours_t),
            baseline=Stats.of(pandas_t),
            baseline_name="pandas to_excel(openpyxl)",
            ratio=speedup,
            ratio_meaning="speed-up: pandas time / our build_workbooks time (each row validated by ours)",
            goal=">= 2x faster",
            goal_met=speedup.median >= 2.0,
            parameters={"rows": rows, "columns": 4, "message": MESSAGE},
            details=sizes,
        ),
        Figure(
            figure="3",
            name="workbook_build_memory",
            title=f"workbook build peak RSS growth, {rows:,} rows",
            unit="B",
            value=ours_mem,
            baseline=pandas_mem,
            baseline_name="pandas to_excel(openpyxl)",
            ratio=Stats.of(
                [o["rss_growth"] / max(p["rss_growth"], 1.0) for o, p in zip(runs["ours"], runs["pandas"], strict=True)]
            ),
            ratio_meaning="our peak RSS growth / pandas' (measured in a fresh subprocess each)",
            goal="<= 50 MB",
            goal_met=ours_mem.median <= limit_mem,
            parameters={"rows": rows, "how": "psutil RSS sampled every 2 ms + ru_maxrss, minus RSS before"},
        ),
        Figure(
            figure="3",
            name="workbook_check",
            title=f"workbook validation, {rows:,} rows",
            unit="s",
            value=check_stats,
            baseline=Stats.of(openpyxl_t),
            baseline_name="openpyxl read-only",
            ratio=Stats.of([c / o for c, o in zip(check_t, openpyxl_t, strict=True)]),
            ratio_meaning="check_workbook time / reading the rows with openpyxl read-only",
            goal="<= 1 s",
            goal_met=check_stats.median <= 1.0,
            parameters={"rows": rows},
            details={"check_rss_growth_median": Stats.of([r["rss_growth"] for r in runs["check"]]).median},
        ),
    ]
    return figures + extra


if __name__ == "__main__":
    _mode, _rows, _path, _times = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    print(json.dumps([worker(_mode, _rows, _path) for _ in range(_times)]))
