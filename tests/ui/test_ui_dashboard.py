"""
The campaign delivery dashboard in the real api-server, in headless Chromium: a campaign sent to the sandbox,
whose delivery callbacks reach the receiver the plugin mounts; the page's numbers equal the store's summary;
the Airflow UI shows the page as an external view; the "Delivery report" link opens it.

Screenshots: ``tests/artifacts/ui/dashboard-*.png``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from helpers import sandbox_connection, wait_until

from airflow_provider_messagecentral.campaign.keys import make_campaign_key
from airflow_provider_messagecentral.links.messagecentral import MessageCentralDeliveryReportLink
from airflow_provider_messagecentral.reports.store import ReportStore
from airflow_provider_messagecentral.sandbox import SandboxConfig, SandboxServer

pytestmark = pytest.mark.ui

DAG, RUN, TASK = "ui_campaign", "manual__2026-11-25T09:30:00+00:00", "send_bulk"
NUMBERS = [f"98161{n:05d}" for n in range(40)]
CHUNK = 10


@pytest.fixture
def campaign(api_server: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """
    Send 40 numbers in 4 chunks to a sandbox whose callbacks go to the api-server's receiver, recording the
    campaign in the api-server's store as the send operators do (pending, send, accepted); wait until every
    recipient has a report.
    """
    from airflow_provider_messagecentral.client.tokens import TOKEN_CACHE
    from airflow_provider_messagecentral.hooks.messagecentral import MessageCentralHook

    config = SandboxConfig(
        callback_url=f"{api_server.url}/messagecentral/callback/{api_server.secret}",
        callback_delay=0.2,
        status_mix="DELIVRD=0.6,UNDELIV=0.15,EXPIRED=0.1,REJECTD=0.1,UNKNOWN=0.05",
        seed=11,
    )
    with SandboxServer(config) as sandbox:
        TOKEN_CACHE.clear()
        monkeypatch.setenv("AIRFLOW_CONN_MC_UI_DASHBOARD", json.dumps(sandbox_connection(sandbox.url)))
        hook = MessageCentralHook(messagecentral_conn_id="mc_ui_dashboard")
        store = ReportStore(api_server.store_url)
        key = make_campaign_key(DAG, RUN, TASK)
        store.ensure_campaign(key, dag_id=DAG, run_id=RUN, task_id=TASK, kind="bulk")
        for index in range(0, len(NUMBERS), CHUNK):
            numbers = NUMBERS[index : index + CHUNK]
            unit = f"chunk-{index // CHUNK}"
            store.mark_pending(key, unit, len(numbers))
            (result,) = hook.send_bulk(numbers, "Diwali sale: 20% off today", chunk_size=CHUNK)
            store.mark_accepted(
                key,
                unit,
                transaction_id=result.get("transactionId"),
                verification_id=result.get("verificationId"),
                response=result,
                mobiles=["91" + n for n in numbers],
            )

        def all_reported() -> bool:
            summary = store.campaign_summary(key) or {}
            return sum(summary.get("by_status", {}).values()) == len(NUMBERS)

        assert wait_until(all_reported, timeout=60), store.campaign_summary(key)
        yield {"key": key, "store": store, "summary": store.campaign_summary(key)}
        store.dispose()


def _by() -> Any:
    from selenium.webdriver.common.by import By

    return By


def _wait(browser: Any, timeout: float = 30) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, timeout)


def test_campaign_page_shows_the_stores_numbers(
    browser: Any, api_server: Any, campaign: dict[str, Any], screenshot: Any
) -> None:
    By = _by()
    key, summary = campaign["key"], campaign["summary"]
    by_status = summary["by_status"]

    # the campaigns list
    browser.get(f"{api_server.url}/messagecentral/dashboard")
    row = _wait(browser).until(lambda d: d.find_element(By.CSS_SELECTOR, f"tr.campaign[data-campaign='{key}']"))
    cells = [c.text for c in row.find_elements(By.TAG_NAME, "td")]
    assert cells[1:4] == [DAG, RUN, TASK] and cells[-1] == "40", cells
    screenshot("dashboard-campaigns")

    # one campaign: funnel, curve and failures agree with the store's campaign_summary
    row.find_element(By.TAG_NAME, "a").click()
    _wait(browser).until(lambda d: d.find_element(By.ID, "funnel"))
    assert browser.find_element(By.ID, "campaign-key").text == key
    funnel = {
        g.get_attribute("data-stage"): int(g.get_attribute("data-count"))
        for g in browser.find_elements(By.CSS_SELECTOR, "#funnel g.stage")
    }
    expected = {
        "sent": 40,
        "accepted": summary["recipients"],
        "delivered": summary["delivered"],
        "undelivered": by_status.get("UNDELIV", 0),
        "expired": by_status.get("EXPIRED", 0),
        "rejected": by_status.get("REJECTD", 0),
        "unknown": by_status.get("UNKNOWN", 0),
        "pending": summary["recipients"] - sum(by_status.values()),
    }
    assert funnel == expected
    assert summary["delivered"] > 0 and summary["failed"] > 0, summary  # the picture shows both

    curve = browser.find_element(By.ID, "delivery-curve")
    assert int(curve.get_attribute("data-recipients")) == summary["recipients"]
    assert int(curve.get_attribute("data-delivered")) + int(curve.get_attribute("data-undated")) == summary["delivered"]
    points = [int(p.get_attribute("data-delivered")) for p in curve.find_elements(By.CSS_SELECTOR, "circle.point")]
    assert points == sorted(points) and points[-1] == int(curve.get_attribute("data-delivered"))

    failures = browser.find_elements(By.CSS_SELECTOR, "#failures tr.failure")
    assert sum(int(f.get_attribute("data-count")) for f in failures) == summary["failed"]
    for status in ("UNDELIV", "EXPIRED", "REJECTD"):
        shown = sum(int(f.get_attribute("data-count")) for f in failures if f.get_attribute("data-status") == status)
        assert shown == by_status.get(status, 0), status

    cards = {c.get_attribute("data-card"): c.text for c in browser.find_elements(By.CSS_SELECTOR, ".card")}
    assert cards["delivered"].endswith(str(summary["delivered"])) and cards["failed"].endswith(str(summary["failed"]))
    recipients = browser.find_elements(By.CSS_SELECTOR, "#recipients tr.recipient")
    assert len(recipients) == 40
    screenshot("dashboard-campaign")

    # search by number: the one recipient, with the status the store has for it
    number = "91" + NUMBERS[7]
    search = browser.find_element(By.CSS_SELECTOR, "input[name=q]")
    search.send_keys(NUMBERS[7])
    search.submit()
    _wait(browser).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#recipients tr.recipient")) == 1)
    found = browser.find_element(By.CSS_SELECTOR, "#recipients tr.recipient")
    stored = campaign["store"].campaign_reports(key, search=number)["items"][0]
    assert found.get_attribute("data-mobile") == number
    assert found.get_attribute("data-status") == (stored["status"] or "PENDING")
    screenshot("dashboard-search")


def test_airflow_ui_shows_the_dashboard_and_the_extra_link_opens_it(
    browser: Any, api_server: Any, campaign: dict[str, Any], screenshot: Any
) -> None:
    By = _by()
    key = campaign["key"]

    # the plugin's external view: the dashboard inside the Airflow UI (Browse menu), in an iframe
    browser.get(f"{api_server.url}/plugin/messagecentral")
    frame = _wait(browser, 60).until(lambda d: d.find_element(By.TAG_NAME, "iframe"))
    assert frame.get_attribute("src").endswith("/messagecentral/dashboard")
    browser.switch_to.frame(frame)
    _wait(browser).until(lambda d: d.find_element(By.CSS_SELECTOR, f"tr.campaign[data-campaign='{key}']"))
    browser.switch_to.default_content()
    screenshot("dashboard-in-airflow-ui")

    # the "Delivery report" extra link of the send task instance opens the campaign's page
    ti_key = SimpleNamespace(dag_id=DAG, run_id=RUN, task_id=TASK, map_index=-1, try_number=1)
    link = MessageCentralDeliveryReportLink().get_link(SimpleNamespace(), ti_key=ti_key)
    url = link if link.startswith("http") else api_server.url + link
    browser.get(url)
    _wait(browser).until(lambda d: d.find_element(By.ID, "campaign-key"))
    assert browser.find_element(By.ID, "campaign-key").text == key
    # ... and the sensor's link (its rendered ``campaign`` argument is the send task's XCom) opens the same page
    sensor = SimpleNamespace(campaign={"campaign": key, "recipients": 40})
    sensor_ti = SimpleNamespace(dag_id=DAG, run_id=RUN, task_id="wait_for_delivery", map_index=-1)
    assert MessageCentralDeliveryReportLink().get_link(sensor, ti_key=sensor_ti) == link
