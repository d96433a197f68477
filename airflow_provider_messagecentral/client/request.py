"""
Building a send request: the one place that turns a message and send options into the API's parameters.

:func:`build_send_request` validates everything that can be validated without HTTP (flow and message type,
message length and text, DLT ids, unknown options) against the connection's defaults and returns a
:class:`SendRequest`. Every send (one number, a bulk chunk, a workbook) is that request plus its recipients;
:func:`workbook_upload` checks the file part of a workbook send.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_provider_messagecentral.audience.phone import PhoneNumber, format_phone_numbers
from airflow_provider_messagecentral.client.choices import FLOW_TYPES, MESSAGE_TYPES, check_choice
from airflow_provider_messagecentral.client.settings import MessageCentralSettings
from airflow_provider_messagecentral.exceptions import MessageCentralValidationError

#: Longest text accepted per flow type (characters). SMS: 10 concatenated GSM-7 segments of 153.
MAX_MESSAGE_CHARS = {"SMS": 1530, "SAUTH": 1530, "RCS": 3072, "WHATSAPP": 4096}
#: The keyword options every send method takes.
SEND_OPTIONS = frozenset({"country_code", "flow_type", "message_type", "sender_id", "template_id", "entity_id"})
#: Content type of a workbook upload, and the largest workbook MessageCentral takes.
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MAX_WORKBOOK_BYTES = 50 * 1024 * 1024
#: Parameters a send unit's ledger key does not cover (the text is keyed on its own; the customer is the account).
_UNKEYED = frozenset({"customerId", "message"})


def check_dlt_ids(template_id: object, entity_id: object) -> None:
    """DLT registration ids (India) go together: both or neither."""
    if bool(template_id) != bool(entity_id):
        raise MessageCentralValidationError(
            "template_id and entity_id go together (DLT registration): give both or neither; "
            f"got template_id={template_id!r}, entity_id={entity_id!r}"
        )


def check_text(value: str, what: str) -> None:
    """Refuse text that is not valid Unicode (unpaired surrogates, e.g. from mis-decoded bytes)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise MessageCentralValidationError(
            f"{what} is not valid Unicode text (it holds unpaired surrogates, e.g. from mis-decoded bytes)"
        ) from None


def check_message(message: object, flow_type: str) -> None:
    """Reject a message that is not text, is empty, or is longer than the flow allows."""
    if not isinstance(message, str):
        raise MessageCentralValidationError(f"message must be text, got {type(message).__name__}")
    if not message.strip():
        raise MessageCentralValidationError("message is empty")
    limit = MAX_MESSAGE_CHARS[flow_type]
    if len(message) > limit:
        raise MessageCentralValidationError(
            f"message has {len(message)} characters; {flow_type} allows at most {limit}"
        )
    check_text(message, "message")


def check_country_code(value: object) -> str:
    """A dialling code as digits (``"+91"`` -> ``"91"``); a validation error otherwise."""
    code = str(value).strip().lstrip("+")
    if not code.isdigit():
        raise MessageCentralValidationError(f"country_code must be a dialling code like '91', got {value!r}")
    return code


