"""The receiver app in-process (Starlette TestClient): hostile bodies are refused with 422, never 500/503."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from airflow_provider_messagecentral.reports.app import create_app
from airflow_provider_messagecentral.reports.store import ReportStore

SECRET = "unit-callback-secret-0123456789"
DOC: dict[str, Any] = {"messageId": "app-1", "status": "DELIVRD", "errorCode": 0, "mobile": "919999999999"}


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.integration]),
    ]
)
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[TestClient, ReportStore]]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'reports.db'}"
    else:
        url = str(request.getfixturevalue("pg_url"))
    store = ReportStore(url)
    with TestClient(create_app(url, SECRET), raise_server_exceptions=False) as test_client:
        yield test_client, store
    store.dispose()


def _post(client: TestClient, body: str) -> Any:
    return client.post(f"/callback/{SECRET}", content=body, headers={"content-type": "application/json"})


def _counts(store: ReportStore) -> tuple[int, int]:
    stats = store.stats()
    return stats["raw_reports"], stats["reports"]


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ("[" * 30_000 + "]" * 30_000, "nested too deeply"),
        ('{"a":' * 10_000 + "1" + "}" * 10_000, "nested too deeply"),
        ('{"messageId": "x", "status": "DELIVRD", "n": ' + "9" * 5_000 + "}", "more digits"),
    ],
    ids=["nested-arrays", "nested-objects", "5000-digit-number"],
)
def test_json_the_parser_cannot_read_is_refused_with_422(
    client: tuple[TestClient, ReportStore], body: str, detail: str
) -> None:
    """Bodies under the size limit that Python's json gives up on (recursion, int-string limit): 422."""
    test_client, store = client
    assert len(body.encode()) < 65536
    before = _counts(store)
    response = _post(test_client, body)
    assert response.status_code == 422, response.text[:200]
    assert detail in response.json()["detail"]
    assert _counts(store) == before


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        (json.dumps({**DOC, "messageId": "nul\u0000id"}), ["messageId"]),
        (json.dumps({**DOC, "clientId": "a\u0000b"}), ["clientId"]),
        (json.dumps({**DOC, "status": "DELIV\u0000RD"}), ["status"]),
        (json.dumps({**DOC, "note": "a\u0000b"}), []),
        (json.dumps({**DOC, "note": {"a\u0000": 1}}), []),
        (json.dumps({**DOC, "note": "\ud800"}), []),
        ('{"messageId": "nan-extra", "status": "DELIVRD", "note": NaN}', []),
        ('{"messageId": "inf-extra", "status": "DELIVRD", "note": 1e400}', []),
        (json.dumps({**DOC, "errorCode": 2**31}), ["errorCode"]),
        (json.dumps({**DOC, "errorCode": 10**30}), ["errorCode"]),
        (json.dumps({**DOC, "submitDate": "0001-01-01T00:00:00+01:00"}), ["submitDate"]),
        (json.dumps([DOC, {**DOC, "messageId": "x", "doneDate": "9999-12-31T23:59:59-01:00"}]), [1, "doneDate"]),
    ],
    ids=[
        "nul-message-id",
        "nul-client-id",
        "nul-status",
        "nul-extra",
        "nul-extra-key",
        "surrogate-extra",
        "nan-extra",
        "infinity-extra",
        "error-code-2**31",
        "error-code-10**30",
        "date-before-year-1-in-utc",
        "date-after-year-9999-in-utc",
    ],
)
def test_values_no_database_can_hold_are_refused_with_422(
    client: tuple[TestClient, ReportStore], body: str, loc: list[object]
) -> None:
    """
    A report the store cannot hold is malformed: 422 naming where, nothing stored. (Before, SQLite answered
    500 for the errorCode and the dates, PostgreSQL 503 for all of them: MessageCentral retries a 5xx forever.)
    """
    test_client, store = client
    before = _counts(store)
    response = _post(test_client, body)
    assert response.status_code == 422, response.text[:300]
    assert response.json()["detail"][0]["loc"] == loc
    assert _counts(store) == before


def test_the_limits_themselves_are_stored(client: tuple[TestClient, ReportStore]) -> None:
    """The largest errorCode, the extreme dates and unicode text that pass validation are stored on both databases."""
    test_client, store = client
    body = [
        {**DOC, "messageId": "max", "errorCode": 2**31 - 1, "submitDate": "0001-01-01T00:00:00-01:00"},
        {**DOC, "messageId": "min", "errorCode": -(2**31), "doneDate": "9999-12-31T23:59:59+01:00"},
        {**DOC, "messageId": "text-é€😀", "clientId": "é€😀", "note": {"k": ["é€😀", 1.5, 10**30]}},
    ]
    response = _post(test_client, json.dumps(body))
    assert response.status_code == 200, response.text[:300]
    assert response.json()["stored"] == 3
    assert store.get_report("max")["error_code"] == 2**31 - 1  # type: ignore[index]
    assert store.get_report("min")["error_code"] == -(2**31)  # type: ignore[index]
    text = store.get_report("text-é€😀")
    assert text is not None and text["client_id"] == "é€😀"
    assert text["extra"] == {"note": {"k": ["é€😀", 1.5, 10**30]}}


