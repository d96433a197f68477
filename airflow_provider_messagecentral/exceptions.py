"""Errors raised by the MessageCentral provider. None of them ever carries a secret."""

from __future__ import annotations

from airflow.sdk.exceptions import AirflowException


class MessageCentralError(AirflowException):
    """
    A request to MessageCentral failed for good (it is not retried).

    :param message: what went wrong, in words a user can act on.
    :param code: the API's ``responseCode`` or the HTTP status, when there is one.
    :param http_status: the HTTP status of the response, when there is one.

    .. code-block:: python

        try:
            hook.send_message("9816111111", "Your order has shipped")
        except MessageCentralError as err:
            log.error("not sent: %s (code %s)", err.error_message, err.code)
    """

    #: MessageCentral's name of a known code (``"MAXIMUM_LIMIT_REACHED"``), set on the named errors below.
    name: str | None = None

    def __init__(self, message: str, *, code: int | str | None = None, http_status: int | None = None):
        self.code = code
        self.http_status = http_status
        self.error_message = message
        text = message if code is None else f"[{code}] {message}"
        super().__init__(text)


class MessageCentralAuthError(MessageCentralError):
    """The token could not be obtained, or was refused again after one refresh."""


class MessageCentralRetryableError(MessageCentralError):
    """A transient failure (429, 5xx, connection error): retried by the hook within its bounds."""

    def __init__(
        self,
        message: str,
        *,
        code: int | str | None = None,
        http_status: int | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(message, code=code, http_status=http_status)
        self.retry_after = retry_after


class MessageCentralUncertainError(MessageCentralRetryableError):
    """The request may have reached MessageCentral but no answer came back (timeout or reset mid-request)."""


class MessageCentralLimitError(MessageCentralRetryableError):
    """
    MessageCentral refused a request for a limit of the account or number (``800 MAXIMUM_LIMIT_REACHED``):
    nothing was sent, and the hook retries it with backoff within its bounds like a 429.
    """


class MessageCentralServerError(MessageCentralRetryableError):
    """MessageCentral answered ``responseCode`` 500 (``SERVER_ERROR``) in its body: not accepted, retried."""


class MessageCentralInsufficientCreditError(MessageCentralError):
    """
    The account's credit does not cover the send (MessageCentral refused it, or ``check_balance`` found the
    estimated cost above the balance before anything was sent). Final: a person must top up.
    """


class MessageCentralRequestError(MessageCentralError):
    """MessageCentral refused what the request says (a parameter, the country code, a number). Final."""


class MessageCentralAccountError(MessageCentralError):
    """MessageCentral does not know the account (``501 INVALID_CUSTOMER_ID``): check the connection. Final."""


class MessageCentralDuplicateError(MessageCentralError):
    """MessageCentral says the request or resource already exists (``409``, ``506``). Final."""


class MessageCentralVerificationError(MessageCentralError):
    """A code of MessageCentral's OTP verification flow (``505``, ``700``-``705``). Final."""


class MessageCentralValidationError(MessageCentralError, ValueError):
    """Input is wrong; raised before any request is made. The text says what and where."""


class MessageCentralBulkError(MessageCentralError):
    """
    A bulk send stopped at a chunk that failed for good.

    ``accepted`` holds the results of the chunks MessageCentral accepted before it; the text names the
    failed chunk and how many were not sent.
    """

    def __init__(self, message: str, *, code: int | str | None, http_status: int | None, accepted: list[dict]):
        super().__init__(message, code=code, http_status=http_status)
        self.accepted = accepted

    @classmethod
    def after(
        cls, err: MessageCentralError, *, accepted: list[dict], chunk: int, chunks: int
    ) -> MessageCentralBulkError:
        sent = sum(len(r.get("recipients", ())) for r in accepted)
        text = (
            f"chunk {chunk}/{chunks} failed: {err.error_message}. "
            f"Chunks 1-{chunk - 1} ({sent} recipients) were accepted; chunks {chunk}-{chunks} were not sent"
            if chunk > 1
            else f"chunk 1/{chunks} failed: {err.error_message}. Nothing was sent"
        )
        return cls(text, code=err.code, http_status=err.http_status, accepted=accepted)
