"""
The hook against the sandbox over real HTTP for the endpoints MessageCentral's own app uses beyond its API
docs: pulled delivery reports (``reports/getDetailedReports``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from airflow_provider_messagecentral.exceptions import MessageCentralValidationError
from airflow_provider_messagecentral.hooks.messagecentral import MessageCentralHook

pytestmark = pytest.mark.integration

MIX = "DELIVRD=0.7,UNDELIV=0.1,EXPIRED=0.1,REJECTD=0.1"


@pytest.fixture
def hook(mc_conn: Any) -> MessageCentralHook:
    return MessageCentralHook()


@pytest.fixture
def window() -> tuple[datetime, datetime]:
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    return now - timedelta(minutes=5), now + timedelta(minutes=5)


@pytest.fixture
def callbacks() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A local endpoint that keeps every delivery report POSTed to it."""
    got: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/callback/s3cret", got
    server.shutdown()
    server.server_close()


def test_pulled_reports_match_the_callbacks_status_for_status(
    hook: MessageCentralHook, sandbox: Any, window: Any, callbacks: Any
) -> None:
    url, posted = callbacks
    sandbox.configure(callback_url=url, callback_delay=0, status_mix=MIX, seed=5)
    numbers = [f"98161{i:05d}" for i in range(230)]
    hook.send_bulk(numbers, "Sale today", chunk_size=100)
    assert sandbox.flush_callbacks(timeout=30)["flushed"]
    pulled = list(hook.get_detailed_reports(*window, page_size=50))
    assert len(pulled) == 230 and len({r.mobile for r in pulled}) == 230
    assert {r.mobile: r.status for r in pulled} == {c["mobile"]: c["status"] for c in posted}
    assert len({r.status for r in pulled}) > 1  # a real mix, not all delivered
    assert {r.message_body for r in pulled} == {"Sale today"}
    delivered = [r for r in pulled if r.status == "DELIVRD"]
    assert all(r.delivered_at is not None and r.error_code == "0" for r in delivered)
    assert all(r.delivered_at is None and r.error_code != "0" for r in pulled if r.status != "DELIVRD")


def test_reports_appear_only_once_their_callback_is_due(hook: MessageCentralHook, sandbox: Any, window: Any) -> None:
    sandbox.configure(callback_delay=3600)
    hook.send_message("9816111111", "later")
    sandbox.configure(callback_delay=0)
    hook.send_message("9816111112", "now")
    assert [(r.mobile, r.message_body) for r in hook.get_detailed_reports(*window)] == [("919816111112", "now")]


def test_pages_are_walked_to_the_end_with_string_fields(hook: MessageCentralHook, sandbox: Any, window: Any) -> None:
    sandbox.configure(callback_delay=0, field_types="strings")
    hook.send_bulk([f"77151{i:05d}" for i in range(25)], "hi", chunk_size=25)
    pulled = list(hook.get_detailed_reports(*window, page_size=10))
    assert sorted(r.mobile for r in pulled) == sorted(f"9177151{i:05d}" for i in range(25))
    assert {r.error_code for r in pulled} == {"0"}


def test_a_window_of_other_days_finds_nothing(hook: MessageCentralHook, sandbox: Any) -> None:
    sandbox.configure(callback_delay=0)
    hook.send_message("9816111111", "hi")
    assert list(hook.get_detailed_reports(datetime(2020, 1, 1), datetime(2020, 1, 2))) == []


def test_otp_reports_are_not_sms_reports(hook: MessageCentralHook, sandbox: Any, window: Any) -> None:
    sandbox.configure(callback_delay=0)
    hook.send_message("9816111111", "hi")
    assert list(hook.get_detailed_reports(*window, message_type="OTP")) == []


def test_sandbox_checks_the_query(sandbox: Any, hook: MessageCentralHook) -> None:
    token = hook.get_token()
    base = {"customerId": hook.settings.customer_id, "from": "1/1/2026", "to": "2/1/2026", "pageNo": "0", "size": "10"}
    cases = [
        ({**base, "type": "SMS", "from": "2026-01-01"}, "'from' must be a date written d/M/yyyy"),
        ({**base, "type": "SMS", "customerId": "C-OTHER"}, "does not match the account"),
        ({**base, "type": "SMS", "size": "0"}, "'size' must be an integer"),
        (base, "missing required parameter 'type'"),
    ]
    for params, reason in cases:
        resp = requests.post(f"{sandbox.url}/reports/getDetailedReports", params=params, headers={"authToken": token})
        assert resp.status_code == 400 and reason in resp.json()["message"]
    resp = requests.post(f"{sandbox.url}/reports/getDetailedReports", params={**base, "type": "SMS"})
    assert resp.status_code == 401


def test_bad_window_is_refused_before_any_request(hook: MessageCentralHook, sandbox: Any, window: Any) -> None:
    with pytest.raises(MessageCentralValidationError, match="before start"):
        hook.get_detailed_reports(window[1], window[0])
    assert sandbox.stats()["token_requests"] == 0