@dataclass(frozen=True)
class SendRequest:
    """
    A validated send: the API parameters every recipient of it shares, and the default dialling code.

    Build it with :meth:`MessageCentralHook.prepare_send` (or :func:`build_send_request`), then send it to one
    number, a chunk of numbers or a workbook with the hook's ``send_to``, ``send_chunk`` and ``send_workbook``.

    :param params: ``flowType``, ``type``, ``messageType``, ``message`` and, when set, ``senderId``,
        ``templateId``, ``entityId``, ``customerId``.
    :param country: dialling code of national numbers (the option ``country_code``, else the connection's).

    .. code-block:: python

        request = hook.prepare_send("Your code is 1234", message_type="OTP")
        hook.send_to(parse_number("9816111111", request.country), request)
    """

    params: Mapping[str, str] = field(repr=False)
    country: str

    @property
    def message(self) -> str:
        return self.params["message"]

    @property
    def flow_type(self) -> str:
        return self.params["flowType"]

    @property
    def message_type(self) -> str:
        return self.params["messageType"]

    def key_options(self) -> dict[str, str]:
        """What a send unit's ledger key covers besides its recipients and text: the request's options."""
        return {k: v for k, v in self.params.items() if k not in _UNKEYED}

    def to_number(self, number: PhoneNumber) -> dict[str, str]:
        """The parameters of a send to one number."""
        return {**self.params, "countryCode": number.country_code, "mobileNumber": number.national}

    def to_chunk(self, chunk: Sequence[PhoneNumber]) -> dict[str, str]:
        """The parameters of one bulk request: numbers of one country code, ``91 9816111111, 91 ...``."""
        if not chunk or len({n.country_code for n in chunk}) != 1:
            raise MessageCentralValidationError("a bulk chunk needs at least one number, all of one country code")
        return {**self.params, "countryCode": chunk[0].country_code, "phoneNumbers": format_phone_numbers(chunk)}

    def to_workbook(self, country_code: str | None = None) -> dict[str, str]:
        """The parameters of a workbook upload (numbers in the workbook are read with ``country_code``)."""
        return {**self.params, "countryCode": check_country_code(country_code or self.country)}


def build_send_request(settings: MessageCentralSettings, message: str, options: Mapping[str, Any]) -> SendRequest:
    """
    Validate ``message`` and the send ``options`` against the connection's defaults; no HTTP.

    :param options: any of ``country_code``, ``flow_type``, ``message_type``, ``sender_id``, ``template_id``,
        ``entity_id``; ``None`` or empty means the connection's default.
    """
    unknown = set(options) - SEND_OPTIONS
    if unknown:
        raise MessageCentralValidationError(
            f"unknown send option(s) {sorted(unknown)}; allowed: {sorted(SEND_OPTIONS)}"
        )
    given = {k: v for k, v in options.items() if v not in (None, "")}
    flow_type = check_choice("flow_type", given.get("flow_type", settings.flow_type), FLOW_TYPES)
    message_type = check_choice("message_type", given.get("message_type", settings.message_type), MESSAGE_TYPES)
    check_message(message, flow_type)
    template_id, entity_id = given.get("template_id"), given.get("entity_id")
    check_dlt_ids(template_id, entity_id)
    params = {"flowType": flow_type, "type": "SMS", "messageType": message_type, "message": message}
    sender_id = given.get("sender_id") or settings.sender_id
    if sender_id:
        params["senderId"] = str(sender_id).strip()
    if template_id:
        params["templateId"], params["entityId"] = str(template_id).strip(), str(entity_id).strip()
    if settings.customer_id:
        params["customerId"] = settings.customer_id
    country = check_country_code(given.get("country_code", settings.country))
    return SendRequest(params=params, country=country)


def workbook_upload(
    workbook: str | os.PathLike[str] | bytes, filename: str | None = None
) -> dict[str, tuple[str, bytes, str]]:
    """
    The ``files`` part of a workbook send: its name, bytes and content type.

    Refused (before any request) when the file is missing, over 50 MiB or not a zip-based .xlsx; a name
    without the ``.xlsx`` suffix gets it.
    """
    if isinstance(workbook, bytes):
        content, name = workbook, filename or "audience.xlsx"
    else:
        path = Path(workbook)
        if not path.is_file():
            raise MessageCentralValidationError(f"workbook {str(path)!r} does not exist")
        if path.stat().st_size > MAX_WORKBOOK_BYTES:
            raise MessageCentralValidationError(
                f"workbook {str(path)!r} is over {MAX_WORKBOOK_BYTES // 2**20} MiB: split the audience"
            )
        content, name = path.read_bytes(), filename or path.name
    if len(content) > MAX_WORKBOOK_BYTES:
        raise MessageCentralValidationError(f"workbook is larger than {MAX_WORKBOOK_BYTES // 2**20} MiB")
    if not content.startswith(b"PK\x03\x04"):
        raise MessageCentralValidationError(f"workbook {name!r} is not an .xlsx file (not a zip archive)")
    if not name.lower().endswith(".xlsx"):
        name = f"{name}.xlsx"
    return {"file": (name, content, XLSX_MIME)}
