"""What is safe to retry, how long to wait (Retry-After, exponential backoff with jitter), and the bound."""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable
from datetime import timezone
from typing import TypeVar

import requests
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
)

from airflow_provider_messagecentral.exceptions import (
    MessageCentralRetryableError,
    MessageCentralUncertainError,
)

log = logging.getLogger(__name__)


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
T = TypeVar("T")


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP-date; None if unusable."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    current = now if now is not None else time.time()
    return max(0.0, when.timestamp() - current)


def transport_error(err: requests.RequestException, what: str) -> MessageCentralRetryableError:
    """
    Turn a ``requests`` failure into our error, dropping its text (it may hold the URL and its query).

    A failure before the request left (connect error or connect timeout) is plainly retryable. A read timeout
    or a connection dropped mid-request is *uncertain*: MessageCentral may have accepted the request.
    """
    if isinstance(err, requests.ConnectTimeout):
        return MessageCentralRetryableError(f"{what}: timed out connecting to MessageCentral")
    if isinstance(err, requests.ReadTimeout):
        return MessageCentralUncertainError(f"{what}: no answer from MessageCentral before the read timeout")
    if isinstance(err, requests.ConnectionError):
        reason = repr(err.args[0]) if err.args else ""
        if "NewConnectionError" in reason or "NameResolutionError" in reason or "refused" in reason.lower():
            return MessageCentralRetryableError(f"{what}: could not connect to MessageCentral")
        return MessageCentralUncertainError(f"{what}: connection to MessageCentral dropped mid-request")
    return MessageCentralUncertainError(f"{what}: request to MessageCentral failed ({type(err).__name__})")


class _RetryAfterOrBackoff:
    """tenacity wait: honour the server's Retry-After when it gave one, else exponential backoff + jitter."""

    def __init__(self, max_wait: float, attempt_offset: int = 0) -> None:
        self.max_wait = max_wait
        self.attempt_offset = attempt_offset

    def __call__(self, state: RetryCallState) -> float:
        err = state.outcome.exception() if state.outcome else None
        return self.wait_after(err, state.attempt_number + self.attempt_offset)

    def wait_after(self, err: BaseException | None, attempt: int) -> float:
        retry_after = getattr(err, "retry_after", None)
        if retry_after is not None:
            return float(min(retry_after, self.max_wait))
        backoff = 0.5 * 2 ** (attempt - 1) + random.uniform(0, 0.5)
        return float(min(backoff, self.max_wait))


def call_with_retries(
    func: Callable[[], T],
    *,
    max_retries: int,
    max_wait: float,
    retry_uncertain: bool,
    describe: str,
    sleep: Callable[[float], None] | None = None,
) -> T:
    """
    Run ``func``, retrying ``MessageCentralRetryableError`` up to ``max_retries`` times.

    Waits never exceed ``max_wait`` each, and retrying stops once ``4 * max_wait`` seconds have passed in
    total. Uncertain failures are retried only when ``retry_uncertain`` (safe for the token GET, not for a
    send that may already have texted someone).
    """

    def should_retry(err: BaseException) -> bool:
        if not isinstance(err, MessageCentralRetryableError):
            return False
        return retry_uncertain or not isinstance(err, MessageCentralUncertainError)

    # The common case, a first attempt that succeeds, costs no tenacity machinery (building a Retrying
    # per send showed up as a few percent of a send's client time).
    try:
        return func()
    except MessageCentralRetryableError as err:
        if max_retries < 1 or not should_retry(err):
            raise
        first_error = err
    started = time.monotonic()
    waits = _RetryAfterOrBackoff(max_wait, attempt_offset=1)
    pause = waits.wait_after(first_error, 1)
    log.warning("%s: attempt 1 failed (%s); retrying in %.1fs", describe, first_error, pause)
    (sleep or _sleep)(pause)

    def before_sleep(state: RetryCallState) -> None:
        err = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning("%s: attempt %d failed (%s); retrying in %.1fs", describe, state.attempt_number + 1, err, wait)

    retrying = Retrying(
        retry=retry_if_exception(should_retry),
        stop=stop_after_attempt(max_retries) | stop_after_delay(max(0.0, 4 * max_wait - (time.monotonic() - started))),
        wait=waits,
        sleep=sleep or _sleep,
        reraise=True,
        before_sleep=before_sleep,
    )
    return retrying(func)
