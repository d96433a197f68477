"""MessageCentralHook: token auth, retries, rate limit and the three kinds of send."""

from __future__ import annotations

import base64
import logging
import os
import re
import threading
import time
from collections.abc import Iterable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests
from airflow.sdk import BaseHook
from airflow.sdk.log import mask_secret
from requests.adapters import HTTPAdapter

from airflow_provider_messagecentral.audience.phone import (
    PhoneNumber,
    chunked,
    normalize_numbers,
    parse_number,
)
from airflow_provider_messagecentral.campaign.progress import ChunkProgress
from airflow_provider_messagecentral.client.ratelimit import RateLimiter
from airflow_provider_messagecentral.client.request import SendRequest, build_send_request
from airflow_provider_messagecentral.client.retries import (
    RETRYABLE_STATUS,
    call_with_retries,
    parse_retry_after,
    transport_error,
)
from airflow_provider_messagecentral.client.settings import MessageCentralSettings
from airflow_provider_messagecentral.client.tokens import TOKEN_CACHE, TokenCache, jwt_expiry
from airflow_provider_messagecentral.exceptions import (
    MessageCentralAuthError,
    MessageCentralBulkError,
    MessageCentralError,
    MessageCentralRetryableError,
    MessageCentralValidationError,
)

TOKEN_PATH = "/auth/v1/authentication/token"  # noqa: S105 - a URL path, not a password
SEND_PATH = "/verification/v3/send"
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
DEFAULT_CHUNK_SIZE = 500
MAX_WORKBOOK_BYTES = 50 * 1024 * 1024

log = logging.getLogger(__name__)


