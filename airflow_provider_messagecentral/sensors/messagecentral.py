"""MessageCentralDeliverySensor: wait until a campaign's delivery reports reach a delivered ratio."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue, XComArg
from airflow.sdk.exceptions import AirflowException

from airflow_provider_messagecentral.compat import (
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    conf,
)
from airflow_provider_messagecentral.hooks.messagecentral import MessageCentralHook
from airflow_provider_messagecentral.links.messagecentral import MessageCentralDeliveryReportLink
from airflow_provider_messagecentral.operators.outlets import attach_to_outlets
from airflow_provider_messagecentral.reports.delivery import (
    DEFAULT_NO_REPORT_WARNING_AFTER,
    NoReportWatch,
    evaluate_delivery,
    no_report_message,
    read_summary,
    unknown_campaign_message,
    validate_thresholds,
    validate_warning_delay,
)
from airflow_provider_messagecentral.reports.pulled import (
    DEFAULT_PULL_INTERVAL,
    DEFAULT_PULL_PAGE_SIZE,
    ReportPuller,
    validate_pull_options,
    validate_report_source,
)
from airflow_provider_messagecentral.triggers.messagecentral import MessageCentralDeliveryTrigger, hook_fetch

if TYPE_CHECKING:
    from airflow.sdk import Context

EVENT_STATUSES = ("success", "failure", "timeout", "error")


def campaign_key_from(value: Any) -> str:
    """
    The campaign key from a send operator's XCom dict (its ``campaign`` key) or from the key itself.

    Raises ``ValueError`` saying what was passed when it is neither.
    """
    if isinstance(value, Mapping):
        if "campaign" not in value:
            keys = ", ".join(sorted(str(k) for k in value)) or "none"
            raise ValueError(
                f"campaign: the dict has no 'campaign' key (keys: {keys}); pass a send operator's XCom "
                "(send.output) or its campaign key string"
            )
        value = value["campaign"]
    if not isinstance(value, str):
        raise ValueError(
            f"campaign must be a send operator's XCom dict or a campaign key string, got {type(value).__name__}"
        )
    key = value.strip()
    if not key:
        raise ValueError("campaign is an empty string: pass a send operator's XCom (send.output) or its campaign key")
    return key


class MessageCentralDeliverySensor(BaseSensorOperator):
    """
    Wait until enough of a campaign's messages are delivered, reading the delivery-report store.

    The store is the one named by the connection's ``reports_url`` / ``reports_conn_id`` extras (default
    SQLite under ``$AIRFLOW_HOME``), filled by the callback receiver. Ratios are over the campaign's
    recipients. The sensor succeeds when ``delivered / recipients >= min_delivered_ratio`` and fails at
    once (``AirflowFailException``, no retries) when the campaign is unknown, when ``failed / recipients >
    max_failed_ratio``, or when every recipient has a final status and the delivered ratio is still short.
    After ``timeout`` seconds it raises ``AirflowSensorTimeout`` (skipped with ``soft_fail=True``), in every
    mode. Its XCom is the campaign summary: ``{"campaign", "recipients", "delivered", "failed", "pending",
    "final", "by_status", "delivered_ratio", "failed_ratio"}``. A dry-run send (its XCom has
    ``dry_run: true``) sent nothing: the sensor skips. Given ``outlets=[Asset(...)]``, the summary (with
    ``"stage": "delivered"``) is the extra of the asset events it emits, for DAGs scheduled on the asset.

    .. code-block:: python

        send = MessageCentralBulkSendOperator(task_id="send", phone_numbers=numbers, message="Sale ends today")
        MessageCentralDeliverySensor(
            task_id="wait_for_delivery",
            campaign=send.output,
            min_delivered_ratio=0.9,
            max_failed_ratio=0.05,
            poke_interval=60,
            timeout=6 * 3600,
            deferrable=True,
        )

    :param campaign: the send task's XCom dict (``send.output``) or its ``campaign`` key string. Templated.
    :param messagecentral_conn_id: the MessageCentral connection whose extras name the report store.
    :param min_delivered_ratio: delivered / recipients needed for success, between 0 and 1.
    :param max_failed_ratio: fail as soon as failed / recipients exceeds it, between 0 and 1 (``None``: no
        bound). Checked before the delivered ratio.
    :param final_statuses: the statuses that end a recipient's wait; default the store's (DELIVRD, EXPIRED,
        UNDELIV, REJECTD). Add ``"UNKNOWN"`` to stop waiting on recipients whose report came back UNKNOWN:
        they then count as failed. Must include DELIVRD.
    :param deferrable: check once, then wait in the triggerer (no worker slot held) with
        :class:`~airflow_provider_messagecentral.triggers.messagecentral.MessageCentralDeliveryTrigger`.
        Default from ``[operators] default_deferrable``.
    :param no_report_warning_after: when the campaign's sends were accepted but not one delivery report has
        reached the store this long after the sensor started waiting, log one warning naming the store it
        reads and the likely causes (callback URL not registered with MessageCentral; the receiver writing to
        another store). Seconds or a ``timedelta``; default 10 minutes; ``None``: never.
    :param report_source: where delivery reports come from. ``"callbacks"`` (default): the receiver stores what
        MessageCentral POSTs to the registered callback URL. ``"api"``: the sensor pulls the campaign's reports
        from MessageCentral's ``reports/getDetailedReports`` (an endpoint MessageCentral's own app uses but its
        API docs do not describe) into the same store, matched to recipients by mobile within the campaign's
        window as id-less callbacks are: no receiver and no public URL needed. ``"both"``: callbacks, and
        pulls for what they miss (one row per message, at its best status). Pulls run where the waiting
        runs (each poke; in the triggerer when deferred), ask only for the campaign's window, share the hook's
        rate limiter and retries, and are bounded; a pull that fails is logged and tried again next interval.
    :param pull_interval: seconds between two pulls (default 60; at most one per poke or trigger poll; with
        ``mode="reschedule"`` every poke is a new run and pulls once), or a ``timedelta``.
    :param pull_page_size: rows per page of ``reports/getDetailedReports`` (default 500, at most 1000).
    """

    template_fields: Sequence[str] = ("campaign",)
    ui_color = "#d8f0e3"
    operator_extra_links = (MessageCentralDeliveryReportLink(),)

    def __init__(
        self,
        *,
        campaign: dict[str, Any] | str | XComArg,
        messagecentral_conn_id: str = MessageCentralHook.default_conn_name,
        min_delivered_ratio: float = 0.95,
        max_failed_ratio: float | None = None,
        final_statuses: list[str] | tuple[str, ...] | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        no_report_warning_after: float | timedelta | None = DEFAULT_NO_REPORT_WARNING_AFTER,
        report_source: str = "callbacks",
        pull_interval: float | timedelta = DEFAULT_PULL_INTERVAL,
        pull_page_size: int = DEFAULT_PULL_PAGE_SIZE,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        resolved_later = isinstance(campaign, XComArg) or (
            isinstance(campaign, Mapping) and isinstance(campaign.get("campaign"), XComArg)
        )
        if not resolved_later:
            try:
                campaign_key_from(campaign)  # a template string is non-empty text: checked again once rendered
            except ValueError as err:
                raise ValueError(f"{err} (task {self.task_id!r})") from None
        self.campaign = campaign
        self.messagecentral_conn_id = messagecentral_conn_id
        try:
            self.min_delivered_ratio, self.max_failed_ratio, self.final_statuses = validate_thresholds(
                min_delivered_ratio, max_failed_ratio, final_statuses
            )
            self.no_report_warning_after = validate_warning_delay(no_report_warning_after)
            self.report_source = validate_report_source(report_source)
            self.pull_interval, self.pull_page_size = validate_pull_options(pull_interval, pull_page_size)
        except ValueError as err:
            raise ValueError(f"{err} (task {self.task_id!r})") from None
        self.deferrable = deferrable
        self._watch: NoReportWatch | None = None
        self._puller: ReportPuller | None = None

    # -- store ------------------------------------------------------------------------------------------

    def _store_url(self) -> str:
        return MessageCentralHook(messagecentral_conn_id=self.messagecentral_conn_id).settings.store_url

    def _campaign_key(self) -> str:
        try:
            return campaign_key_from(self.campaign)
        except ValueError as err:
            raise AirflowFailException(f"{err} (task {self.task_id!r})") from None

    def _dry_run(self) -> bool:
        return isinstance(self.campaign, Mapping) and self.campaign.get("dry_run") is True

    def check(self, campaign: str, watch: NoReportWatch | None = None) -> dict[str, Any] | None:
        """
        Read the campaign summary once and judge it: the summary when the delivered ratio is reached,
        ``None`` while waiting. Raises ``AirflowFailException`` when the campaign is unknown or failed.
        With a ``watch``, warn (once) when the campaign has had no report at all for too long.
        """
        store_url = self._store_url()
        if self.report_source != "callbacks":
            self._pull(store_url, campaign)
        summary = read_summary(store_url, campaign)
        if summary is None:
            raise AirflowFailException(unknown_campaign_message(campaign, self.messagecentral_conn_id))
        result = evaluate_delivery(summary, self.min_delivered_ratio, self.max_failed_ratio, self.final_statuses)
        self.log.info("%s", result.message)
        if watch is not None and result.verdict == "waiting" and watch.due(summary):
            text = no_report_message(
                summary, store_url, self.messagecentral_conn_id, watch.waited(), self.report_source
            )
            self.log.warning("%s", text)
        if result.verdict == "failure":
            raise AirflowFailException(result.message)
        return summary if result.verdict == "success" else None

    def _pull(self, store_url: str, campaign: str) -> None:
        """Pull the campaign's reports from MessageCentral when due; a failure is only logged (next poke retries)."""
        puller = self._puller
        if puller is None or puller.campaign != campaign:
            fetch = hook_fetch(self.messagecentral_conn_id)
            puller = ReportPuller(store_url, campaign, fetch, self.pull_page_size, self.pull_interval)
            self._puller = puller
        if not puller.due():
            return
        try:
            outcome = puller.pull()
        except Exception as err:
            self.log.warning(
                "Pulling campaign %s's delivery reports from MessageCentral failed (tried again in %.0f s): %s: %s",
                campaign,
                self.pull_interval,
                type(err).__name__,
                err,
            )
            return
        if outcome is not None:
            self.log.info("%s", outcome.describe(campaign))

    # -- modes ------------------------------------------------------------------------------------------

    def _no_report_watch(self, context: Context) -> NoReportWatch:
        """The wait's no-report watch: kept across pokes; a rescheduled sensor's wait began at its first poke."""
        if self._watch is None:
            since, window = None, None
            if self.reschedule:  # every poke is a new run of the task: only the poke crossing the line warns
                first = context["ti"].get_first_reschedule_date(context)
                since = first.timestamp() if first is not None else None
                window = float(self.poke_interval)
            self._watch = NoReportWatch(self.no_report_warning_after, since, window)
        return self._watch

    def poke(self, context: Context) -> PokeReturnValue:
        summary = self.check(self._campaign_key(), self._no_report_watch(context))
        return PokeReturnValue(is_done=summary is not None, xcom_value=summary)

    def execute(self, context: Context) -> Any:
        if self._dry_run():
            raise AirflowSkipException("the send was a dry run: no message was sent, no report will come")
        if not self.deferrable:
            return self._delivered(context, super().execute(context))
        try:
            campaign = self._campaign_key()
            summary = self.check(campaign)
        except AirflowFailException as err:
            # The same rule BaseSensorOperator applies to poke(): soft_fail / never_fail turn failures into skips.
            if self.soft_fail or self.never_fail:
                raise AirflowSkipException(f"Skipping due to soft_fail/never_fail: {err}") from err
            raise
        if summary is not None:
            return self._delivered(context, summary)
        self.defer(
            trigger=MessageCentralDeliveryTrigger(
                campaign=campaign,
                deadline=time.time() + self.timeout,
                messagecentral_conn_id=self.messagecentral_conn_id,
                min_delivered_ratio=self.min_delivered_ratio,
                max_failed_ratio=self.max_failed_ratio,
                poll_interval=self.poke_interval,
                final_statuses=self.final_statuses,
                no_report_warning_after=self.no_report_warning_after,
                waiting_since=time.time(),
                report_source=self.report_source,
                pull_interval=self.pull_interval,
                pull_page_size=self.pull_page_size,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def _delivered(self, context: Context, summary: Any) -> Any:
        """The campaign reached its target: its summary goes on the task's asset events (``outlets``) too."""
        if isinstance(summary, Mapping):
            attach_to_outlets(self, context, summary, stage="delivered")
        return summary

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """
        Resume after the trigger: return the summary on success, raise on anything else.

        ``failure`` -> ``AirflowFailException``; ``timeout`` -> ``AirflowSensorTimeout``; ``error`` ->
        ``AirflowException`` (retried as usual). ``soft_fail`` skips instead, as in the other modes.
        """
        if not isinstance(event, Mapping) or event.get("status") not in EVENT_STATUSES:
            raise AirflowException(f"unexpected event from MessageCentralDeliveryTrigger: {event!r}")
        status = event["status"]
        message = str(event.get("message") or "")
        summary = event.get("summary")
        if status == "success":
            if not isinstance(summary, Mapping):
                raise AirflowException(f"the trigger's success event carries no summary: {event!r}")
            self.log.info("%s", message)
            return self._delivered(context, dict(summary))
        if status == "failure":
            raise AirflowFailException(message)
        if status == "timeout":
            raise AirflowSensorTimeout(message)
        raise AirflowException(message or "the delivery trigger failed")
