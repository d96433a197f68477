"""MessageCentralDeliveryTrigger: wait for a campaign's delivery reports without holding a worker slot."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_messagecentral.hooks.messagecentral import MessageCentralHook

Verdict = Literal["success", "failure", "waiting"]

#: Consecutive failed polls (store unreachable, locked, ...) the trigger tolerates before it gives up.
MAX_CONSECUTIVE_ERRORS = 5


@dataclass(frozen=True)
class DeliveryCheck:
    """
    The verdict of one look at a campaign summary.

    :param verdict: ``success`` (delivered ratio reached), ``failure`` (failed ratio over its bound, or every
        recipient final and the delivered ratio short) or ``waiting``.
    :param message: one line with the numbers, fit for a log line or an exception.
    """

    verdict: Verdict
    message: str


def validate_ratio(name: str, value: Any) -> float:
    """Return ``value`` as a float in [0, 1]; raise ``ValueError`` naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number between 0 and 1, got {value!r} ({type(value).__name__})")
    number = float(value)
    if not 0.0 <= number <= 1.0:  # also rejects NaN
        raise ValueError(f"{name} must be between 0 and 1, got {value!r}")
    return number


def validate_optional_ratio(name: str, value: Any) -> float | None:
    """Like :func:`validate_ratio`, with ``None`` allowed (no bound)."""
    return None if value is None else validate_ratio(name, value)


def validate_final_statuses(value: Any) -> tuple[str, ...] | None:
    """
    ``None`` (the store's final statuses: DELIVRD, EXPIRED, UNDELIV, REJECTD) or a collection of statuses,
    upper-cased, that must include DELIVRD. Any other status in it counts as failed.
    """
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple, set, frozenset)):
        raise ValueError(f"final_statuses must be a list of statuses like ['DELIVRD', 'UNDELIV'], got {value!r}")
    if not value or not all(isinstance(item, str) and item.strip() for item in value):
        raise ValueError(f"final_statuses must hold non-empty status names, got {value!r}")
    statuses = tuple(sorted({item.strip().upper() for item in value}))
    if "DELIVRD" not in statuses:
        raise ValueError(f"final_statuses must include DELIVRD (a delivered message is final), got {value!r}")
    return statuses


def _with_final_statuses(summary: dict[str, Any], final_statuses: tuple[str, ...]) -> dict[str, Any]:
    """The summary recounted with ``final_statuses`` as the final ones (non-DELIVRD ones count as failed)."""
    by_status = summary.get("by_status") or {}
    recipients = int(summary.get("recipients") or 0)
    delivered = int(summary.get("delivered") or 0)
    failed = sum(int(by_status.get(status) or 0) for status in final_statuses if status != "DELIVRD")
    return {
        **summary,
        "failed": failed,
        "final": delivered + failed,
        "pending": max(0, recipients - delivered - failed),
    }


def _pct(value: float) -> str:
    return f"{value * 100:.1f}%"


def describe_progress(summary: dict[str, Any]) -> str:
    """``campaign mc-...: 18 of 20 delivered (90.0%), 1 failed (5.0%), 1 pending``."""
    recipients = int(summary.get("recipients") or 0)
    delivered = int(summary.get("delivered") or 0)
    failed = int(summary.get("failed") or 0)
    pending = int(summary.get("pending") or 0)

    def share(count: int) -> str:
        return _pct(count / recipients) if recipients else "-"

    return (
        f"campaign {summary.get('campaign')}: {delivered} of {recipients} delivered ({share(delivered)}), "
        f"{failed} failed ({share(failed)}), {pending} pending"
    )


