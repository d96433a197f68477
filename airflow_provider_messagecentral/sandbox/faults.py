"""
The faults a test can inject into the sandbox (``POST /__sandbox/faults``) and the business errors it can answer.

``BUSINESS_ERRORS`` holds every ``responseCode`` the provider knows by name (see docs/messagecentral-api.md):
``fail_on_send={"nth": 2, "code": 800}`` answers the second send with it; ``balance`` sets the account's credit
(sends consume it per segment and recipient, and get ``402 INSUFFICIENT_BALANCE`` once it runs short);
``balance_endpoint`` makes ``wallet/credits/balance`` answer 404 or 405, as on accounts without it.
"""

from __future__ import annotations

import math
from typing import Any

#: code -> (top-level ``message``, ``data.errorMessage``) of a refused send.
BUSINESS_ERRORS: dict[int, tuple[str, str]] = {
    400: ("BAD_REQUEST", "Bad request"),
    402: ("INSUFFICIENT_BALANCE", "Insufficient balance"),
    409: ("DUPLICATE_RESOURCE", "Duplicate resource"),
    500: ("SERVER_ERROR", "Server error"),
    501: ("INVALID_CUSTOMER_ID", "Invalid customer id"),
    505: ("INVALID_VERIFICATION_ID", "Invalid verification id"),
    506: ("REQUEST_ALREADY_EXISTS", "Request already exists"),
    508: ("INSUFFICIENT_CREDITS", "Insufficient credits"),
    511: ("INVALID_COUNTRY_CODE", "Invalid country code"),
    601: ("INVALID_MOBILE_NUMBER", "Invalid mobile number"),
    700: ("VERIFICATION_FAILED", "Verification failed"),
    702: ("WRONG_OTP_PROVIDED", "Wrong OTP provided"),
    703: ("ALREADY_VERIFIED", "Already verified"),
    705: ("VERIFICATION_EXPIRED", "Verification expired"),
    800: ("MAXIMUM_LIMIT_REACHED", "Maximum limit reached"),
    805: ("INSUFFICIENT_CREDITS", "Insufficient credits"),
}
FAULT_KEYS = (
    "expire_tokens",
    "token_ttl",
    "rate_limit",
    "errors",
    "latency",
    "balance",
    "balance_endpoint",
    "fail_on_send",
    "hang",
)


def positive_int(name: str, value: object, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{name} must be a number of seconds >= 0, got {value!r}")
    return float(value)


def credits(name: str, value: object) -> float:
    """An amount of credit: a finite number >= 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    return float(value)


def parse_fault(key: str, value: Any) -> Any:
    """Check one fault's value (not ``None``: that restores the default); return what the state keeps."""
    if key == "expire_tokens":
        return bool(value)
    if key in ("latency", "token_ttl"):
        return seconds(key, value)
    if key == "balance":
        return credits(key, value)
    if key == "balance_endpoint":
        if value not in (404, 405):
            raise ValueError(f"balance_endpoint must be 404, 405 or null, got {value!r}")
        return value
    if not isinstance(value, dict):
        raise ValueError(f"fault {key!r} must be an object, got {type(value).__name__}")
    if key == "rate_limit":
        wait = seconds("rate_limit.seconds", value.get("seconds", 1))
        retry_after = str(value.get("retry_after", int(wait) if wait.is_integer() else wait))
        return {
            "count": positive_int("rate_limit.count", value.get("count", 1)),
            "retry_after": retry_after,
            "seconds": wait,
        }
    if key == "errors":
        status = positive_int("errors.status", value.get("status", 503))
        if not 500 <= status <= 599:
            raise ValueError(f"errors.status must be a 5xx status, got {status}")
        return {"count": positive_int("errors.count", value.get("count", 1)), "status": status}
    if key == "fail_on_send":
        code = positive_int("fail_on_send.code", value.get("code", 705))
        if code not in BUSINESS_ERRORS:
            raise ValueError(f"fail_on_send.code must be one of {', '.join(map(str, BUSINESS_ERRORS))}")
        return {"nth": positive_int("fail_on_send.nth", value.get("nth", 1)), "code": code, "seen": 0}
    # hang
    return {
        "count": positive_int("hang.count", value.get("count", 1)),
        "seconds": seconds("hang.seconds", value.get("seconds", 5)),
    }
