"""A thread-safe token bucket: the client-side cap on requests per second of one hook."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RateLimiter:
    """
    Allow ``rate`` requests per second on average, with bursts up to ``burst`` (default: one second's worth).

    ``acquire()`` blocks until a request may go out. ``rate=None`` or 0 means no limit.

    .. code-block:: python

        limiter = RateLimiter(10)  # ten requests per second
        limiter.acquire()  # returns the seconds it waited
    """

    def __init__(
        self,
        rate: float | None,
        burst: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate is not None and rate < 0:
            raise ValueError(f"rate_limit_per_second must be positive, got {rate!r}")
        self.rate = rate or None
        self.capacity = max(1.0, burst if burst is not None else (rate or 1.0))
        self._tokens = self.capacity
        self._clock = clock
        self._sleep = sleep
        self._last = clock()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Take one token; return the seconds waited."""
        if self.rate is None:
            return 0.0
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
                self._last = now
                if self._tokens >= 1.0:
                    self._tokens -= 1.0
                    return waited
                delay = (1.0 - self._tokens) / self.rate
            self._sleep(delay)
            waited += delay
