"""
MessageCentralHook: the Airflow face of the MessageCentral client.

The hook owns the connection's settings, the pooled session, the token and the public send methods; its
parts live in :mod:`airflow_provider_messagecentral.client` (settings, request building, transport, responses,
tokens, rate limit, retries).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable, Sequence
from functools import cached_property
from typing import Any
from urllib.parse import quote

import requests
from airflow.sdk import BaseHook
from airflow.sdk.log import mask_secret

from airflow_provider_messagecentral.audience.phone import PhoneNumber, chunked, normalize_numbers, parse_number
from airflow_provider_messagecentral.campaign.progress import ChunkProgress
from airflow_provider_messagecentral.client import transport
from airflow_provider_messagecentral.client.ratelimit import RateLimiter
from airflow_provider_messagecentral.client.request import SendRequest, build_send_request, workbook_upload
from airflow_provider_messagecentral.client.responses import REFUSED, json_body, send_result, token_result
from airflow_provider_messagecentral.client.retries import call_with_retries
from airflow_provider_messagecentral.client.settings import MessageCentralSettings
from airflow_provider_messagecentral.client.tokens import TOKEN_CACHE, TokenCache, jwt_expiry, token_params
from airflow_provider_messagecentral.exceptions import (
    MessageCentralAuthError,
    MessageCentralBulkError,
    MessageCentralError,
    MessageCentralValidationError,
)

DEFAULT_CHUNK_SIZE = 500

log = logging.getLogger(__name__)


class MessageCentralHook(BaseHook):
    """
    Talk to the MessageCentral Message Now API with the credentials of a ``messagecentral`` connection.

    The hook fetches the auth token once and caches it per process (shared by threads and by every hook of
    the same connection) until shortly before it expires, refreshes it once on a 401/403, retries 429
    (honouring ``Retry-After``), 5xx and connection failures with bounded exponential backoff, and caps its
    request rate. Sends that may already have reached MessageCentral (read timeout, dropped connection)
    are not retried: they raise ``MessageCentralUncertainError`` and the caller decides.

    .. code-block:: python

        hook = MessageCentralHook(messagecentral_conn_id="messagecentral_default")
        hook.send_message("9999999999", "Your order has shipped", message_type="TRANSACTIONAL")

    :param messagecentral_conn_id: the Airflow connection (type ``messagecentral``) to use.
    :param token_cache: where tokens are cached; defaults to the process-wide cache.
    """

    conn_name_attr = "messagecentral_conn_id"
    default_conn_name = "messagecentral_default"
    conn_type = "messagecentral"
    hook_name = "MessageCentral"

    def __init__(
        self,
        messagecentral_conn_id: str = default_conn_name,
        *,
        token_cache: TokenCache | None = None,
    ) -> None:
        super().__init__()
        self.messagecentral_conn_id = messagecentral_conn_id
        self._token_cache = token_cache if token_cache is not None else TOKEN_CACHE
        self._session: requests.Session | None = None
        self._session_lock = threading.Lock()
        #: token requests this hook made (successful or not): what the token cache saves is visible here.
        self.token_requests = 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}(messagecentral_conn_id={self.messagecentral_conn_id!r})"

    def __deepcopy__(self, memo: dict[int, Any]) -> MessageCentralHook:
        """A fresh hook of the same connection and token cache (Airflow deep-copies tasks and callbacks)."""
        return type(self)(self.messagecentral_conn_id, token_cache=self._token_cache)

    # -- connection -------------------------------------------------------------------------------------

    @cached_property
    def settings(self) -> MessageCentralSettings:
        """The connection's fields and extras, parsed once; secrets registered with Airflow's masker."""
        conn = self.get_connection(self.messagecentral_conn_id)
        try:
            settings = MessageCentralSettings.from_connection(conn)
        except ValueError as err:
            raise MessageCentralValidationError(f"connection {self.messagecentral_conn_id!r}: {err}") from None
        for secret in (settings.password, settings.auth_token):
            if secret:
                mask_secret(secret)
        return settings

    @cached_property
    def rate_limiter(self) -> RateLimiter:
        """One token bucket shared by every send of this hook."""
        return RateLimiter(self.settings.rate_limit_per_second)

    def get_conn(self) -> requests.Session:
        """The hook's pooled ``requests.Session`` (keep-alive; one per hook, safe to share across threads)."""
        with self._session_lock:
            if self._session is None:
                self._session = transport.new_session(self.settings.base_url)
            return self._session

    def close(self) -> None:
        """Close the pooled session."""
        with self._session_lock:
            if self._session is not None:
                self._session.close()
                self._session = None

    def _request(self, method: str, path: str, *, what: str, **kwargs: Any) -> requests.Response:
        s = self.settings
        timeout = (s.connect_timeout, s.timeout)
        return transport.request(self.get_conn(), method, s.base_url + path, what=what, timeout=timeout, **kwargs)

    # -- token ------------------------------------------------------------------------------------------

    @property
    def _cache_key(self) -> tuple[str, ...]:
        return (self.messagecentral_conn_id, self.settings.customer_id, self.settings.base_url)

    def get_token(self, force_refresh: bool = False) -> str:
        """
        Return a valid auth token, from the cache unless it is missing, about to expire or ``force_refresh``.

        With a pre-issued ``auth_token`` extra the token call is skipped altogether.
        """
        if self.settings.auth_token:
            return self.settings.auth_token
        if force_refresh:
            self._token_cache.invalidate(self._cache_key)
        return self._token_cache.get_or_fetch(self._cache_key, self._fetch_token, self.settings.token_lifetime)

    def _fetch_token(self) -> str:
        params = token_params(self.settings, self.messagecentral_conn_id)
        mask_secret(params["key"])
        mask_secret(quote(params["key"], safe=""))

        def attempt() -> str:
            self.token_requests += 1
            resp = self._request("GET", transport.TOKEN_PATH, what="token request", params=params)
            token = token_result(resp, self.messagecentral_conn_id)
            mask_secret(token)
            return token

        return call_with_retries(
            attempt,
            max_retries=self.settings.max_retries,
            max_wait=self.settings.max_retry_wait,
            retry_uncertain=True,
            describe="MessageCentral token request",
        )

    # -- sends ------------------------------------------------------------------------------------------

    def _send(self, params: dict[str, str], *, what: str, files: dict[str, Any] | None = None) -> dict[str, Any]:
        """One send with the rate limit and retries; uncertain failures (it may have arrived) are not retried."""

        def attempt() -> dict[str, Any]:
            self.rate_limiter.acquire()
            return send_result(self._post_authenticated(params, what, files), what)

        return call_with_retries(
            attempt,
            max_retries=self.settings.max_retries,
            max_wait=self.settings.max_retry_wait,
            retry_uncertain=False,
            describe=f"MessageCentral {what}",
        )

    def _post_authenticated(self, params: dict[str, str], what: str, files: dict[str, Any] | None) -> requests.Response:
        """POST a send with the cached token; on a 401/403 refresh the token once and repeat it once."""
        token = self.get_token()
        headers = {"authToken": token}
        resp = self._request("POST", transport.SEND_PATH, what=what, params=params, files=files, headers=headers)
        if resp.status_code not in REFUSED:
            return resp
        if self.settings.auth_token:
            raise MessageCentralAuthError(
                f"{what}: MessageCentral refused the pre-issued 'auth_token' of connection "
                f"{self.messagecentral_conn_id!r} (HTTP {resp.status_code})",
                http_status=resp.status_code,
            )
        self._token_cache.invalidate(self._cache_key, token)
        log.info("MessageCentral answered HTTP %d: refreshing the token once", resp.status_code)
        headers = {"authToken": self.get_token()}
        resp = self._request("POST", transport.SEND_PATH, what=what, params=params, files=files, headers=headers)
        if resp.status_code in REFUSED:
            raise MessageCentralAuthError(
                f"{what}: MessageCentral refused a freshly issued token (HTTP {resp.status_code})",
                code=json_body(resp).get("responseCode"),
                http_status=resp.status_code,
            )
        return resp

    def prepare_send(self, message: str, **options: Any) -> SendRequest:
        """
        Validate ``message`` and the send options against the connection (no HTTP): the request to send.

        :param options: country_code, flow_type, message_type, sender_id, template_id, entity_id; ``None``
            or empty means the connection's default.
        """
        return build_send_request(self.settings, message, options)

    def send_to(self, number: PhoneNumber, request: SendRequest) -> dict[str, Any]:
        """Send a prepared request to one (already parsed) number; the ``data`` part of the answer."""
        return self._send(request.to_number(number), what=f"send to +{number.msisdn}")

    def send_chunk(self, chunk: Sequence[PhoneNumber], request: SendRequest) -> dict[str, Any]:
        """One bulk request of a prepared request to numbers of one country code."""
        return self._send(request.to_chunk(chunk), what=f"bulk send of {len(chunk)} numbers")

    def send_workbook(
        self,
        workbook: str | os.PathLike[str] | bytes,
        request: SendRequest,
        *,
        filename: str | None = None,
        country_code: str | None = None,
    ) -> dict[str, Any]:
        """
        Upload an .xlsx workbook (path or bytes) with a prepared request; ``##varN##`` placeholders in its
        message are filled from the workbook's columns by MessageCentral.

        Validate the workbook first (``airflow_provider_messagecentral.audience.workbook_check.check_workbook``); this
        method only checks that the content is a zip-based .xlsx of at most 50 MiB.

        :param country_code: dialling code of the workbook's national numbers (default the request's).
        """
        files = workbook_upload(workbook, filename)
        what = f"file send of {files['file'][0]!r}"
        return self._send(request.to_workbook(country_code), what=what, files=files)

    def send_message(self, mobile_number: str | int | PhoneNumber, message: str, **options: Any) -> dict[str, Any]:
        """
        Send ``message`` to one number; return the ``data`` part of the answer (transactionId, ...).

        :param mobile_number: national number (read with ``country_code``, default the connection's
            country) or an international one (``+91...``).
        :param options: country_code, flow_type, message_type, sender_id, template_id, entity_id.
        """
        request = self.prepare_send(message, **options)
        if isinstance(mobile_number, PhoneNumber):
            return self.send_to(mobile_number, request)
        try:
            number = parse_number(mobile_number, request.country)
        except ValueError as err:
            raise MessageCentralValidationError(f"mobile number {str(mobile_number)[:40]!r}: {err}") from None
        return self.send_to(number, request)

    def send_bulk(
        self,
        phone_numbers: Iterable[str | int | PhoneNumber],
        message: str,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        **options: Any,
    ) -> list[dict[str, Any]]:
        """
        Send the same ``message`` to many numbers, ``chunk_size`` per request; one result per chunk.

        Numbers are validated (all of them, before the first request) and de-duplicated. Each result is the
        answer's ``data`` plus ``chunk`` (1-based) and ``recipients`` (msisdn of the chunk). If a chunk fails
        for good, :class:`MessageCentralBulkError` says which chunks were and were not sent.
        """
        request = self.prepare_send(message, **options)
        numbers = self.normalize(phone_numbers, request.country)
        chunks = list(chunked(numbers, chunk_size))
        progress = ChunkProgress(len(chunks), len(numbers), log, what="bulk send")
        results: list[dict[str, Any]] = []
        for index, chunk in enumerate(chunks, start=1):
            try:
                data = self.send_chunk(chunk, request)
            except MessageCentralError as err:
                raise MessageCentralBulkError.after(err, accepted=results, chunk=index, chunks=len(chunks)) from err
            results.append({**data, "chunk": index, "recipients": [n.msisdn for n in chunk]})
            progress.chunk_done(len(chunk))
        return results

    def send_file(
        self,
        workbook: str | os.PathLike[str] | bytes,
        message: str,
        *,
        filename: str | None = None,
        **options: Any,
    ) -> dict[str, Any]:
        """
        Upload an .xlsx workbook (path or bytes) for per-recipient texts: :meth:`prepare_send` then
        :meth:`send_workbook`.
        """
        return self.send_workbook(workbook, self.prepare_send(message, **options), filename=filename)

    # -- helpers ----------------------------------------------------------------------------------------

    def normalize(
        self, phone_numbers: Iterable[str | int | PhoneNumber], country: str | None = None
    ) -> list[PhoneNumber]:
        """
        Validate and de-duplicate numbers with :func:`~airflow_provider_messagecentral.audience.phone.
        normalize_numbers`; one error lists every invalid number with its position.
        """
        if isinstance(phone_numbers, (str, bytes)):
            raise MessageCentralValidationError(
                "phone_numbers must be a list of numbers, not one string (split it first)"
            )
        items = [n.e164 if isinstance(n, PhoneNumber) else n for n in phone_numbers]
        if not items:
            raise MessageCentralValidationError("phone_numbers is empty: nobody to send to")
        audience = normalize_numbers(items, country or self.settings.country)
        if audience.invalid:
            raise MessageCentralValidationError(audience.error_text())
        return audience.numbers

    def test_connection(self) -> tuple[bool, str]:
        """Fetch a token (never sends a message); report success or the reason, with no secret in it."""
        try:
            s = self.settings
            if s.auth_token:
                exp = jwt_expiry(s.auth_token)
                if exp is not None and exp < time.time():
                    return False, "the pre-issued auth_token has expired"
                return True, "a pre-issued auth_token is configured (not checked against MessageCentral)"
            token = self.get_token(force_refresh=True)
        except Exception as err:
            return False, f"{type(err).__name__}: {err}"
        exp = jwt_expiry(token)
        until = time.strftime(" (valid until %Y-%m-%d)", time.gmtime(exp)) if exp else ""
        return True, f"MessageCentral issued a token for customer {s.customer_id} at {s.base_url}{until}"
