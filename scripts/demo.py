"""
The demo: a real Airflow DAG sends an SMS campaign to a local MessageCentral sandbox and waits for delivery.

Everything runs on this machine, with no account, no phone and no network: the sandbox (a MessageCentral
look-alike) accepts the campaign and calls back delivery reports; the delivery-report receiver stores them in
SQLite; ``airflow dags test messagecentral_campaign`` runs the example DAG (build the audience, send with
per-recipient text, wait deferred on the delivery reports, report). At the end it prints the campaign's
delivery summary read from the report store.

Run it with ``./scripts/demo.sh`` (which sets up ``.venv`` first), or ``.venv/bin/python scripts/demo.py``:

    --recipients N     send to the first N customers of example_dags/data/audience.csv (default: all 1,000)
    --demo-dir DIR     where the throwaway AIRFLOW_HOME, reports database and logs go (default ./.demo;
                       wiped at start)
    --summary-json F   also write the summary as JSON to F
    --no-callbacks     no receiver and no callbacks: the sandbox posts nothing, the sensor pulls the delivery
                       reports from MessageCentral's reports/getDetailedReports (report_source="api")

Everything it starts is stopped when it ends, on failure and on Ctrl-C. It exits non-zero on failure and
then shows the end of the log that explains it.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import IO, Any

REPO = Path(__file__).resolve().parents[1]
DAGS_FOLDER = REPO / "example_dags"
DAG_ID = "messagecentral_campaign"
SEND_TASK, WAIT_TASK = "send_campaign", "wait_for_delivery"
STATUS_MIX = "DELIVRD=0.9,UNDELIV=0.04,EXPIRED=0.03,REJECTD=0.02,UNKNOWN=0.01"
CALLBACK_DELAY = "0.5"
SANDBOX_ACCOUNT = {"login": "C-SANDBOX0000001", "password": "sandbox", "email": "sandbox@example.com"}
BIN = Path(sys.executable).parent
TAIL_LINES = 40
MARKER = ".messagecentral-demo"


class DemoError(Exception):
    """A step failed; ``log`` is the file that says why."""

    def __init__(self, message: str, log: Path | None = None) -> None:
        super().__init__(message)
        self.log = log


class Interrupted(Exception):
    """SIGINT/SIGTERM: stop what was started and leave."""


# -- output -----------------------------------------------------------------------------------------------


def say(text: str = "") -> None:
    print(text, flush=True)


@contextmanager
def step(title: str) -> Iterator[dict[str, str]]:
    """Print ``title ...`` then ``ok (1.2 s)`` (plus a note the body may set) or ``FAILED``."""
    print(f"  {title} ...", end="", flush=True)
    start = time.monotonic()
    note: dict[str, str] = {}
    try:
        yield note
    except BaseException:
        print(" FAILED", flush=True)
        raise
    extra = f", {note['text']}" if note.get("text") else ""
    print(f" ok ({time.monotonic() - start:.1f} s{extra})", flush=True)


def tail(path: Path, lines: int = TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return f"(no log at {path})"
    return "\n".join(f"    | {line}" for line in text[-lines:])


# -- processes --------------------------------------------------------------------------------------------


class Processes:
    """Children started in their own process group, stopped (whole group) in reverse order."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.started: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        handle: IO[bytes] = log.open("ab")
        try:
            proc = subprocess.Popen(
                args,
                env=env,
                cwd=self.cwd,  # the demo directory: what is left of a run is easy to find
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: Ctrl-C reaches only us, we stop the group
            )
        finally:
            handle.close()
        self.started.append((name, proc))
        return proc

    def run(self, name: str, args: list[str], env: dict[str, str], log: Path, timeout: float) -> int:
        """Run to completion (output to ``log``); stop its group on timeout or interrupt."""
        proc = self.start(name, args, env, log)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise DemoError(f"{name} did not finish within {timeout:.0f} s", log) from None
        finally:
            self.stop_one(name, proc)

    @staticmethod
    def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)  # pid == pgid (start_new_session)

    def stop_one(self, name: str, proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
        # Signal the group even when the leader has exited: its children may still run.
        self._signal_group(proc, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
        self._signal_group(proc, signal.SIGKILL)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            say(f"  warning: {name} (pid {proc.pid}) did not stop")
        self.started = [(n, p) for n, p in self.started if p is not proc]

    def stop_all(self) -> None:
        for name, proc in reversed(list(self.started)):
            self.stop_one(name, proc)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get(url: str, timeout: float = 2.0) -> tuple[int, Any]:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - our own local servers
        return response.status, json.loads(response.read() or b"null")


def wait_until(
    what: str, check: Callable[[], bool], timeout: float, proc: subprocess.Popen[bytes] | None, log: Path
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except (OSError, ValueError, urllib.error.URLError):
            pass
        if proc is not None and proc.poll() is not None:
            raise DemoError(f"{what} exited with code {proc.returncode}", log)
        if time.monotonic() > deadline:
            raise DemoError(f"{what} did not answer within {timeout:.0f} s", log)
        time.sleep(0.1)


# -- the demo ---------------------------------------------------------------------------------------------


def task_times(airflow_db: Path) -> dict[str, tuple[datetime, datetime]]:
    """Start and end of each task of the demo's DAG run, from Airflow's own metadata DB (read only)."""
    times: dict[str, tuple[datetime, datetime]] = {}
    try:
        with sqlite3.connect(f"file:{airflow_db}?mode=ro", uri=True) as conn:
            rows = conn.execute(
                "SELECT task_id, start_date, end_date FROM task_instance WHERE dag_id = ?", (DAG_ID,)
            ).fetchall()
    except sqlite3.Error:
        return times
    for task_id, start, end in rows:
        if start and end:
            times[task_id] = (datetime.fromisoformat(str(start)), datetime.fromisoformat(str(end)))
    return times


def dag_run_state(airflow_db: Path) -> str | None:
    with sqlite3.connect(f"file:{airflow_db}?mode=ro", uri=True) as conn:
        row = conn.execute("SELECT state FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", (DAG_ID,)).fetchone()
    return str(row[0]) if row else None


def fresh_demo_dir(demo: Path) -> None:
    """Empty ``demo`` for this run; refuse to wipe a non-empty directory an earlier demo did not create."""
    if demo.exists() and any(demo.iterdir()):
        if not (demo / MARKER).exists():
            raise DemoError(f"{demo} is not empty and was not made by the demo: pick another --demo-dir")
        shutil.rmtree(demo)
    demo.mkdir(parents=True, exist_ok=True)
    (demo / MARKER).write_text("made by scripts/demo.py: wiped when the demo runs again\n", encoding="utf-8")


def start_receiver(procs: Processes, logs: Path, base_env: dict[str, str], reports_url: str) -> str:
    """Start the delivery-report receiver; its callback URL (with the secret: never print it)."""
    # The callback secret lives in environment variables of the two servers only: never on a command line
    # (it would show in ps), never printed.
    secret = secrets.token_urlsafe(32)
    receiver_url = f"http://127.0.0.1:{free_port()}"
    with step(f"starting the receiver on {receiver_url} (reports into {reports_url.rsplit('/', 1)[-1]})"):
        receiver_log = logs / "receiver.log"
        receiver = procs.start(
            "receiver",
            [
                *(str(BIN / "python"), "-m", "airflow_provider_messagecentral.reports", "serve"),
                *("--host", "127.0.0.1", "--port", receiver_url.rsplit(":", 1)[1], "--store-url", reports_url),
                *("--log-level", "warning"),
            ],
            {**base_env, "MESSAGECENTRAL_CALLBACK_SECRET": secret},
            receiver_log,
        )
        wait_until("the receiver", lambda: http_get(f"{receiver_url}/health")[0] == 200, 30, receiver, receiver_log)
    return f"{receiver_url}/callback/{secret}"


def pull_last_reports(airflow_env: dict[str, str], reports_url: str, campaign: str) -> str:
    """
    ``--no-callbacks``: pull the campaign's reports once more after the DAG run (the sensor stops at its
    target), as the sensor does: through the hook of the demo's connection.
    """
    os.environ.update(airflow_env)  # the hook reads the connection from AIRFLOW_CONN_MESSAGECENTRAL_DEFAULT
    from airflow_provider_messagecentral.reports.pulled import ReportPuller
    from airflow_provider_messagecentral.triggers.messagecentral import hook_fetch

    outcome = ReportPuller(reports_url, campaign, hook_fetch("messagecentral_default")).pull()
    return f"{outcome.received:,} rows" if outcome else "nothing to pull"


def run_demo(demo: Path, args: argparse.Namespace, procs: Processes) -> dict[str, Any]:
    fresh_demo_dir(demo)
    airflow_home, logs = demo / "airflow", demo / "logs"
    airflow_home.mkdir()
    logs.mkdir()
    reports_db = demo / "reports.db"
    reports_url = f"sqlite:///{reports_db}"
    started = time.monotonic()

    say("MessageCentral provider demo: an SMS campaign from a real Airflow DAG, entirely on this machine")
    say("(a local MessageCentral sandbox: no account, no phone, no network)")
    say()

    sandbox_port = free_port()
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MESSAGECENTRAL"))}
    base_env["PYTHONUNBUFFERED"] = "1"

    callback_url = None if args.no_callbacks else start_receiver(procs, logs, base_env, reports_url)
    with step(f"starting the MessageCentral sandbox on {sandbox_url}") as note:
        sandbox_log = logs / "sandbox.log"
        sandbox_env = dict(base_env)
        if callback_url:
            sandbox_env["MESSAGECENTRAL_SANDBOX_CALLBACK_URL"] = callback_url
        sandbox = procs.start(
            "sandbox",
            [
                *(str(BIN / "python"), "-m", "airflow_provider_messagecentral.sandbox", "--port", str(sandbox_port)),
                *("--callback-delay", CALLBACK_DELAY, "--status-mix", STATUS_MIX),
            ],
            sandbox_env,
            sandbox_log,
        )
        wait_until(
            "the sandbox", lambda: http_get(f"{sandbox_url}/__sandbox/stats")[0] == 200, 30, sandbox, sandbox_log
        )
        note["text"] = "delivery reports go to the receiver" if callback_url else "no callbacks: reports are pulled"

    connection = {
        "conn_type": "messagecentral",
        "host": sandbox_url,
        "login": SANDBOX_ACCOUNT["login"],
        "password": SANDBOX_ACCOUNT["password"],
        "extra": {"email": SANDBOX_ACCOUNT["email"], "country": 91, "reports_url": reports_url},
    }
    airflow_env = {
        **base_env,
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
        "AIRFLOW_CONN_MESSAGECENTRAL_DEFAULT": json.dumps(connection),
        # The example DAG's sensor polls the report store every minute in production; here every second.
        "MESSAGECENTRAL_EXAMPLE_POLL_SECONDS": "1",
        "MESSAGECENTRAL_EXAMPLE_REPORT_SOURCE": "api" if args.no_callbacks else "callbacks",
    }
    airflow = str(BIN / "airflow")

    with step("creating a throwaway Airflow metadata database (SQLite)"):
        log = logs / "airflow-db-migrate.log"
        code = procs.run("airflow db migrate", [airflow, "db", "migrate"], airflow_env, log, timeout=180)
        if code != 0:
            raise DemoError(f"airflow db migrate exited with code {code}", log)

    audience = f"the first {args.recipients} customers" if args.recipients else "1,000 customers"
    say(f"  running DAG {DAG_ID}: build audience -> send to {audience} -> wait for delivery -> report")
    # The demo runs at any hour: lift the promotional send window (09:00-21:00 IST) for this run. The example
    # DAG dry-runs unless told otherwise (so that unpausing it texts nobody): this run sends, to the sandbox.
    conf: dict[str, Any] = {"send_window": "off", "messagecentral_dry_run": False}
    if args.recipients:
        conf["audience_limit"] = args.recipients
    with step(f"airflow dags test {DAG_ID}"):
        dag_log = logs / "airflow-dags-test.log"
        dag_started = time.monotonic()
        code = procs.run(
            "airflow dags test",
            [airflow, "dags", "test", DAG_ID, "--conf", json.dumps(conf)],
            airflow_env,
            dag_log,
            timeout=args.timeout,
        )
        dag_seconds = time.monotonic() - dag_started
        state = dag_run_state(airflow_home / "airflow.db")
        if code != 0 or state != "success":
            raise DemoError(f"the DAG run ended {state or 'without a run'} (airflow exited with code {code})", dag_log)

    from airflow_provider_messagecentral.reports.store import get_store

    store = get_store(reports_url)
    campaigns = [c for c in store.list_campaigns()["items"] if c["dag_id"] == DAG_ID]
    if not campaigns:
        raise DemoError(f"the report store {reports_db} has no campaign of {DAG_ID}", dag_log)
    campaign = campaigns[0]
    # The sensor lets the DAG finish at 85% delivered; give the last callbacks a moment to arrive (or, without
    # callbacks, pull the last reports once they are due).
    with step("collecting the last delivery reports") as note:
        if args.no_callbacks:
            time.sleep(float(CALLBACK_DELAY) + 0.5)
            note["text"] = pull_last_reports(airflow_env, reports_url, campaign["campaign"])
        deadline = time.monotonic() + 15
        while not args.no_callbacks and time.monotonic() < deadline:
            stats = http_get(f"{sandbox_url}/__sandbox/stats")[1]
            if stats.get("callbacks_pending", 0) == 0:
                break
            time.sleep(0.2)
    summary = store.campaign_summary(campaign["campaign"])
    assert summary is not None
    sandbox_stats = http_get(f"{sandbox_url}/__sandbox/stats")[1]
    times = task_times(airflow_home / "airflow.db")
    total_seconds = time.monotonic() - started

    def seconds(task_id: str) -> float | None:
        if task_id not in times:
            return None
        start, end = times[task_id]
        return (end - start).total_seconds()

    sending, waiting = seconds(SEND_TASK), seconds(WAIT_TASK)
    return {
        "campaign": summary["campaign"],
        "summary": summary,
        "sent": sandbox_stats.get("messages", 0),
        "callbacks": sandbox_stats.get("callbacks_sent", 0),
        "pulled": store.stats()["reports"] if args.no_callbacks else 0,
        "seconds": {
            "total": round(total_seconds, 1),
            "dag_run": round(dag_seconds, 1),
            "sending": None if sending is None else round(sending, 1),
            "waiting": None if waiting is None else round(waiting, 1),
            "airflow": None
            if sending is None or waiting is None
            else round(max(dag_seconds - sending - waiting, 0.0), 1),
        },
        "ports": {"sandbox": sandbox_port},
        "reports_db": str(reports_db),
        "logs": str(logs),
        "airflow_home": str(airflow_home),
    }


def print_summary(result: dict[str, Any]) -> None:
    summary, secs = result["summary"], result["seconds"]
    recipients = summary["recipients"] or 1
    say()
    say(f"Campaign {result['campaign']} (DAG {DAG_ID}) completed")
    say(f"  sent         {result['sent']:>6,}   messages accepted by MessageCentral (sandbox)")
    say(f"  delivered    {summary['delivered']:>6,}   {summary['delivered_ratio']:.1%}")
    say(f"  failed       {summary['failed']:>6,}   {summary['failed'] / recipients:.1%}")
    say(f"  pending      {summary['pending']:>6,}   no final report yet")
    say("  by status    " + ", ".join(f"{status} {count:,}" for status, count in summary["by_status"].items()))
    if result["pulled"]:
        say(f"  reports      {result['pulled']:,} delivery reports pulled from MessageCentral (no callbacks)")
    else:
        say(f"  reports      {result['callbacks']:,} delivery callbacks received and stored")
    if secs["sending"] is not None:
        say(
            f"  time         {secs['total']:.1f} s in all; the DAG run {secs['dag_run']:.1f} s = sending "
            f"{secs['sending']:.1f} s + waiting for reports {secs['waiting']:.1f} s + Airflow {secs['airflow']:.1f} s"
        )
    else:
        say(f"  time         {secs['total']:.1f} s in all; the DAG run {secs['dag_run']:.1f} s")
    say()
    say(f"Reports database: {result['reports_db']}")
    say(f"  python -m airflow_provider_messagecentral.reports summary {result['campaign']} \\")
    say(f"      --store-url sqlite:///{result['reports_db']}")
    say(f"Logs (Airflow's task logs included): {result['logs']}")


def _raise_interrupted(signum: int, _frame: FrameType | None) -> None:
    raise Interrupted(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--recipients", type=int, default=None, help="send to the first N customers only")
    parser.add_argument("--demo-dir", default=str(REPO / ".demo"), help="throwaway directory (wiped at start)")
    parser.add_argument("--summary-json", default=None, help="also write the summary as JSON to this file")
    parser.add_argument(
        "--no-callbacks", action="store_true", help="no receiver: the sensor pulls reports (report_source='api')"
    )
    parser.add_argument("--timeout", type=float, default=300, help="longest the DAG run may take, in seconds")
    args = parser.parse_args(argv)
    if args.recipients is not None and args.recipients < 1:
        parser.error("--recipients must be at least 1")

    demo = Path(args.demo_dir).resolve()
    procs = Processes(demo)
    previous = {sig: signal.signal(sig, _raise_interrupted) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        result = run_demo(demo, args, procs)
        print_summary(result)
        if args.summary_json:
            Path(args.summary_json).write_text(json.dumps(result, indent=2), encoding="utf-8")
        return 0
    except DemoError as err:
        say()
        say(f"demo failed: {err}")
        if err.log is not None:
            say(f"last lines of {err.log}:")
            say(tail(err.log))
        return 1
    except Interrupted as err:
        say()
        say(f"demo interrupted ({err}): stopping what it started")
        return 130
    finally:
        # Ignore further Ctrl-C while cleaning up, so nothing is left behind.
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        procs.stop_all()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
