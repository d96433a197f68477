"""Settings of the local MessageCentral sandbox: the account it accepts and how it answers."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from urllib.parse import urlsplit

#: Delivery statuses MessageCentral reports, and the ``errorCode`` the sandbox puts on each.
STATUS_ERROR_CODES: dict[str, int] = {"DELIVRD": 0, "UNKNOWN": 0, "UNDELIV": 1, "EXPIRED": 2, "REJECTD": 3}
FIVE_YEARS = 1825 * 24 * 3600
DEFAULT_STATUS_MIX: dict[str, float] = {"DELIVRD": 1.0}
#: How answers type their codes and ids: as MessageCentral documents them, all as strings, or all as ints.
FIELD_TYPES = ("documented", "strings", "ints")


def check_field_types(value: object) -> str:
    """Return ``value`` if it is one of :data:`FIELD_TYPES`, else raise ``ValueError``."""
    if value not in FIELD_TYPES:
        raise ValueError(f"field_types must be one of {', '.join(FIELD_TYPES)}, got {value!r}")
    return str(value)


def parse_status_mix(value: str | dict[str, float] | None) -> dict[str, float]:
    """
    Read ``DELIVRD=0.9,UNDELIV=0.05,EXPIRED=0.05`` (or a dict) into weights that sum to 1.

    :param value: the mix as text or as a mapping of status to weight; ``None`` means all ``DELIVRD``.
    """
    if value is None or value == "":
        return dict(DEFAULT_STATUS_MIX)
    raw: dict[str, float] = {}
    if isinstance(value, str):
        for part in value.split(","):
            name, sep, text = part.strip().partition("=")
            if not sep:
                raise ValueError(f"status mix entry {part.strip()!r} is not STATUS=WEIGHT")
            try:
                raw[name.strip().upper()] = float(text)
            except ValueError:
                raise ValueError(f"status mix weight {text!r} of {name.strip()!r} is not a number") from None
    elif isinstance(value, dict):
        raw = {str(k).upper(): float(v) for k, v in value.items()}
    else:
        raise ValueError(f"status mix must be text or a mapping, got {type(value).__name__}")
    for name, weight in raw.items():
        if name not in STATUS_ERROR_CODES:
            raise ValueError(f"unknown status {name!r} in status mix; use {', '.join(STATUS_ERROR_CODES)}")
        if not math.isfinite(weight) or weight < 0:
            raise ValueError(f"status mix weight of {name} must be >= 0, got {weight}")
    total = sum(raw.values())
    if total <= 0:
        raise ValueError("status mix weights must add up to more than 0")
    return {name: weight / total for name, weight in raw.items() if weight > 0}


def check_fraction(name: str, value: float) -> float:
    """Return ``value`` as a float in [0, 1] or raise ``ValueError`` naming ``name``."""
    number = float(value)
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"{name} must be a fraction between 0 and 1, got {value!r}")
    return number


def redact_url(url: str | None) -> str | None:
    """``http://host:port/…``: a callback URL without its path (which holds the receiver's secret)."""
    if not url:
        return None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/…"


@dataclass
class SandboxConfig:
    """
    How the sandbox behaves: the one account it knows, token lifetime and delivery callbacks.

    :param customer_id: the account's customer id (``customerId`` of the token call).
    :param password: the account password; the token call's ``key`` must be its base64 (UTF-8).
    :param email: the account's registered e-mail.
    :param country: the account's dialling code.
    :param token_ttl: lifetime of issued tokens in seconds (five years, like the real API).
    :param latency: seconds every API request sleeps before answering.
    :param callback_url: where delivery reports are POSTed; ``None`` sends none. Its path is never logged.
    :param callback_delay: seconds between accepting a send and POSTing its reports.
    :param status_mix: weights of the delivery statuses, e.g. ``"DELIVRD=0.9,UNDELIV=0.1"``.
    :param duplicates: fraction of reports sent twice.
    :param out_of_order: fraction of messages whose final report is followed by a stale ``UNKNOWN``.
    :param seed: seed of the random choices (status, duplicates, order) for reproducible runs.
    :param callback_workers: threads POSTing reports.
    :param callback_retries: extra attempts of a failed report POST before it counts as failed.
    :param callback_timeout: seconds a report POST may take.
    :param balance: the account's credit at start (and after a reset); sends consume it.
    :param credit_per_segment: credit one SMS segment to one recipient costs.
    :param field_types: ``documented`` (``responseCode`` an int at the top, a string under ``data``; ids as
        strings), ``strings`` (every code, count and id a string) or ``ints`` (every one an int).

    Example::

        config = SandboxConfig(callback_url="http://127.0.0.1:8098/callback/s3cret", status_mix="DELIVRD=1")
    """

    customer_id: str = "C-SANDBOX0000001"
    password: str = field(default="sandbox", repr=False)
    email: str = "sandbox@example.com"
    country: str = "91"
    token_ttl: float = FIVE_YEARS
    latency: float = 0.0
    callback_url: str | None = field(default=None, repr=False)
    callback_delay: float = 1.0
    status_mix: str | dict[str, float] | None = None
    duplicates: float = 0.0
    out_of_order: float = 0.0
    seed: int | None = None
    callback_workers: int = 4
    callback_retries: int = 3
    callback_timeout: float = 5.0
    field_types: str = "documented"
    balance: float = 1_000_000_000.0
    credit_per_segment: float = 1.0

    def __post_init__(self) -> None:
        parse_status_mix(self.status_mix)
        check_fraction("duplicates", self.duplicates)
        check_fraction("out_of_order", self.out_of_order)
        check_field_types(self.field_types)
        for name in ("balance", "credit_per_segment"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a number >= 0, got {value}")
        if self.callback_delay < 0:
            raise ValueError(f"callback_delay must be >= 0, got {self.callback_delay}")
        if self.token_ttl < 0:
            raise ValueError(f"token_ttl must be >= 0, got {self.token_ttl}")
        if self.latency < 0:
            raise ValueError(f"latency must be >= 0, got {self.latency}")
        if self.callback_workers < 1:
            raise ValueError(f"callback_workers must be >= 1, got {self.callback_workers}")

    def public_view(self) -> dict[str, object]:
        """The settings as JSON, without the password and with the callback URL's path hidden."""
        return {
            "customer_id": self.customer_id,
            "email": self.email,
            "country": self.country,
            "token_ttl": self.token_ttl,
            "latency": self.latency,
            "callback_url": redact_url(self.callback_url),
            "callback_delay": self.callback_delay,
            "status_mix": parse_status_mix(self.status_mix),
            "duplicates": self.duplicates,
            "out_of_order": self.out_of_order,
            "seed": self.seed,
            "field_types": self.field_types,
            "balance": self.balance,
            "credit_per_segment": self.credit_per_segment,
        }
