"""A throwaway PostgreSQL server for the benchmarks (initdb in a temp dir, 127.0.0.1, a free port)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from types import TracebackType

from benchmarks.common import free_port


def pg_bin() -> Path | None:
    """The newest installed PostgreSQL server binaries (``/usr/lib/postgresql/*/bin``), or ``None``."""
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists():
            return candidate
    found = shutil.which("initdb")
    return Path(found).parent if found else None


class PostgresServer:
    """
    initdb + pg_ctl start as the ``postgres`` user when run as root; stopped and deleted on exit.

    Durability is set like the SQLite store's WAL + ``synchronous=NORMAL``: ``synchronous_commit=off``
    (a crash may lose the last commits, never corrupts), fsync left on.
    """

    def __init__(self) -> None:
        found = pg_bin()
        if found is None:
            raise RuntimeError("PostgreSQL server binaries (initdb) not installed")
        self.bin = found
        self.base = Path(tempfile.mkdtemp(prefix="mc-bench-pg-"))
        self.port = free_port()
        self.as_user: list[str] = []

    def _run(self, *args: str) -> None:
        proc = subprocess.run([*self.as_user, *args], capture_output=True, text=True, check=False, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"{Path(args[0]).name} failed: {proc.stderr[-800:]}")

    def __enter__(self) -> PostgresServer:
        data, sock = self.base / "data", self.base / "sock"
        sock.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.base, "postgres")
            shutil.chown(sock, "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self._run(str(self.bin / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync")
        opts = (
            f"-p {self.port} -k {sock} -c listen_addresses=127.0.0.1 -c max_connections=200 "
            "-c synchronous_commit=off -c shared_buffers=256MB"
        )
        try:
            self._run(
                str(self.bin / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(self.base / "log"), "-w", "start"
            )
        except BaseException:
            shutil.rmtree(self.base, ignore_errors=True)
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.base / "data"), "-m", "fast", "stop")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def cpu_seconds(self) -> float:
        """CPU seconds used so far by the server's processes (the postmaster and every live child)."""
        import psutil

        pid = int((self.base / "data" / "postmaster.pid").read_text().split()[0])
        total = 0.0
        postmaster = psutil.Process(pid)
        for process in (postmaster, *postmaster.children(recursive=True)):
            try:
                total += sum(process.cpu_times()[:2])
            except psutil.NoSuchProcess:
                continue
        return total

    def create_database(self) -> str:
        """A new empty database; returns its SQLAlchemy URL (psycopg 3)."""
        import psycopg

        name = f"bench_{uuid.uuid4().hex[:12]}"
        dsn = f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"
