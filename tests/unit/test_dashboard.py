"""Dashboard pages (ASGI, SQLite store) and the "Delivery report" extra link."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from airflow_provider_messagecentral.campaign.keys import make_campaign_key
from airflow_provider_messagecentral.links.messagecentral import MessageCentralDeliveryReportLink
from airflow_provider_messagecentral.reports.dashboard import dashboard_router
from airflow_provider_messagecentral.reports.models import DeliveryReport
from airflow_provider_messagecentral.reports.store import ReportStore

SENT = datetime(2026, 1, 1, 9, 30)
PLAN = [  # mobile, status, error code, seconds to delivery (None: no report)
    ("919816100001", "DELIVRD", 0, 30),
    ("919816100002", "DELIVRD", 0, 90),
    ("919816100003", "UNDELIV", 1, 40),
    ("919816100004", "EXPIRED", 2, 600),
    ("919816100005", "UNKNOWN", 0, 20),
    ("919816100006", None, None, None),
]


@pytest.fixture
def store(tmp_path: Path) -> ReportStore:
    store = ReportStore(f"sqlite:///{tmp_path / 'r.db'}")
    key = make_campaign_key("dag", "run", "send")
    store.ensure_campaign(key, dag_id="dag", run_id="run", task_id="send", kind="bulk")
    store.mark_pending(key, "c0", len(PLAN))
    mobiles = [m for m, *_ in PLAN]
    store.mark_accepted(
        key, "c0", transaction_id=None, verification_id=None, response={}, mobiles=mobiles, sent_at=SENT
    )
    store.mark_pending(key, "c1", 3)
    store.mark_failed(key, "c1", "refused")
    reports = [
        DeliveryReport(
            messageId=f"m{i}", status=s, errorCode=c, mobile=m, submitDate=SENT, doneDate=SENT + timedelta(seconds=d)
        )
        for i, (m, s, c, d) in enumerate(PLAN)
        if s is not None
    ]
    store.ingest(reports, [])
    return store


@pytest.fixture
def client(store: ReportStore) -> TestClient:
    app = FastAPI()
    app.include_router(dashboard_router(lambda: store))
    return TestClient(app)


def _attrs(page: str, pattern: str) -> dict[str, int]:
    return {k: int(v) for k, v in re.findall(pattern, page)}


def test_campaign_page_numbers_equal_the_store(client: TestClient, store: ReportStore) -> None:
    key = make_campaign_key("dag", "run", "send")
    page = client.get(f"/dashboard/campaigns/{key}")
    assert page.status_code == 200
    funnel = _attrs(page.text, r'data-stage="(\w+)" data-count="(\d+)"')
    assert funnel == {
        "sent": 9,
        "accepted": 6,
        "delivered": 2,
        "undelivered": 1,
        "expired": 1,
        "rejected": 0,
        "unknown": 1,
        "pending": 1,
    }
    summary = store.campaign_summary(key)
    assert summary is not None and summary["delivered"] == funnel["delivered"]
    assert 'data-delivered="2"' in page.text and 'data-undated="0"' in page.text
    failures = re.findall(r'data-status="(\w+)" data-error-code="(\d*)" data-count="(\d+)"', page.text)
    assert sorted(failures) == [("EXPIRED", "2", "1"), ("UNDELIV", "1", "1")]
    assert page.text.count('class="recipient"') == 6


def test_search_by_number_pages_and_unknown_campaign(client: TestClient) -> None:
    key = make_campaign_key("dag", "run", "send")
    found = client.get(f"/dashboard/campaigns/{key}", params={"q": "+91 98161 00003"})
    assert re.findall(r'data-mobile="(\d+)"', found.text) == ["919816100003"]
    assert client.get(f"/dashboard/campaigns/{key}", params={"page": 5}).text.count('class="recipient"') == 0
    assert client.get("/dashboard/campaigns/mc-nope").status_code == 404
    listing = client.get("/dashboard")
    assert f'data-campaign="{key}"' in listing.text and "<td>dag</td><td>run</td><td>send</td>" in listing.text


def test_delivery_curve_is_cumulative_over_time_since_send(store: ReportStore) -> None:
    curve = store.delivery_curve(make_campaign_key("dag", "run", "send"), recipients=6)
    assert curve.points[0] == (0, 0) and curve.points[-1][1] == 2 and curve.delivered == 2
    assert all(a[0] < b[0] and a[1] <= b[1] for a, b in zip(curve.points, curve.points[1:], strict=False))
    assert curve.points[-1][0] >= 90


def test_pages_escape_what_they_show(store: ReportStore) -> None:
    key = make_campaign_key("<dag>", "run", "send")
    store.ensure_campaign(key, dag_id="<dag>", run_id="run", task_id="send", kind="bulk")
    app = FastAPI()
    app.include_router(dashboard_router(lambda: store))
    text = TestClient(app).get(f"/dashboard/campaigns/{key}").text
    assert "<dag>" not in text and "&lt;dag&gt;" in text


def test_delivery_report_link_for_send_tasks_and_the_sensor() -> None:
    link = MessageCentralDeliveryReportLink()
    ti = SimpleNamespace(dag_id="d", run_id="r", task_id="send", map_index=3)
    key = make_campaign_key("d", "r", "send", 3)
    assert link.name == "Delivery report"
    assert link.get_link(SimpleNamespace(), ti_key=ti).endswith(f"/messagecentral/dashboard/campaigns/{key}")
    sensor_ti = SimpleNamespace(dag_id="d", run_id="r", task_id="wait", map_index=-1)
    for campaign in ({"campaign": key, "recipients": 3}, key):
        url = link.get_link(SimpleNamespace(campaign=campaign), ti_key=sensor_ti)
        assert url.endswith(f"/campaigns/{key}")
    unrendered = link.get_link(SimpleNamespace(campaign="{{ ti.xcom_pull('send') }}"), ti_key=sensor_ti)
    assert unrendered.endswith(make_campaign_key("d", "r", "wait"))


def test_send_operators_and_sensor_offer_the_delivery_report_link() -> None:
    from airflow_provider_messagecentral.operators.messagecentral import (
        MessageCentralBulkSendOperator,
        MessageCentralFileSendOperator,
        MessageCentralSendOperator,
    )
    from airflow_provider_messagecentral.sensors.messagecentral import MessageCentralDeliverySensor

    for cls in (
        MessageCentralSendOperator,
        MessageCentralBulkSendOperator,
        MessageCentralFileSendOperator,
        MessageCentralDeliverySensor,
    ):
        names = [link.name for link in cls.operator_extra_links]
        assert names == ["Delivery report"], cls.__name__
