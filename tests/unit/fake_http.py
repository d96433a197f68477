"""A scripted ``requests`` transport adapter: the HTTP boundary of the hook, faked for unit tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from requests.adapters import BaseAdapter

Reply = dict[str, Any] | Callable[[requests.PreparedRequest], Any] | Exception


@dataclass
class Call:
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    body: bytes | None


@dataclass
class FakeMessageCentral(BaseAdapter):
    """Answers token and send requests from scripted replies; records every request."""

    token_replies: list[Reply] = field(default_factory=list)
    send_replies: list[Reply] = field(default_factory=list)
    default_token: str = "tok-1"
    calls: list[Call] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__()

    @property
    def token_calls(self) -> list[Call]:
        return [c for c in self.calls if c.path.endswith("/token")]

    @property
    def send_calls(self) -> list[Call]:
        return [c for c in self.calls if c.path.endswith("/send")]

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        parts = urlsplit(request.url or "")
        params = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        body = request.body if isinstance(request.body, bytes) or request.body is None else str(request.body).encode()
        call = Call(request.method or "", parts.path, params, dict(request.headers), body)
        self.calls.append(call)
        if parts.path.endswith("/token"):
            reply = self.token_replies.pop(0) if self.token_replies else {"json": {"token": self.default_token}}
        else:
            reply = self.send_replies.pop(0) if self.send_replies else ok_send()
        if callable(reply) and not isinstance(reply, dict):
            reply = reply(request)
        if isinstance(reply, Exception):
            raise reply
        return _response(request, **reply)

    def close(self) -> None:
        pass


def _response(
    request: requests.PreparedRequest,
    status: int = 200,
    json_body: Any = None,
    json: Any = None,
    headers: dict[str, str] | None = None,
    text: str | None = None,
) -> requests.Response:
    resp = requests.Response()
    resp.status_code = status
    resp.request = request
    resp.url = request.url or ""
    payload = json if json is not None else json_body
    content = text if text is not None else (_dumps(payload) if payload is not None else "")
    resp._content = content.encode()
    resp.headers.update(headers or {})
    if payload is not None:
        resp.headers.setdefault("Content-Type", "application/json")
    return resp


def _dumps(obj: Any) -> str:
    return json.dumps(obj)


def ok_send(transaction_id: str = "tx-1", mobile: str = "9999999999") -> dict[str, Any]:
    return {
        "json": {
            "responseCode": 200,
            "message": "SUCCESS",
            "data": {
                "verificationId": "1234",
                "mobileNumber": mobile,
                "responseCode": "200",
                "errorMessage": None,
                "timeout": "30.0",
                "smsCLI": None,
                "transactionId": transaction_id,
            },
        }
    }


def status(code: int, body: dict[str, Any] | None = None, **headers: str) -> dict[str, Any]:
    return {"status": code, "json": body or {"responseCode": code, "message": "ERROR"}, "headers": headers}


def install(monkeypatch: Any, fake: FakeMessageCentral) -> FakeMessageCentral:
    """
    Route every ``requests`` call to a ``*.invalid`` host (the unit tests' MessageCentral) through ``fake``.

    For code that builds its own hooks (operators, the notifier): the transport adapter is the HTTP boundary,
    so the hook's retries, token handling and response parsing all run for real.
    """
    original = requests.Session.get_adapter

    def get_adapter(session: requests.Session, url: str) -> BaseAdapter:
        host = urlsplit(url).hostname or ""
        return fake if host.endswith(".invalid") else original(session, url)

    monkeypatch.setattr(requests.Session, "get_adapter", get_adapter)
    return fake
