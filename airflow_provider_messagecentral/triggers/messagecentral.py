"""MessageCentralDeliveryTrigger: wait for a campaign's delivery reports without holding a worker slot."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable
from datetime import datetime
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_messagecentral.client.pulled import PulledReport
from airflow_provider_messagecentral.client.settings import MessageCentralSettings
from airflow_provider_messagecentral.compat import aextra_dejson
from airflow_provider_messagecentral.hooks.messagecentral import MessageCentralHook
from airflow_provider_messagecentral.reports.delivery import (
    DEFAULT_NO_REPORT_WARNING_AFTER,
    NoReportWatch,
    evaluate_delivery,
    no_report_message,
    read_summary,
    timeout_message,
    unknown_campaign_message,
    validate_thresholds,
    validate_warning_delay,
)
from airflow_provider_messagecentral.reports.pulled import (
    DEFAULT_PULL_INTERVAL,
    DEFAULT_PULL_PAGE_SIZE,
    Fetch,
    ReportPuller,
    validate_pull_options,
    validate_report_source,
)

#: Consecutive failed polls (store unreachable, locked, ...) the trigger tolerates before it gives up.
MAX_CONSECUTIVE_ERRORS = 5


def hook_fetch(conn_id: str) -> Fetch:
    """
    The fetch function of a :class:`~airflow_provider_messagecentral.reports.pulled.ReportPuller`: the
    connection's hook (created on first use, in the caller's thread, then kept with its token and rate
    limiter) paging through ``reports/getDetailedReports``.
    """
    hooks: list[MessageCentralHook] = []

    def fetch(start: datetime, end: datetime, page_size: int, max_pages: int) -> Iterable[PulledReport]:
        if not hooks:
            hooks.append(MessageCentralHook(messagecentral_conn_id=conn_id))
        return hooks[0].get_detailed_reports(start, end, page_size=page_size, max_pages=max_pages)

    return fetch


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
    :param final_statuses: the statuses that end a recipient's wait (``None``: the store's); see
        :func:`~airflow_provider_messagecentral.reports.delivery.evaluate_delivery`.
    :param no_report_warning_after: seconds after ``waiting_since`` at which an accepted campaign without any
        delivery report gets one warning in the log (naming the store and the likely causes); ``None``: never.
    :param waiting_since: when the wait began, in epoch seconds (the sensor's defer time); default the start
        of :meth:`run`. (Triggers serialized before these two arguments existed get the defaults.)
    :param report_source: ``"callbacks"`` (default: read what the receiver stored), ``"api"`` (pull the
        campaign's reports from MessageCentral's ``reports/getDetailedReports`` into the store before reading
        it; no receiver needed) or ``"both"``. A pull runs in a thread, bounded in pages and time, through
        the connection's hook (its rate limiter and retries); a pull that fails is logged and tried again
        at the next interval, never ending the wait by itself.
    :param pull_interval: seconds between two pulls (default 60; at most one per poll).
    :param pull_page_size: rows per page of ``reports/getDetailedReports`` (default 500).
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
        no_report_warning_after: float | None = DEFAULT_NO_REPORT_WARNING_AFTER,
        waiting_since: float | None = None,
        report_source: str = "callbacks",
        pull_interval: float = DEFAULT_PULL_INTERVAL,
        pull_page_size: int = DEFAULT_PULL_PAGE_SIZE,
    ) -> None:
        super().__init__()
        if not isinstance(campaign, str) or not campaign.strip():
            raise ValueError(f"campaign must be a non-empty campaign key, got {campaign!r}")
        self.campaign = campaign
        self.deadline = float(deadline)
        self.messagecentral_conn_id = messagecentral_conn_id
        self.min_delivered_ratio, self.max_failed_ratio, self.final_statuses = validate_thresholds(
            min_delivered_ratio, max_failed_ratio, final_statuses
        )
        if isinstance(poll_interval, bool) or not isinstance(poll_interval, (int, float)) or poll_interval < 0:
            raise ValueError(f"poll_interval must be a non-negative number of seconds, got {poll_interval!r}")
        self.poll_interval = float(poll_interval)
        self.no_report_warning_after = validate_warning_delay(no_report_warning_after)
        self.waiting_since = None if waiting_since is None else float(waiting_since)
        self.report_source = validate_report_source(report_source)
        self.pull_interval, self.pull_page_size = validate_pull_options(pull_interval, pull_page_size)

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
                "no_report_warning_after": self.no_report_warning_after,
                "waiting_since": self.waiting_since,
                "report_source": self.report_source,
                "pull_interval": self.pull_interval,
                "pull_page_size": self.pull_page_size,
            },
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(campaign={self.campaign!r}, messagecentral_conn_id="
            f"{self.messagecentral_conn_id!r}, min_delivered_ratio={self.min_delivered_ratio}, "
            f"max_failed_ratio={self.max_failed_ratio}, deadline={self.deadline}, report_source={self.report_source!r})"
        )

    async def _store_url(self) -> str:
        """Resolve the store URL from the connection without blocking the event loop."""
        conn = await MessageCentralHook.aget_connection(self.messagecentral_conn_id)
        extra = await aextra_dejson(conn)  # Connection.aextra_dejson() is new in task-sdk 1.3.2
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

    def _judge(self, summary: dict[str, Any] | None) -> TriggerEvent | None:
        """The event a freshly read summary ends the wait with, or ``None`` to keep polling."""
        if summary is None:
            return self._event("failure", unknown_campaign_message(self.campaign, self.messagecentral_conn_id))
        check = evaluate_delivery(summary, self.min_delivered_ratio, self.max_failed_ratio, self.final_statuses)
        self.log.info("%s", check.message)
        return None if check.verdict == "waiting" else self._event(check.verdict, check.message, summary)

    async def _pull(self, puller: ReportPuller | None) -> None:
        """Pull the campaign's reports from MessageCentral when due (in a thread); a failure is only logged."""
        if puller is None or not puller.due():
            return
        try:
            outcome = await asyncio.to_thread(puller.pull)
        except Exception as err:
            self.log.warning(
                "Pulling campaign %s's delivery reports from MessageCentral failed (tried again in %.0f s): %s: %s",
                self.campaign,
                self.pull_interval,
                type(err).__name__,
                err,
            )
            return
        if outcome is not None:
            self.log.info("%s", outcome.describe(self.campaign))

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
        watch = NoReportWatch(self.no_report_warning_after, self.waiting_since)
        puller = None
        if self.report_source != "callbacks":
            fetch = hook_fetch(self.messagecentral_conn_id)
            puller = ReportPuller(store_url, self.campaign, fetch, self.pull_page_size, self.pull_interval)
        while True:
            await self._pull(puller)
            try:
                summary = await asyncio.to_thread(read_summary, store_url, self.campaign)
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
                errors = 0
                event = self._judge(summary)
                if event is not None:
                    yield event
                    return
                if watch.due(summary):
                    message = no_report_message(
                        summary or {}, store_url, self.messagecentral_conn_id, watch.waited(), self.report_source
                    )
                    self.log.warning("%s", message)
            remaining = self.deadline - time.time()
            if remaining <= 0:
                yield self._event("timeout", timeout_message(self.campaign, summary, self.min_delivered_ratio), summary)
                return
            await asyncio.sleep(min(self.poll_interval, remaining))
