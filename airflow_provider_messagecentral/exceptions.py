"""Errors raised by the MessageCentral provider. None of them ever carries a secret."""

from __future__ import annotations

from airflow.sdk.exceptions import AirflowException


class MessageCentralError(AirflowException):
    """
    A request to MessageCentral failed for good (it is not retried).

    :param message: what went wrong, in words a user can act on.
    :param code: the API's ``responseCode`` or the HTTP status, when there is one.
    :param status_code: the HTTP status of the response, when there is one.
    """

    def __init__(self, message: str, *, code: int | str | None = None, status_code: int | None = None):
        self.code = code
        self.status_code = status_code
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
        status_code: int | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(message, code=code, status_code=status_code)
        self.retry_after = retry_after


class MessageCentralUncertainError(MessageCentralRetryableError):
    """The request may have reached MessageCentral but no answer came back (timeout or reset mid-request)."""


class MessageCentralValidationError(MessageCentralError, ValueError):
    """Input is wrong; raised before any request is made. The text says what and where."""
