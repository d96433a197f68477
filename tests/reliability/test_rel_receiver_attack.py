"""
The delivery-report receiver under attack: fuzzed bodies, wrong secrets, oversized and endless bodies, slow
clients. Promises checked from outside: HTTP status codes and the store's row counts.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import DOCUMENTED_REPORT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rel_support import RECEIVER_SECRET, count, store_counts

from airflow_provider_messagecentral.reports.server import ReceiverServer
from airflow_provider_messagecentral.reports.store import ReportStore, get_store

pytestmark = pytest.mark.reliability

FUZZ_EXAMPLES = 400
STATUSES = ["DELIVRD", "EXPIRED", "UNDELIV", "UNKNOWN", "REJECTD"]
DOC = DOCUMENTED_REPORT

# -- strategies --------------------------------------------------------------------------------------------
# Integers stay within PostgreSQL's int4 and dates within years 1900-2200: larger ones are pinned by the
# targeted tests below (known bugs), so that the fuzzer explores everything else.
_ints = st.integers(min_value=-(2**31), max_value=2**31 - 1)
_scalars = st.none() | st.booleans() | _ints | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30)
_junk = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
_huge = st.integers(min_value=1_000, max_value=20_000).map(lambda n: "é€😀x" * (n // 4))
_dates = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1))
_date_values = st.one_of(
    _dates.map(lambda d: d.strftime("%Y-%m-%d %H:%M:%S")),
    _dates.map(lambda d: d.isoformat() + "Z"),
    _dates.map(lambda d: d.isoformat() + "+05:30"),
    st.sampled_from(["2023-13-45 99:99:99", "yesterday", "", "2023-02-30 10:00:00", "0000-00-00 00:00:00"]),
    st.text(max_size=25),
    _ints,
    _junk,
)
_statuses = st.one_of(
    st.sampled_from(STATUSES),
    st.sampled_from(STATUSES).map(lambda s: f"  {s.lower()} "),
    st.text(max_size=50),
    _ints,
    _junk,
)
_mobiles = st.one_of(
    st.from_regex(r"\+?(91|44|1)[0-9]{6,12}", fullmatch=True),
    st.from_regex(r"\+91 [0-9]{5}[ -][0-9]{5}", fullmatch=True),
    st.integers(min_value=0, max_value=10**15),
    st.text(max_size=30),
    _junk,
)
_message_ids = st.one_of(
    st.uuids().map(str),
    st.text(min_size=1, max_size=60),
    _ints,
    _huge,
    _junk,
)
_error_codes = st.one_of(_ints, _ints.map(str), st.sampled_from(["0", " 12 ", "-3", "1e3", "x", ""]), _junk)
_report = st.fixed_dictionaries(
    {},
    optional={
        "messageId": _message_ids,
        "status": _statuses,
        "errorCode": _error_codes,
        "mobile": _mobiles,
        "countryCode": st.one_of(st.none(), st.text(max_size=12), _ints),
        "apiKey": st.one_of(st.none(), st.text(max_size=20), _junk),
        "clientId": st.one_of(st.none(), st.text(max_size=30), _huge, _ints),
        "submitDate": _date_values,
        "doneDate": _date_values,
        "extraField": _junk,
        "nested": st.dictionaries(st.text(max_size=5), _junk, max_size=3),
    },
)
_mostly_valid = st.builds(
    lambda mid, status, mobile, sub: {**DOC, "messageId": mid, "status": status, "mobile": mobile, "submitDate": sub},
    st.uuids().map(str),
    st.sampled_from(STATUSES),
    st.from_regex(r"91[6-9][0-9]{9}", fullmatch=True),
    _dates.map(lambda d: d.strftime("%Y-%m-%d %H:%M:%S")),
)
#: Encodings RFC 8259 §8.1 / RFC 4627 §3 detect: with a byte-order mark ("utf-16", "utf-32", "utf-8-sig") or by
#: the zero bytes of the first four (the -le/-be forms). Such bodies answered 500 before.
ENCODINGS = ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be", "utf-8-sig"]
_encoded = st.tuples(
    st.one_of(_report, _mostly_valid, st.lists(st.one_of(_report, _mostly_valid), max_size=4)),
    st.sampled_from(ENCODINGS),
).map(lambda pair: json.dumps(pair[0]).encode(pair[1]))
_bodies = st.one_of(
    _report.map(json.dumps),
    _mostly_valid.map(json.dumps),
    _encoded,
    st.lists(st.one_of(_report, _mostly_valid, _junk), max_size=6).map(json.dumps),
    _junk.map(json.dumps),
    st.binary(max_size=200),
    st.text(max_size=200),
    _huge,
)


def _post(client: Any, body: str | bytes, secret: str = RECEIVER_SECRET) -> Any:
    return client.post(f"/callback/{secret}", content=body, headers={"content-type": "application/json"})


def _items(body: str | bytes) -> list[Any]:
    document = json.loads(body)
    return document if isinstance(document, list) else [document]


@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(body=_bodies)
def test_fuzzed_callbacks_never_500_and_never_leave_partial_rows(receiver_client: tuple[Any, Any], body: Any) -> None:
    """
    Any callback body (random JSON, wrong types, huge strings, unicode, nested junk, missing fields, numbers as
    strings, invalid dates, non-JSON bytes, JSON in UTF-16/UTF-32) gets a 200 or a 4xx, never a 5xx. A refused
    body changes no row (raw audit table and reports alike); an accepted one adds exactly one raw row and
    accounts for every item, and each of its messages can be read back with the status it was stored with.
    """
    client, store = receiver_client
    count("fuzz_cases")
    before_raw, before_reports = store_counts(store)
    response = _post(client, body)
    assert response.status_code < 500, (response.status_code, response.text[:300])
    after_raw, after_reports = store_counts(store)
    if response.status_code != 200:
        assert 400 <= response.status_code < 500
        assert (after_raw, after_reports) == (before_raw, before_reports), "a refused callback left rows behind"
        return
    count("fuzz_cases_stored")
    items = _items(body)
    result = response.json()
    assert result["stored"] + result["duplicates"] + result["ignored_stale"] == len(items)
    assert after_raw == before_raw + 1
    assert before_reports <= after_reports <= before_reports + len(items)
    stored = {}
    for item in items:
        stored[str(item["messageId"]).strip()] = str(item["status"]).strip().upper()
    for message_id, status in stored.items():
        report = store.get_report(message_id)
        assert report is not None, "an accepted report is not readable"
        if len(items) == 1 and result["stored"] == 1:
            assert report["status"] == status


# -- inputs that made the receiver answer 500 (fixed) ---------------------------------------------------------


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_utf16_and_utf32_bodies_are_stored(receiver_client: tuple[Any, Any], encoding: str) -> None:
    """A valid report in UTF-16/UTF-32, with or without a byte-order mark, is stored (UTF-16 with a BOM: 500)."""
    client, store = receiver_client
    doc = {**DOC, "messageId": f"enc-{encoding}", "clientId": "é€😀"}
    before_raw, before_reports = store_counts(store)
    response = _post(client, json.dumps(doc).encode(encoding))
    assert response.status_code == 200, (response.status_code, response.text[:300])
    assert store_counts(store) == (before_raw + 1, before_reports + 1)
    assert store.get_report(f"enc-{encoding}")["client_id"] == "é€😀"


@pytest.mark.parametrize(
    "body",
    [
        json.dumps(DOC).encode("utf-16-le")[:-1],  # odd length
        b"\xff\xfe" + b"\x00\xd8" * 10,  # lone surrogates after a UTF-16LE mark
        b"\x00\x00\xfe\xff" + b"\x00\x11\x00\x00",  # beyond U+10FFFF in UTF-32BE
        json.dumps({"status": "DELIVRD"}).encode("utf-32"),  # decodes, but no messageId
        "[".encode("utf-16"),  # decodes, but not JSON
    ],
    ids=["utf16-odd-length", "utf16-lone-surrogates", "utf32-beyond-unicode", "utf32-invalid-report", "utf16-not-json"],
)
def test_undecodable_or_invalid_utf16_and_utf32_bodies_are_refused_with_4xx(
    receiver_client: tuple[Any, Any], body: bytes
) -> None:
    client, store = receiver_client
    before = store_counts(store)
    response = _post(client, body)
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    assert store_counts(store) == before


@pytest.mark.parametrize(
    "body",
    ["[" * 30_000 + "]" * 30_000, '{"a":' * 10_000 + "1" + "}" * 10_000],
    ids=["arrays", "objects"],
)
def test_deeply_nested_json_is_refused_with_4xx(receiver_client: tuple[Any, Any], body: str) -> None:
    """A deeply nested body under the size limit is refused with 4xx (not a 500) and stores nothing."""
    client, store = receiver_client
    before = store_counts(store)
    response = _post(client, body)
    assert 400 <= response.status_code < 500, response.status_code
    assert store_counts(store) == before


def test_error_code_too_large_for_the_column_is_refused(receiver_client: tuple[Any, Any]) -> None:
    """An errorCode no database integer column can hold is a malformed report: 422, nothing stored."""
    client, store = receiver_client
    before = store_counts(store)
    response = _post(client, json.dumps({**DOC, "errorCode": 10**30}))
    assert response.status_code == 422, response.status_code
    assert store_counts(store) == before


@pytest.mark.parametrize("date", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_dates_that_overflow_in_utc_are_refused(receiver_client: tuple[Any, Any], date: str) -> None:
    """A date that cannot be represented in UTC is a malformed report: 422, nothing stored."""
    client, store = receiver_client
    before = store_counts(store)
    response = _post(client, json.dumps({**DOC, "submitDate": date}))
    assert response.status_code == 422, response.status_code
    assert store_counts(store) == before


# -- authentication ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "secret",
    [
        RECEIVER_SECRET.upper(),
        RECEIVER_SECRET.lower(),
        RECEIVER_SECRET.swapcase(),
        RECEIVER_SECRET[:-1],
        RECEIVER_SECRET + "0",
        " " + RECEIVER_SECRET,
        RECEIVER_SECRET[: len(RECEIVER_SECRET) // 2],
        "x" * len(RECEIVER_SECRET),
        "%2e%2e",
    ],
    ids=["upper", "lower", "swapcase", "prefix", "suffix", "space", "half", "same-length", "dotdot"],
)
def test_wrong_secrets_are_refused_and_store_nothing(receiver_client: tuple[Any, Any], secret: str) -> None:
    """A wrong callback secret — also the right one in another case, or a prefix of it — gets 401 (or 404 for a
    path that is no callback), the body is not stored, and no answer echoes either secret."""
    client, store = receiver_client
    before = store_counts(store)
    for response in (
        _post(client, json.dumps(DOC), secret=secret),
        client.post("/callback", content=json.dumps(DOC), headers={"X-Callback-Secret": secret}),
    ):
        assert response.status_code in (401, 404), response.status_code
        assert RECEIVER_SECRET not in response.text
        assert secret.strip() not in response.text or len(secret.strip()) < 6
    assert store_counts(store) == before


def test_unauthenticated_requests_are_refused(receiver_client: tuple[Any, Any]) -> None:
    """No secret at all (no path segment, no header, empty header, bearer instead of the callback secret) is
    refused with 401/404/405 and stores nothing; read endpoints without the bearer token answer 401."""
    client, store = receiver_client
    before = store_counts(store)
    body = json.dumps(DOC)
    assert client.post("/callback", content=body).status_code == 401
    assert client.post("/callback", content=body, headers={"X-Callback-Secret": ""}).status_code == 401
    assert client.post("/callback/", content=body).status_code in (401, 404, 405)
    bearer = {"Authorization": f"Bearer {RECEIVER_SECRET}"}
    assert client.post("/callback", content=body, headers=bearer).status_code == 401
    assert store_counts(store) == before
    assert client.get("/reports/x").status_code == 401
    assert client.get("/reports/x", headers={"Authorization": f"Bearer {RECEIVER_SECRET.upper()}"}).status_code == 401
    assert client.get("/campaigns/mc-x/summary").status_code == 401


def test_secret_comparison_is_constant_time(receiver_client: tuple[Any, Any], mocker: Any) -> None:
    """Every secret check (path, header, bearer) goes through ``hmac.compare_digest`` (timing-safe), and its
    verdict decides: forcing it to say "equal" lets a wrong secret in, forcing "different" shuts the right one
    out."""
    import airflow_provider_messagecentral.reports.receiver_config as app_module

    client, store = receiver_client
    real = app_module.hmac.compare_digest
    spy = mocker.patch.object(app_module.hmac, "compare_digest", side_effect=real)
    assert _post(client, json.dumps({**DOC, "messageId": "ct-1"})).status_code == 200
    assert _post(client, json.dumps(DOC), secret="wrong-" + RECEIVER_SECRET).status_code == 401
    headers = {"X-Callback-Secret": RECEIVER_SECRET}
    response = client.post("/callback", content=json.dumps({**DOC, "messageId": "ct-2"}), headers=headers)
    assert response.status_code == 200
    assert client.get("/reports/ct-1", headers={"Authorization": f"Bearer {RECEIVER_SECRET}"}).status_code == 200
    assert spy.call_count >= 4

    spy.side_effect = lambda a, b: True
    assert _post(client, json.dumps({**DOC, "messageId": "ct-3"}), secret="not-the-secret").status_code == 200
    spy.side_effect = lambda a, b: False
    assert _post(client, json.dumps({**DOC, "messageId": "ct-4"})).status_code == 401
    assert store.get_report("ct-3") is not None and store.get_report("ct-4") is None


# -- oversized, endless and slow bodies (a real uvicorn server) ----------------------------------------------


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[ReceiverServer, ReportStore]]:
    url = f"sqlite:///{tmp_path / 'server.db'}"
    with ReceiverServer(url, RECEIVER_SECRET) as srv:
        yield srv, get_store(url)


def test_one_mib_body_with_content_length_is_refused(server: tuple[ReceiverServer, ReportStore]) -> None:
    """A 1 MiB callback that announces its size is refused with 413 and nothing is stored."""
    srv, store = server
    before = store_counts(store)
    body = ("[" + ",".join([json.dumps(DOC)] * 5000) + "]").encode()
    body = body + b" " * (2**20 - len(body))
    response = httpx.post(f"{srv.url}/callback/{RECEIVER_SECRET}", content=body, timeout=30)
    assert response.status_code == 413
    assert store_counts(store) == before


def _read_status(sock: socket.socket) -> int:
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return int(data.split(b" ", 2)[1])


def test_endless_chunked_body_is_refused_before_it_is_read(server: tuple[ReceiverServer, ReportStore]) -> None:
    """
    A 100 MiB callback streamed without Content-Length (chunked) is answered 413 after only a small part was
    sent: the receiver counts while reading and stops, it does not read the whole body. Nothing is stored.
    """
    srv, store = server
    before = store_counts(store)
    total = 100 * 2**20
    piece = (json.dumps(DOC) + ",").encode() * 300
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    sent = 0
    status = None
    with socket.create_connection((srv.host, srv.port), timeout=30) as sock:
        sock.sendall(
            f"POST /callback/{RECEIVER_SECRET} HTTP/1.1\r\nHost: {srv.host}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        )
        sock.sendall(b"1\r\n[\r\n")
        while sent < total:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                status = _read_status(sock)
                break
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                status = 413 if status is None else status
                break
            sent += len(piece)
        if status is None:  # never answered while sending: read the answer now
            status = _read_status(sock)
    assert status == 413
    assert sent < total // 10, f"the receiver let {sent} of {total} bytes in before answering"
    assert store_counts(store) == before


def test_slow_clients_do_not_block_others(server: tuple[ReceiverServer, ReportStore]) -> None:
    """
    Twenty clients trickle half of their callback a few bytes at a time and then hold their connections open;
    meanwhile 100 callbacks from another sender are all answered 200 and stored. Once the slow clients send
    the rest, they are answered 200 and stored too.
    """
    srv, store = server
    slow_count, fast_count = 20, 100
    fast_done = threading.Event()
    slow_status: list[int] = []

    def slow_client(i: int) -> None:
        body = json.dumps({**DOC, "messageId": f"slow-{i}"}).encode()
        head = (
            f"POST /callback/{RECEIVER_SECRET} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        half = len(body) // 2
        with socket.create_connection((srv.host, srv.port), timeout=60) as sock:
            sock.sendall(head)
            for pos in range(0, half, 4):
                sock.sendall(body[pos : min(pos + 4, half)])
                time.sleep(0.02)
            fast_done.wait(60)
            sock.sendall(body[half:])
            slow_status.append(_read_status(sock))

    threads = [threading.Thread(target=slow_client, args=(i,), daemon=True) for i in range(slow_count)]
    for thread in threads:
        thread.start()
    fast_status = []
    try:
        with httpx.Client(base_url=srv.url, timeout=10) as client:
            for i in range(fast_count):
                fast_status.append(_post(client, json.dumps({**DOC, "messageId": f"fast-{i}"})).status_code)
        assert slow_status == [], "a slow client finished before the fast sender: no contention was tested"
    finally:
        fast_done.set()
    assert fast_status == [200] * fast_count
    for thread in threads:
        thread.join(60)
    assert slow_status == [200] * slow_count
    for i in range(fast_count):
        assert store.get_report(f"fast-{i}") is not None
    for i in range(slow_count):
        assert store.get_report(f"slow-{i}") is not None


@pytest.mark.postgres
@pytest.mark.parametrize(
    "body",
    [
        json.dumps({**DOC, "messageId": "nul\u0000id"}),
        json.dumps({**DOC, "messageId": "nul-extra", "note": "a\u0000b"}),
        json.dumps({**DOC, "messageId": "nul-client", "clientId": "a\u0000b"}),
        '{"messageId": "nan-extra", "status": "DELIVRD", "note": NaN}',
        json.dumps({**DOC, "messageId": "int4", "errorCode": 2**40}),
    ],
    ids=["nul-in-message-id", "nul-in-extra-field", "nul-in-client-id", "nan-in-extra-field", "error-code-over-int4"],
)
def test_values_postgresql_cannot_store_are_refused_not_503(pg_url: str, body: str) -> None:
    """On PostgreSQL, a report with a value the database cannot hold gets a 4xx (or is stored), never a 5xx."""
    from starlette.testclient import TestClient

    from airflow_provider_messagecentral.reports.app import create_app

    with TestClient(create_app(pg_url, RECEIVER_SECRET), raise_server_exceptions=False) as client:
        store = get_store(pg_url)
        before = store_counts(store)
        response = _post(client, body)
        assert response.status_code < 500, (response.status_code, response.text)
        if response.status_code != 200:
            assert store_counts(store) == before
