"""Fixtures shared by the report-store unit tests: one store per test, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_messagecentral.reports.store import ReportStore


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.integration]),
    ]
)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store URL: a SQLite file, or a fresh PostgreSQL database (``pg_url`` in tests/conftest.py)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'reports.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def store(store_url: str) -> Iterator[ReportStore]:
    s = ReportStore(store_url)
    yield s
    s.dispose()
