"""Helpers of the reliability suite (import as ``from rel_support import ...``; this folder is on sys.path)."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

RECEIVER_SECRET = "rel-Callback-Secret-4f9a1c7e2b8d"
#: Figures reported at the end of the run (terminal summary of tests/reliability/conftest.py).
FIGURES: dict[str, int] = {
    "faults_injected": 0,
    "faults_survived": 0,
    "fuzz_cases": 0,
    "reports_sent": 0,
    "reports_stored": 0,
    "reports_lost": 0,
    "recipients_texted_twice_unexpectedly": 0,
    "secret_scans": 0,
    "secret_leaks": 0,
    "bad_inputs_refused": 0,
}
_FIGURES_LOCK = threading.Lock()


def count(name: str, n: int = 1) -> None:
    with _FIGURES_LOCK:
        FIGURES[name] = FIGURES.get(name, 0) + n


def task_context(
    dag_id: str = "rel_dag", run_id: str = "rel_run", task_id: str = "send", map_index: int = -1
) -> dict[str, Any]:
    """The part of an Airflow context the send operators read: ``ti`` names the task instance."""
    ti = SimpleNamespace(dag_id=dag_id, run_id=run_id, task_id=task_id, map_index=map_index, try_number=1)
    return {"ti": ti, "task_instance": ti}


def numbers(n: int, prefix: str = "98") -> list[str]:
    """``n`` distinct valid Indian mobile numbers (national form)."""
    return [f"{prefix}{i:08d}" for i in range(n)]


def msisdn(national: str) -> str:
    return f"91{national}"


def store_counts(store: Any) -> tuple[int, int]:
    """(raw report rows, report rows) of a store."""
    stats = store.stats()
    return stats["raw_reports"], stats["reports"]


def after_accepted_sends(sandbox: Any, plan: dict[int, dict[str, Any]]) -> Callable[[], None]:
    """
    Make the sandbox switch faults on right after its n-th accepted send: ``{10: {"expire_tokens": True}}``.

    Deterministic (no timing): the fault is set inside the sandbox while it records the n-th send, so the next
    request meets it. Returns a function that restores the sandbox's own ``record_accepted``.
    """
    state = sandbox.state
    original = state.record_accepted
    seen = {"n": 0}
    lock = threading.Lock()

    def record_accepted(*args: Any, **kwargs: Any) -> dict[str, Any]:
        entry = original(*args, **kwargs)
        with lock:
            seen["n"] += 1
            faults = plan.get(seen["n"])
        if faults:
            state.set_faults(faults)
        return entry

    state.record_accepted = record_accepted

    def restore() -> None:
        state.record_accepted = original

    return restore


@dataclass
class Secrets:
    """The secrets no captured text may contain, by name (the values never appear in a failure message)."""

    values: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, value: str | None) -> None:
        if value:
            self.values[name] = value

    def add_password(self, name: str, password: str) -> None:
        """The password, its base64 ``key`` and the URL-quoted key."""
        key = base64.b64encode(password.encode("utf-8")).decode("ascii")
        self.add(name, password)
        self.add(f"{name} base64 key", key)
        self.add(f"{name} url-quoted key", quote(key, safe=""))


@dataclass
class LeakScanner:
    """Collects captured texts by label and scans them for every secret; counts scans in FIGURES."""

    secrets: Secrets = field(default_factory=Secrets)
    texts: list[tuple[str, str]] = field(default_factory=list)
    scans: int = 0

    def add(self, label: str, text: object) -> None:
        if text is None:
            return
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        if not isinstance(text, str):
            text = json.dumps(text, default=repr) if isinstance(text, (dict, list)) else repr(text)
        self.texts.append((label, text))

    def add_files(self, label: str, paths: Iterable[Path]) -> int:
        added = 0
        for path in paths:
            if path.is_file():
                self.add(f"{label} {path.name}", path.read_text("utf-8", "replace"))
                added += 1
        return added

    def leaks(self, record: bool = True) -> list[str]:
        """Names of the secrets found and where; ``record`` counts the scans in the suite's figures."""
        found = []
        for label, text in self.texts:
            for name, value in self.secrets.values.items():
                self.scans += 1
                if value in text:
                    found.append(f"{name} found in {label}")
        if record:
            count("secret_texts_scanned", len(self.texts))
            count("secret_task_log_files_scanned", sum(1 for label, _ in self.texts if label.startswith("task log")))
            count("secret_scans", self.scans)
            count("secret_leaks", len(found))
        return found


def run_python(code: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env}, timeout=timeout
    )


def kill(proc: subprocess.Popen[Any]) -> None:
    """SIGKILL a process we started (by its pid) and reap it."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
