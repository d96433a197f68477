"""Operator extra links: "Delivery report" opens a campaign's page of the delivery dashboard."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from airflow.sdk import BaseOperatorLink

from airflow_provider_messagecentral.campaign.keys import campaign_key_of
from airflow_provider_messagecentral.compat import conf

#: Where the plugin mounts the receiver (and with it the dashboard) in the api-server.
DASHBOARD_PATH = "/messagecentral/dashboard"


def _base_url() -> str:
    """``[api] base_url`` without its trailing slash; empty (a link relative to the UI's host) when unset."""
    return (conf.get("api", "base_url", fallback="") or "").rstrip("/")


def linked_campaign(operator: Any, ti_key: Any) -> str:
    """
    The campaign a task's link opens: the sensor's (rendered) ``campaign`` argument when it names one,
    else the task instance's own campaign (a send task: ``campaign_key_of(ti_key)``, its dag/run/task/map index).
    """
    campaign = getattr(operator, "campaign", None)
    if isinstance(campaign, Mapping):
        campaign = campaign.get("campaign")
    if isinstance(campaign, str) and campaign.strip() and "{{" not in campaign:
        return campaign.strip()
    return campaign_key_of(ti_key)


class MessageCentralDeliveryReportLink(BaseOperatorLink):
    """
    "Delivery report": the campaign's page of the delivery dashboard (``/messagecentral/dashboard/...``).

    On a send operator it opens the campaign that task instance sent; on ``MessageCentralDeliverySensor`` the
    campaign it waits on. Airflow 3 computes the link on the worker when the task ends and stores it in XCom,
    so the rendered ``campaign`` argument is available. The URL starts with ``[api] base_url`` when set.

    Example::

        class MessageCentralBulkSendOperator(BaseOperator):
            operator_extra_links = (MessageCentralDeliveryReportLink(),)
    """

    name = "Delivery report"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        key = linked_campaign(operator, ti_key)
        return f"{_base_url()}{DASHBOARD_PATH}/campaigns/{quote(key, safe='')}"
