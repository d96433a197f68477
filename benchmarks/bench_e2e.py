"""
Figure 6: end to end. The demo's campaign (``example_dags/messagecentral_campaign.py``, 1,000 recipients,
per-recipient text, deferred delivery sensor) from DAG start to sensor success against the sandbox, run by
``scripts/demo.py`` (``airflow dags test``; sandbox and receiver in their own processes). Its wall time is
split into sending (the send task), waiting for callbacks (the sensor task) and Airflow overhead (the rest of
the DAG run: parsing, scheduling, the audience and report tasks, deferral).

Baseline, measured in the same run: the same campaign without Airflow — a plain script that builds the same
workbook, sends it with ``MessageCentralHook.send_file``, records it in the report store and polls
``campaign_summary`` every second until 85% are delivered — against its own sandbox and receiver started
with the demo's settings.
"""

from __future__ import annotations

import csv
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from benchmarks.common import ROOT, Figure, Stats, bench_env, free_port, log, stop_process, wait_port

AUDIENCE = ROOT / "example_dags" / "data" / "audience.csv"
MESSAGE = "Hi ##var1##, your Rs ##var2## cashback is waiting for you. Shop by midnight: example.com/sale"
STATUS_MIX = "DELIVRD=0.9,UNDELIV=0.04,EXPIRED=0.03,REJECTD=0.02,UNKNOWN=0.01"
CALLBACK_DELAY = "0.5"
MIN_DELIVERED = 0.85
POLL_SECONDS = 1.0


def demo_run(recipients: int | None, tmp: Path, index: int) -> dict[str, Any]:
    """One ``scripts/demo.py`` run; returns its summary JSON (``seconds``: total, dag_run, sending, ...)."""
    out = tmp / f"demo-{index}.json"
    args = [sys.executable, str(ROOT / "scripts" / "demo.py"), "--demo-dir", str(tmp / f"demo-{index}")]
    args += ["--summary-json", str(out), "--timeout", "600"]
    if recipients is not None:
        args += ["--recipients", str(recipients)]
    env = {k: v for k, v in bench_env().items() if not k.startswith(("AIRFLOW", "MESSAGECENTRAL"))}
    proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=900, check=False)
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"scripts/demo.py failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
    return dict(json.loads(out.read_text()))


def read_audience(limit: int | None) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    with AUDIENCE.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if limit is not None and len(rows) >= limit:
                break
            rows.append({"mobile": row["mobile"], "var1": row["var1"], "var2": row["var2"]})
    return rows


def plain_run(recipients: int | None, tmp: Path, index: int) -> dict[str, float]:
    """The same campaign without Airflow. Returns seconds: sending, waiting, total."""
    from airflow_provider_messagecentral.audience.workbook_build import build_workbooks
    from airflow_provider_messagecentral.campaign.keys import make_campaign_key
    from airflow_provider_messagecentral.hooks.messagecentral import MessageCentralHook
    from airflow_provider_messagecentral.reports.store import ReportStore

    secret = secrets.token_urlsafe(32)
    sandbox_port, receiver_port = free_port(), free_port()
    reports_url = f"sqlite:///{tmp}/plain-{index}.db"
    receiver_url = f"http://127.0.0.1:{receiver_port}"
    base = {k: v for k, v in bench_env().items() if not k.startswith(("AIRFLOW", "MESSAGECENTRAL"))}
    receiver = subprocess.Popen(
        [
            *(sys.executable, "-m", "airflow_provider_messagecentral.reports", "serve", "--host", "127.0.0.1"),
            *("--port", str(receiver_port), "--store-url", reports_url, "--log-level", "warning"),
        ],
        env={**base, "MESSAGECENTRAL_CALLBACK_SECRET": secret},
    )
    sandbox = subprocess.Popen(
        [
            *(sys.executable, "-m", "airflow_provider_messagecentral.sandbox", "--port", str(sandbox_port)),
            *("--callback-delay", CALLBACK_DELAY, "--status-mix", STATUS_MIX),
        ],
        env={**base, "MESSAGECENTRAL_SANDBOX_CALLBACK_URL": f"{receiver_url}/callback/{secret}"},
        stdout=subprocess.DEVNULL,
    )
    conn_var = "AIRFLOW_CONN_MESSAGECENTRAL_E2E"
    try:
        wait_port(receiver_port, 60, receiver)
        wait_port(sandbox_port, 60, sandbox)
        requests.get(f"{receiver_url}/health", timeout=30).raise_for_status()
        os.environ[conn_var] = json.dumps(
            {
                "conn_type": "messagecentral",
                "host": f"http://127.0.0.1:{sandbox_port}",
                "login": "C-SANDBOX0000001",
                "password": "sandbox",
                "extra": {"email": "sandbox@example.com", "country": "91", "reports_url": reports_url},
            }
        )
        store = ReportStore(reports_url)
        hook = MessageCentralHook("messagecentral_e2e")
        rows = read_audience(recipients)
        key = make_campaign_key("plain_script", f"run-{index}", "send")
        start = time.perf_counter()
        store.ensure_campaign(key, dag_id="plain_script", run_id=f"run-{index}", task_id="send", kind="file")
        built = build_workbooks(rows, MESSAGE, tmp / f"plain-{index}", on_invalid="skip")
        for n, part in enumerate(built.parts, start=1):
            mobiles = part.mobiles  # the builder records each part's recipients
            data = hook.send_file(part.path, MESSAGE, message_type="TRANSACTIONAL")
            store.mark_accepted(
                key,
                f"part-{n}",
                transaction_id=data.get("transactionId"),
                verification_id=data.get("verificationId"),
                response=data,
                mobiles=mobiles,
            )
        sent = time.perf_counter()
        deadline = sent + 600
        while True:
            summary = store.campaign_summary(key) or {}
            if summary.get("delivered_ratio", 0.0) >= MIN_DELIVERED:
                break
            if time.perf_counter() > deadline:
                raise RuntimeError(f"plain campaign did not reach {MIN_DELIVERED:.0%} delivered: {summary}")
            time.sleep(POLL_SECONDS)
        done = time.perf_counter()
        hook.close()
        store.dispose()
        return {"sending": sent - start, "waiting": done - sent, "total": done - start}
    finally:
        os.environ.pop(conn_var, None)
        stop_process(sandbox)
        stop_process(receiver)


