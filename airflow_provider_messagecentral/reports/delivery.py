"""
Delivery evaluation: judge a campaign summary against the sensor's thresholds, and say where it stands.

The rules the delivery sensor and its trigger share (both are thin Airflow layers over this module): the
threshold checks, the verdict of one look at a summary, the progress and failure texts, the warning when an
accepted campaign receives no report at all, and the one short read of a summary from the report store.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from airflow_provider_messagecentral.client.store_url import mask_url

Verdict = Literal["success", "failure", "waiting"]

#: Seconds without any delivery report for an accepted campaign before the sensor warns (10 minutes).
DEFAULT_NO_REPORT_WARNING_AFTER = 600.0


@dataclass(frozen=True)
class DeliveryCheck:
    """
    The verdict of one look at a campaign summary.

    :param verdict: ``success`` (delivered ratio reached), ``failure`` (failed ratio over its bound, or every
        recipient final and the delivered ratio short) or ``waiting``.
    :param message: one line with the numbers, fit for a log line or an exception.

    Example::

        check = evaluate_delivery(store.campaign_summary(key), min_delivered_ratio=0.9)
        if check.verdict == "failure":
            raise AirflowFailException(check.message)
    """

    verdict: Verdict
    message: str


# -- thresholds -------------------------------------------------------------------------------------------


def validate_ratio(name: str, value: Any) -> float:
    """Return ``value`` as a float in [0, 1]; raise ``ValueError`` naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number between 0 and 1, got {value!r} ({type(value).__name__})")
    number = float(value)
    if not 0.0 <= number <= 1.0:  # also rejects NaN
        raise ValueError(f"{name} must be between 0 and 1, got {value!r}")
    return number


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


def validate_thresholds(
    min_delivered_ratio: Any, max_failed_ratio: Any, final_statuses: Any
) -> tuple[float, float | None, tuple[str, ...] | None]:
    """The sensor's and trigger's three thresholds, checked (``ValueError`` naming the bad one)."""
    return (
        validate_ratio("min_delivered_ratio", min_delivered_ratio),
        None if max_failed_ratio is None else validate_ratio("max_failed_ratio", max_failed_ratio),
        validate_final_statuses(final_statuses),
    )


def validate_warning_delay(value: Any) -> float | None:
    """``no_report_warning_after`` as seconds (a number or a ``timedelta``, >= 0), or ``None`` (never warn)."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(
            f"no_report_warning_after must be a number of seconds >= 0, a timedelta or None, got {value!r}"
        )
    return float(value)


# -- texts ------------------------------------------------------------------------------------------------


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


def unknown_campaign_message(campaign: str, conn_id: str) -> str:
    """Why a campaign the store does not know fails at once."""
    return (
        f"campaign {campaign!r} is unknown to the report store of connection {conn_id!r}: "
        "was it sent with that connection?"
    )


def timeout_message(campaign: str, summary: dict[str, Any] | None, min_delivered_ratio: float) -> str:
    """Where the campaign stood when the sensor's timeout passed."""
    progress = describe_progress(summary) if summary else f"campaign {campaign}: no summary read"
    return (
        f"{progress}; the sensor's timeout passed before the delivered ratio reached "
        f"min_delivered_ratio {_pct(min_delivered_ratio)}"
    )


def _duration(seconds: float) -> str:
    minutes = seconds / 60
    return f"{minutes:.0f} min" if minutes >= 1 else f"{seconds:.0f} s"


def no_report_message(
    summary: dict[str, Any], store_url: str, conn_id: str, waited: float, report_source: str = "callbacks"
) -> str:
    """
    The warning for an accepted campaign that has received no delivery report at all: where, and why (for
    ``report_source="api"``: the pulls, whose outcome each pull logs).
    """
    head = (
        f"campaign {summary.get('campaign')}: {int(summary.get('recipients') or 0)} recipients were accepted, "
        f"but after {_duration(waited)} not one delivery report has reached the report store this sensor reads, "
        f"{mask_url(store_url)} (connection {conn_id!r})."
    )
    if report_source == "api":
        return (
            f"{head} The reports are pulled from MessageCentral (report_source='api'): see the pull lines above; "
            "likely causes: reports/getDetailedReports answers no row for the campaign's numbers and time range "
            "on this account, or every pull failed"
        )
    return (
        f"{head} Likely causes: (1) the callback URL is not registered "
        "with MessageCentral (register https://<receiver>/callback/<secret>, or "
        "https://<airflow>/messagecentral/callback/<secret> with the api-server plugin); (2) the receiver "
        'writes to another store: its GET /health names the store it writes to ("store", "store_from"); '
        f"run it with --conn-id {conn_id} (or MESSAGECENTRAL_CONN_ID={conn_id}) and without a "
        "MESSAGECENTRAL_REPORTS_URL / --store-url that points elsewhere"
    )


class NoReportWatch:
    """
    Tell once when a campaign whose sends were accepted has received no delivery report at all for ``after``
    seconds since ``since`` (epoch seconds; the start of the wait).

    :param after: seconds to wait before warning; ``None`` never warns.
    :param since: when the wait started (default now).
    :param window: warn only within ``window`` seconds after ``after`` passed (a rescheduled sensor starts
        afresh at every poke: the poke that crosses the line warns, the later ones do not); ``None``: any time.

    Example::

        watch = NoReportWatch(600)
        if watch.due(summary):
            log.warning(no_report_message(summary, store_url, conn_id, watch.waited()))
    """

    def __init__(self, after: float | None, since: float | None = None, window: float | None = None) -> None:
        self.after = after
        self.since = time.time() if since is None else since
        self.window = window
        self.warned = False

    def waited(self, now: float | None = None) -> float:
        """Seconds since the wait started."""
        return (time.time() if now is None else now) - self.since

    def due(self, summary: dict[str, Any] | None, now: float | None = None) -> bool:
        """Whether to warn now (true at most once): recipients accepted, no report at all, ``after`` passed."""
        if self.warned or self.after is None or not summary or int(summary.get("recipients") or 0) <= 0:
            return False
        if any(int(n or 0) for n in (summary.get("by_status") or {}).values()):
            return False
        waited = self.waited(now)
        if waited < self.after or (self.window is not None and waited - self.window >= self.after):
            return False
        self.warned = True
        return True


# -- the verdict ------------------------------------------------------------------------------------------


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
    if recipients <= 0:
        if min_delivered_ratio <= 0:
            return DeliveryCheck("success", f"campaign {campaign}: no recipients and min_delivered_ratio is 0")
        return DeliveryCheck(
            "failure",
            f"campaign {campaign} has no recipients: nothing was accepted for sending, so the delivered ratio "
            f"can never reach {_pct(min_delivered_ratio)}",
        )
    delivered_ratio = int(summary.get("delivered") or 0) / recipients
    failed_ratio = int(summary.get("failed") or 0) / recipients
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
    if int(summary.get("pending") or 0) <= 0:
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
