"""
Group commit: concurrent callbacks stored by one writer per process and store, in shared transactions.

The receiver validates a callback on its event loop and hands the reports to the store's
:class:`GroupCommit` (:attr:`ReportStore.group_commit <.ingest.IngestRoom.group_commit>`). One writer thread
takes everything queued meanwhile and commits it in one transaction (:meth:`.ingest.IngestRoom.ingest_batch`);
while it commits, the next callbacks queue up, so the busier the receiver, the larger its transactions.

* **Acknowledged means stored**: a callback's future is resolved only after the transaction that holds its
  reports committed. A transaction that fails answers every request in it with the error (the receiver
  answers 503), and a process that dies before the commit answers nothing.
* A batch that fails for the data of one of its requests (an integrity or data error, not the database
  being unreachable, locked or full) is committed again request by request, so one bad callback cannot fail
  its neighbours.
* The writer is a thread, not a task of one event loop: it serves every loop of the process (uvicorn, a
  sub-app mounted in the Airflow api-server, which gets no lifespan events, test clients that open a loop per
  request). It starts on the first callback, stops after :data:`IDLE_SECONDS` without work and starts again
  on the next one. A forked child starts its own.
* The writer keeps one connection while it has work (:class:`_HeldConnection`): a transaction costs no pool
  checkout, nor the ping PostgreSQL connections get at checkout. It gives the connection back when the queue
  runs dry, throws it away after a failed transaction, and runs a transaction once more on a new connection
  when the database had closed the one it held.
* The first writer of a process tunes the cyclic garbage collector for serving
  (:data:`TUNE_GARBAGE_COLLECTOR`): it moves every object that exists by then (the imported modules, the
  app) out of the collector's reach (:func:`gc.freeze`) and collects the youngest generation every
  :data:`YOUNG_COLLECTION_THRESHOLD` allocations instead of 700. Callbacks wait for their commit, so the
  objects of the ~32 callbacks in flight are re-scanned by every young collection and promoted into full
  ones, which re-scanned the ~100,000 startup objects every few hundred callbacks: a sixth of the
  receiver's CPU and most of its p99 latency under 32 concurrent clients. Frozen objects are still freed
  by reference counting; only cycles among them are never collected.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import threading
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from airflow_provider_messagecentral.reports.models import DeliveryReport, IngestResult
from airflow_provider_messagecentral.reports.store.attribution import IngestRequest

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from airflow_provider_messagecentral.reports.store.ingest import IngestRoom

log = logging.getLogger(__name__)

#: [this process's id, whether its garbage collector is tuned]; a forked child starts afresh (its writers
#: are the parent's objects, without their threads).
_process: list[Any] = [os.getpid(), False]
_writers_lock = threading.Lock()


def _after_fork() -> None:
    global _writers_lock
    _process[:] = [os.getpid(), False]
    _writers_lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork)

#: Most reports one transaction takes (a request is never split; the first one is always taken).
MAX_BATCH_REPORTS = 2000
#: Seconds the writer thread waits for work before it stops (it starts again on the next callback).
IDLE_SECONDS = 5.0
#: Seconds a writer that emptied the queue waits before it asks to be woken. Under load the next callbacks
#: arrive meanwhile and are taken without waking the writer from the event loop: a wake-up preempted the
#: event loop's thread (which holds the GIL) for ~100 µs. A lone callback waits this much longer.
LINGER_SECONDS = 0.002
#: Tune the garbage collector when the process's first writer starts (:func:`gc.freeze`, young threshold).
TUNE_GARBAGE_COLLECTOR = True
#: Allocations between two collections of the youngest generation once tuned (never lowered; Python: 700).
YOUNG_COLLECTION_THRESHOLD = 10_000
#: Errors that say the database itself failed (unreachable, locked, full): every request of the batch fails.
DATABASE_ERRORS = (OperationalError, InterfaceError, PoolTimeoutError)


@dataclass(eq=False)
class _Waiting:
    """A queued request and the future its callback awaits (on its own event loop)."""

    request: IngestRequest
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[IngestResult]


class _HeldConnection:
    """
    The writer's connection, held while it has work: a transaction then costs no pool checkout (nor the
    ping PostgreSQL connections get at checkout). Given back when the writer runs out of work; thrown away
    after a failed transaction (the database may have closed it).
    """

    def __init__(self, store: IngestRoom) -> None:
        self.store = store
        self._connection: Connection | None = None
        self._reused = False

    def connection(self) -> Connection:
        """The held connection, opened from the store's pool on first use."""
        if self._connection is None:
            self._connection = self.store.writer_connection()
            self._reused = False
        else:
            self._reused = True
        return self._connection

    def lost(self, err: BaseException) -> bool:
        """Whether ``err`` says that the connection, held since an earlier transaction, is gone."""
        return self._reused and self._connection is not None and self.store.connection_lost(self._connection, err)

    def release(self) -> None:
        """Give the connection back to the pool."""
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.close()

    def discard(self) -> None:
        """Throw the connection away (its database connection closed, never pooled again)."""
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.invalidate()
            with contextlib.suppress(Exception):
                connection.close()


