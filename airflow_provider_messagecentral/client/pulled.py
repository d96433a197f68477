"""
Delivery reports pulled from MessageCentral (``reports/getDetailedReports``), as opposed to the ones it POSTs.

MessageCentral's own client app (not its API docs) pages through ``POST reports/getDetailedReports`` with the query
parameters ``customerId``, ``from``, ``to``, ``pageNo``, ``size`` and ``type`` and reads
``{"responseCode": ..., "message": ..., "data": {"data": [row, ...], "count": n}}``, each row carrying
``countryCode``, ``mobileNumber``, ``senderId``, ``templateId``, ``messageBody``, ``status``, ``errorCode``,
``createdAt``, ``deliveredAt`` and ``updatedAt`` — and no message id. See docs/messagecentral-api.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class PulledReport:
    """
    One row of ``reports/getDetailedReports``: the delivery state of one message, without its message id.

    :param mobile: the recipient's digits with the country code (``919816111111``), the form a callback's
        ``mobile`` carries, so that pulled reports are matched to recipients the way id-less callbacks are.
    :param status: the status as MessageCentral gives it, upper-cased (``DELIVRD``, ``UNDELIV``...).
    :param error_code: the row's ``errorCode`` as text; ``None`` when absent or empty.
    :param created_at: when the message was accepted (naive UTC), ``None`` when absent.
    :param delivered_at: when the status was reached (naive UTC), ``None`` when absent.
    :param sender_id: the sender id the message went out with.
    :param template_id: the DLT template id, when any.
    :param message_body: the text as sent.
    """

    mobile: str
    status: str
    error_code: str | None = None
    created_at: datetime | None = None
    delivered_at: datetime | None = None
    sender_id: str | None = None
    template_id: str | None = None
    message_body: str | None = None


@dataclass(frozen=True)
class PulledPage:
    """
    One page of pulled reports.

    :param reports: the page's rows, parsed.
    :param total: the ``count`` MessageCentral gives for the whole query (``None`` when absent).
    :param skipped: rows that could not be read (no number, no status), with why, for the log.
    """

    reports: list[PulledReport]
    total: int | None
    skipped: list[str]
