"""
Fixtures of the deployment tests (``-m deploy``, own CI step): the local cluster of ``scripts/cluster.sh``,
started once per session, and a REST client that talks to its api-server as a user does (JWT from
``/auth/token``).

The cluster's state and logs go to ``tests/artifacts/deploy/cluster/`` (gitignored; logs are kept after the
session for post-mortems). It is stopped at the end of the session, on failure, on Ctrl-C and on SIGTERM.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from deploy_support import FIGURES, Api
from helpers import ARTIFACTS, REPO
from mc_cluster import Cluster, ClusterError, tail

DEPLOY_ARTIFACTS = ARTIFACTS / "deploy"


def _sigterm(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # pytest tears fixtures down on KeyboardInterrupt


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """The whole deployment (see ``mc_cluster``), serving the example DAGs plus ``tests/deploy/dags``."""
    try:
        import airflow.providers.celery  # noqa: F401
        import asyncpg  # noqa: F401
        import redis  # noqa: F401
    except ImportError as err:
        pytest.fail(f"the deploy extra is not installed ({err}): run ./scripts/cluster.sh install", pytrace=False)
    started = time.monotonic()
    deployment = Cluster(DEPLOY_ARTIFACTS / "cluster", dags=[REPO / "example_dags", Path(__file__).parent / "dags"])
    deployment.down(quiet=True)  # a cluster an earlier, killed session left behind (recorded in its state)
    previous = signal.signal(signal.SIGTERM, _sigterm)
    try:
        try:
            deployment.up()
        except ClusterError as err:
            pytest.fail(f"the cluster did not start: {err}\n{tail(err.log) if err.log else ''}", pytrace=False)
        FIGURES["cluster_up_seconds"] = round(time.monotonic() - started, 1)
        yield deployment
    finally:
        deployment.down(quiet=True)
        signal.signal(signal.SIGTERM, previous)


@pytest.fixture(scope="session")
def api(cluster: Cluster) -> Iterator[Api]:
    client = Api(cluster)
    yield client
    client.http.close()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES:
        terminalreporter.write_sep("-", "deployment figures")
        terminalreporter.write_line(json.dumps(FIGURES, indent=1))
        DEPLOY_ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (DEPLOY_ARTIFACTS / "figures.json").write_text(json.dumps(FIGURES, indent=1))