class _RedactKeyParam(logging.Filter):
    """urllib3 logs request URLs at DEBUG; the token URL carries the base64 password in ``key``."""

    _pattern = re.compile(r"([?&]key=)[^&\s\"']+")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.args = tuple(self._pattern.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = self._pattern.sub(r"\1***", record.msg)
        return True


logging.getLogger("urllib3.connectionpool").addFilter(_RedactKeyParam())


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
        self.token_requests = 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}(messagecentral_conn_id={self.messagecentral_conn_id!r})"

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
                session = requests.Session()
                adapter = HTTPAdapter(pool_connections=4, pool_maxsize=32, max_retries=0)
                session.mount("http://", adapter)
                session.mount("https://", adapter)
                session.headers.update({"accept": "*/*"})
                self._session = session
            return self._session

    def close(self) -> None:
        """Close the pooled session."""
        with self._session_lock:
            if self._session is not None:
                self._session.close()
                self._session = None

    @property
    def _timeout(self) -> tuple[float, float]:
        return (self.settings.connect_timeout, self.settings.timeout)

    @property
    def _cache_key(self) -> tuple[str, ...]:
        s = self.settings
        return (self.messagecentral_conn_id, s.customer_id, s.base_url)

    # -- token ------------------------------------------------------------------------------------------

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
        s = self.settings
        missing = [
            name
            for name, value in (
                ("login (customer id)", s.customer_id),
                ("password", s.password),
                ("extra 'email'", s.email),
            )
            if not value
        ]
        if missing:
            raise MessageCentralAuthError(
                f"connection {self.messagecentral_conn_id!r} lacks {', '.join(missing)}: "
                "needed to request a MessageCentral token (or set the 'auth_token' extra)"
            )
        key = base64.b64encode(s.password.encode("utf-8")).decode("ascii")
        mask_secret(key)
        mask_secret(quote(key, safe=""))
        params = {
            "customerId": s.customer_id,
            "key": key,
            "scope": "NEW",
            "country": s.country,
            "email": s.email,
        }

        def attempt() -> str:
            self.token_requests += 1
            resp = self._request("GET", TOKEN_PATH, what="token request", params=params)
            if resp.status_code in (401, 403):
                raise MessageCentralAuthError(
                    f"MessageCentral refused the credentials of connection {self.messagecentral_conn_id!r} "
                    f"(HTTP {resp.status_code}): check the customer id, password and e-mail",
                    code=_body(resp).get("responseCode"),
                    http_status=resp.status_code,
                )
            body = _raise_for_http(resp, "token request")
            token = body.get("token") or _data(body).get("token")
            if not isinstance(token, str) or not token:
                raise MessageCentralAuthError(
                    f"token response carried no token: {body.get('message') or 'no message'}",
                    code=body.get("responseCode"),
                    http_status=resp.status_code,
                )
            mask_secret(token)
            return token

        return call_with_retries(
            attempt,
            max_retries=s.max_retries,
            max_wait=s.max_retry_wait,
            retry_uncertain=True,
            describe="MessageCentral token request",
        )

    # -- HTTP -------------------------------------------------------------------------------------------

    def _request(self, method: str, path: str, *, what: str, **kwargs: Any) -> requests.Response:
        """One HTTP request; transport failures become our errors with no URL (and so no key) in them."""
        failure: MessageCentralError | None = None
        try:
            resp = self.get_conn().request(method, self.settings.base_url + path, timeout=self._timeout, **kwargs)
        except requests.RequestException as err:
            failure = transport_error(err, what)
        if failure is not None:
            raise failure
        return resp

    def _send(self, params: dict[str, str], *, what: str, files: dict[str, Any] | None = None) -> dict[str, Any]:
        def attempt() -> dict[str, Any]:
            self.rate_limiter.acquire()
            token = self.get_token()
            resp = self._request("POST", SEND_PATH, what=what, params=params, files=files, headers={"authToken": token})
            if resp.status_code in (401, 403):
                if self.settings.auth_token:
                    raise MessageCentralAuthError(
                        f"{what}: MessageCentral refused the pre-issued 'auth_token' of connection "
                        f"{self.messagecentral_conn_id!r} (HTTP {resp.status_code})",
                        http_status=resp.status_code,
                    )
                self._token_cache.invalidate(self._cache_key, token)
                log.info("MessageCentral answered HTTP %d: refreshing the token once", resp.status_code)
                token = self.get_token()
                resp = self._request(
                    "POST", SEND_PATH, what=what, params=params, files=files, headers={"authToken": token}
                )
                if resp.status_code in (401, 403):
                    raise MessageCentralAuthError(
                        f"{what}: MessageCentral refused a freshly issued token (HTTP {resp.status_code})",
                        code=_body(resp).get("responseCode"),
                        http_status=resp.status_code,
                    )
            return _send_result(resp, what)

        return call_with_retries(
            attempt,
            max_retries=self.settings.max_retries,
            max_wait=self.settings.max_retry_wait,
            retry_uncertain=False,
            describe=f"MessageCentral {what}",
        )

    # -- sends ------------------------------------------------------------------------------------------

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

        Validate the workbook first (``airflow_provider_messagecentral.audience.workbook.check_workbook``); this
        method only checks that the content is a zip-based .xlsx of at most 50 MiB.

        :param country_code: dialling code of the workbook's national numbers (default the request's).
        """
        content, name = _workbook_upload(workbook, filename)
        files = {"file": (name, content, XLSX_MIME)}
        return self._send(request.to_workbook(country_code), what=f"file send of {name!r}", files=files)

    def send_message(self, mobile_number: str | int | PhoneNumber, message: str, **options: Any) -> dict[str, Any]:
        """
        Send ``message`` to one number; return the ``data`` part of the answer (transactionId, ...).

        :param mobile_number: national number (read with ``country_code``, default the connection's
            country) or an international one (``+91...``).
        :param options: country_code, flow_type, message_type, sender_id, template_id, entity_id.
        """
        request = self.prepare_send(message, **options)
        return self.send_to(self._number(mobile_number, request.country), request)

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
        """Validate and de-duplicate numbers; one error lists every invalid number with its position."""
        if isinstance(phone_numbers, (str, bytes)):
            raise MessageCentralValidationError(
                "phone_numbers must be a list of numbers, not one string (split it first)"
            )
        items = list(phone_numbers)
        if not items:
            raise MessageCentralValidationError("phone_numbers is empty: nobody to send to")
        ready = [n for n in items if isinstance(n, PhoneNumber)]
        if len(ready) == len(items):
            return list(dict.fromkeys(ready))
        audience = normalize_numbers(
            (n.e164 if isinstance(n, PhoneNumber) else n for n in items), country or self.settings.country
        )
        if audience.invalid:
            raise MessageCentralValidationError(audience.error_text())
        return audience.numbers

    @staticmethod
    def _number(value: str | int | PhoneNumber, country: str) -> PhoneNumber:
        if isinstance(value, PhoneNumber):
            return value
        try:
            return parse_number(value, country)
        except ValueError as err:
            raise MessageCentralValidationError(f"mobile number {str(value)[:40]!r}: {err}") from None

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


def _workbook_upload(workbook: str | os.PathLike[str] | bytes, filename: str | None) -> tuple[bytes, str]:
    """The bytes and upload name of a workbook; refused when it is missing, too large or not an .xlsx."""
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
    return content, name


def _body(resp: requests.Response) -> dict[str, Any]:
    try:
        body = resp.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _reason(body: dict[str, Any], resp: requests.Response) -> str:
    return str(body.get("message") or resp.reason or "no reason given")


def _data(body: dict[str, Any]) -> dict[str, Any]:
    data = body.get("data")
    return data if isinstance(data, dict) else {}


def _raise_for_http(resp: requests.Response, what: str) -> dict[str, Any]:
    """Raise the right error for a non-2xx answer; return the JSON body of a 2xx one."""
    body = _body(resp)
    status = resp.status_code
    if status in RETRYABLE_STATUS:
        retry_after = parse_retry_after(resp.headers.get("Retry-After")) if status == 429 else None
        raise MessageCentralRetryableError(
            f"{what}: MessageCentral answered HTTP {status} {_reason(body, resp)}",
            code=body.get("responseCode", status),
            http_status=status,
            retry_after=retry_after,
        )
    if status >= 400:
        raise MessageCentralError(
            f"{what}: MessageCentral answered HTTP {status}: {_reason(body, resp)}",
            code=body.get("responseCode", status),
            http_status=status,
        )
    if not body:
        raise MessageCentralError(
            f"{what}: MessageCentral answered HTTP {status} without a JSON body", http_status=status
        )
    return body


def _send_result(resp: requests.Response, what: str) -> dict[str, Any]:
    """The ``data`` of a successful send; a business failure (non-200 responseCode, errorMessage) raises."""
    body = _raise_for_http(resp, what)
    data = _data(body)
    top_code = body.get("responseCode")
    data_code = data.get("responseCode")
    error = data.get("errorMessage")
    if str(top_code) != "200" or error or (data_code is not None and str(data_code) != "200"):
        code = top_code if str(top_code) != "200" else data_code
        detail = " - ".join(str(p) for p in (body.get("message"), error) if p) or "no reason given"
        raise MessageCentralError(
            f"{what}: MessageCentral refused it: {detail}", code=code, http_status=resp.status_code
        )
    return dict(data)