def evaluate_delivery(
    summary: dict[str, Any],
    min_delivered_ratio: float,
    max_failed_ratio: float | None = None,
    final_statuses: tuple[str, ...] | None = None,
) -> DeliveryCheck:
    """
    Judge a campaign summary (as :meth:`ReportStore.campaign_summary` returns it) against the thresholds.

    Ratios are over the campaign's recipients. A failed ratio over ``max_failed_ratio`` fails even when the
    delivered ratio is reached at the same time (an explicit bound is never ignored).

    :param summary: ``{"campaign", "recipients", "delivered", "failed", "pending", ...}``.
    :param min_delivered_ratio: success when ``delivered / recipients >= min_delivered_ratio``.
    :param max_failed_ratio: failure when ``failed / recipients > max_failed_ratio`` (``None``: no bound).
    :param final_statuses: the statuses that end a recipient's wait (``None``: the store's). With e.g.
        ``UNKNOWN`` among them, an UNKNOWN report counts as failed instead of pending.
    """
    if final_statuses is not None:
        summary = _with_final_statuses(summary, final_statuses)
    campaign = summary.get("campaign")
    recipients = int(summary.get("recipients") or 0)
    delivered = int(summary.get("delivered") or 0)
    failed = int(summary.get("failed") or 0)
    pending = int(summary.get("pending") or 0)
    if recipients <= 0:
        if min_delivered_ratio <= 0:
            return DeliveryCheck("success", f"campaign {campaign}: no recipients and min_delivered_ratio is 0")
        return DeliveryCheck(
            "failure",
            f"campaign {campaign} has no recipients: nothing was accepted for sending, so the delivered ratio "
            f"can never reach {_pct(min_delivered_ratio)}",
        )
    delivered_ratio = delivered / recipients
    failed_ratio = failed / recipients
    progress = describe_progress(summary)
    if max_failed_ratio is not None and failed_ratio > max_failed_ratio:
        return DeliveryCheck(
            "failure",
            f"{progress}; failed ratio {_pct(failed_ratio)} exceeds max_failed_ratio {_pct(max_failed_ratio)}",
        )
    if delivered_ratio >= min_delivered_ratio:
        return DeliveryCheck(
            "success", f"{progress}; delivered ratio reached min_delivered_ratio {_pct(min_delivered_ratio)}"
        )
    if pending <= 0:
        return DeliveryCheck(
            "failure",
            f"{progress}; every recipient has a final status and the delivered ratio {_pct(delivered_ratio)} "
            f"is below min_delivered_ratio {_pct(min_delivered_ratio)}",
        )
    return DeliveryCheck("waiting", f"{progress}; waiting for {_pct(min_delivered_ratio)} delivered")


def read_summary(store_url: str, campaign: str) -> dict[str, Any] | None:
    """One short read of a campaign summary (blocking; run it in a thread from async code)."""
    from airflow_provider_messagecentral.reports.store import get_store

    return get_store(store_url).campaign_summary(campaign)


