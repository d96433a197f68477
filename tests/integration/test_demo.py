"""
The README's first command: ``scripts/demo.py`` (what ``./scripts/demo.sh`` runs after setup), run for real as
a subprocess: sandbox and receiver processes, ``airflow dags test`` of the example campaign, real callbacks.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import REPO, wait_until

from airflow_provider_messagecentral.reports.store import get_store

pytestmark = pytest.mark.integration

DEMO = REPO / "scripts" / "demo.py"
# A callback URL with its secret path: must never be printed or logged.
SECRET_URL = re.compile(r"/callback/[A-Za-z0-9_-]{16,}")


def demo_env() -> dict[str, str]:
    """The user's environment, not the test session's Airflow settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MESSAGECENTRAL"))}


def processes_in(directory: Path) -> list[str]:
    """Processes whose working directory is ``directory`` (the demo starts every child there)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cwd = os.readlink(proc / "cwd")
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if cwd == str(directory) or cwd.startswith(f"{directory}/"):
            found.append(f"{proc.name}: {cmdline[:200]}")
    return found


def test_demo_runs_a_campaign_to_completion_and_cleans_up(tmp_path: Path) -> None:
    demo_dir, summary_file = tmp_path / "demo", tmp_path / "summary.json"
    summary = str(summary_file)
    demo_dir.mkdir()
    (demo_dir / "notes.txt").write_text("mine")
    refused = subprocess.run(
        [sys.executable, str(DEMO), "--demo-dir", str(demo_dir)], capture_output=True, text=True, check=False
    )
    assert refused.returncode == 1
    assert "is not empty and was not made by the demo" in refused.stdout
    assert (demo_dir / "notes.txt").read_text() == "mine"
    # What an earlier run left behind is wiped: a re-run starts from scratch.
    (demo_dir / ".messagecentral-demo").write_text("")
    result = subprocess.run(
        [sys.executable, str(DEMO), "--recipients", "200", "--demo-dir", str(demo_dir), "--summary-json", summary],
        capture_output=True,
        text=True,
        timeout=240,
        env=demo_env(),
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    out = result.stdout
    assert not (demo_dir / "notes.txt").exists()

    printed = json.loads(summary_file.read_text())
    counts = printed["summary"]
    campaign = printed["campaign"]
    # A completed campaign with delivered counts from real callbacks, as printed.
    assert f"Campaign {campaign} (DAG messagecentral_campaign) completed" in out
    assert printed["sent"] == counts["recipients"] == 200
    assert printed["callbacks"] == 200
    assert counts["delivered"] >= 170  # the example DAG's sensor waits for 85%
    assert counts["delivered"] + counts["failed"] + counts["pending"] == 200
    ratio = re.escape(f"{counts['delivered_ratio']:.1%}")
    assert re.search(rf"delivered\s+{counts['delivered']}\s+{ratio}", out)
    assert re.search(rf"failed\s+{counts['failed']}\s", out)
    assert re.search(rf"pending\s+{counts['pending']}\s", out)
    assert "by status    DELIVRD" in out

    # The printed numbers are the report store's, in the database the demo names.
    reports_db = demo_dir / "reports.db"
    assert f"Reports database: {reports_db}" in out
    assert get_store(f"sqlite:///{reports_db}").campaign_summary(campaign) == counts
    assert (demo_dir / "logs" / "airflow-dags-test.log").read_text().count("[DAG TEST] end task") == 4

    # Quiet: a short narrative, Airflow's logs go to files. No secret anywhere.
    assert len(out.splitlines()) < 30
    assert "[info" not in out and "[DAG TEST]" not in out
    for text in [out, result.stderr, *(p.read_text(errors="replace") for p in (demo_dir / "logs").iterdir())]:
        assert not SECRET_URL.search(text)

    # Nothing it started is still running.
    assert wait_until(lambda: not processes_in(demo_dir), timeout=10), processes_in(demo_dir)


def test_demo_stops_everything_it_started_on_ctrl_c(tmp_path: Path) -> None:
    demo_dir = tmp_path / "demo"
    proc = subprocess.Popen(
        [sys.executable, str(DEMO), "--recipients", "20", "--demo-dir", str(demo_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=demo_env(),
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        seen = ""
        for line in proc.stdout:  # interrupt while Airflow is migrating its database
            seen += line
            if "starting the MessageCentral sandbox" in line:
                break
        assert wait_until(lambda: len(processes_in(demo_dir)) >= 3, timeout=60), (seen, processes_in(demo_dir))
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, seen + rest
    assert "demo interrupted (SIGINT): stopping what it started" in rest
    assert wait_until(lambda: not processes_in(demo_dir), timeout=10), processes_in(demo_dir)
