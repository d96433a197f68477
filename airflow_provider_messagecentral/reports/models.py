"""Pydantic models of MessageCentral delivery reports (the JSON documents POSTed to the callback URL)."""

from __future__ import annotations

import functools
import math
import re
from datetime import datetime, timezone
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

#: Statuses after which a message's fate no longer changes.
FINAL_STATUSES: frozenset[str] = frozenset({"DELIVRD", "EXPIRED", "UNDELIV", "REJECTD"})
#: Final statuses that count as a failed delivery.
FAILED_STATUSES: frozenset[str] = frozenset({"EXPIRED", "UNDELIV", "REJECTD"})
#: Every status the API documents; anything else is stored as received and treated as not final.
KNOWN_STATUSES: frozenset[str] = FINAL_STATUSES | {"UNKNOWN"}
DELIVERED = "DELIVRD"

#: Fields of a report that are stored in their own columns (everything else goes to ``extra``).
#: ``apiKey`` is never stored or echoed: it may carry a credential.
KNOWN_FIELDS: frozenset[str] = frozenset(
    {"messageId", "status", "errorCode", "mobile", "countryCode", "apiKey", "clientId", "submitDate", "doneDate"}
)

_MOBILE_SEPARATORS = re.compile(r"[\s\-().]")

#: Bounds of ``errorCode``: a 32-bit signed integer, what the ``INTEGER`` column holds on every supported
#: database (PostgreSQL ``int4``; SQLite would take 64 bits, PostgreSQL refuses anything beyond 32).
ERROR_CODE_MIN = -(2**31)
ERROR_CODE_MAX = 2**31 - 1
#: Deepest nesting of lists/objects accepted in an undocumented (extra) field. Reports are flat; the bound
#: keeps every later ``json.dumps``/``json.loads`` of the stored value far from Python's recursion limit.
MAX_EXTRA_DEPTH = 32


def storable_text_problem(value: str) -> str | None:
    """
    Why ``value`` cannot be stored as text on every supported database, or ``None`` when it can.

    PostgreSQL refuses the NUL character in ``text``/``varchar`` and in ``jsonb``, and lone UTF-16
    surrogates (``"\\ud800"`` in JSON) are not UTF-8 at all.
    """
    if "\x00" in value:
        return "contains a NUL character (\\u0000), which the report store cannot hold"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        return f"contains a lone UTF-16 surrogate at character {err.start}, which is not valid Unicode text"
    return None


def _extra_problem(name: str, value: Any) -> str | None:
    """The first value in an extra field (at any depth) that the store cannot hold, described with its path."""
    problem = storable_text_problem(name)
    if problem:
        return f"a field name {problem}"
    stack: list[tuple[str, Any, int]] = [(repr(name[:40]), value, 0)]
    while stack:
        path, item, depth = stack.pop()
        if len(path) > 120:
            path = path[:117] + "..."
        if isinstance(item, str):
            problem = storable_text_problem(item)
            if problem:
                return f"field {path} {problem}"
        elif isinstance(item, float):
            if not math.isfinite(item):
                return f"field {path} is NaN or infinite, which is not a JSON number the report store can hold"
        elif isinstance(item, (dict, list)):
            if depth >= MAX_EXTRA_DEPTH:
                return f"field {path} is nested more than {MAX_EXTRA_DEPTH} levels deep"
            if isinstance(item, dict):
                for key, child in item.items():
                    key_text = str(key)
                    problem = storable_text_problem(key_text)
                    if problem:
                        return f"a key inside field {path} {problem}"
                    stack.append((f"{path}.{key_text[:40]!r}", child, depth + 1))
            else:
                stack.extend((f"{path}[{index}]", child, depth + 1) for index, child in enumerate(item))
    return None


def is_final(status: str | None) -> bool:
    """Whether ``status`` is one after which the message's fate no longer changes."""
    return status in FINAL_STATUSES


def normalize_mobile(value: object) -> str | None:
    """
    Digits only, with the country code: ``+91 98161 11111`` -> ``919816111111``.

    Returns ``None`` for empty values; raises ``ValueError`` for anything that is not a phone number.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(f"mobile must be text or an integer, got {type(value).__name__}")
    text = _MOBILE_SEPARATORS.sub("", str(value).strip())
    if not text:
        return None
    if text.startswith("+"):
        text = text[1:]
    elif text.startswith("00"):
        text = text[2:]
    if not text.isdigit() or len(text) > 20:
        raise ValueError("mobile must contain only digits (with an optional leading '+')")
    return text


@functools.lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo | timezone:
    if name.upper() in ("UTC", "Z", ""):
        return timezone.utc
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise ValueError(f"unknown time zone {name!r}") from err


def parse_report_datetime(value: object, tz: str = "UTC") -> datetime | None:
    """
    Parse ``YYYY-MM-DD HH:MM:SS`` (the documented form) or ISO 8601 into a naive UTC datetime.

    A value without a zone is read in ``tz`` (UTC unless configured otherwise).
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError as err:
            raise ValueError(f"expected a date like '2023-11-02 13:59:18' or ISO 8601, got {value[:40]!r}") from err
    else:
        raise ValueError(f"expected a date string, got {type(value).__name__}")
    if parsed.tzinfo is None:
        zone = _zone(tz)
        if zone is timezone.utc:
            return parsed  # already naive UTC (the common case: MessageCentral's dates carry no zone)
        parsed = parsed.replace(tzinfo=zone)
    try:
        return parsed.astimezone(timezone.utc).replace(tzinfo=None)
    except OverflowError as err:
        # 0001-01-01T00:00:00+01:00 is in year 0 in UTC, 9999-12-31T23:59:59-01:00 in year 10000.
        raise ValueError(f"date {parsed.isoformat()[:40]!r} is outside the years 1-9999 once converted to UTC") from err


