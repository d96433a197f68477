"""Shared pieces of the benchmarks: repeats, medians and spreads, machine facts, the table and the JSON file."""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "benchmarks" / "out"
MIN_REPEATS = 5

#: Distributions whose versions go into results.json.
PACKAGES = (
    "airflow-provider-messagecentral",
    "apache-airflow",
    "requests",
    "urllib3",
    "phonenumbers",
    "XlsxWriter",
    "python-calamine",
    "openpyxl",
    "lxml",
    "pandas",
    "SQLAlchemy",
    "fastapi",
    "starlette",
    "uvicorn",
    "uvloop",
    "httptools",
    "pydantic",
    "psycopg",
)


@dataclass
class Stats:
    """Median and spread of repeated measurements (``spread`` = (max - min) / median)."""

    median: float
    min: float
    max: float
    spread: float
    n: int
    samples: list[float] = field(default_factory=list)

    @classmethod
    def of(cls, samples: Sequence[float]) -> Stats:
        values = [float(v) for v in samples]
        if not values:
            raise ValueError("no samples")
        med = statistics.median(values)
        width = max(values) - min(values)
        spread = width / med if med else (0.0 if width == 0 else math.inf)
        return cls(med, min(values), max(values), spread, len(values), [round(v, 9) for v in values])


@dataclass
class Figure:
    """One row of the table: our value, the baseline's, and their ratio (all as medians of repeats)."""

    figure: str
    name: str
    title: str
    unit: str
    value: Stats
    baseline: Stats | None
    baseline_name: str
    ratio: Stats | None
    ratio_meaning: str
    goal: str
    goal_met: bool | None
    parameters: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def ratio_ok(fig: Figure) -> bool:
    """A figure with a ratio whose median is a finite number."""
    return fig.ratio is not None and math.isfinite(fig.ratio.median)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Wall time of one call (perf_counter) and its result."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def interleaved(
    ours: Callable[[], float], baseline: Callable[[], float], repeats: int
) -> tuple[list[float], list[float], list[float]]:
    """
    Run baseline and ours alternately ``repeats`` times; each callable returns its measured value.

    Returns (ours, baseline, ours/baseline per pair): pairing neighbours cancels slow drifts of a noisy machine.
    """
    mine: list[float] = []
    base: list[float] = []
    ratios: list[float] = []
    for i in range(repeats):
        if i % 2:
            m = ours()
            b = baseline()
        else:
            b = baseline()
            m = ours()
        mine.append(m)
        base.append(b)
        ratios.append(m / b if b else math.inf)
    return mine, base, ratios


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 30.0, proc: subprocess.Popen[Any] | None = None) -> None:
    """Wait until 127.0.0.1:port accepts connections (or the process died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listened on 127.0.0.1:{port} within {timeout}s")


def stop_process(proc: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    """Terminate a process we started (by its handle), then kill it if it lingers."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


def bench_env(**extra: str) -> dict[str, str]:
    """Environment for benchmark subprocesses: the repo importable, Airflow quiet and isolated."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    env.update(extra)
    return env


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_bytes() -> int | None:
    try:
        import psutil

        return int(psutil.virtual_memory().total)
    except ImportError:
        return None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def machine_facts() -> dict[str, Any]:
    """CPU count and model, memory, OS, Python and package versions, git commit, date (UTC)."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "cpu_usable": usable,
        "cpu_model": _cpu_model(),
        "memory_bytes": _memory_bytes(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "packages": versions,
        "git_commit": _git_commit(),
    }


# -- output -------------------------------------------------------------------------------------------------


def fmt(value: float, unit: str = "") -> str:
    """A number with 3 significant digits, in the unit's natural scale (s -> ms/us)."""
    if not math.isfinite(value):
        return str(value)
    if unit == "s":
        if abs(value) < 1e-3:
            return f"{value * 1e6:.3g} us"
        if abs(value) < 1:
            return f"{value * 1e3:.3g} ms"
        return f"{value:.3g} s"
    if unit == "B":
        return f"{value / 2**20:.3g} MiB"
    text = f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"
    return f"{text} {unit}".rstrip()


def _cell(stats: Stats | None, unit: str) -> str:
    if stats is None:
        return "-"
    return f"{fmt(stats.median, unit)} ±{stats.spread * 50:.0f}%"


def table(figures: Sequence[Figure]) -> str:
    """The results as a Markdown table (median ±half the relative range of the repeats)."""
    head = ["fig", "measure", "ours", "baseline", "ratio", "goal", "met"]
    rows = []
    for f in figures:
        ratio = "-" if f.ratio is None else f"{f.ratio.median:.3g} ±{f.ratio.spread * 50:.0f}%"
        met = "-" if f.goal_met is None else ("yes" if f.goal_met else "NO")
        base = _cell(f.baseline, f.unit)
        if f.baseline is not None and f.baseline_name:
            base = f"{base} ({f.baseline_name})"
        rows.append([f.figure, f.title, _cell(f.value, f.unit), base, ratio, f.goal, met])
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    lines = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    lines += ["| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows]
    return "\n".join(lines)


def write_json(path: Path, figures: Sequence[Figure], facts: dict[str, Any], extra: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"machine": facts, **extra, "figures": [f.as_dict() for f in figures]}
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n")


def log(message: str) -> None:
    """Progress on stderr (the table goes to stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
