"""The one campaign key: a send task instance (dag, run, task, map index) named by a short, stable string."""

from __future__ import annotations

import hashlib
from typing import Any


def make_campaign_key(dag_id: str, run_id: str, task_id: str, map_index: int | None = -1) -> str:
    """
    A short, URL-safe, deterministic key of one send task instance: ``mc-`` and 20 hex digits.

    The same (dag_id, run_id, task_id, map_index) always gives the same key, so a retried task finds its
    ledger again. ``map_index`` ``None`` means an unmapped task (``-1``).
    """
    index = -1 if map_index is None else int(map_index)
    raw = "\x1f".join((dag_id, run_id, task_id, str(index)))
    return "mc-" + hashlib.blake2b(raw.encode("utf-8"), digest_size=10).hexdigest()


def campaign_key_of(ti: Any) -> str:
    """The campaign key of a task instance (or a ``TaskInstanceKey``): its dag, run, task and map index."""
    return make_campaign_key(ti.dag_id, ti.run_id, ti.task_id, getattr(ti, "map_index", -1))
