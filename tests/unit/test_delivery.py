"""Delivery evaluation: the verdict of one look at a campaign summary, and its texts."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_messagecentral.reports.delivery import evaluate_delivery


def summary(recipients: int, delivered: int, failed: int, pending: int) -> dict[str, Any]:
    return {"campaign": "mc-x", "recipients": recipients, "delivered": delivered, "failed": failed, "pending": pending}


@pytest.mark.parametrize(
    ("numbers", "min_ratio", "max_failed", "verdict"),
    [
        ((10, 7, 0, 3), 0.7, None, "success"),  # exactly on the bound
        ((10, 6, 0, 4), 0.7, None, "waiting"),
        ((10, 6, 4, 0), 0.7, None, "failure"),  # all final, short
        ((10, 6, 2, 2), 0.7, 0.1, "failure"),  # failed ratio over its bound
        ((10, 6, 1, 3), 0.7, 0.1, "waiting"),  # failed ratio on its bound is fine
        ((10, 9, 1, 0), 0.5, 0.05, "failure"),  # an explicit failed bound wins over success
        ((0, 0, 0, 0), 0.5, None, "failure"),  # nothing was sent
        ((0, 0, 0, 0), 0.0, None, "success"),
    ],
)
def test_evaluate_delivery(
    numbers: tuple[int, int, int, int], min_ratio: float, max_failed: float | None, verdict: str
) -> None:
    assert evaluate_delivery(summary(*numbers), min_ratio, max_failed).verdict == verdict


def test_failure_messages_carry_the_numbers() -> None:
    message = evaluate_delivery(summary(20, 15, 5, 0), 0.95).message
    assert "15 of 20 delivered (75.0%)" in message
    assert "5 failed" in message
    assert "below min_delivered_ratio 95.0%" in message
    message = evaluate_delivery(summary(20, 10, 4, 6), 0.95, 0.1).message
    assert "failed ratio 20.0% exceeds max_failed_ratio 10.0%" in message


def test_final_statuses_can_make_unknown_final() -> None:
    summary = {
        "campaign": "mc-x",
        "recipients": 10,
        "delivered": 8,
        "failed": 0,
        "pending": 2,
        "by_status": {"DELIVRD": 8, "UNKNOWN": 2},
    }
    assert evaluate_delivery(summary, 0.9).verdict == "waiting"  # UNKNOWN is not final by default
    check = evaluate_delivery(summary, 0.9, final_statuses=("DELIVRD", "UNKNOWN"))
    assert check.verdict == "failure" and "every recipient has a final status" in check.message
    # counted as failed, so a failed bound applies to them too
    assert evaluate_delivery(summary, 0.5, 0.1, ("DELIVRD", "UNKNOWN")).verdict == "failure"
    assert evaluate_delivery(summary, 0.8, None, ("DELIVRD", "UNKNOWN")).verdict == "success"