def measure_runs(recipients: int | None, runs: int) -> tuple[list[dict[str, Any]], list[dict[str, float]]]:
    """``runs`` demo DAG runs and plain-script runs, alternating which goes first."""
    dag: list[dict[str, Any]] = []
    plain: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="mc-bench-e2e-") as tmp_name:
        tmp = Path(tmp_name)
        for i in range(runs):
            log(f"figure 6: demo DAG run {i + 1}/{runs} and the plain-script baseline")
            if i % 2:
                plain.append(plain_run(recipients, tmp, i))
                dag.append(demo_run(recipients, tmp, i))
            else:
                dag.append(demo_run(recipients, tmp, i))
                plain.append(plain_run(recipients, tmp, i))
    return dag, plain


def _pair(a: list[float], b: list[float]) -> Stats:
    return Stats.of([x / y if y else float("inf") for x, y in zip(a, b, strict=True)])


def _figure(name: str, title: str, ours: list[float], base: list[float], base_name: str, meaning: str) -> Figure:
    return Figure(
        figure="6",
        name=name,
        title=title,
        unit="s",
        value=Stats.of(ours),
        baseline=Stats.of(base),
        baseline_name=base_name,
        ratio=_pair(ours, base),
        ratio_meaning=meaning,
        goal="-",
        goal_met=None,
    )


def run(quick: bool, repeats: int) -> list[Figure]:
    recipients = 200 if quick else None  # None: the demo's whole audience (1,000)
    runs = 1 if quick else repeats
    dag, plain = measure_runs(recipients, runs)
    secs = [d["seconds"] for d in dag]
    size = dag[0]["summary"]["recipients"]
    dag_total = [float(s["dag_run"]) for s in secs]
    plain_total = [p["total"] for p in plain]
    params = {
        "recipients": size,
        "callback_delay_s": float(CALLBACK_DELAY),
        "sensor_poll_s": POLL_SECONDS,
        "min_delivered_ratio": MIN_DELIVERED,
        "runs": runs,
    }
    figures = [
        _figure(
            "e2e_total",
            f"end to end, {size:,} recipients: DAG run start to end",
            dag_total,
            plain_total,
            "same campaign, plain script",
            "airflow dags test wall time of the DAG run / plain script (send + poll) wall time",
        ),
        _figure(
            "e2e_sending",
            "  of which sending (send task)",
            [float(s["sending"]) for s in secs],
            [p["sending"] for p in plain],
            "plain: build + send_file + ledger",
            "send task duration / plain script's sending",
        ),
        _figure(
            "e2e_waiting",
            "  of which waiting for callbacks (sensor)",
            [float(s["waiting"]) for s in secs],
            [p["waiting"] for p in plain],
            "plain: poll summary every 1 s",
            "deferred sensor duration / plain script's polling until 85% delivered",
        ),
        _figure(
            "e2e_airflow",
            "  of which Airflow overhead (rest of the run)",
            [float(s["airflow"]) for s in secs],
            dag_total,
            "whole DAG run",
            "share of the DAG run spent outside the send and sensor tasks",
        ),
    ]
    for fig in figures:
        fig.parameters = params
    figures[0].details = {
        "demo_seconds": secs,
        "plain_seconds": plain,
        "demo_total_incl_startup_and_db_migrate": Stats.of([float(s["total"]) for s in secs]).median,
        "delivered_ratio": [d["summary"]["delivered_ratio"] for d in dag],
    }
    return figures
