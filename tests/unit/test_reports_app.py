"""The receiver app in-process (Starlette TestClient): hostile bodies are refused with 422, never 500/503."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from airflow_provider_messagecentral.reports.app import create_app
from airflow_provider_messagecentral.reports.store import ReportStore

SECRET = "unit-callback-secret-0123456789"


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