def _deliver(outcomes: list[tuple[asyncio.Future[IngestResult], IngestResult | BaseException]]) -> None:
    """Resolve futures on their loop (a future whose request was cancelled is left alone)."""
    for future, outcome in outcomes:
        if future.done():
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


class GroupCommit:
    """
    The group-commit writer of one report store in this process.

    Get it from the store (``store.group_commit``), never build a second one for the same store.

    :param store: the report store the writer commits to.
    :param max_reports: most reports one transaction takes (:data:`MAX_BATCH_REPORTS`).
    :param idle_seconds: the writer thread stops after this long without work (:data:`IDLE_SECONDS`).

    Example::

        result = await store.group_commit.ingest(reports, ['{"messageId": "m1", ...}'], "10.0.0.1")
        print(result.stored, store.group_commit.transactions)
    """

    def __init__(
        self, store: IngestRoom, *, max_reports: int = MAX_BATCH_REPORTS, idle_seconds: float = IDLE_SECONDS
    ) -> None:
        self.store = store
        self.max_reports = max_reports
        self.idle_seconds = idle_seconds
        self.linger_seconds = LINGER_SECONDS
        self.pid = _process[0]
        #: Transactions committed and requests acknowledged so far (group commit: fewer of the former).
        self.transactions = 0
        self.requests = 0
        self._cond = threading.Condition()
        self._queue: deque[_Waiting] = deque()
        self._thread: threading.Thread | None = None
        self._idle = False

    @classmethod
    def of(cls, store: IngestRoom) -> GroupCommit:
        """The writer of ``store`` in this process, created on first use (one per store and process)."""
        writer: GroupCommit | None = store.__dict__.get("_group_commit")
        if writer is not None and writer.pid == _process[0]:
            return writer
        with _writers_lock:
            writer = store.__dict__.get("_group_commit")
            if writer is None or writer.pid != _process[0]:
                writer = cls(store)
                store.__dict__["_group_commit"] = writer
            return writer

    def __repr__(self) -> str:
        return f"GroupCommit({self.store!r}, transactions={self.transactions}, requests={self.requests})"

    async def ingest(
        self, reports: Sequence[DeliveryReport], raw_bodies: Sequence[str], remote: str | None = None
    ) -> IngestResult:
        """
        Queue one callback's validated reports; returns its counts once the transaction holding them committed.

        Raises what the transaction raised (nothing of the request is stored then).
        """
        loop = asyncio.get_running_loop()
        waiting = _Waiting(IngestRequest(reports, raw_bodies, remote), loop, loop.create_future())
        with self._cond:
            self._queue.append(waiting)
            if self._thread is None:
                _tune_garbage_collector()
                self._thread = threading.Thread(target=self._run, name="mc-ingest-writer", daemon=True)
                try:
                    self._thread.start()
                except BaseException:
                    self._queue.remove(waiting)
                    self._thread = None
                    raise
            elif self._idle:
                # Only the first request to find the writer waiting wakes it; a busy writer looks at the queue
                # again before it waits.
                self._idle = False
                self._cond.notify()
        return await waiting.future

    def _run(self) -> None:
        """The writer thread: take what is queued, commit it, answer; stop when idle."""
        batch: list[_Waiting] = []
        held = _HeldConnection(self.store)
        try:
            while True:
                with self._cond:
                    if not self._queue:
                        # Linger first: callbacks arriving meanwhile do not have to wake the writer (a wake-up
                        # from the event loop cost it more than the callback's own work, see LINGER_SECONDS).
                        self._cond.wait(self.linger_seconds)
                    if not self._queue:
                        held.release()
                        self._idle = True
                        self._cond.wait(self.idle_seconds)
                        self._idle = False
                        if not self._queue:
                            self._thread = None
                            return
                    batch = self._take()
                self._commit(batch, held)
                batch = []
        except BaseException as err:  # never leave a callback waiting: answer it, let the next one restart
            with self._cond:
                batch += self._queue
                self._queue.clear()
                self._thread = None
            self._answer(batch, [err] * len(batch))
            raise
        finally:
            held.release()

    def _take(self) -> list[_Waiting]:
        """The queued requests of one transaction, in arrival order (called holding the condition)."""
        batch = [self._queue.popleft()]
        size = len(batch[0].request.reports)
        while self._queue and size + len(self._queue[0].request.reports) <= self.max_reports:
            waiting = self._queue.popleft()
            size += len(waiting.request.reports)
            batch.append(waiting)
        return batch

    def _commit(self, batch: list[_Waiting], held: _HeldConnection) -> None:
        """Commit ``batch`` in one transaction and answer each request (split once on a data error)."""
        requests = [waiting.request for waiting in batch]
        try:
            try:
                results = self.store.ingest_batch(requests, held.connection())
            except DATABASE_ERRORS as err:
                if not held.lost(err):
                    raise
                # The database closed the connection held since an earlier transaction (restarted, idle
                # timeout): run the transaction once more on a new connection, as the pool's ping at checkout
                # would have (safe even if its commit went through: ingest is idempotent).
                held.discard()
                results = self.store.ingest_batch(requests, held.connection())
        except DATABASE_ERRORS as err:
            held.discard()
            self._answer(batch, [err] * len(batch))
        except Exception as err:
            held.discard()
            if len(batch) == 1:
                self._answer(batch, [err])
                return
            log.warning(
                "Report store %s: a transaction of %d callbacks failed (%s); committing them one by one",
                self.store.masked_url,
                len(batch),
                type(err).__name__,
            )
            for waiting in batch:
                self._commit([waiting], held)
        else:
            self.transactions += 1
            self.requests += len(batch)
            self._answer(batch, results)

    @staticmethod
    def _answer(batch: list[_Waiting], outcomes: Sequence[IngestResult | BaseException]) -> None:
        """Hand each request its outcome on its own event loop (one wake-up per loop)."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[IngestResult], Any]]] = {}
        for waiting, outcome in zip(batch, outcomes, strict=True):
            by_loop.setdefault(waiting.loop, []).append((waiting.future, outcome))
        for loop, outcomes_of_loop in by_loop.items():
            # A closed loop raises RuntimeError: nobody waits for these answers any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_deliver, outcomes_of_loop)


def _tune_garbage_collector() -> None:
    """Once per process, when its first writer starts: :data:`TUNE_GARBAGE_COLLECTOR`."""
    if TUNE_GARBAGE_COLLECTOR and not _process[1]:
        _process[1] = True
        gc.freeze()
        young, middle, old = gc.get_threshold()
        if young:  # 0: collection disabled by the application, leave it so
            gc.set_threshold(max(young, YOUNG_COLLECTION_THRESHOLD), middle, old)


_opened: dict[int, IngestRoom] = {}
_opened_lock = threading.Lock()


def _forget(key: int) -> None:
    with _opened_lock:
        _opened.pop(key, None)


async def ingest_callback(
    open_store: Callable[[], IngestRoom], reports: Sequence[DeliveryReport], raw_body: str, remote: str | None
) -> IngestResult:
    """
    Hand one validated callback to the group commit of the store ``open_store`` opens.

    ``open_store`` (blocking the first time: it may create the schema) runs in a thread once per owner (the
    receiver's configuration); after that the callback goes to the store's writer without leaving the loop.
    """
    owner = getattr(open_store, "__self__", open_store)
    store = _opened.get(id(owner))
    if store is None:
        store = await asyncio.to_thread(open_store)
        try:
            weakref.finalize(owner, _forget, id(owner))
        except TypeError:
            pass  # an owner without weak references is opened every time (in a thread)
        else:
            with _opened_lock:
                _opened[id(owner)] = store
    return await GroupCommit.of(store).ingest(reports, [raw_body], remote)
