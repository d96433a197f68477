"""HS512 JSON Web Tokens like the ones MessageCentral issues, with the standard library only."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

_HEADER = {"alg": "HS512", "typ": "JWT"}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_HEADER_B64 = _b64url(json.dumps(_HEADER, separators=(",", ":")).encode())


class TokenError(Exception):
    """A token that cannot be used; the text says why and never holds the token."""


def issue_token(secret: bytes, subject: str, ttl: float, now: float | None = None) -> str:
    """
    Sign a token for ``subject`` valid ``ttl`` seconds.

    :param secret: the HMAC key.
    :param subject: the customer id (``sub`` claim).
    :param ttl: lifetime in seconds (``exp - iat``).
    :param now: issue time (unix seconds); defaults to the current time.
    """
    iat = int(time.time() if now is None else now)
    payload = {"sub": subject, "iat": iat, "exp": iat + int(ttl)}
    signing_input = f"{_HEADER_B64}.{_b64url(json.dumps(payload, separators=(',', ':')).encode())}"
    signature = hmac.new(secret, signing_input.encode("ascii"), hashlib.sha512).digest()
    return f"{signing_input}.{_b64url(signature)}"


def verify_token(secret: bytes, token: str, now: float | None = None) -> dict[str, object]:
    """Check signature and expiry; return the payload or raise :class:`TokenError`."""
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenError("token is not a JWT (header.payload.signature)")
    signing_input = f"{parts[0]}.{parts[1]}"
    expected = hmac.new(secret, signing_input.encode("ascii", "replace"), hashlib.sha512).digest()
    try:
        signature = _b64url_decode(parts[2])
        payload = json.loads(_b64url_decode(parts[1]))
    except (ValueError, UnicodeDecodeError):
        raise TokenError("token is not valid base64url JSON") from None
    if not hmac.compare_digest(expected, signature):
        raise TokenError("token signature does not match (unknown or revoked token)")
    if not isinstance(payload, dict) or not isinstance(payload.get("exp"), int):
        raise TokenError("token has no exp claim")
    if (time.time() if now is None else now) >= payload["exp"]:
        raise TokenError("token expired")
    return payload
