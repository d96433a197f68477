"""
A real, distributed Airflow deployment on this machine's loopback, started from the project's virtualenv.

``scripts/cluster.sh up|down|status`` runs this file; the ``deploy`` tests' session fixture uses
:class:`Cluster` directly. Components, each its own process (group) on free 127.0.0.1 ports:

==============  ===================================================================================
postgres        PostgreSQL (``initdb``/``pg_ctl`` as ``tests/conftest.py`` does): Airflow's metadata
                database ``airflow`` and the delivery-report store ``reports``
redis           Debian's ``redis-server``: the Celery broker
sandbox         the MessageCentral sandbox; its delivery callbacks go to the api-server's receiver
api-server      ``airflow api-server`` (2 workers) with the ``messagecentral`` plugin: REST API, UI,
                ``/messagecentral/callback/<secret>``, summaries and dashboard behind Airflow's login
scheduler       ``airflow scheduler`` (CeleryExecutor)
dag-processor   ``airflow dag-processor``
triggerer       ``airflow triggerer`` (the deferred delivery sensor waits here)
worker1/2       ``airflow celery worker``; each reports its own name as task instances' ``hostname``
==============  ===================================================================================

Every Airflow process gets one environment (``env.sh`` in the state directory, for your own ``airflow``
commands): CeleryExecutor, the PostgreSQL metadata DB, a shared JWT secret and Fernet key, and one connection,
``AIRFLOW_CONN_MESSAGECENTRAL_DEFAULT`` as JSON, whose ``reports_url`` is the PostgreSQL report store. The
api-server's receiver is pointed at the same store with ``MESSAGECENTRAL_REPORTS_URL`` (the plugin reads that
variable, not the connection).

State lives in one directory (default ``.cluster/``, gitignored): ``cluster.json`` (ports, URLs, the process
ids this tool started), ``env.sh``, ``passwords.json`` (the UI/API login ``admin``), ``logs/`` (one file per
component; Airflow's task logs under ``airflow/logs``). ``up`` stops everything it started when a step fails
or on Ctrl-C; ``down`` stops exactly the processes recorded in ``cluster.json`` (checked by process id and
start time, so a recycled pid is never signalled) and PostgreSQL through ``pg_ctl``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
WORKER_SITE = Path(__file__).resolve().parent / "worker_site"
MARKER = ".messagecentral-cluster"
STATE = "cluster.json"

SANDBOX_CUSTOMER = "C-SANDBOX0000001"
SANDBOX_EMAIL = "sandbox@example.com"
STATUS_MIX = "DELIVRD=0.9,UNDELIV=0.04,EXPIRED=0.03,REJECTD=0.02,UNKNOWN=0.01"
ADMIN_USER = "admin"
WORKERS = ("worker1", "worker2")
# Reverse of the start order: workers first (they drain), the databases last.
STOP_ORDER = ("worker2", "worker1", "triggerer", "scheduler", "dag-processor", "api-server", "sandbox", "redis")


class ClusterError(Exception):
    """A component did not start; ``log`` says why."""

    def __init__(self, message: str, log: Path | None = None) -> None:
        super().__init__(message)
        self.log = log


class Interrupted(Exception):
    """SIGINT/SIGTERM while starting: stop what was started."""


def say(text: str = "") -> None:
    print(text, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return f"(no log at {path})"
    return "\n".join(f"    | {line}" for line in text[-lines:])


def pg_bin() -> Path | None:
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists():
            return candidate
    found = shutil.which("initdb")
    return Path(found).parent if found else None


# -- processes --------------------------------------------------------------------------------------------


def _stat(pid: int) -> tuple[int, int] | None:
    """(process group, start time in clock ticks) of a live process, else None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # after "pid (comm) "
    if fields[0] == "Z":
        return None
    return int(fields[2]), int(fields[19])


def _group(pgid: int, not_before: int) -> list[int]:
    """Live processes of process group ``pgid`` that started no earlier than its leader did."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            info = _stat(int(entry.name))
            if info is not None and info[0] == pgid and info[1] >= not_before:
                members.append(int(entry.name))
    return members


@dataclass
class Proc:
    """A process this tool started in its own session: pid == process group id."""

    name: str
    pid: int
    started: int  # start time (clock ticks since boot): tells our process from a recycled pid
    log: str

    def members(self) -> list[int]:
        return _group(self.pid, self.started)

    def alive(self) -> bool:
        info = _stat(self.pid)
        return info is not None and info[1] == self.started

    def stop(self, grace: float) -> None:
        """SIGTERM the group's members, SIGKILL what is left after ``grace`` seconds."""
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            members = self.members()
            if not members:
                return
            for pid in members:
                with suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and self.members():
                _reap()
                time.sleep(0.1)
        _reap()


