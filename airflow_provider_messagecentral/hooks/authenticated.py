"""
The connection side of :class:`~airflow_provider_messagecentral.hooks.messagecentral.MessageCentralHook`: settings,
the pooled session, the cached token and the one authenticated request path every endpoint goes through
(rate limit, token refreshed once on a 401/403, retries). The operations (sends, reports, credit) are on the hook.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from functools import cached_property
from typing import Any, TypeVar
from urllib.parse import quote

import requests
from airflow.sdk import BaseHook
from airflow.sdk.log import mask_secret

from airflow_provider_messagecentral.client import transport
from airflow_provider_messagecentral.client.ratelimit import RateLimiter
from airflow_provider_messagecentral.client.responses import REFUSED, json_body, token_result
from airflow_provider_messagecentral.client.retries import call_with_retries
from airflow_provider_messagecentral.client.settings import MessageCentralSettings
from airflow_provider_messagecentral.client.tokens import TOKEN_CACHE, TokenCache, jwt_expiry, token_params
from airflow_provider_messagecentral.exceptions import MessageCentralAuthError, MessageCentralValidationError

T = TypeVar("T")

log = logging.getLogger(__name__)


class AuthenticatedHook(BaseHook):
    """
    A ``messagecentral`` connection's settings, session and token, and authenticated requests with them.

    Use :class:`~airflow_provider_messagecentral.hooks.messagecentral.MessageCentralHook`; this base holds
    what every one of its endpoints shares.

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

    def __deepcopy__(self, memo: dict[int, Any]) -> AuthenticatedHook:
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

    # -- authenticated requests ---------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        what: str,
        read: Callable[[requests.Response], T],
        retry_uncertain: bool,
        params: dict[str, str] | None = None,
        files: dict[str, Any] | None = None,
    ) -> T:
        """
        The one way to an authenticated endpoint: the rate limit, the token (refreshed once on a 401/403),
        retries of transient failures, then ``read`` of the answer. Uncertain failures (the request may have
        arrived) are retried only when ``retry_uncertain`` (reads, never sends).
        """

        def attempt() -> T:
            self.rate_limiter.acquire()
            return read(self._authenticated(method, path, what, params, files))

        return call_with_retries(
            attempt,
            max_retries=self.settings.max_retries,
            max_wait=self.settings.max_retry_wait,
            retry_uncertain=retry_uncertain,
            describe=f"MessageCentral {what}",
        )

    def _authenticated(
        self, method: str, path: str, what: str, params: dict[str, str] | None, files: dict[str, Any] | None
    ) -> requests.Response:
        """One request with the cached token; on a 401/403 refresh the token once and repeat it once."""
        token = self.get_token()
        resp = self._request(method, path, what=what, params=params, files=files, headers={"authToken": token})
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
        resp = self._request(method, path, what=what, params=params, files=files, headers=headers)
        if resp.status_code in REFUSED:
            raise MessageCentralAuthError(
                f"{what}: MessageCentral refused a freshly issued token (HTTP {resp.status_code}); it accepts "
                "requests only from whitelisted IP addresses: check that this machine's address is on the list",
                code=json_body(resp).get("responseCode"),
                http_status=resp.status_code,
            )
        return resp

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
