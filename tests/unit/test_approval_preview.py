"""The approval form's body: a dry run's preview as Markdown (safety/approval.py)."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_messagecentral.safety.approval import approval_body, escape_markdown, hide_number


def preview(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "campaign": "mc-0123456789abcdef0123",
        "recipients": 1200,
        "accepted": 0,
        "skipped": 0,
        "invalid": 3,
        "duplicates": 7,
        "suppressed": 2,
        "chunks": 3,
        "dry_run": True,
        "dry_run_reason": "dry_run=True on the task",
        "segments": 2400,
        "encodings": {"GSM-7": 1100, "UCS-2": 100},
        "price_per_segment": 0.25,
        "estimated_cost": 600.0,
        "samples": [
            {
                "mobile": "+919816100001",
                "text": "Hi *Asha*, Rs 50 [cashback] #1\nby_midnight",
                "encoding": "GSM-7",
                "segments": 1,
            },
        ],
        "send_window": {
            "window": "09:00-21:00 Asia/Kolkata",
            "reason": "default",
            "open": True,
            "closes_at": "2024-05-01T21:00:00+05:30",
        },
    }
    base.update(changes)
    return base


def test_the_body_shows_counts_cost_window_and_samples() -> None:
    body = approval_body(preview())
    assert "| Campaign (dry run) | `mc-0123456789abcdef0123` |" in body
    assert "| Recipients | **1,200** to text (1,212 given: 3 invalid, 7 duplicate, 2 suppressed) |" in body
    assert "| Requests | 3 |" in body
    assert "| Segments | 2,400 (GSM-7: 1,100, UCS-2: 100 message(s)) |" in body
    assert "| Estimated cost | 600.00 (2,400 segment(s) x 0.25) |" in body
    assert "| Send window | 09:00-21:00 Asia/Kolkata: open now, closes 2024-05-01T21:00:00+05:30 |" in body
    assert "1. +91••••••0001 (GSM-7, 1 segment(s)): Hi \\*Asha\\*, Rs 50 \\[cashback\\] \\#1  \nby\\_midnight" in body
    assert "9816100001" not in body


@pytest.mark.parametrize(
    ("window", "shown"),
    [
        ({"window": None, "reason": "TRANSACTIONAL traffic"}, "| Send window | none (TRANSACTIONAL traffic) |"),
        (
            {"window": "09:00-21:00 Asia/Kolkata", "open": False, "action": "defer", "opens_at": "T09"},
            "09:00-21:00 Asia/Kolkata: **closed now**; the send would defer until T09 |",
        ),
        ({"window": "09:00-21:00 Asia/Kolkata", "open": False, "action": "skip"}, "the send would skip |"),
    ],
)
def test_the_send_window_decision_is_spelled_out(window: dict[str, Any], shown: str) -> None:
    assert shown in approval_body(preview(send_window=window))


def test_an_unknown_price_says_so_and_no_samples_means_no_sample_list() -> None:
    body = approval_body(preview(estimated_cost=None, price_per_segment=None, samples=[]))
    assert "| Estimated cost | unknown (no `price_per_segment` on the task or the connection) |" in body
    assert "Samples" not in body


@pytest.mark.parametrize("value", [None, {}, {"campaign": "mc-1", "recipients": 3}, "text"])
def test_without_a_dry_run_preview_the_form_says_do_not_approve(value: Any) -> None:
    assert "do not approve" in approval_body(value)


def test_helpers() -> None:
    assert hide_number("919816100001") == "+91••••••0001"
    assert hide_number("+12345") == "•••••"
    assert escape_markdown("a|b_c\r\nd") == "a\\|b\\_c  \nd"