class MessageCentralDeliveryTrigger(BaseTrigger):
    """
    Poll the delivery-report store until a campaign reaches its delivered ratio, fails, or the deadline passes.

    The store is named by the ``reports_url`` / ``reports_conn_id`` extras of the MessageCentral connection,
    resolved inside the trigger, so no database URL (or password) is serialized with the trigger. Each poll
    is one short read in a thread; no database connection is held between polls. The trigger yields
    exactly one event::

        {"status": "success" | "failure" | "timeout" | "error", "summary": {...} | None, "message": "..."}

    Used by :class:`~airflow_provider_messagecentral.sensors.messagecentral.MessageCentralDeliverySensor`
    with ``deferrable=True``; it can also be deferred to directly:

    .. code-block:: python

        self.defer(
            trigger=MessageCentralDeliveryTrigger(
                campaign="mc-0123456789abcdef0123", deadline=time.time() + 3600, min_delivered_ratio=0.9
            ),
            method_name="execute_complete",
        )

    :param campaign: the campaign key (``mc-...``).
    :param deadline: when to give up, in epoch seconds; then a ``timeout`` event is yielded.
    :param messagecentral_conn_id: the MessageCentral connection whose extras name the report store.
    :param min_delivered_ratio: success when delivered / recipients reaches it.
    :param max_failed_ratio: failure when failed / recipients exceeds it (``None``: no bound).
    :param poll_interval: seconds between polls.
    """

    def __init__(
        self,
        campaign: str,
        deadline: float,
        messagecentral_conn_id: str = MessageCentralHook.default_conn_name,
        min_delivered_ratio: float = 0.95,
        max_failed_ratio: float | None = None,
        poll_interval: float = 60.0,
        final_statuses: list[str] | tuple[str, ...] | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(campaign, str) or not campaign.strip():
            raise ValueError(f"campaign must be a non-empty campaign key, got {campaign!r}")
        self.campaign = campaign
        self.deadline = float(deadline)
        self.messagecentral_conn_id = messagecentral_conn_id
        self.min_delivered_ratio = validate_ratio("min_delivered_ratio", min_delivered_ratio)
        self.max_failed_ratio = validate_optional_ratio("max_failed_ratio", max_failed_ratio)
        self.final_statuses = validate_final_statuses(final_statuses)
        if isinstance(poll_interval, bool) or not isinstance(poll_interval, (int, float)) or poll_interval < 0:
            raise ValueError(f"poll_interval must be a non-negative number of seconds, got {poll_interval!r}")
        self.poll_interval = float(poll_interval)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "campaign": self.campaign,
                "deadline": self.deadline,
                "messagecentral_conn_id": self.messagecentral_conn_id,
                "min_delivered_ratio": self.min_delivered_ratio,
                "max_failed_ratio": self.max_failed_ratio,
                "poll_interval": self.poll_interval,
                "final_statuses": list(self.final_statuses) if self.final_statuses is not None else None,
            },
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(campaign={self.campaign!r}, messagecentral_conn_id="
            f"{self.messagecentral_conn_id!r}, min_delivered_ratio={self.min_delivered_ratio}, "
            f"max_failed_ratio={self.max_failed_ratio}, deadline={self.deadline})"
        )

    async def _store_url(self) -> str:
        """Resolve the store URL from the connection without blocking the event loop."""
        from airflow_provider_messagecentral.client.settings import MessageCentralSettings

        conn = await MessageCentralHook.aget_connection(self.messagecentral_conn_id)
        extra = await conn.aextra_dejson()
        settings = MessageCentralSettings.from_parts(
            conn_id=self.messagecentral_conn_id,
            host=conn.host,
            login=conn.login,
            password=None,  # not needed here: keep it out of anything this trigger holds
            extra=extra,
            port=conn.port,
            schema=conn.schema,
        )
        # A reports_conn_id is looked up with the synchronous SDK API: run it in a thread.
        return await asyncio.to_thread(lambda: settings.store_url)

    def _event(self, status: str, message: str, summary: dict[str, Any] | None = None) -> TriggerEvent:
        return TriggerEvent({"status": status, "summary": summary, "message": message})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            store_url = await self._store_url()
        except Exception as err:
            self.log.exception("Cannot resolve the report store of connection %r", self.messagecentral_conn_id)
            yield self._event(
                "error",
                f"cannot resolve the report store of connection {self.messagecentral_conn_id!r}: "
                f"{type(err).__name__}: {err}",
            )
            return
        errors = 0
        summary: dict[str, Any] | None = None
        while True:
            try:
                summary = await asyncio.to_thread(read_summary, store_url, self.campaign)
                errors = 0
            except Exception as err:
                errors += 1
                self.log.warning(
                    "Reading campaign %s from the report store failed (%d of %d in a row): %s: %s",
                    self.campaign,
                    errors,
                    MAX_CONSECUTIVE_ERRORS,
                    type(err).__name__,
                    err,
                )
                if errors >= MAX_CONSECUTIVE_ERRORS:
                    yield self._event(
                        "error",
                        f"campaign {self.campaign}: the report store failed {errors} times in a row; last error: "
                        f"{type(err).__name__}: {err}",
                        summary,
                    )
                    return
            else:
                if summary is None:
                    yield self._event(
                        "failure",
                        f"campaign {self.campaign!r} is unknown to the report store of connection "
                        f"{self.messagecentral_conn_id!r}: was it sent with that connection?",
                    )
                    return
                check = evaluate_delivery(summary, self.min_delivered_ratio, self.max_failed_ratio, self.final_statuses)
                self.log.info("%s", check.message)
                if check.verdict != "waiting":
                    yield self._event(check.verdict, check.message, summary)
                    return
            remaining = self.deadline - time.time()
            if remaining <= 0:
                progress = describe_progress(summary) if summary else f"campaign {self.campaign}: no summary read"
                yield self._event(
                    "timeout",
                    f"{progress}; the sensor's timeout passed before the delivered ratio reached "
                    f"min_delivered_ratio {_pct(self.min_delivered_ratio)}",
                    summary,
                )
                return
            await asyncio.sleep(min(self.poll_interval, remaining))
