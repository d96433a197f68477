"""
Update the CRM with who got the campaign's message: a DAG scheduled on the campaign's *delivered* asset.

``messagecentral_campaign``'s delivery sensor has ``outlets=[CASHBACK_DELIVERED]``. When a campaign reaches its
delivery target, Airflow emits an event of that asset whose ``extra`` is the sensor's summary::

    {"stage": "delivered", "campaign": "mc-...", "recipients": 1000, "delivered": 893, "failed": 96,
     "pending": 11, "delivered_ratio": 0.893, "by_status": {"DELIVRD": 893, ...}, ...}

and Airflow starts this DAG. ``update_crm`` reads the campaign from each triggering event (several campaigns may
have finished since the last run: one run gets them all), pages through the campaign's recipients whose latest
delivery report is DELIVRD in the report store, and hands them to the CRM: here a CSV per campaign in
``$MESSAGECENTRAL_EXAMPLE_CRM_DIR`` (default: the system's temporary directory) stands for your CRM's API. It
returns what it wrote per campaign.

Connection: ``messagecentral_default`` (type ``messagecentral``): its ``reports_url`` names the store the
delivery-report receiver fills. Nothing to trigger by hand: unpause it and it runs after each delivered campaign.
"""

from __future__ import annotations

import csv
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG, Asset, get_current_context, task

from airflow_provider_messagecentral.hooks.messagecentral import MessageCentralHook
from airflow_provider_messagecentral.reports.store import get_store

# The same asset messagecentral_campaign's sensor emits (name and URI must match).
CASHBACK_DELIVERED = Asset(
    name="messagecentral_cashback_delivered", uri="messagecentral://campaigns/messagecentral_campaign/delivered"
)
PAGE_SIZE = 1000

log = logging.getLogger(__name__)


def crm_outbox() -> Path:
    """Where this example's stand-in CRM receives its updates."""
    return Path(os.environ.get("MESSAGECENTRAL_EXAMPLE_CRM_DIR") or tempfile.gettempdir())


def delivered_mobiles(store_url: str, campaign: str) -> list[str]:
    """The campaign's recipients whose latest delivery report is DELIVRD, page by page."""
    store, mobiles, page = get_store(store_url), [], 1
    while True:
        result = store.campaign_reports(campaign, page=page, page_size=PAGE_SIZE, search="DELIVRD")
        mobiles += [item["mobile"] for item in result["items"]]
        if page * PAGE_SIZE >= result["total"]:
            return mobiles
        page += 1


@task
def update_crm() -> list[dict[str, Any]]:
    """Mark every recipient who got the message, for each campaign whose delivery event started this run."""
    events = get_current_context()["triggering_asset_events"][CASHBACK_DELIVERED]
    store_url = MessageCentralHook().settings.store_url
    updates = []
    for event in events:
        summary = event.extra or {}
        if summary.get("stage") != "delivered":
            continue
        campaign = summary["campaign"]
        mobiles = delivered_mobiles(store_url, campaign)
        target = crm_outbox() / f"crm_delivered_{campaign}.csv"
        with target.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["mobile", "campaign", "status"])
            writer.writerows([mobile, campaign, "DELIVRD"] for mobile in mobiles)
        log.info(
            "Campaign %s: %d recipient(s) got the message (%.1f%% of %d when the sensor succeeded); CRM updated: %s",
            campaign,
            len(mobiles),
            100 * summary.get("delivered_ratio", 0),
            summary.get("recipients", 0),
            target,
        )
        updates.append({"campaign": campaign, "delivered": len(mobiles), "file": str(target)})
    return updates


with DAG(
    dag_id="messagecentral_crm_update",
    description="Mark who got the campaign's message in the CRM, on each delivered campaign",
    schedule=[CASHBACK_DELIVERED],
    start_date=pendulum.datetime(2024, 1, 1, tz="Asia/Kolkata"),
    catchup=False,
    tags=["messagecentral", "example"],
) as dag:
    update_crm()
