"""Run the receiver under uvicorn in a background thread (tests, the demo, notebooks)."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn

from airflow_provider_messagecentral.reports.app import create_app


class ReceiverServer:
    """
    The delivery-report receiver on a free local port, served by uvicorn in a daemon thread.

    :param store_url: SQLAlchemy URL of the report store (default as in ``create_app``).
    :param secret: callback secret (default ``$MESSAGECENTRAL_CALLBACK_SECRET``).
    :param host: interface to bind (default ``127.0.0.1``).
    :param port: port to bind; 0 picks a free one.
    :param app_options: further keyword arguments of ``create_app`` (``max_body_bytes``, ...).

    Example::

        with ReceiverServer("sqlite:////tmp/r.db", secret="a-long-random-secret") as server:
            requests.post(f"{server.url}/callback/a-long-random-secret", json=report)
    """

    def __init__(
        self,
        store_url: str | None = None,
        secret: str | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        **app_options: Any,
    ) -> None:
        self.app = create_app(store_url, secret, **app_options)
        self.host = host
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.port: int = self._sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:40123`` (the callback URL is ``{url}/callback/<secret>``)."""
        return f"http://{self.host}:{self.port}"

    def __repr__(self) -> str:
        return f"ReceiverServer({self.url!r})"

    def start(self, timeout: float = 10.0) -> ReceiverServer:
        """Start serving; returns once uvicorn accepts connections."""
        if self._thread is not None:
            return self
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, name="mc-receiver", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the receiver did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and release the port."""
        if self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout)
            self._thread = None
        self._sock.close()

    def __enter__(self) -> ReceiverServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
