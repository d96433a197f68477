"""
Reading MessageCentral's answers: the JSON body, HTTP errors (retryable or final), a send's ``data`` and a
token. Every error names what was asked and why it failed, never a secret.
"""

from __future__ import annotations

from typing import Any

import requests

from airflow_provider_messagecentral.client.error_codes import is_success, refusal
from airflow_provider_messagecentral.client.retries import RETRYABLE_STATUS, parse_retry_after
from airflow_provider_messagecentral.exceptions import (
    MessageCentralAuthError,
    MessageCentralError,
    MessageCentralRetryableError,
)

#: HTTP statuses MessageCentral answers when it refuses a token.
REFUSED = (401, 403)


def json_body(resp: requests.Response) -> dict[str, Any]:
    """The answer's JSON object; ``{}`` when it has none."""
    try:
        body = resp.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def data_of(body: dict[str, Any]) -> dict[str, Any]:
    """The ``data`` object of an answer; ``{}`` when it has none."""
    data = body.get("data")
    return data if isinstance(data, dict) else {}


def _reason(body: dict[str, Any], resp: requests.Response) -> str:
    return str(body.get("message") or resp.reason or "no reason given")


def raise_for_http(resp: requests.Response, what: str) -> dict[str, Any]:
    """
    Raise the right error for a non-2xx answer (a known ``responseCode`` in its body gives the named error);
    return the JSON body of a 2xx one.
    """
    body = json_body(resp)
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
        raise refusal(
            body.get("responseCode", status),
            f"{what}: MessageCentral answered HTTP {status}: {_reason(body, resp)}",
            http_status=status,
        )
    if not body:
        raise MessageCentralError(
            f"{what}: MessageCentral answered HTTP {status} without a JSON body", http_status=status
        )
    return body


def send_result(resp: requests.Response, what: str) -> dict[str, Any]:
    """
    The ``data`` of a successful send, its ids as text; a business failure (a ``responseCode`` other than 200,
    int or string, at the top or under ``data``, or an ``errorMessage``) raises the code's named error.
    """
    body = raise_for_http(resp, what)
    data = data_of(body)
    top_code = body.get("responseCode")
    data_code = data.get("responseCode")
    error = data.get("errorMessage")
    if not is_success(top_code) or error or (data_code is not None and not is_success(data_code)):
        code = top_code if not is_success(top_code) else data_code
        detail = " - ".join(str(p) for p in (body.get("message"), error) if p) or "no reason given"
        raise refusal(code, f"{what}: MessageCentral refused it: {detail}", http_status=resp.status_code)
    result = dict(data)
    for name in ("verificationId", "transactionId"):
        if result.get(name) is not None:
            result[name] = str(result[name])
    return result


def token_result(resp: requests.Response, conn_id: str) -> str:
    """The token of a token answer (top level or under ``data``); refused credentials name the connection."""
    if resp.status_code in REFUSED:
        raise MessageCentralAuthError(
            f"MessageCentral refused the credentials of connection {conn_id!r} "
            f"(HTTP {resp.status_code}): check the customer id, password and e-mail",
            code=json_body(resp).get("responseCode"),
            http_status=resp.status_code,
        )
    body = raise_for_http(resp, "token request")
    token = body.get("token") or data_of(body).get("token")
    if not isinstance(token, str) or not token:
        raise MessageCentralAuthError(
            f"token response carried no token: {body.get('message') or 'no message'}",
            code=body.get("responseCode"),
            http_status=resp.status_code,
        )
    return token