def _reap() -> None:
    """Collect exited children of this process (when ``up`` runs in-process, e.g. under pytest)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


# -- the cluster ------------------------------------------------------------------------------------------


@dataclass
class Ports:
    postgres: int = 0
    redis: int = 0
    sandbox: int = 0
    api: int = 0

    @classmethod
    def allocate(cls) -> Ports:
        ports: set[int] = set()
        while len(ports) < 4:
            ports.add(free_port())
        postgres, redis, sandbox, api = sorted(ports)
        return cls(postgres=postgres, redis=redis, sandbox=sandbox, api=api)


@dataclass
class State:
    root: str
    ports: Ports
    admin_password: str
    callback_secret: str
    sandbox_password: str
    dags_folder: str
    pg_data: str
    pg_as_postgres: bool
    pg_bin: str
    processes: list[Proc] = field(default_factory=list)
    up_seconds: float | None = None

    @classmethod
    def load(cls, path: Path) -> State:
        raw = json.loads(path.read_text())
        raw["ports"] = Ports(**raw["ports"])
        raw["processes"] = [Proc(**p) for p in raw["processes"]]
        return cls(**raw)


class Cluster:
    """
    The deployment in ``root``: ``up()``, ``down()``, ``status()``; URLs, environment and REST helpers.

    ``dags``: one folder is used in place (``scripts/cluster.sh`` serves ``example_dags/`` itself); several
    are copied into ``root/dags`` (the tests add their own DAGs to the examples).
    """

    def __init__(
        self,
        root: Path,
        dags: Sequence[Path] = (REPO / "example_dags",),
        api_workers: int = 2,
        worker_concurrency: int = 2,
        poll_seconds: float = 2.0,
    ) -> None:
        self.root = root.resolve()
        self.dags = [Path(d).resolve() for d in dags]
        self.api_workers = api_workers
        self.worker_concurrency = worker_concurrency
        self.poll_seconds = poll_seconds
        self.state: State | None = None
        if (self.root / STATE).exists():
            self.state = State.load(self.root / STATE)

    # -- addresses and configuration ------------------------------------------------------------------

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def home(self) -> Path:
        return self.root / "airflow"

    def _st(self) -> State:
        if self.state is None:
            raise ClusterError(f"no cluster in {self.root} (run: ./scripts/cluster.sh up)")
        return self.state

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self._st().ports.api}"

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self._st().ports.sandbox}"

    def pg_url(self, database: str, driver: str = "psycopg") -> str:
        return f"postgresql+{driver}://postgres@127.0.0.1:{self._st().ports.postgres}/{database}"

    @property
    def reports_url(self) -> str:
        return self.pg_url("reports")

    @property
    def callback_url(self) -> str:
        """What you would register with MessageCentral: the api-server's receiver (the path holds the secret)."""
        return f"{self.api_url}/messagecentral/callback/{self._st().callback_secret}"

    @property
    def admin(self) -> tuple[str, str]:
        return ADMIN_USER, self._st().admin_password

    def connection(self) -> dict[str, Any]:
        """The one ``messagecentral_default`` connection every process uses."""
        st = self._st()
        return {
            "conn_type": "messagecentral",
            "host": self.sandbox_url,
            "login": SANDBOX_CUSTOMER,
            "password": st.sandbox_password,
            "extra": {"email": SANDBOX_EMAIL, "country": 91, "reports_url": self.reports_url},
        }

    def env(self) -> dict[str, str]:
        """The environment of every Airflow process (workers add their name)."""
        st = self._st()
        ports = st.ports
        keys = json.loads((self.root / "keys.json").read_text())  # stable for the cluster's lifetime
        return {
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__DAGS_FOLDER": st.dags_folder,
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__FERNET_KEY": keys["fernet"],
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "mc_cluster_hostname.hostname",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.root / "passwords.json"),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.pg_url("airflow", "psycopg2"),
            "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{ports.redis}/0",
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://postgres@127.0.0.1:{ports.postgres}/airflow",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.worker_concurrency),
            "AIRFLOW__API__BASE_URL": self.api_url,
            "AIRFLOW__API__WORKERS": str(self.api_workers),
            "AIRFLOW__API_AUTH__JWT_SECRET": keys["jwt"],
            "AIRFLOW_CONN_MESSAGECENTRAL_DEFAULT": json.dumps(self.connection()),
            "MESSAGECENTRAL_CALLBACK_SECRET": st.callback_secret,
            "MESSAGECENTRAL_REPORTS_URL": self.reports_url,
            # The campaign example's deferred sensor polls the store every minute in production.
            "MESSAGECENTRAL_EXAMPLE_POLL_SECONDS": f"{self.poll_seconds:g}",
            "PYTHONPATH": os.pathsep.join(
                [str(WORKER_SITE), *([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])]
            ),
            "PYTHONUNBUFFERED": "1",
        }

    def _base_env(self) -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MESSAGECENTRAL"))}

    # -- REST --------------------------------------------------------------------------------------------

    def token(self) -> str:
        """A JWT for the admin user from the api-server's ``/auth/token`` (simple auth manager)."""
        user, password = self.admin
        status, body = http("POST", f"{self.api_url}/auth/token", {"username": user, "password": password})
        if status not in (200, 201):
            raise ClusterError(f"/auth/token answered {status}: {body}")
        return str(body["access_token"])

    # -- lifecycle ---------------------------------------------------------------------------------------

    def _save(self) -> None:
        st = self._st()
        data = asdict(st)
        tmp = self.root / f"{STATE}.tmp"
        tmp.write_text(json.dumps(data, indent=2))
        tmp.replace(self.root / STATE)

    def _running(self) -> list[Proc]:
        return [p for p in self.state.processes if p.alive()] if self.state else []

    def _fresh_root(self) -> None:
        if self.root.exists() and any(self.root.iterdir()):
            if not (self.root / MARKER).exists():
                raise ClusterError(f"{self.root} is not empty and was not made by the cluster tool: pick another --dir")
            shutil.rmtree(self.root)
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / MARKER).write_text("made by tests/deploy/mc_cluster.py (scripts/cluster.sh): wiped by 'up'\n")
        self.logs.mkdir()
        self.home.mkdir()

    def _start(self, name: str, args: list[str], env: dict[str, str], log_name: str | None = None) -> Proc:
        log = self.logs / f"{log_name or name}.log"
        with log.open("ab") as out:
            popen = subprocess.Popen(
                args,
                env=env,
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: stopped as a group, untouched by a terminal's Ctrl-C
            )
        info = _stat(popen.pid)
        proc = Proc(name=name, pid=popen.pid, started=info[1] if info else 0, log=str(log))
        self._st().processes.append(proc)
        self._save()
        return proc

    def _wait(self, what: str, check: Callable[[], bool], timeout: float, watch: Iterable[Proc] = ()) -> None:
        deadline = time.monotonic() + timeout
        watch = list(watch)
        while True:
            with suppress(OSError, ValueError, urllib.error.URLError, KeyError, TypeError):
                if check():
                    return
            for proc in watch:
                if not proc.alive():
                    raise ClusterError(f"{proc.name} exited while waiting for {what}", Path(proc.log))
            if time.monotonic() > deadline:
                log = Path(watch[0].log) if watch else None
                raise ClusterError(f"{what} not ready within {timeout:.0f} s", log)
            _reap()
            time.sleep(0.25)

    def _run(self, name: str, args: list[str], env: dict[str, str], timeout: float) -> None:
        """Run a command to completion in its own group (stopped on timeout or interrupt)."""
        proc = self._start(name, args, env)
        try:
            deadline = time.monotonic() + timeout
            while proc.alive():
                if time.monotonic() > deadline:
                    raise ClusterError(f"{name} did not finish within {timeout:.0f} s", Path(proc.log))
                _reap()
                time.sleep(0.2)
        finally:
            proc.stop(grace=5)
            self._st().processes.remove(proc)
            self._save()
        text = Path(proc.log).read_text(errors="replace")
        if "Database migrating done!" not in text and "Database migration done" not in text:
            raise ClusterError(f"{name} failed", Path(proc.log))

    def up(self, timeout: float = 420) -> None:
        """Start everything; on failure or interrupt stop what was started and raise."""
        if self._running():
            raise ClusterError(f"a cluster is already running from {self.root}: ./scripts/cluster.sh down first")
        if self.state is not None:
            self.down(quiet=True)  # a stale state (e.g. the machine rebooted): clean it up first
        binaries = pg_bin()
        if binaries is None:
            raise ClusterError("PostgreSQL server binaries (initdb) not installed: apt-get install postgresql")
        redis_server = shutil.which("redis-server")
        if redis_server is None:
            raise ClusterError("redis-server not installed: apt-get install redis-server")
        started = time.monotonic()
        self._fresh_root()
        as_postgres = os.geteuid() == 0
        self.state = State(
            root=str(self.root),
            ports=Ports.allocate(),
            admin_password=secrets.token_urlsafe(18),
            callback_secret=secrets.token_urlsafe(32),
            sandbox_password=secrets.token_urlsafe(18),
            dags_folder=str(self._dags_folder()),
            pg_data=str(self.root / "pg" / "data"),
            pg_as_postgres=as_postgres,
            pg_bin=str(binaries),
        )
        keys = {"fernet": base64.urlsafe_b64encode(os.urandom(32)).decode(), "jwt": secrets.token_urlsafe(32)}
        (self.root / "keys.json").write_text(json.dumps(keys))
        (self.root / "passwords.json").write_text(json.dumps({ADMIN_USER: self.state.admin_password}))
        for private in ("keys.json", "passwords.json"):
            (self.root / private).chmod(0o600)
        self._save()
        previous = {sig: signal.signal(sig, _raise_interrupted) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self._up(redis_server, timeout)
            self.state.up_seconds = round(time.monotonic() - started, 1)
            self._save()
            self._write_env_file()
        except BaseException:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            self.down(quiet=True, keep_logs=True)
            raise
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _dags_folder(self) -> Path:
        if len(self.dags) == 1:
            return self.dags[0]
        target = self.root / "dags"
        target.mkdir()
        for source in self.dags:
            for item in source.iterdir():
                if item.name.startswith((".", "__pycache__")):
                    continue
                if item.is_dir():
                    shutil.copytree(item, target / item.name, dirs_exist_ok=True)
                else:
                    shutil.copy2(item, target / item.name)
        return target

    def _up(self, redis_server: str, timeout: float) -> None:
        st = self._st()
        deadline = time.monotonic() + timeout
        say(f"cluster: starting in {self.root} (logs in {self.logs})")

        step = Step("PostgreSQL (metadata + reports)")
        self._start_postgres()
        step.done(f"127.0.0.1:{st.ports.postgres}")

        step = Step("Redis (Celery broker)")
        redis = self._start(
            "redis",
            [
                redis_server,
                *("--port", str(st.ports.redis), "--bind", "127.0.0.1", "--save", ""),
                *("--appendonly", "no", "--dir", str(self.root)),
            ],
            self._base_env(),
        )
        self._wait("redis", lambda: redis_ping(st.ports.redis), 30, [redis])
        step.done(f"127.0.0.1:{st.ports.redis}")

        step = Step("MessageCentral sandbox")
        sandbox = self._start(
            "sandbox",
            [
                *(str(BIN / "python"), "-m", "airflow_provider_messagecentral.sandbox"),
                *("--port", str(st.ports.sandbox), "--password", st.sandbox_password),
                *("--callback-delay", "0.5", "--status-mix", STATUS_MIX),
            ],
            # The callback URL holds the receiver's secret: environment only, never a command line.
            {**self._base_env(), "MESSAGECENTRAL_SANDBOX_CALLBACK_URL": self.callback_url},
        )
        self._wait("the sandbox", lambda: http("GET", f"{self.sandbox_url}/__sandbox/stats")[0] == 200, 30, [sandbox])
        step.done(self.sandbox_url)

        env = {**self._base_env(), **self.env()}
        airflow = str(BIN / "airflow")
        step = Step("airflow db migrate (PostgreSQL)")
        self._run("db-migrate", [airflow, "db", "migrate"], env, timeout=max(deadline - time.monotonic(), 60))
        step.done()

        step = Step(f"Airflow: api-server ({self.api_workers} workers), scheduler, dag-processor, triggerer, 2 workers")
        api = self._start(
            "api-server",
            [airflow, "api-server", "--host", "127.0.0.1", "--port", str(st.ports.api), "-w", str(self.api_workers)],
            env,
        )
        scheduler = self._start("scheduler", [airflow, "scheduler", "--skip-serve-logs"], env)
        processor = self._start("dag-processor", [airflow, "dag-processor"], env)
        triggerer = self._start("triggerer", [airflow, "triggerer", "--skip-serve-logs"], env)
        workers = [
            self._start(
                name,
                [
                    *(airflow, "celery", "worker", "--celery-hostname", f"{name}@%h"),
                    *("--concurrency", str(self.worker_concurrency), "--skip-serve-logs"),
                ],
                {**env, "MC_CLUSTER_HOSTNAME": name},
            )
            for name in WORKERS
        ]
        airflow_procs = [api, scheduler, processor, triggerer, *workers]
        remaining = lambda: max(deadline - time.monotonic(), 30)  # noqa: E731
        self._wait(
            "the api-server", lambda: http("GET", f"{self.api_url}/api/v2/version")[0] == 200, remaining(), [api]
        )
        self._wait("scheduler, dag-processor and triggerer heartbeats", self._healthy, remaining(), airflow_procs)
        for worker in workers:
            self._wait(
                f"{worker.name}",
                lambda w=worker: " ready." in Path(w.log).read_text(errors="replace"),  # type: ignore[misc]
                remaining(),
                [worker],
            )
        step.done(self.api_url)

    def _healthy(self) -> bool:
        status, body = http("GET", f"{self.api_url}/api/v2/monitor/health")
        if status != 200:
            return False
        parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
        return all(body.get(part, {}).get("status") == "healthy" for part in parts)

    def _pg(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        st = self._st()
        prefix = ["runuser", "-u", "postgres", "--"] if st.pg_as_postgres else []
        result = subprocess.run(
            [*prefix, str(Path(st.pg_bin) / tool), *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
            start_new_session=True,
        )
        if check and result.returncode != 0:
            log = self.logs / f"{tool}.log"
            log.write_text(result.stdout + result.stderr)
            raise ClusterError(f"{tool} failed (exit {result.returncode})", log)
        return result

    def _start_postgres(self) -> None:
        st = self._st()
        base = self.root / "pg"
        sock = base / "sock"
        sock.mkdir(parents=True)
        if st.pg_as_postgres:
            for path in (base, sock):
                shutil.chown(path, "postgres")
        self._pg("initdb", "-D", st.pg_data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")
        opts = (
            f"-p {st.ports.postgres} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
        )
        log = self.logs / "postgres.log"
        log.touch()
        if st.pg_as_postgres:
            shutil.chown(log, "postgres")
        self._pg("pg_ctl", "-D", st.pg_data, "-o", opts, "-l", str(log), "-w", "-t", "60", "start")
        import psycopg

        dsn = f"host=127.0.0.1 port={st.ports.postgres} user=postgres dbname=postgres"
        with psycopg.connect(dsn, autocommit=True) as conn:
            for database in ("airflow", "reports"):
                conn.execute(f'CREATE DATABASE "{database}"')

    def _stop_postgres(self) -> None:
        st = self._st()
        if not Path(st.pg_data, "postmaster.pid").exists():
            return
        result = self._pg("pg_ctl", "-D", st.pg_data, "-m", "fast", "-w", "-t", "30", "stop", check=False)
        if result.returncode != 0 and Path(st.pg_data, "postmaster.pid").exists():
            self._pg("pg_ctl", "-D", st.pg_data, "-m", "immediate", "stop", check=False)

    def down(self, quiet: bool = False, keep_logs: bool = True) -> None:
        """Stop every process recorded in the state file, then PostgreSQL; remove the database files."""
        if self.state is None:
            if not quiet:
                say(f"cluster: nothing to stop in {self.root}")
            return
        st = self.state
        by_name: dict[str, list[Proc]] = {}
        for proc in st.processes:
            by_name.setdefault(proc.name, []).append(proc)
        order = [*STOP_ORDER, *(n for n in by_name if n not in STOP_ORDER)]
        for name in order:
            for proc in by_name.get(name, []):
                if proc.members():
                    if not quiet:
                        say(f"cluster: stopping {name} (pid {proc.pid})")
                    # Celery workers finish (or give up) their running tasks on SIGTERM: give them time.
                    proc.stop(grace=20 if name.startswith("worker") else 10)
        if not quiet:
            say("cluster: stopping PostgreSQL")
        self._stop_postgres()
        shutil.rmtree(self.root / "pg", ignore_errors=True)
        for private in ("keys.json", "passwords.json", "env.sh", "dump.rdb"):
            (self.root / private).unlink(missing_ok=True)
        (self.root / STATE).unlink(missing_ok=True)
        if not keep_logs:
            shutil.rmtree(self.root, ignore_errors=True)
        self.state = None
        if not quiet:
            say(f"cluster: stopped (logs kept in {self.logs})")

    def status(self) -> dict[str, Any]:
        st = self._st()
        processes = {p.name: {"pid": p.pid, "alive": p.alive(), "log": p.log} for p in st.processes}
        pg_alive = (
            Path(st.pg_data, "postmaster.pid").exists()
            and self._pg("pg_ctl", "-D", st.pg_data, "status", check=False).returncode == 0
        )
        processes["postgres"] = {"alive": pg_alive, "log": str(self.logs / "postgres.log")}
        health: Any = None
        with suppress(OSError, ValueError, urllib.error.URLError):
            health = http("GET", f"{self.api_url}/api/v2/monitor/health")[1]
        return {
            "root": st.root,
            "api": self.api_url,
            "login": f"{ADMIN_USER} / password in {self.root / 'passwords.json'}",
            "sandbox": self.sandbox_url,
            "callback": f"{self.api_url}/messagecentral/callback/<secret in env.sh>",
            "reports_url": self.reports_url,
            "dags_folder": st.dags_folder,
            "processes": processes,
            "health": health,
            "up_seconds": st.up_seconds,
        }

    def _write_env_file(self) -> None:
        lines = [
            "# The local cluster's Airflow environment: source it to run airflow commands against the cluster.",
            *(f"export {k}={shlex.quote(v)}" for k, v in sorted(self.env().items())),
            f'export PATH={shlex.quote(str(BIN))}:"$PATH"',
            "",
        ]
        path = self.root / "env.sh"
        path.write_text("\n".join(lines))
        path.chmod(0o600)


class Step:
    def __init__(self, title: str) -> None:
        self.started = time.monotonic()
        print(f"  {title} ...", end="", flush=True)

    def done(self, note: str = "") -> None:
        print(f" ok ({time.monotonic() - self.started:.1f} s{', ' + note if note else ''})", flush=True)


def _raise_interrupted(signum: int, _frame: FrameType | None) -> None:
    raise Interrupted(signal.Signals(signum).name)


def http(method: str, url: str, body: Any = None, token: str | None = None, timeout: float = 10.0) -> tuple[int, Any]:
    """A small JSON HTTP client (stdlib only: ``cluster.sh`` needs nothing beyond the venv)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - our own local servers
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            raw = response.read()
            status = response.status
    except urllib.error.HTTPError as err:
        raw, status = err.read(), err.code
    try:
        return status, json.loads(raw or b"null")
    except ValueError:
        return status, raw.decode("utf-8", "replace")


def redis_ping(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(16).startswith(b"+PONG")


# -- command line -----------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/cluster.sh",
        description="A local distributed Airflow deployment (CeleryExecutor, Redis, PostgreSQL, api-server with "
        "the messagecentral plugin, scheduler, dag-processor, triggerer, two workers, the MessageCentral sandbox).",
    )
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--dir", default=str(REPO / ".cluster"), help="state directory (default .cluster/)")
    parser.add_argument("--dags", action="append", default=None, help="DAG folder (repeatable; default example_dags/)")
    parser.add_argument("--api-workers", type=int, default=2, help="api-server worker processes (default 2)")
    parser.add_argument("--worker-concurrency", type=int, default=2, help="task slots per Celery worker (default 2)")
    args = parser.parse_args(argv)
    cluster = Cluster(
        Path(args.dir),
        dags=[Path(d) for d in args.dags] if args.dags else (REPO / "example_dags",),
        api_workers=args.api_workers,
        worker_concurrency=args.worker_concurrency,
    )
    if args.command == "down":
        cluster.down()
        return 0
    if args.command == "status":
        if cluster.state is None:
            say(f"cluster: not running (no state in {cluster.root})")
            return 3
        print(json.dumps(cluster.status(), indent=2))
        return 0 if all(p["alive"] for p in cluster.status()["processes"].values()) else 1
    try:
        cluster.up()
    except ClusterError as err:
        say()
        say(f"cluster: {err}; everything it started was stopped")
        if err.log is not None:
            say(f"last lines of {err.log}:")
            say(tail(err.log))
        return 1
    except Interrupted as err:
        say()
        say(f"cluster: interrupted ({err}); everything it started was stopped")
        return 130
    say()
    say(f"Airflow UI and REST API  {cluster.api_url}  (login {ADMIN_USER}, password in {cluster.root}/passwords.json)")
    say(f"MessageCentral sandbox   {cluster.sandbox_url}/__sandbox/messages")
    say(f"Callback URL             {cluster.api_url}/messagecentral/callback/<MESSAGECENTRAL_CALLBACK_SECRET>")
    say(f"Reports                  {cluster.reports_url}")
    say(f"Your own airflow CLI     source {cluster.root}/env.sh && airflow dags list")
    say("Stop it with             ./scripts/cluster.sh down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
