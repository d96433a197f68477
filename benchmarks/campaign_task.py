"""
The file-campaign send task, measured in a worker process: ``MessageCentralFileSendOperator.execute`` from
rows or from a given workbook, against the minimal local API (``benchmarks/mini_api.py``) with a fresh SQLite
report store, and the baselines a user would write by hand.

``python benchmarks/campaign_task.py MODE ROWS PATH API_URL [TIMES]`` prints a JSON list of
``{"seconds", "rss_growth", "rss_start"}`` (one per time; the first one's memory figure is the clean one).

Modes:

- ``task_rows``: the task with ``rows=`` (100,000 dicts, as an upstream task's XCom holds them; the XCom pull
  itself is Airflow's and not measured), default ``rows_per_file`` (two parts, two uploads).
- ``task_workbook``: the task with ``workbook=PATH``, ``rows_per_file`` large enough for one part (a clean
  workbook that needs no rewrite is uploaded as given).
- ``task_workbook_split``: the same workbook in two parts (``rows_per_file`` half the rows: the default 50,000
  at 100,000 rows), so it is rewritten.
- ``pandas``: ``pandas.DataFrame(rows).to_excel(PATH, engine="openpyxl")`` of the same rows.
- ``calamine``: python-calamine reading every row of the workbook at PATH.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="mc-bench-airflow-"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")

from benchmarks.bench_workbook import MESSAGE, PeakRss, make_rows
from benchmarks.common import ROOT, Figure, Stats, bench_env, interleaved, log

MODES = ("task_rows", "task_workbook", "task_workbook_split", "pandas", "calamine")
CUSTOMER_ID = "C-BENCH0000000001"


def write_given_workbook(path: Path, rows: int) -> Path:
    """A clean audience workbook as a user's tool writes it: a header row, then text cells, national numbers."""
    import xlsxwriter

    book = xlsxwriter.Workbook(str(path), {"constant_memory": True})
    sheet = book.add_worksheet()
    header = ["mobile", "var1", "var2", "var3"]
    sheet.write_row(0, 0, header)
    for number, row in enumerate(make_rows(rows), start=1):
        for col, name in enumerate(header):
            sheet.write_string(number, col, str(row[name]))
    book.close()
    return path


def use_connection(api_url: str, reports_url: str) -> None:
    os.environ["AIRFLOW_CONN_MESSAGECENTRAL_DEFAULT"] = json.dumps(
        {
            "conn_type": "messagecentral",
            "host": api_url,
            "login": CUSTOMER_ID,
            "password": "bench-password",
            "extra": {"email": "bench@example.com", "country": "91", "reports_url": reports_url},
        }
    )


