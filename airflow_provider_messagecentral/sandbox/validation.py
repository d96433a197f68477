"""Checks the sandbox applies to send requests, the way the real API answers them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

FLOW_TYPES = frozenset({"SMS", "WHATSAPP", "RCS", "SAUTH"})
CHANNEL_TYPES = frozenset({"SMS", "WHATSAPP", "RCS"})
MESSAGE_TYPES = frozenset({"PROMOTIONAL", "TRANSACTIONAL", "OTP"})
_BULK_ENTRY = re.compile(r"(\d{1,4}) (\d+)")
PLACEHOLDER = re.compile(r"##([^#\s]+)##")


class SendRejected(Exception):
    """
    A send (or token) request the sandbox refuses.

    :param message: what is wrong, naming the parameter, entry, row or column.
    :param http_status: HTTP status of the answer.
    :param response_code: ``responseCode`` of the answer body.
    """

    def __init__(self, message: str, http_status: int = 400, response_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.http_status = http_status
        self.response_code = http_status if response_code is None else response_code
        self.retry_after: str | None = None


@dataclass(frozen=True)
class Recipient:
    """One addressee of an accepted send and the text they get."""

    country_code: str
    national: str
    text: str

    @property
    def mobile(self) -> str:
        return f"{self.country_code}{self.national}"


def number_problem(country_code: str, national: str) -> str | None:
    """Why ``national`` is not a valid number under ``country_code``, or ``None`` when it is."""
    if not national.isdigit() or not 6 <= len(national) <= 15:
        return "must be 6 to 15 digits"
    if country_code == "91" and (len(national) != 10 or national[0] not in "6789"):
        return "an Indian (91) number has 10 digits and starts with 6, 7, 8 or 9"
    return None


def invalid_number(what: str, reason: str) -> SendRejected:
    return SendRejected(f"INVALID_MOBILE_NUMBER: {what} {reason}", 400, 601)


def check_common(params: Mapping[str, str]) -> str:
    """Validate the parameters every send carries; return the country code."""
    country_code = params.get("countryCode")
    if country_code is None or country_code == "":
        raise SendRejected("missing required parameter 'countryCode'")
    if not country_code.isdigit() or len(country_code) > 4:
        raise SendRejected(f"parameter 'countryCode' must be 1 to 4 digits, got {country_code[:20]!r}")
    flow_type = params.get("flowType")
    if not flow_type:
        raise SendRejected("missing required parameter 'flowType' (one of SMS, WHATSAPP, RCS, SAUTH)")
    if flow_type not in FLOW_TYPES:
        raise SendRejected(f"parameter 'flowType' must be one of SMS, WHATSAPP, RCS, SAUTH, got {flow_type[:20]!r}")
    channel = params.get("type", "SMS")
    if channel not in CHANNEL_TYPES:
        raise SendRejected(f"parameter 'type' must be one of SMS, WHATSAPP, RCS, got {channel[:20]!r}")
    message_type = params.get("messageType")
    if message_type is not None and message_type not in MESSAGE_TYPES:
        raise SendRejected(
            f"parameter 'messageType' must be one of PROMOTIONAL, TRANSACTIONAL, OTP, got {message_type[:20]!r}"
        )
    sender_id = params.get("senderId")
    if sender_id is not None and not sender_id.strip():
        raise SendRejected("parameter 'senderId' is empty")
    if not params.get("message", "").strip():
        raise SendRejected("missing required parameter 'message' (the text must not be empty)")
    has_template, has_entity = bool(params.get("templateId")), bool(params.get("entityId"))
    if has_template != has_entity:
        given, missing = ("templateId", "entityId") if has_template else ("entityId", "templateId")
        raise SendRejected(f"parameter '{given}' given without '{missing}': pass both or neither")
    return country_code


def single_recipient(country_code: str, mobile_number: str, message: str) -> Recipient:
    """The recipient of a ``mobileNumber`` send (a national number)."""
    problem = number_problem(country_code, mobile_number)
    if problem:
        raise invalid_number(f"mobileNumber {mobile_number[:20]!r}", problem)
    return Recipient(country_code, mobile_number, message)


def bulk_recipients(phone_numbers: str, message: str) -> list[Recipient]:
    """The recipients of ``phoneNumbers``: exactly ``91 9816111111, 91 7715131105``."""
    if not phone_numbers:
        raise SendRejected("parameter 'phoneNumbers' is empty")
    recipients: list[Recipient] = []
    for position, entry in enumerate(phone_numbers.split(", "), start=1):
        match = _BULK_ENTRY.fullmatch(entry)
        if match is None:
            raise SendRejected(
                f"parameter 'phoneNumbers' entry #{position} {entry[:30]!r} is not '<countryCode> <number>' "
                "(entries are joined by ', ', e.g. '91 9816111111, 91 7715131105')"
            )
        code, national = match.groups()
        problem = number_problem(code, national)
        if problem:
            raise invalid_number(f"phoneNumbers entry #{position} {entry!r}", problem)
        recipients.append(Recipient(code, national, message))
    return recipients
