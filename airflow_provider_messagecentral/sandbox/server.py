"""Run the sandbox in a background thread: for tests, notebooks and the demo."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any

import requests
import uvicorn

from airflow_provider_messagecentral.sandbox.app import create_app
from airflow_provider_messagecentral.sandbox.config import SandboxConfig
from airflow_provider_messagecentral.sandbox.state import SandboxState


class SandboxServer:
    """
    A MessageCentral look-alike served by uvicorn in a daemon thread on a free local port.

    Point a ``messagecentral`` connection's host at :attr:`url`, with the sandbox's customer id, password
    and e-mail, and every hook, operator and DAG talks to it instead of MessageCentral.

    :param config: the account and callback settings; defaults to :class:`SandboxConfig` defaults.
    :param host: interface to listen on.
    :param port: port to listen on; ``0`` picks a free one.
    :param access_log: let uvicorn log every request (slow; off by default).

    Example (a pytest test)::

        from airflow_provider_messagecentral.sandbox import SandboxConfig, SandboxServer


        def test_campaign_texts_everyone(monkeypatch):
            with SandboxServer(SandboxConfig(callback_delay=0)) as sandbox:
                monkeypatch.setenv(
                    "AIRFLOW_CONN_MESSAGECENTRAL_DEFAULT",
                    f'{{"conn_type": "messagecentral", "host": "{sandbox.url}", "login": "C-SANDBOX0000001",'
                    ' "password": "sandbox", "extra": {"email": "sandbox@example.com"}}',
                )
                sandbox.set_faults(rate_limit={"count": 2, "retry_after": "1"})
                ...  # run the DAG or call the hook
                assert [m["mobile"] for m in sandbox.messages()] == ["919816111111"]
    """

    def __init__(
        self,
        config: SandboxConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        access_log: bool = False,
    ) -> None:
        self.config = config or SandboxConfig()
        self.host = host
        self.port = port
        self.access_log = access_log
        self.state = SandboxState(self.config)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._session = requests.Session()

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321`` (use as the connection's host)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 15.0) -> SandboxServer:
        """Start serving and wait until the sandbox answers; return ``self``."""
        if self._thread is not None:
            return self
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            create_app(state=self.state),
            log_level="warning",
            access_log=self.access_log,
            lifespan="off",
            timeout_keep_alive=30,
        )
        self._server = uvicorn.Server(config)
        server = self._server
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="messagecentral-sandbox", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if server.started:
                try:
                    if self._session.get(f"{self.url}/__sandbox/stats", timeout=2).ok:
                        return self
                except requests.RequestException:
                    pass
            if not self._thread.is_alive():
                break
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"MessageCentral sandbox did not start on {self.host}:{self.port} within {timeout}s")

    def stop(self) -> None:
        """Stop serving and the callback workers."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None
        self.state.close()
        self._session.close()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- helpers for tests (direct calls into the state, no HTTP) ------------------------------------
    def reset(self, restore_config: bool = False) -> None:
        """Clear log, statistics, faults and queued callbacks (``restore_config`` also undoes :meth:`configure`)."""
        self.state.reset(restore_config=restore_config)

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        """Inject faults, e.g. ``set_faults(errors={"count": 2, "status": 503})``; return all current faults."""
        return self.state.set_faults(faults)

    def configure(self, **settings: Any) -> dict[str, object]:
        """
        Change settings, e.g. ``configure(callback_url=..., callback_delay=0)`` or ``configure(balance=100)``
        (also ``status_mix``, ``duplicates``, ``out_of_order``, ``seed``, ``field_types``, ``credit_per_segment``).
        """
        return self.state.configure(settings)

    def requests(self) -> list[dict[str, Any]]:
        """Accepted sends with their recipients (``mobile``, ``text``, ``message_id``)."""
        return self.state.requests()

    def messages(self) -> list[dict[str, Any]]:
        """One entry per texted recipient."""
        return self.state.messages()

    def rejected(self) -> list[dict[str, Any]]:
        """Refused requests with status and reason."""
        return self.state.rejected()

    def balance(self) -> float:
        """The account's credit left (sends consume it per segment and recipient)."""
        return self.state.balance()

    def stats(self) -> dict[str, int]:
        """Counters: token_requests, send_requests, accepted_sends, messages, rejected, callbacks_*."""
        return self.state.stats()

    def flush_callbacks(self, timeout: float = 30, expedite: bool = False) -> dict[str, Any]:
        """Wait until every queued delivery report is sent; return whether it finished and the counters."""
        done = self.state.dispatcher.flush(timeout, expedite)
        return {"flushed": done, **self.state.dispatcher.counts()}

    def __repr__(self) -> str:
        return f"SandboxServer(url={self.url!r}, running={self._thread is not None})"
