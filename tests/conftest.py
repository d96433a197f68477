"""Shared fixtures: an isolated AIRFLOW_HOME, a migrated Airflow DB, the sandbox, a real PostgreSQL."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

# Airflow reads its configuration when first imported: isolate it before any test module imports it.
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="mc-airflow-home-"))
_DAGS_FOLDER = _AIRFLOW_HOME / "dags"
_DAGS_FOLDER.mkdir()
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(_DAGS_FOLDER)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ.setdefault("AIRFLOW__CORE__TEST_CONNECTION", "Enabled")
os.environ.pop("AIRFLOW_CONN_MESSAGECENTRAL_DEFAULT", None)

import pytest  # noqa: E402
from helpers import airflow_cli, free_port, sandbox_connection  # noqa: E402


@pytest.fixture(scope="session")
def airflow_home() -> Path:
    return _AIRFLOW_HOME


@pytest.fixture(scope="session")
def airflow_db(airflow_home: Path) -> Path:
    """A migrated Airflow metadata DB (SQLite) in the session's AIRFLOW_HOME."""
    result = airflow_cli("db", "migrate")
    assert result.returncode == 0, result.stderr[-3000:]
    return airflow_home


@pytest.fixture
def load_dag_file(airflow_db: Path):
    """
    Copy a DAG file into the DAGS_FOLDER (``dag.test()`` needs the file there) and import it.

    Returns the imported module; its DAGs are attributes. The module name is unique per call.
    """

    def load(source: str | Path, name: str | None = None) -> ModuleType:
        source = Path(source)
        target = _DAGS_FOLDER / (name or source.name)
        shutil.copyfile(source, target)
        mod_name = f"mc_test_dag_{target.stem}_{uuid.uuid4().hex[:8]}"
        spec = importlib.util.spec_from_file_location(mod_name, target)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module
        spec.loader.exec_module(module)
        return module

    return load


# -- sandbox ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[Any]:
    from airflow_provider_messagecentral.sandbox.server import SandboxServer

    server = SandboxServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def sandbox(sandbox_server: Any) -> Any:
    """The session's sandbox, reset (log, stats, faults, callbacks) before each test."""
    sandbox_server.reset(restore_config=True)
    return sandbox_server


@pytest.fixture
def mc_conn(sandbox: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """
    Point ``messagecentral_default`` at the sandbox (env-var connection) with a fresh reports DB.

    Call the returned function with extras to change the connection: ``mc_conn(rate_limit_per_second=5)``.
    """
    import json

    from airflow_provider_messagecentral.client.tokens import TOKEN_CACHE

    TOKEN_CACHE.clear()
    reports_url = f"sqlite:///{tmp_path / 'reports.db'}"

    def configure(conn_id: str = "messagecentral_default", **extra: Any) -> dict[str, Any]:
        conn = sandbox_connection(sandbox.url, **{"reports_url": reports_url, **extra})
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
        return conn

    configure()
    configure.reports_url = reports_url  # type: ignore[attr-defined]
    return configure


# -- PostgreSQL -------------------------------------------------------------------------------------------


def _pg_bin() -> Path | None:
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists():
            return candidate
    found = shutil.which("initdb")
    return Path(found).parent if found else None


@pytest.fixture(scope="session")
def pg_server() -> Iterator[dict[str, Any]]:
    """A real PostgreSQL server for this test session (initdb in a temp dir, on a free port)."""
    pg_bin = _pg_bin()
    if pg_bin is None:
        pytest.skip("PostgreSQL server binaries (initdb) not installed: apt-get install postgresql")
    base = Path(tempfile.mkdtemp(prefix="mc-pg-"))
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        shutil.chown(sock, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    init = subprocess.run(
        [*as_user, str(pg_bin / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync"],
        capture_output=True,
        text=True,
        check=False,
    )
    if init.returncode != 0:
        pytest.skip(f"initdb failed: {init.stderr[-500:]}")
    opts = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    start = subprocess.run(
        [*as_user, str(pg_bin / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(base / "log"), "-w", "start"],
        capture_output=True,
        text=True,
        check=False,
    )
    if start.returncode != 0:
        pytest.skip(f"PostgreSQL did not start: {start.stderr[-500:]}")
    try:
        yield {"host": "127.0.0.1", "port": port, "user": "postgres", "bin": pg_bin}
    finally:
        subprocess.run(
            [*as_user, str(pg_bin / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def pg_url(pg_server: dict[str, Any]) -> str:
    """A fresh, empty PostgreSQL database for one test, as a SQLAlchemy URL (psycopg 3)."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    dsn = f"host={pg_server['host']} port={pg_server['port']} user=postgres dbname=postgres"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql+psycopg://postgres@{pg_server['host']}:{pg_server['port']}/{name}"
