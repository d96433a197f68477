"""
A minimal MessageCentral look-alike for the client benchmarks: raw asyncio HTTP/1.1 with keep-alive.

It answers the token call and the send call in the documented shapes and counts what it saw; nothing else.
It is deliberately cheap per request (no framework, pre-encoded answers) so that the clients being compared,
not the server, decide the throughput. Run it in its own process (``python benchmarks/mini_api.py PORT``)
so that it has its own core and its own GIL.

- ``GET /auth/v1/authentication/token`` -> ``{"responseCode": 200, "message": "SUCCESS", "token": <JWT>}``
- ``POST /verification/v3/send`` (header ``authToken``) -> the documented success body; 401 without a token
- ``GET /__stats`` -> counters; ``POST /__reset`` zeroes them.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import time
from typing import Any
from urllib.parse import parse_qs

COUNTS = {"token_requests": 0, "send_requests": 0, "recipients": 0, "bad_requests": 0}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def make_jwt(subject: str = "C-BENCH0000000001", days: int = 1825) -> str:
    now = int(time.time())
    header = _b64(json.dumps({"alg": "HS512"}).encode())
    payload = _b64(json.dumps({"sub": subject, "iat": now, "exp": now + days * 86400}).encode())
    return f"{header}.{payload}.{_b64(b'not-a-real-signature')}"


TOKEN = make_jwt()


def _response(status: str, body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: keep-alive\r\n\r\n"
    )
    return head.encode("ascii") + body


TOKEN_RESPONSE = _response("200 OK", json.dumps({"responseCode": 200, "message": "SUCCESS", "token": TOKEN}).encode())
UNAUTHORIZED = _response("401 Unauthorized", b'{"responseCode": 401, "message": "UNAUTHORIZED", "data": null}')
NOT_FOUND = _response("404 Not Found", b'{"responseCode": 404, "message": "NOT FOUND", "data": null}')
SEND_TEMPLATE = (
    '{"responseCode": 200, "message": "SUCCESS", "data": {"verificationId": "%d", "mobileNumber": "%s", '
    '"responseCode": "200", "errorMessage": null, "timeout": "30.0", "smsCLI": null, '
    '"transactionId": "00000000-0000-4000-8000-%012d"}}'
)


def _send(target: str) -> bytes:
    query = target.partition("?")[2]
    mobile = ""
    recipients = 1
    if "phoneNumbers=" in query:
        params = parse_qs(query)
        recipients = params["phoneNumbers"][0].count(",") + 1
    else:
        start = query.find("mobileNumber=")
        if start >= 0:
            end = query.find("&", start)
            mobile = query[start + 13 : end if end >= 0 else None]
    COUNTS["send_requests"] += 1
    COUNTS["recipients"] += recipients
    n = COUNTS["send_requests"]
    return _response("200 OK", (SEND_TEMPLATE % (n, mobile, n)).encode())


def answer(method: str, target: str, headers: dict[str, str]) -> bytes:
    path = target.partition("?")[0]
    if path == "/verification/v3/send" and method == "POST":
        if headers.get("authtoken") != TOKEN:
            COUNTS["bad_requests"] += 1
            return UNAUTHORIZED
        return _send(target)
    if path == "/auth/v1/authentication/token" and method == "GET":
        COUNTS["token_requests"] += 1
        return TOKEN_RESPONSE
    if path == "/__stats":
        return _response("200 OK", json.dumps(COUNTS).encode())
    if path == "/__reset" and method == "POST":
        for key in COUNTS:
            COUNTS[key] = 0
        return _response("200 OK", b"{}")
    return NOT_FOUND


class HttpProtocol(asyncio.Protocol):
    """HTTP/1.1 keep-alive: one request at a time per connection, pipelining tolerated."""

    def __init__(self) -> None:
        self.buffer = b""
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # uvloop's transports are not asyncio.Transport subclasses

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        assert self.transport is not None
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1")
            lines = head.split("\r\n")
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0") or 0)
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            method, target, _version = lines[0].split(" ", 2)
            self.transport.write(answer(method, target, headers))
            if headers.get("connection", "").lower() == "close":
                self.transport.close()
                return


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(HttpProtocol, "127.0.0.1", port, backlog=512)
    async with server:
        await server.serve_forever()


def main() -> None:
    port = int(sys.argv[1])
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(port))
    else:
        uvloop.run(serve(port))


if __name__ == "__main__":
    main()
