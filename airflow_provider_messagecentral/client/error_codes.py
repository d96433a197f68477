"""
MessageCentral's known ``responseCode`` values: each one's name, a plain-language meaning and the error class
that says whether it is retried. Where each code comes from is in docs/messagecentral-api.md; a code not listed
here keeps the generic :class:`~airflow_provider_messagecentral.exceptions.MessageCentralError` (final).
"""

from __future__ import annotations

from dataclasses import dataclass

from airflow_provider_messagecentral.exceptions import (
    MessageCentralAccountError,
    MessageCentralDuplicateError,
    MessageCentralError,
    MessageCentralInsufficientCreditError,
    MessageCentralLimitError,
    MessageCentralRequestError,
    MessageCentralRetryableError,
    MessageCentralServerError,
    MessageCentralVerificationError,
)


@dataclass(frozen=True)
class KnownCode:
    """
    One known ``responseCode``.

    :param name: MessageCentral's name of it.
    :param error: the class raised for it (its base says final or retried).
    :param meaning: what it means for the user, in plain words.
    """

    name: str
    error: type[MessageCentralError]
    meaning: str


_CREDIT = "the account's credit does not cover this send: top up the MessageCentral wallet, then retry the task"

KNOWN_CODES: dict[int, KnownCode] = {
    400: KnownCode("BAD_REQUEST", MessageCentralRequestError, "a parameter is missing or malformed"),
    402: KnownCode("INSUFFICIENT_BALANCE", MessageCentralInsufficientCreditError, _CREDIT),
    409: KnownCode("DUPLICATE_RESOURCE", MessageCentralDuplicateError, "it already exists at MessageCentral"),
    500: KnownCode("SERVER_ERROR", MessageCentralServerError, "MessageCentral failed internally; retried"),
    501: KnownCode(
        "INVALID_CUSTOMER_ID",
        MessageCentralAccountError,
        "MessageCentral does not know the customer id: check the connection's login",
    ),
    505: KnownCode("INVALID_VERIFICATION_ID", MessageCentralVerificationError, "no such verification id"),
    506: KnownCode(
        "REQUEST_ALREADY_EXISTS",
        MessageCentralDuplicateError,
        "a request for this number is already in progress at MessageCentral",
    ),
    508: KnownCode("INSUFFICIENT_CREDITS", MessageCentralInsufficientCreditError, _CREDIT),
    511: KnownCode(
        "INVALID_COUNTRY_CODE",
        MessageCentralRequestError,
        "MessageCentral does not accept this country code (or the account may not send to it)",
    ),
    601: KnownCode("INVALID_MOBILE_NUMBER", MessageCentralRequestError, "MessageCentral rejected a mobile number"),
    700: KnownCode("VERIFICATION_FAILED", MessageCentralVerificationError, "the verification failed"),
    702: KnownCode("WRONG_OTP_PROVIDED", MessageCentralVerificationError, "the code given is wrong"),
    703: KnownCode("ALREADY_VERIFIED", MessageCentralVerificationError, "it was verified already"),
    705: KnownCode("VERIFICATION_EXPIRED", MessageCentralVerificationError, "the verification expired"),
    800: KnownCode(
        "MAXIMUM_LIMIT_REACHED",
        MessageCentralLimitError,
        "a sending limit of the account or number was reached; retried with backoff",
    ),
    805: KnownCode("INSUFFICIENT_CREDITS", MessageCentralInsufficientCreditError, _CREDIT),
}


def code_number(code: object) -> int | None:
    """A ``responseCode`` as an int (``200``, ``"200"``, ``" 805 "``, ``805.0``); ``None`` if it is not one."""
    if isinstance(code, bool):
        return None
    if isinstance(code, int):
        return code
    if isinstance(code, float) and code.is_integer():
        return int(code)
    if isinstance(code, str) and code.strip().isdigit():
        return int(code.strip())
    return None


def is_success(code: object) -> bool:
    """Whether a ``responseCode`` (int or string) says success (200)."""
    return code_number(code) == 200


def refusal(
    code: object, text: str, *, http_status: int | None = None, retry_after: float | None = None
) -> MessageCentralError:
    """
    The error for a refusal with ``code``: the named class with its plain meaning appended to ``text`` for a
    known code, else the generic final error. ``retry_after`` is kept on retried classes.
    """
    given = code if isinstance(code, (int, str)) and not isinstance(code, bool) else None
    known = KNOWN_CODES.get(code_number(code) or -1)
    if known is None:
        return MessageCentralError(text, code=given, http_status=http_status)
    message = f"{text} ({known.name}: {known.meaning})"
    err: MessageCentralError
    if issubclass(known.error, MessageCentralRetryableError):
        err = known.error(message, code=given, http_status=http_status, retry_after=retry_after)
    else:
        err = known.error(message, code=given, http_status=http_status)
    err.name = known.name
    return err
