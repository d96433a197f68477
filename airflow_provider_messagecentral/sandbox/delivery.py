"""
What happens to each message the sandbox accepts: its final status and when it is reached, decided once at
accept time, then told both ways MessageCentral tells it: POSTed as callbacks and listed by the detailed
reports endpoint (``sandbox/pulled.py``) once due.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

from airflow_provider_messagecentral.sandbox.config import STATUS_ERROR_CODES


def utc_text(unix: float) -> str:
    """``2023-11-02 13:59:18``: a callback's date, UTC without a zone."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(unix))


@dataclass(frozen=True)
class Outcome:
    """
    The fate of one accepted message, as the detailed reports list it.

    :param country_code: the recipient's dialling code.
    :param national: the recipient's number without it.
    :param text: the text as sent.
    :param sender_id: the send's ``senderId``.
    :param template_id: the send's ``templateId``.
    :param kind: the send's ``type`` (``SMS``).
    :param status: the final status, the one its callback carries.
    :param submitted: when the send was accepted (unix seconds).
    :param due: when the status is reached and its callback is due (unix seconds).
    """

    country_code: str
    national: str
    text: str
    sender_id: str | None
    template_id: str | None
    kind: str
    status: str
    submitted: float
    due: float


def decide(
    rng: random.Random,
    status_mix: dict[str, float],
    recipients: list[dict[str, Any]],
    now: float,
    delay: float,
    *,
    callbacks: bool,
    duplicates: float = 0.0,
    out_of_order: float = 0.0,
) -> tuple[list[str], list[list[dict[str, Any]]]]:
    """
    The status of every recipient (in order) and, when ``callbacks``, the callback jobs (one list of report
    documents per message; each recipient is a dict with ``message_id`` and ``mobile``).

    The random draws per recipient are, in order: the status, then (with callbacks) whether it is duplicated
    and whether a stale ``UNKNOWN`` follows it, so one seed gives the same run with or without pulled reports.
    """
    statuses, weights = list(status_mix), list(status_mix.values())
    submit, done = utc_text(now), utc_text(now + delay)
    decided: list[str] = []
    jobs = []
    for recipient in recipients:
        status = rng.choices(statuses, weights)[0] if len(statuses) > 1 else statuses[0]
        decided.append(status)
        if not callbacks:
            continue
        report = {
            "apiKey": None,
            "clientId": None,
            "messageId": recipient["message_id"],
            "status": status,
            "errorCode": STATUS_ERROR_CODES[status],
            "countryCode": None,
            "mobile": recipient["mobile"],
            "submitDate": submit,
            "doneDate": done,
        }
        job = [report]
        if duplicates and rng.random() < duplicates:
            job.append(dict(report))
        if out_of_order and rng.random() < out_of_order:
            job.append({**report, "status": "UNKNOWN", "errorCode": 0, "doneDate": submit})
        jobs.append(job)
    return decided, jobs
