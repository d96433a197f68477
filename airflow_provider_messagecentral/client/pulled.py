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
from datetime import datetime, timezone

from airflow_provider_messagecentral.audience.phone import parse_number
from airflow_provider_messagecentral.client.error_codes import is_success, refusal
from airflow_provider_messagecentral.exceptions import MessageCentralError


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
    :param updated_at: when MessageCentral last changed the row (naive UTC); for a failed message often the
        only time of its final status, as ``deliveredAt`` may stay empty.
    """

    mobile: str
    status: str
    error_code: str | None = None
    created_at: datetime | None = None
    delivered_at: datetime | None = None
    sender_id: str | None = None
    template_id: str | None = None
    message_body: str | None = None
    updated_at: datetime | None = None


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

    @property
    def rows(self) -> int:
        """How many rows the page held, read or skipped (a page shorter than the page size is the last)."""
        return len(self.reports) + len(self.skipped)


def parse_pulled_page(body: object) -> PulledPage:
    """
    Read one answer of ``reports/getDetailedReports`` (its JSON body) into a :class:`PulledPage`.

    Tolerant of the shapes seen or plausible: ``responseCode`` as an int or a string (absent is fine);
    ``data`` as ``{"data": [...], "count": n}``, as the list itself or ``null`` (an empty page); ``count``
    as an int or a string; ids and error codes as ints or strings (kept as strings). A row without a
    number or without a status is not a report: it goes to ``skipped`` with why.

    :raises MessageCentralError: the answer is not a JSON object, or carries a non-200 ``responseCode``.
    """
    if not isinstance(body, dict):
        raise MessageCentralError(f"detailed reports: expected a JSON object, got {type(body).__name__}")
    code = body.get("responseCode")
    if code is not None and not is_success(code):
        reason = body.get("message") or "no reason given"
        raise refusal(code, f"detailed reports: MessageCentral refused the query: {reason}")
    data = body.get("data")
    total: int | None = None
    rows: object = data
    if isinstance(data, dict):
        rows = data.get("data")
        total = _count(data.get("count"))
    if rows is None:
        rows = []
    if not isinstance(rows, list):
        raise MessageCentralError(f"detailed reports: 'data' holds {type(rows).__name__}, not a list of rows")
    reports: list[PulledReport] = []
    skipped: list[str] = []
    for index, row in enumerate(rows):
        report = _report(row, index, skipped)
        if report is not None:
            reports.append(report)
    return PulledPage(reports=reports, total=total, skipped=skipped)


_SEPARATORS = str.maketrans("", "", " -().\u00a0")


def _count(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _text(value: object) -> str | None:
    """A field as text (ints kept as their digits); ``None`` when absent or blank."""
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()
    return text or None


def _valid_msisdn(digits: str) -> bool:
    try:
        return parse_number("+" + digits).msisdn == digits
    except ValueError:
        return False


def pulled_mobile(country_code: object, mobile_number: object) -> str | None:
    """
    The recipient's digits with the country code, from a row's ``countryCode`` and ``mobileNumber``.

    MessageCentral's app shows ``mobileNumber`` and ``countryCode`` as separate fields, so the number is
    read as national; it is kept as it is when it is written internationally (``+``/``00``), when there is no
    country code, or when only the number as given (already starting with the code) is a valid number.
    """
    raw = _text(mobile_number)
    if raw is None:
        return None
    digits = raw.translate(_SEPARATORS)
    international = digits.startswith(("+", "00"))
    digits = digits.lstrip("+")
    if digits.startswith("00"):
        digits = digits[2:]
    if not digits.isdigit():
        return None
    code = (_text(country_code) or "").translate(_SEPARATORS).lstrip("+")
    if international or not code.isdigit():
        return digits
    if _valid_msisdn(code + digits):
        return code + digits
    if digits.startswith(code) and _valid_msisdn(digits):
        return digits
    return code + digits


def pulled_time(value: object) -> datetime | None:
    """
    A row's time as naive UTC: ISO 8601 text (``T`` or space, with or without zone; without one it is
    taken as UTC) or epoch seconds/milliseconds. ``None`` when absent or unreadable.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        seconds = value / 1000 if value > 1e11 else value
        try:
            return datetime.fromtimestamp(seconds, timezone.utc).replace(tzinfo=None)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is not None:
        when = when.astimezone(timezone.utc).replace(tzinfo=None)
    return when


def _report(row: object, index: int, skipped: list[str]) -> PulledReport | None:
    if not isinstance(row, dict):
        skipped.append(f"row {index + 1}: not an object ({type(row).__name__})")
        return None
    mobile = pulled_mobile(row.get("countryCode"), row.get("mobileNumber"))
    if mobile is None:
        skipped.append(f"row {index + 1}: no usable mobileNumber")
        return None
    status = _text(row.get("status"))
    if status is None:
        skipped.append(f"row {index + 1}: no status")
        return None
    return PulledReport(
        mobile=mobile,
        status=status.upper(),
        error_code=_text(row.get("errorCode")),
        created_at=pulled_time(row.get("createdAt")),
        delivered_at=pulled_time(row.get("deliveredAt")),
        sender_id=_text(row.get("senderId")),
        template_id=_text(row.get("templateId")),
        message_body=row.get("messageBody") if isinstance(row.get("messageBody"), str) else None,
        updated_at=pulled_time(row.get("updatedAt")),
    )
