"""
Approval before a big send: a dry run's preview written for a person who decides whether it goes out.

:func:`approval_body` turns a send operator's dry-run XCom (see :mod:`~airflow_provider_messagecentral.safety.preview`)
into Markdown for the form of Airflow's human-in-the-loop ``ApprovalOperator`` (standard provider, Airflow 3.1+):
recipients, requests, segments, estimated cost, the send-window decision and the sample messages exactly as
they would arrive. Sample numbers show only their first two and last four digits: the form is stored in
Airflow's metadata database and shown to everyone who may see the task.

Example (the DAG registers it as a Jinja filter)::

    with DAG("diwali_offer", user_defined_filters={"messagecentral_preview": approval_body}):
        rehearse = MessageCentralFileSendOperator(task_id="rehearse", dry_run=True, ...)
        ApprovalOperator(
            task_id="approve",
            subject="Send the Diwali offer?",
            body="{{ ti.xcom_pull(task_ids='rehearse') | messagecentral_preview }}",
        )
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

#: Characters that mean something inside a Markdown line: escaped in text taken from the campaign.
_MARKDOWN = re.compile(r"([\\`*_\[\]<>|~#])")


def escape_markdown(text: str) -> str:
    """``text`` with Markdown's special characters backslash-escaped and line breaks kept as breaks."""
    return _MARKDOWN.sub(r"\\\1", text).replace("\r\n", "\n").replace("\n", "  \n")


def hide_number(mobile: str) -> str:
    """``+919816100001`` -> ``+91••••••0001``: the first two digits and the last four (short numbers: none)."""
    digits = mobile.lstrip("+")
    if len(digits) <= 6:
        return "•" * len(digits)
    return f"+{digits[:2]}{'•' * (len(digits) - 6)}{digits[-4:]}"


def _count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def _cost(preview: Mapping[str, Any]) -> str:
    cost, price = preview.get("estimated_cost"), preview.get("price_per_segment")
    if cost is None:
        return "unknown (no `price_per_segment` on the task or the connection)"
    return f"{cost:,.2f} ({_count(preview.get('segments', 0))} segment(s) x {price:g})"


def _window(preview: Mapping[str, Any]) -> str:
    window = preview.get("send_window") or {}
    if window.get("window") is None:
        return f"none ({escape_markdown(str(window.get('reason', 'no window applies')))})"
    name = escape_markdown(str(window["window"]))
    if window.get("open"):
        return f"{name}: open now, closes {window.get('closes_at')}"
    action = window.get("action")
    until = f" until {window.get('opens_at')}" if action == "defer" else ""
    return f"{name}: **closed now**; the send would {action}{until}"


def approval_body(preview: Mapping[str, Any] | None) -> str:
    """
    Markdown for an approval form from a dry run's XCom (``dry_run: true``); says so when there is none.

    Example::

        approval_body(ti.xcom_pull(task_ids="rehearse"))
    """
    if not isinstance(preview, Mapping) or not preview.get("dry_run"):
        return (
            "**No dry-run preview to show.** The rehearsal task returned nothing a person could check: do not approve."
        )
    given = sum(int(preview.get(key) or 0) for key in ("recipients", "invalid", "duplicates", "suppressed"))
    encodings = ", ".join(f"{name}: {_count(n)}" for name, n in sorted((preview.get("encodings") or {}).items()))
    rows = [
        ("Campaign (dry run)", f"`{preview.get('campaign')}`"),
        (
            "Recipients",
            f"**{_count(preview.get('recipients'))}** to text ({_count(given)} given: "
            f"{_count(preview.get('invalid', 0))} invalid, {_count(preview.get('duplicates', 0))} duplicate, "
            f"{_count(preview.get('suppressed', 0))} suppressed)",
        ),
        ("Requests", _count(preview.get("chunks", 0))),
        ("Segments", f"{_count(preview.get('segments', 0))}" + (f" ({encodings} message(s))" if encodings else "")),
        ("Estimated cost", _cost(preview)),
        ("Send window", _window(preview)),
    ]
    lines = ["| | |", "|---|---|", *(f"| {name} | {value} |" for name, value in rows)]
    samples = preview.get("samples") or []
    if samples:
        lines += ["", "**Samples**, exactly as they would arrive:", ""]
        for index, item in enumerate(samples, start=1):
            lines.append(
                f"{index}. {hide_number(str(item.get('mobile', '')))} ({item.get('encoding')}, "
                f"{item.get('segments')} segment(s)): {escape_markdown(str(item.get('text', '')))}"
            )
    return "\n".join(lines)


__all__ = ["approval_body", "escape_markdown", "hide_number"]
