"""The API's fixed choices (flow and message types) and the one check of a choice."""

from __future__ import annotations

from collections.abc import Sequence

from airflow_provider_messagecentral.exceptions import MessageCentralValidationError

FLOW_TYPES = ("SMS", "WHATSAPP", "RCS", "SAUTH")
MESSAGE_TYPES = ("PROMOTIONAL", "TRANSACTIONAL", "OTP")


def check_choice(name: str, value: object, choices: Sequence[str]) -> str:
    """``value`` upper-cased when it is one of ``choices``; else a validation error naming ``name``."""
    if not isinstance(value, str) or value.strip().upper() not in choices:
        raise MessageCentralValidationError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value.strip().upper()
