"""
``check_balance``: before the first request of a campaign, read the account's balance and refuse a campaign
whose estimated cost is higher; a dry run shows the balance in its preview instead.

The balance comes from ``wallet/credits/balance``, an endpoint MessageCentral's own app uses but its API docs
do not list; an account without it (HTTP 404/405) gets a logged warning and an unchecked campaign.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_provider_messagecentral.campaign.keys import campaign_key_of
from airflow_provider_messagecentral.campaign.ledger import SendLedger
from airflow_provider_messagecentral.campaign.plan import SendPlan
from airflow_provider_messagecentral.hooks.messagecentral import MessageCentralHook
from airflow_provider_messagecentral.reports.store import get_store
from airflow_provider_messagecentral.safety.cost import check_credit, price_for_credit_check
from airflow_provider_messagecentral.safety.preview import balance_text


def unsent_share(plan: SendPlan, store_url: str, context: Mapping[str, Any], on_uncertain: str) -> float:
    """The part of the plan's recipients a real run would still send (an earlier try may have sent some)."""
    total = plan.recipients
    if not total:
        return 0.0
    ledger = SendLedger(get_store(store_url), campaign_key_of(context["ti"]), on_uncertain=on_uncertain)
    return sum(len(u.recipients) for u in plan.units if ledger.would_send(u.key)) / total


def credit_check(
    hook: MessageCentralHook,
    plan: SendPlan,
    context: Mapping[str, Any],
    *,
    price_per_segment: float | None,
    on_uncertain: str,
    dry_run: bool,
) -> dict[str, Any] | None:
    """
    Read the balance and compare it with the campaign's estimated cost (the task's price, else the
    connection's); raise before anything is sent when it does not cover it, unless ``dry_run``.

    :returns: what the preview shows (``None``: the account has no balance endpoint).
    """
    if not plan.units:
        return None
    price = price_for_credit_check(
        price_per_segment if price_per_segment is not None else hook.settings.price_per_segment
    )
    balance = hook.get_balance()
    if balance is None:
        return None
    share = 1.0 if dry_run else unsent_share(plan, hook.settings.store_url, context, on_uncertain)
    return check_credit(plan.tally.segments, price, balance, share=share, refuse=not dry_run)


def show_in_preview(preview: dict[str, Any], credit: dict[str, Any] | None, log: Any) -> None:
    """Add the balance to a dry run's preview (its XCom) and log the preview's balance line."""
    preview["balance"] = credit
    log.info("%s", balance_text(credit))
