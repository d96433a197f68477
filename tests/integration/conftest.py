"""Fixtures of the integration tests that run the example DAGs (``example_dags/``) with ``dag.test()``."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import REPO

from airflow_provider_messagecentral.reports.server import ReceiverServer

EXAMPLES = REPO / "example_dags"
AUDIENCE = EXAMPLES / "data" / "audience.csv"
CALLBACK_SECRET = "example-dags-callback-secret-0123456789"


@pytest.fixture
def load_example(load_dag_file: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Load an example DAG file as a user deploys it: the file and its data/ folder in the DAGS_FOLDER."""
    dags_folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    (dags_folder / "data").mkdir(exist_ok=True)
    shutil.copyfile(AUDIENCE, dags_folder / "data" / AUDIENCE.name)
    # The campaign's deferred sensor polls every minute in production.
    monkeypatch.setenv("MESSAGECENTRAL_EXAMPLE_POLL_SECONDS", "0.5")

    def load(name: str) -> Any:
        return load_dag_file(EXAMPLES / f"{name}.py").dag

    return load


@pytest.fixture
def receiver(mc_conn: Any, sandbox: Any) -> Iterator[ReceiverServer]:
    """The callback receiver on the connection's report store, with the sandbox's callbacks pointed at it."""
    with ReceiverServer(str(mc_conn.reports_url), CALLBACK_SECRET) as server:
        sandbox.configure(
            callback_url=f"{server.url}/callback/{CALLBACK_SECRET}",
            callback_delay=0.2,
            status_mix="DELIVRD=0.9,UNDELIV=0.04,EXPIRED=0.03,REJECTD=0.02,UNKNOWN=0.01",
            seed=11,
        )
        yield server
        sandbox.configure(callback_url=None)