def make_task(mode: str, data: Any, path: Path, rows: int = 0) -> Any:
    """The send task's operator (built before the clock: a DAG file builds it, with ``rows=upstream.output``)."""
    from airflow_provider_messagecentral.operators.messagecentral import MessageCentralFileSendOperator

    audience: dict[str, Any] = {"rows": data} if mode == "task_rows" else {"workbook": str(path)}
    if mode == "task_workbook":
        audience["rows_per_file"] = 1_000_000
    elif mode == "task_workbook_split":
        audience["rows_per_file"] = max(1, rows // 2)  # two parts (the default 50,000 at 100,000 rows)
    # TRANSACTIONAL: no send window, so the benchmark runs at any hour.
    return MessageCentralFileSendOperator(task_id="send", message=MESSAGE, message_type="TRANSACTIONAL", **audience)


def run_task(op: Any, index: int) -> dict[str, Any]:
    """One execution of the send task (a new campaign: its own run id); returns its XCom summary."""
    ti = SimpleNamespace(dag_id="bench", run_id=f"run-{index}-{time.time_ns()}", task_id="send", map_index=-1)
    return dict(op.execute({"ti": ti, "params": {}}))


def worker(mode: str, rows: int, path: Path, api_url: str, index: int) -> dict[str, float]:
    """One measurement in this process; the input is prepared before the clock starts."""
    data = make_rows(rows) if mode in ("task_rows", "pandas") else None
    if mode.startswith("task"):
        with tempfile.TemporaryDirectory(prefix="mc-bench-store-") as tmp:
            use_connection(api_url, f"sqlite:///{tmp}/reports.db")
            run_task(make_task("task_rows", make_rows(10), path), -1)  # warm: imports, the store, the token
            op = make_task(mode, data, path, rows)
            with PeakRss() as mem:
                start = time.perf_counter()
                summary = run_task(op, index)
                took = time.perf_counter() - start
        if summary["accepted"] != rows:
            raise RuntimeError(f"{mode}: accepted {summary['accepted']} of {rows}: {summary}")
    elif mode == "pandas":
        import pandas as pd

        with PeakRss() as mem:
            start = time.perf_counter()
            pd.DataFrame(data).to_excel(path, engine="openpyxl", index=False)
            took = time.perf_counter() - start
    elif mode == "calamine":
        from python_calamine import CalamineWorkbook

        with PeakRss() as mem:
            start = time.perf_counter()
            sheet = CalamineWorkbook.from_path(str(path)).get_sheet_by_index(0)
            count = sum(1 for _ in sheet.iter_rows()) - 1
            took = time.perf_counter() - start
        if count != rows:
            raise RuntimeError(f"calamine read {count} rows, expected {rows}")
    else:
        raise ValueError(f"unknown mode {mode!r}; one of {MODES}")
    return {"seconds": took, "rss_growth": float(mem.growth), "rss_start": float(mem.start)}


def measure(mode: str, rows: int, path: Path, api_url: str) -> dict[str, float]:
    """One measurement in a fresh worker process."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "campaign_task.py"), mode, str(rows), str(path), api_url],
        capture_output=True,
        text=True,
        env=bench_env(),
        timeout=900,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"campaign task worker {mode} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1])[0])


def measure_tasks(rows: int, repeats: int, out: Path) -> dict[str, Any]:
    """Every send-task measurement and its baseline, interleaved, each in a fresh process."""
    from benchmarks.bench_hook import MiniApi

    given = write_given_workbook(out / "given.xlsx", rows)
    runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    with MiniApi() as api:

        def timed_run(mode: str, path: Path) -> float:
            result = measure(mode, rows, path, api.url)
            runs[mode].append(result)
            return result["seconds"]

        log(f"figure 3: send task from a given {rows:,}-row workbook vs python-calamine reading it")
        as_given, calamine, _ = interleaved(
            lambda: timed_run("task_workbook", given), lambda: timed_run("calamine", given), repeats
        )
        log("figure 3: the same workbook split into parts of 50,000 (rewritten)")
        split, calamine_2, _ = interleaved(
            lambda: timed_run("task_workbook_split", given), lambda: timed_run("calamine", given), repeats
        )
        log(f"figure 3: send task from {rows:,} rows vs pandas to_excel (fresh processes)")
        from_rows, pandas, _ = interleaved(
            lambda: timed_run("task_rows", given), lambda: timed_run("pandas", out / "pandas-task.xlsx"), repeats
        )
    times = {"as_given": as_given, "calamine": calamine, "split": split, "calamine_2": calamine_2}
    return {**times, "from_rows": from_rows, "pandas": pandas, "runs": runs}


def task_figures(quick: bool, repeats: int, out: Path) -> list[Figure]:
    """Figure 3's send-task rows: a given workbook (as given, and split) against calamine; rows against pandas."""
    rows = 2_000 if quick else 100_000
    m = measure_tasks(rows, repeats, out)
    as_given, calamine, split, calamine_2 = m["as_given"], m["calamine"], m["split"], m["calamine_2"]
    from_rows, pandas, runs = m["from_rows"], m["pandas"], m["runs"]
    per = Stats.of([a / c for a, c in zip(as_given, calamine, strict=True)])
    per_split = Stats.of([a / c for a, c in zip(split, calamine_2, strict=True)])
    speedup = Stats.of([p / o for p, o in zip(pandas, from_rows, strict=True)])
    growth = Stats.of([r["rss_growth"] for r in runs["task_rows"]])
    params = {"rows": rows, "columns": 4, "server": "benchmarks/mini_api.py", "store": "SQLite, fresh per run"}
    return [
        Figure(
            figure="3",
            name="task_given_workbook",
            title=f"file send task, given clean {rows:,}-row workbook (one part: sent as given)",
            value=Stats.of(as_given),
            baseline=Stats.of(calamine),
            baseline_name="python-calamine reading every row",
            ratio=per,
            ratio_meaning="MessageCentralFileSendOperator.execute time / a bare calamine read of the workbook",
            goal="<= 3",
            goal_met=per.median <= 3,
            details={"task_rss_growth_median": Stats.of([r["rss_growth"] for r in runs["task_workbook"]]).median},
            unit="s",
            parameters=params,
        ),
        Figure(
            figure="3",
            name="task_given_workbook_split",
            title="  the same workbook in 2 parts (rows_per_file=50,000 default): rewritten",
            value=Stats.of(split),
            baseline=Stats.of(calamine_2),
            baseline_name="python-calamine reading every row",
            ratio=per_split,
            ratio_meaning="execute time with rows_per_file = half the rows / a bare calamine read",
            goal="-",
            goal_met=None,
            unit="s",
            parameters=params,
        ),
        Figure(
            figure="3",
            name="task_rows",
            title=f"file send task from {rows:,} rows (build, check, 2 uploads, ledger)",
            value=Stats.of(from_rows),
            baseline=Stats.of(pandas),
            baseline_name="pandas DataFrame(rows).to_excel (openpyxl)",
            ratio=speedup,
            ratio_meaning="speed-up: pandas to_excel time / our send task time (XCom pull not included)",
            goal=">= 2x faster",
            goal_met=speedup.median >= 2.0,
            unit="s",
            parameters=params,
        ),
        Figure(
            figure="3",
            name="task_rows_memory",
            title=f"file send task from {rows:,} rows, peak RSS growth",
            unit="B",
            value=growth,
            baseline=Stats.of([r["rss_growth"] for r in runs["pandas"]]),
            baseline_name="pandas to_excel",
            ratio=Stats.of(
                [
                    o["rss_growth"] / max(p["rss_growth"], 1.0)
                    for o, p in zip(runs["task_rows"], runs["pandas"], strict=True)
                ]
            ),
            ratio_meaning="the send task's peak RSS growth / pandas' (fresh processes)",
            goal="<= 50 MB",
            goal_met=growth.median <= 50 * 10**6,
            parameters=params,
        ),
    ]


if __name__ == "__main__":
    _mode, _rows, _path, _url = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
    _times = int(sys.argv[5]) if len(sys.argv) > 5 else 1
    print(json.dumps([worker(_mode, _rows, _path, _url, i) for i in range(_times)]))
