"""The api-server's access log (structlog logger ``http.access``) without a line per successful callback."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from structlog.testing import LogCapture

from airflow_provider_messagecentral.plugins.access_log import QuietCallbackAccessLog, quiet_callback_access_log


@pytest.fixture
def captured() -> Iterator[LogCapture]:
    """structlog writing into a LogCapture (restored afterwards)."""
    saved = structlog.get_config()
    capture = LogCapture()
    structlog.configure(processors=[capture], cache_logger_on_first_use=False)
    try:
        yield capture
    finally:
        structlog.configure(**saved)


def access(method: str, path: str, status: int) -> None:
    """What Airflow's HttpAccessLogMiddleware logs for one request."""
    logger = structlog.get_logger(logger_name="http.access")
    logger.info("request finished", method=method, path=path, query="", status_code=status, duration_us=900)


def test_successful_callback_posts_are_dropped_errors_and_other_requests_kept(captured: LogCapture) -> None:
    assert quiet_callback_access_log("/messagecentral") is True
    assert quiet_callback_access_log("/messagecentral") is False  # once only
    for _ in range(1000):
        access("POST", "/messagecentral/callback/***", 200)
    access("POST", "/messagecentral/callback", 200)  # secret in the X-Callback-Secret header
    access("POST", "/messagecentral/callback/***", 401)
    access("POST", "/messagecentral/callback/***", 422)
    access("POST", "/messagecentral/callback/***", 503)
    access("GET", "/messagecentral/health", 200)
    access("GET", "/messagecentral/campaigns/mc-1/summary", 200)
    access("POST", "/api/v2/dags/x/dagRuns", 200)
    access("POST", "/other/callback/***", 200)
    kept = [(e["method"], e["path"], e["status_code"]) for e in captured.entries]
    assert kept == [
        ("POST", "/messagecentral/callback/***", 401),
        ("POST", "/messagecentral/callback/***", 422),
        ("POST", "/messagecentral/callback/***", 503),
        ("GET", "/messagecentral/health", 200),
        ("GET", "/messagecentral/campaigns/mc-1/summary", 200),
        ("POST", "/api/v2/dags/x/dagRuns", 200),
        ("POST", "/other/callback/***", 200),
    ]


def test_other_loggers_are_untouched(captured: LogCapture) -> None:
    quiet_callback_access_log("/messagecentral")
    structlog.get_logger(logger_name="airflow.task").info(
        "x", method="POST", path="/messagecentral/callback/***", status_code=200
    )
    assert len(captured.entries) == 1


@pytest.mark.parametrize(
    ("event", "dropped"),
    [
        ({"logger": "http.access", "method": "POST", "path": "/messagecentral/callback/***", "status_code": 200}, True),
        ({"logger_name": "http.access", "method": "POST", "path": "/mc/callback/***", "status_code": 200}, False),
        ({"logger_name": "http.access", "method": "POST", "path": "/messagecentral/callback/***"}, False),
        (
            {"logger_name": "http.access", "method": "PUT", "path": "/messagecentral/callback/***", "status_code": 200},
            False,
        ),
    ],
)
def test_the_processor_itself(event: dict[str, Any], dropped: bool) -> None:
    processor = QuietCallbackAccessLog("/messagecentral")
    if dropped:
        with pytest.raises(structlog.DropEvent):
            processor(None, "info", dict(event))
    else:
        assert processor(None, "info", dict(event)) == event
