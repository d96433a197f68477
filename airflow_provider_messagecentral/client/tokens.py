"""
Auth tokens: the token request's parameters, JWT expiry, and a thread-safe, process-wide cache shared by
every hook of a connection.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from airflow_provider_messagecentral.client.settings import MessageCentralSettings
from airflow_provider_messagecentral.exceptions import MessageCentralAuthError

# Refresh this long before the token's own expiry, so a request never goes out with a dying token.
EXPIRY_MARGIN_SECONDS = 60.0


def token_params(settings: MessageCentralSettings, conn_id: str) -> dict[str, str]:
    """
    The query of a token request; ``key`` is the base64 of the password (a secret: mask it before logging).

    :raises MessageCentralAuthError: naming every credential the connection lacks.
    """
    s = settings
    credentials = (("login (customer id)", s.customer_id), ("password", s.password), ("extra 'email'", s.email))
    missing = [name for name, value in credentials if not value]
    if missing:
        raise MessageCentralAuthError(
            f"connection {conn_id!r} lacks {', '.join(missing)}: "
            "needed to request a MessageCentral token (or set the 'auth_token' extra)"
        )
    key = base64.b64encode(s.password.encode("utf-8")).decode("ascii")
    return {"customerId": s.customer_id, "key": key, "scope": "NEW", "country": s.country, "email": s.email}


def jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT (unix seconds), read without checking the signature; None if absent."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
        exp = claims.get("exp") if isinstance(claims, dict) else None
    except (ValueError, TypeError):
        return None
    return float(exp) if isinstance(exp, (int, float)) and not isinstance(exp, bool) else None


@dataclass
class _Entry:
    token: str
    expires_at: float


class TokenCache:
    """
    Tokens per key (conn id, customer id, base URL), valid until shortly before expiry.

    ``get_or_fetch`` holds a per-key lock while fetching, so concurrent callers of one key make one token
    request, not one each. ``invalidate`` drops a token only if it is still the cached one, so many threads
    that saw the same 401 cause a single refresh.

    .. code-block:: python

        cache = TokenCache()
        token = cache.get_or_fetch(("messagecentral_default", "C-1", url), fetch_token, default_lifetime=86400)
        cache.invalidate(("messagecentral_default", "C-1", url), token)  # after MessageCentral refused it
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._entries: dict[tuple[str, ...], _Entry] = {}
        self._locks: dict[tuple[str, ...], threading.Lock] = {}
        self._guard = threading.Lock()

    def _lock_for(self, key: tuple[str, ...]) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def peek(self, key: tuple[str, ...]) -> str | None:
        entry = self._entries.get(key)
        if entry and entry.expires_at - EXPIRY_MARGIN_SECONDS > self._clock():
            return entry.token
        return None

    def get_or_fetch(self, key: tuple[str, ...], fetch: Callable[[], str], default_lifetime: float) -> str:
        token = self.peek(key)
        if token is not None:
            return token
        with self._lock_for(key):
            token = self.peek(key)
            if token is not None:
                return token
            token = fetch()
            expires_at = jwt_expiry(token) or (self._clock() + default_lifetime)
            self._entries[key] = _Entry(token, expires_at)
            return token

    def invalidate(self, key: tuple[str, ...], token: str | None = None) -> None:
        with self._lock_for(key):
            entry = self._entries.get(key)
            if entry is not None and (token is None or entry.token == token):
                del self._entries[key]

    def clear(self) -> None:
        with self._guard:
            self._entries.clear()


#: The cache every hook in this process shares.
TOKEN_CACHE = TokenCache()