def test_receiver_store_url_explicit_then_env_then_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the receiver, its CLI and the plugin store reports when not told: one rule, in one place."""
    from airflow_provider_messagecentral.client.store_url import STORE_URL_ENV, choose_receiver_store

    def receiver_store_url(explicit: str | None = None) -> str:
        return choose_receiver_store(explicit).url

    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    monkeypatch.delenv(STORE_URL_ENV, raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_MESSAGECENTRAL_DEFAULT", raising=False)
    assert receiver_store_url() == f"sqlite:///{tmp_path.resolve() / 'messagecentral_reports.db'}"
    monkeypatch.setenv(STORE_URL_ENV, "postgres://u:p@db/reports")
    assert receiver_store_url() == "postgresql+psycopg://u:p@db/reports"
    assert receiver_store_url(None) == receiver_store_url("") == "postgresql+psycopg://u:p@db/reports"
    assert receiver_store_url("sqlite:////data/r.db") == "sqlite:////data/r.db"
    app = create_app(secret=SECRET)
    assert app.state.receiver.store_url == "postgresql+psycopg://u:p@db/reports"


# -- bodies in UTF-16 / UTF-32 (RFC 8259 §8.1, RFC 4627 §3) ---------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b'{"a":1}', ("utf-8", 0)),
        ('{"a":1}'.encode("utf-8-sig"), ("utf-8", 3)),
        ('{"a":1}'.encode("utf-16"), ("utf-16-le", 2)),  # Python writes the native (little-endian) BOM
        ('{"a":1}'.encode("utf-16-le"), ("utf-16-le", 0)),
        ('{"a":1}'.encode("utf-16-be"), ("utf-16-be", 0)),
        (b"\xfe\xff" + '{"a":1}'.encode("utf-16-be"), ("utf-16-be", 2)),
        ('{"a":1}'.encode("utf-32"), ("utf-32-le", 4)),
        ('{"a":1}'.encode("utf-32-le"), ("utf-32-le", 0)),
        ('{"a":1}'.encode("utf-32-be"), ("utf-32-be", 0)),
        (b"\x00\x00\xfe\xff" + '{"a":1}'.encode("utf-32-be"), ("utf-32-be", 4)),
        ("1".encode("utf-16-le"), ("utf-16-le", 0)),  # two bytes: the UTF-16 patterns still apply
        ("1".encode("utf-16-be"), ("utf-16-be", 0)),
        (b"1", ("utf-8", 0)),
        (b"", ("utf-8", 0)),
    ],
)
def test_body_encoding_is_detected_from_the_bom_or_the_zero_bytes(text: bytes, expected: tuple[str, int]) -> None:
    from airflow_provider_messagecentral.reports.callbacks import body_encoding

    assert body_encoding(text) == expected


@pytest.mark.parametrize(
    "encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be", "utf-8-sig"]
)
def test_utf16_and_utf32_bodies_are_stored(client: tuple[TestClient, ReportStore], encoding: str) -> None:
    """A valid report in UTF-16/UTF-32, with or without a byte-order mark, is stored (it answered 500 before)."""
    test_client, store = client
    items = [
        {**DOC, "messageId": f"enc-{encoding}", "clientId": "é€😀"},
        {**DOC, "messageId": f"enc-{encoding}-2", "status": "UNDELIV", "apiKey": "k-secret"},
    ]
    before = _counts(store)
    response = test_client.post(
        f"/callback/{SECRET}", content=json.dumps(items).encode(encoding), headers={"content-type": "application/json"}
    )
    assert response.status_code == 200, response.text[:300]
    assert response.json()["stored"] == 2
    assert _counts(store) == (before[0] + 1, before[1] + 2)
    first = store.get_report(f"enc-{encoding}")
    assert first is not None and first["client_id"] == "é€😀"
    assert store.get_report(f"enc-{encoding}-2")["status"] == "UNDELIV"  # type: ignore[index]


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (json.dumps(DOC).encode("utf-16-le") + b"\x00", "body is not UTF-16LE"),  # odd length: truncated
        (b"\xff\xfe" + '{"messageId": "x'.encode("utf-16-le") + b"\x00\xd8" + '"}'.encode("utf-16-le"), "UTF-16LE"),
        ('{"messageId"'.encode("utf-32-be") + b"\x00\x11\x00\x00", "body is not UTF-32BE"),  # beyond U+10FFFF
        (b"\xef\xbb\xbf" + b'{"messageId": "\xff"}', "body is not UTF-8 (byte 18)"),
        ('{"messageId": "x", "status": '.encode("utf-16"), "malformed JSON"),
    ],
    ids=[
        "utf16-truncated",
        "utf16-lone-surrogate",
        "utf32-beyond-unicode",
        "utf8-bom-bad-byte",
        "utf16-truncated-json",
    ],
)
def test_undecodable_or_malformed_utf16_and_utf32_bodies_are_422(
    client: tuple[TestClient, ReportStore], body: bytes, detail: str
) -> None:
    test_client, store = client
    before = _counts(store)
    response = test_client.post(f"/callback/{SECRET}", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text[:300]
    assert detail in str(response.json()["detail"])
    assert _counts(store) == before


def test_an_invalid_report_in_utf16_is_422_naming_the_field(client: tuple[TestClient, ReportStore]) -> None:
    test_client, _store = client
    body = json.dumps({"status": "DELIVRD"}).encode("utf-16")
    response = test_client.post(f"/callback/{SECRET}", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["messageId"]
