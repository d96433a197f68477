"""Per-chunk progress lines for long sends: i/N chunks, recipients sent, rate and ETA."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class ChunkProgress:
    """Log one line per chunk, never one per message (a log line costs more than a send's client work)."""

    def __init__(
        self,
        total_chunks: int,
        total_recipients: int,
        logger: logging.Logger,
        *,
        what: str = "send",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total_chunks = total_chunks
        self.total_recipients = total_recipients
        self.log = logger
        self.what = what
        self._clock = clock
        self._start = clock()
        self.chunks_done = 0
        self.recipients_done = 0

    def chunk_done(self, recipients: int, *, note: str = "") -> None:
        self.chunks_done += 1
        self.recipients_done += recipients
        elapsed = max(self._clock() - self._start, 1e-9)
        rate = self.recipients_done / elapsed
        left = self.total_recipients - self.recipients_done
        eta = left / rate if rate > 0 else 0.0
        self.log.info(
            "%s: chunk %d/%d, %d/%d recipients, %.0f recipients/s, ETA %.0fs%s",
            self.what,
            self.chunks_done,
            self.total_chunks,
            self.recipients_done,
            self.total_recipients,
            rate,
            eta,
            f" ({note})" if note else "",
        )
