"""
Dry runs: the run-level switch, and the preview a dry run logs and returns as its XCom.

A send task is a dry run when any of these says so (nothing can turn a rehearsal back into a real send):

1. the operator's ``dry_run=True``;
2. the DAG run's param ``messagecentral_dry_run`` (``params={"messagecentral_dry_run": True}`` on the DAG, or
   ``--conf '{"messagecentral_dry_run": true}'`` for one run);
3. the Airflow Variable ``messagecentral_dry_run`` (e.g. ``AIRFLOW_VAR_MESSAGECENTRAL_DRY_RUN=true``): a
   deployment-wide rehearsal mode.

A dry run does everything up to the HTTP request (audience loaded, numbers normalised, de-duplicated and
suppressed, workbooks built and validated, segments counted, guards checked, ledger keys computed) and sends
nothing; it writes nothing to the send ledger.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from airflow_provider_messagecentral.safety.cost import SegmentTally
from airflow_provider_messagecentral.safety.segments import SegmentInfo, analyse

DRY_RUN_PARAM = "messagecentral_dry_run"
DRY_RUN_VARIABLE = "messagecentral_dry_run"
#: Rendered messages shown in a preview.
SAMPLES = 5
_TRUE = frozenset({"1", "true", "yes", "on", "y", "t"})


def truthy(value: object) -> bool:
    """``True``, ``1`` and the texts ``true/yes/on/1`` (any case) are true; anything else is false."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value == 1
    return isinstance(value, str) and value.strip().lower() in _TRUE


def dry_run_reason(task_dry_run: bool, context: Mapping[str, Any]) -> str | None:
    """Why this task is a dry run (``None``: it is not). Reads the run's params and the Airflow Variable."""
    if task_dry_run:
        return "dry_run=True on the task"
    params = context.get("params") or {}
    if isinstance(params, Mapping) and truthy(params.get(DRY_RUN_PARAM)):
        return f"the DAG run's param {DRY_RUN_PARAM}"
    from airflow.sdk import Variable

    if truthy(Variable.get(DRY_RUN_VARIABLE, default=None)):
        return f"the Airflow Variable {DRY_RUN_VARIABLE}"
    return None


def sample(mobile: str, text: str, *, segmented: bool = True, info: SegmentInfo | None = None) -> dict[str, Any]:
    """One preview sample: ``{"mobile": "+91...", "text", "encoding", "segments"}`` (``info``: already analysed)."""
    info = info or analyse(text)
    return {
        "mobile": mobile if mobile.startswith("+") else f"+{mobile}",
        "text": text,
        "encoding": info.encoding,
        "segments": info.segments if segmented else 1,
    }


def preview(
    summary: Mapping[str, Any],
    *,
    reason: str,
    samples: list[dict[str, Any]],
    tally: SegmentTally,
    price_per_segment: float | None,
    estimated_cost: float | None,
    window: Mapping[str, Any],
) -> dict[str, Any]:
    """The dry run's XCom: the send summary (nothing accepted) plus what a real run would do."""
    result = dict(summary)
    result.update(
        dry_run=True,
        dry_run_reason=reason,
        segments=tally.segments,
        encodings=dict(tally.encodings),
        price_per_segment=price_per_segment,
        estimated_cost=estimated_cost,
        samples=samples[:SAMPLES],
        send_window=dict(window),
    )
    return result


def preview_text(result: Mapping[str, Any]) -> str:
    """The preview as the task log shows it (several lines)."""
    given = result["recipients"] + result.get("suppressed", 0) + result["duplicates"] + result["invalid"]
    lines = [
        f"DRY RUN ({result.get('dry_run_reason')}): nothing was sent. Preview of campaign {result['campaign']}:",
        f"  recipients: {result['recipients']} to text ({given} given: {result['invalid']} invalid, "
        f"{result['duplicates']} duplicate(s), {result.get('suppressed', 0)} suppressed)",
        f"  requests: {result['chunks']}; segments: {result['segments']} "
        f"({', '.join(f'{k}: {v} message(s)' for k, v in sorted(result.get('encodings', {}).items())) or 'none'})",
    ]
    if result.get("estimated_cost") is not None:
        lines.append(
            f"  estimated cost: {result['estimated_cost']:g} "
            f"({result['segments']} segment(s) x {result.get('price_per_segment'):g})"
        )
    else:
        lines.append("  estimated cost: unknown (set price_per_segment on the task or the connection)")
    if "balance" in result:
        lines.append(balance_text(result["balance"]))
    window = result.get("send_window") or {}
    if window.get("window") is None:
        lines.append(f"  send window: none ({window.get('reason')})")
    elif window.get("open"):
        lines.append(
            f"  send window: {window['window']} ({window.get('reason')}): open now ({window.get('now')}), "
            f"closes {window.get('closes_at')}"
        )
    else:
        lines.append(
            f"  send window: {window['window']} ({window.get('reason')}): CLOSED now ({window.get('now')}); "
            f"a real run would {window.get('action')}"
            + (f" until {window.get('opens_at')}" if window.get("action") == "defer" else "")
        )
    for index, item in enumerate(result.get("samples", []), start=1):
        lines.append(
            f"  sample {index}: {item['mobile']} ({item['encoding']}, {item['segments']} segment(s)): {item['text']}"
        )
    return "\n".join(lines)


def balance_text(balance: Mapping[str, Any] | None) -> str:
    """The preview's balance line, from :func:`~airflow_provider_messagecentral.safety.cost.check_credit`'s result
    (``None`` or no ``credits``: the account has no balance endpoint)."""
    if not balance or balance.get("credits") is None:
        return "  balance: unknown (MessageCentral has no balance endpoint for this account); not checked"
    credits, cost = balance["credits"], balance["estimated_cost"]
    if balance.get("covers"):
        return f"  balance: {credits:g} credit(s): covers the estimated cost {cost:g}"
    return (
        f"  balance: {credits:g} credit(s) ({balance['spendable']:g} spendable): BELOW the estimated cost {cost:g}; "
        "a real run would be refused before sending anything"
    )


def log_preview(logger: logging.Logger | logging.LoggerAdapter[Any], result: Mapping[str, Any]) -> None:
    logger.info("%s", preview_text(result))


__all__ = [
    "DRY_RUN_PARAM",
    "DRY_RUN_VARIABLE",
    "SAMPLES",
    "balance_text",
    "dry_run_reason",
    "log_preview",
    "preview",
    "preview_text",
    "sample",
    "truthy",
]