class DeliveryReport(BaseModel):
    """
    One delivery report as MessageCentral POSTs it to the callback URL.

    Unknown fields are kept (``model_extra``) and stored with the report. Dates become naive UTC
    datetimes; a date without a zone is read in the zone passed as validation context ``{"tz": ...}``
    (UTC by default). ``mobile`` is normalised to digits with the country code. Values no supported database
    can store are refused (a validation error, so the receiver answers 422 instead of failing in the store):
    a NUL character or a lone surrogate in any text or extra field (keys included), NaN or infinity in an
    extra field, an extra field nested more than :data:`MAX_EXTRA_DEPTH` levels, an ``errorCode`` outside
    the 32-bit signed range, a date outside years 1-9999 in UTC.

    :param messageId: MessageCentral's id of the message (required, non-empty).
    :param status: ``DELIVRD``, ``EXPIRED``, ``UNDELIV``, ``UNKNOWN``, ``REJECTD`` or anything else
        (kept as received, upper-cased, and treated as not final).
    :param errorCode: operator error code, ``0`` on success; a 32-bit signed integer (what every supported
        database's ``INTEGER`` column holds).
    :param mobile: the recipient, country code included.

    Example::

        report = DeliveryReport.model_validate(
            {"messageId": "a2e87214-d18c-4a2e-b7f4-802c4465a9b9", "status": "DELIVRD", "errorCode": 0,
             "mobile": "919999999999", "submitDate": "2023-11-02 13:59:18", "doneDate": "2023-11-02 13:59:22"}
        )
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    messageId: str = Field(min_length=1, max_length=200)
    status: str = Field(min_length=1, max_length=40)
    errorCode: Annotated[int, Field(ge=ERROR_CODE_MIN, le=ERROR_CODE_MAX)] | None = None
    mobile: str | None = None
    countryCode: str | None = Field(default=None, max_length=10)
    apiKey: str | None = Field(default=None, repr=False)
    clientId: str | None = Field(default=None, max_length=200)
    submitDate: datetime | None = None
    doneDate: datetime | None = None

    @field_validator("messageId", mode="before")
    @classmethod
    def _message_id(cls, value: object) -> object:
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if isinstance(value, str):
            return value.strip()
        return value

    @field_validator("status", mode="before")
    @classmethod
    def _status(cls, value: object) -> object:
        if isinstance(value, str):
            return value.strip().upper()
        return value

    @field_validator("errorCode", mode="before")
    @classmethod
    def _error_code(cls, value: object) -> object:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if isinstance(value, bool):
            raise ValueError("errorCode must be a number, got a boolean")
        if isinstance(value, str):
            text = value.strip()
            if not text.lstrip("-").isdigit():
                raise ValueError(f"errorCode must be a number, got {value[:20]!r}")
            return int(text)
        return value

    @field_validator("mobile", mode="before")
    @classmethod
    def _mobile(cls, value: object) -> str | None:
        return normalize_mobile(value)

    @field_validator("countryCode", "clientId", "apiKey", mode="before")
    @classmethod
    def _text(cls, value: object) -> object:
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value

    @field_validator("messageId", "status", "countryCode", "clientId", "apiKey", mode="after")
    @classmethod
    def _storable(cls, value: str | None) -> str | None:
        if value is not None:
            problem = storable_text_problem(value)
            if problem:
                raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _storable_extra(self) -> DeliveryReport:
        for name, value in (self.model_extra or {}).items():
            problem = _extra_problem(name, value)
            if problem:
                raise ValueError(problem)
        return self

    @field_validator("submitDate", "doneDate", mode="before")
    @classmethod
    def _date(cls, value: object, info: ValidationInfo) -> datetime | None:
        tz = "UTC"
        if isinstance(info.context, dict):
            tz = str(info.context.get("tz") or "UTC")
        return parse_report_datetime(value, tz)

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    def extra_fields(self) -> dict[str, Any]:
        """Fields the API did not document, as received (stored in the report's ``extra`` column)."""
        return dict(self.model_extra or {})

    def __repr__(self) -> str:
        return f"DeliveryReport(messageId={self.messageId!r}, status={self.status!r}, mobile={self.mobile!r})"


class IngestResult(BaseModel):
    """
    What :meth:`ReportStore.ingest` did with a batch of reports.

    :param stored: reports inserted or that replaced an older status of their message.
    :param duplicates: reports whose message already had that status (nothing changed).
    :param ignored_stale: reports older than, or non-final after, the stored status of their message.
    """

    stored: int = 0
    duplicates: int = 0
    ignored_stale: int = 0
