"""
Asset events with the campaign in them: a send or delivery task's summary becomes the ``extra`` of the events
Airflow emits for the task's ``outlets``.

Give a send operator or :class:`~airflow_provider_messagecentral.sensors.messagecentral.MessageCentralDeliverySensor`
``outlets=[Asset(...)]`` (Airflow's own parameter): when the task succeeds, each asset event it emits carries
the task's XCom summary plus ``"stage"``, so a DAG scheduled on the asset reads the campaign from
``triggering_asset_events`` without pulling another DAG's XCom. Stages:

* ``"sent"``: a send task's summary (``campaign``, ``recipients``, ``accepted``, ``skipped``, ``invalid`` ...);
* ``"dry_run"``: a rehearsal's preview (Airflow emits a successful task's outlets even though nothing was sent);
* ``"delivered"``: the delivery sensor's summary (``delivered``, ``failed``, ``pending``, ``delivered_ratio``,
  ``by_status`` ...).

A dry run's ``samples`` (numbers and texts) stay out of the event: asset events are shown to everyone who may
see the asset. Only :class:`airflow.sdk.Asset` outlets get the extra; an ``AssetAlias`` is left to the DAG.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from airflow.sdk import Asset

#: Summary keys that never go into an asset event (what recipients' phones show).
PRIVATE_KEYS = frozenset({"samples"})


def asset_extra(summary: Mapping[str, Any], *, stage: str) -> dict[str, Any]:
    """
    The ``extra`` of a campaign's asset event: the summary (JSON-able, private keys left out) and its stage.

    Example::

        asset_extra({"campaign": "mc-1", "recipients": 3, "accepted": 3}, stage="sent")
        # {"campaign": "mc-1", "recipients": 3, "accepted": 3, "stage": "sent"}
    """
    extra = {key: value for key, value in summary.items() if key not in PRIVATE_KEYS}
    extra["stage"] = stage
    # Asset event extras are stored as JSON: anything else (a datetime, a Decimal) is kept as its text.
    return dict(json.loads(json.dumps(extra, default=str)))


def attach_to_outlets(task: Any, context: Mapping[str, Any], summary: Mapping[str, Any], *, stage: str) -> int:
    """
    Put ``summary`` on the extra of the event of each :class:`~airflow.sdk.Asset` in ``task.outlets``; the
    number of assets it went to (0 without outlets).

    Example::

        summary = runner.run(plan, context, what="bulk send")
        attach_to_outlets(self, context, summary, stage="sent")
    """
    assets = [outlet for outlet in getattr(task, "outlets", None) or () if isinstance(outlet, Asset)]
    events = context.get("outlet_events")
    if not assets or events is None:
        return 0
    extra = asset_extra(summary, stage=stage)
    for asset in assets:
        events[asset].extra.update(extra)
    return len(assets)


__all__ = ["PRIVATE_KEYS", "asset_extra", "attach_to_outlets"]
