"""Delivery-report sender: POSTs report documents to a callback URL from background worker threads."""

from __future__ import annotations

import heapq
import http.client
import itertools
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from airflow_provider_messagecentral.sandbox.config import redact_url

log = logging.getLogger(__name__)


@dataclass(order=True)
class _Job:
    due: float
    seq: int
    generation: int = field(compare=False)
    url: str = field(compare=False, repr=False)
    payloads: list[dict[str, object]] = field(compare=False)


class CallbackDispatcher:
    """
    Sends delivery reports after a delay, in order per message, from a small pool of threads.

    A job is the list of reports of one message (the final status, maybe a duplicate, maybe a stale
    ``UNKNOWN`` after it); one worker POSTs them in that order, one JSON document per request.

    :param workers: number of sending threads (each with its own keep-alive session).
    :param retries: extra attempts of a failed POST before it is counted as failed.
    :param timeout: seconds one POST may take.
    """

    def __init__(self, workers: int = 4, retries: int = 3, timeout: float = 5.0) -> None:
        self.workers = workers
        self.retries = retries
        self.timeout = timeout
        self._cond = threading.Condition()
        self._heap: list[_Job] = []
        self._seq = itertools.count()
        self._generation = 0
        self._threads: list[threading.Thread] = []
        self._closed = False
        self.sent = 0
        self.failed = 0
        self.pending = 0
        self._failures_logged = 0

    def schedule(self, url: str, jobs: list[list[dict[str, object]]], delay: float) -> None:
        """Queue the reports of several messages, due ``delay`` seconds from now."""
        if not jobs:
            return
        due = time.monotonic() + delay
        with self._cond:
            if self._closed:
                return
            for payloads in jobs:
                heapq.heappush(self._heap, _Job(due, next(self._seq), self._generation, url, payloads))
                self.pending += len(payloads)
            if len(self._threads) < self.workers:
                self._start_workers()
            self._cond.notify_all()

    def _start_workers(self) -> None:
        while len(self._threads) < self.workers:
            thread = threading.Thread(target=self._run, name=f"sandbox-callbacks-{len(self._threads)}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def counts(self) -> dict[str, int]:
        with self._cond:
            return {"callbacks_sent": self.sent, "callbacks_failed": self.failed, "callbacks_pending": self.pending}

    def flush(self, timeout: float = 30.0, expedite: bool = False) -> bool:
        """
        Wait until every queued report is sent (or failed); ``True`` when none is left.

        :param timeout: longest wait in seconds.
        :param expedite: send queued reports now instead of waiting out their delay.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            if expedite and self._heap:
                now = time.monotonic()
                for job in self._heap:
                    job.due = min(job.due, now)
                heapq.heapify(self._heap)
                self._cond.notify_all()
            while self.pending > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def clear(self) -> None:
        """Drop queued reports and zero the counters (reports being POSTed right now still go out)."""
        with self._cond:
            self._heap.clear()
            self._generation += 1
            self.sent = self.failed = self.pending = 0
            self._failures_logged = 0
            self._cond.notify_all()

    def close(self) -> None:
        """Stop the workers; queued reports are dropped."""
        with self._cond:
            self._closed = True
            self._heap.clear()
            self.pending = 0
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=self.timeout + 1)

    def _next_job(self) -> _Job | None:
        with self._cond:
            while not self._closed:
                if self._heap:
                    wait = self._heap[0].due - time.monotonic()
                    if wait <= 0:
                        return heapq.heappop(self._heap)
                    self._cond.wait(wait)
                else:
                    self._cond.wait()
            return None

    def _run(self) -> None:
        session = _Poster(self.timeout)
        try:
            while (job := self._next_job()) is not None:
                for payload in job.payloads:
                    ok, reason = self._post(session, job.url, payload)
                    with self._cond:
                        if job.generation != self._generation:
                            continue
                        self.pending -= 1
                        if ok:
                            self.sent += 1
                        else:
                            self.failed += 1
                            self._log_failure(job.url, payload, reason)
                        self._cond.notify_all()
        finally:
            session.close()

    def _post(self, session: _Poster, url: str, payload: dict[str, object]) -> tuple[bool, str]:
        body = json.dumps(payload).encode()
        reason = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(min(0.05 * 2**attempt, 1.0))
            if self._closed:
                return False, "sandbox stopped"
            try:
                status = session.post(url, body)
            except Exception as err:  # any failure of the POST counts as an attempt
                session.close()
                reason = type(err).__name__
                continue
            if 200 <= status < 300:
                return True, ""
            reason = f"HTTP {status}"
            if status < 500 and status not in (408, 429):
                break
        return False, reason

    def _log_failure(self, url: str, payload: dict[str, object], reason: str) -> None:
        # Called with the lock held. Log the first few failures, then every 1000th: a dead receiver
        # must not flood the log. The URL's path (the receiver's secret) is never logged.
        self._failures_logged += 1
        if self._failures_logged <= 3 or self._failures_logged % 1000 == 0:
            log.warning(
                "Delivery report for messageId %s to %s failed after %d attempt(s): %s (%d failed so far)",
                payload.get("messageId"),
                redact_url(url),
                self.retries + 1,
                reason,
                self.failed,
            )


class _Poster:
    """A keep-alive JSON POST client (``http.client``: a fraction of the CPU ``requests`` needs per call)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._key: tuple[str, str] | None = None
        self._conn: http.client.HTTPConnection | None = None

    def post(self, url: str, body: bytes) -> int:
        reused = self._conn is not None
        try:
            return self._post_once(url, body)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            self.close()
            if not reused:
                raise
            # The receiver closed an idle keep-alive connection: retry once on a fresh one.
            return self._post_once(url, body)

    def _post_once(self, url: str, body: bytes) -> int:
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc)
        if self._conn is None or self._key != key:
            self.close()
            host, port = parts.hostname or "localhost", parts.port
            if parts.scheme == "https":
                self._conn = http.client.HTTPSConnection(host, port, timeout=self.timeout)
            elif parts.scheme == "http":
                self._conn = http.client.HTTPConnection(host, port, timeout=self.timeout)
            else:
                raise ValueError("callback URL must be http:// or https://")
            self._key = key
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        headers = {"Content-Type": "application/json", "Accept": "*/*", "User-Agent": "messagecentral-sandbox"}
        self._conn.request("POST", target, body=body, headers=headers)
        response = self._conn.getresponse()
        response.read()
        if response.will_close:
            self.close()
        return response.status

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None
        self._key = None
