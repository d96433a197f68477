"""Fixtures of the reliability suite (fault, fuzz, load and secret-scan tests; ``-m reliability``)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rel_support import FIGURES, RECEIVER_SECRET, LeakScanner


@pytest.fixture
def receiver_client(tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    """The receiver app in-process (Starlette TestClient) on a fresh SQLite store: ``(client, store)``."""
    from starlette.testclient import TestClient

    from airflow_provider_messagecentral.reports.app import create_app
    from airflow_provider_messagecentral.reports.store import get_store

    url = f"sqlite:///{tmp_path / 'reports.db'}"
    app = create_app(url, RECEIVER_SECRET)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, get_store(url)


@pytest.fixture
def leak_scanner(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str], airflow_home: Path) -> Any:
    """
    Capture everything a test makes visible and fail it if a secret shows up anywhere.

    Captures: every log record at DEBUG (caplog), this process's stdout/stderr (capfd), and task logs written
    under ``$AIRFLOW_HOME/logs`` during the test. The test adds what else it sees (subprocess output, XComs,
    rendered templates, exception texts, reprs) with ``scanner.add(label, text)`` and registers the secrets
    in ``scanner.secrets``. Scanning happens when the test ends.
    """
    caplog.set_level(logging.DEBUG)
    started = time.time()
    scanner = LeakScanner()
    yield scanner
    out, err = capfd.readouterr()
    scanner.add("stdout", out)
    scanner.add("stderr", err)
    scanner.add("log records", caplog.text)
    for record in caplog.records:
        scanner.add(f"log record args of {record.name}", repr(record.args))
        if record.exc_info and record.exc_info[1] is not None:
            scanner.add(f"exception logged by {record.name}", repr(record.exc_info[1]))
    logs = airflow_home / "logs"
    if logs.is_dir():
        scanner.add_files("task log", (p for p in logs.rglob("*") if p.is_file() and p.stat().st_mtime >= started - 1))
    assert scanner.secrets.values, "the test registered no secret to look for"
    leaks = scanner.leaks()
    assert not leaks, leaks


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if any(FIGURES.values()):
        terminalreporter.write_sep("-", "reliability figures")
        terminalreporter.write_line(json.dumps(FIGURES, indent=1))
