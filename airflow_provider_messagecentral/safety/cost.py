"""
Segments and cost of a campaign: the ``max_segments``, ``price_per_segment``, ``max_cost`` and
``check_balance`` guards.

Each message is analysed after placeholders are filled (:func:`airflow_provider_messagecentral.safety.segments.analyse`:
GSM-7 with its extension table, else UCS-2; 160/153 and 70/67 per segment). SMS and SAUTH flows are billed
per segment; a WhatsApp or RCS message counts as one unit whatever its length, and ``max_segments`` does not
apply to it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_messagecentral.client.balance import Balance
from airflow_provider_messagecentral.exceptions import (
    MessageCentralInsufficientCreditError,
    MessageCentralValidationError,
)
from airflow_provider_messagecentral.safety.segments import GSM7, GSM7_BASIC, GSM7_EXTENSION, SegmentInfo, analyse

DEFAULT_MAX_SEGMENTS = 6
SEGMENTED_FLOWS = ("SMS", "SAUTH")


def check_max_segments(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise MessageCentralValidationError(f"max_segments must be an integer >= 1 or None, got {value!r}")
    return value


def check_money(name: str, value: object) -> float | None:
    """A price or budget: ``None`` or a finite number >= 0 (numeric text from a connection extra is accepted)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise MessageCentralValidationError(f"{name} must be a number >= 0, got {value!r}")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise MessageCentralValidationError(f"{name} must be a number >= 0, got {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise MessageCentralValidationError(f"{name} must be a number >= 0, got {value!r}")
    return number


def _first_non_gsm(text: str) -> str:
    for ch in text:
        if ch not in GSM7_BASIC and ch not in GSM7_EXTENSION:
            return f"{ch!r} (U+{ord(ch):04X})"
    return ""


def describe(info: SegmentInfo) -> str:
    unit = "septets" if info.encoding == GSM7 else "UTF-16 units"
    return f"{info.segments} segment(s), {info.encoding}, {info.units} {unit}"


@dataclass
class SegmentTally:
    """
    Segments of a campaign, message by message, with the ``max_segments`` guard.

    :param flow_type: ``SMS``/``SAUTH`` count segments; other flows count one unit per message.
    :param max_segments: the most segments one message may take (``None``: no limit).

    Example::

        tally = SegmentTally("SMS", max_segments=6)
        tally.add("Hello Asha", where="row 1", recipients=1)
        tally.segments  # 1
    """

    flow_type: str = "SMS"
    max_segments: int | None = DEFAULT_MAX_SEGMENTS
    messages: int = 0
    segments: int = 0
    encodings: dict[str, int] = field(default_factory=dict)
    largest: int = 0

    @property
    def segmented(self) -> bool:
        return self.flow_type.upper() in SEGMENTED_FLOWS

    def check(self, text: str, *, where: str) -> SegmentInfo:
        """
        Analyse ``text`` without counting it.

        :raises MessageCentralValidationError: when it takes more than ``max_segments`` segments, naming
            ``where`` (the row or the task) and why (encoding, the first character forcing UCS-2).
        """
        info = analyse(text)
        if self.segmented and self.max_segments is not None and info.segments > self.max_segments:
            why = ""
            if info.encoding != GSM7:
                why = f"; UCS-2 because of {_first_non_gsm(text)}"
            raise MessageCentralValidationError(
                f"{where}: the message takes {describe(info)}, over max_segments={self.max_segments}{why}; "
                "nothing was sent (shorten the text or raise max_segments)"
            )
        return info

    def count(self, info: SegmentInfo, recipients: int = 1) -> None:
        """Count a checked text (see :meth:`check`) sent to ``recipients`` recipients."""
        per_message = info.segments if self.segmented else 1
        self.messages += recipients
        self.segments += per_message * recipients
        self.encodings[info.encoding] = self.encodings.get(info.encoding, 0) + recipients
        self.largest = max(self.largest, per_message)

    def add(self, text: str, *, where: str, recipients: int = 1) -> SegmentInfo:
        """Check ``text`` (see :meth:`check`) and count it for ``recipients`` recipients."""
        info = self.check(text, where=where)
        self.count(info, recipients)
        return info


def estimated_cost(segments: int, price_per_segment: float | None) -> float | None:
    """``segments * price_per_segment`` rounded to 4 decimals; ``None`` without a price."""
    if price_per_segment is None:
        return None
    return round(segments * price_per_segment, 4)


def check_budget(segments: int, price_per_segment: float | None, max_cost: float | None) -> float | None:
    """
    The estimated cost; refuse the campaign when it is over ``max_cost``.

    :raises MessageCentralValidationError: over budget, or ``max_cost`` without a price to estimate with.
    """
    cost = estimated_cost(segments, price_per_segment)
    if max_cost is None:
        return cost
    if cost is None:
        raise MessageCentralValidationError(
            f"max_cost={max_cost} needs price_per_segment (task argument or connection extra) to estimate "
            "the cost; nothing was sent"
        )
    if cost > max_cost:
        raise MessageCentralValidationError(
            f"estimated cost {cost:g} ({segments} segment(s) x {price_per_segment:g}) is over max_cost="
            f"{max_cost:g}; nothing was sent"
        )
    return cost


def price_for_credit_check(price_per_segment: float | None) -> float:
    """The price ``check_balance`` estimates with; refuse the campaign without one."""
    if price_per_segment is None:
        raise MessageCentralValidationError(
            "check_balance needs price_per_segment (task argument or connection extra) to estimate the cost; "
            "nothing was sent"
        )
    return price_per_segment


def check_credit(
    segments: int, price_per_segment: float, balance: Balance, *, share: float = 1.0, refuse: bool = True
) -> dict[str, Any]:
    """
    Compare the estimated cost still to spend (``segments * price_per_segment * share``; ``share`` is the part
    of the campaign not sent by an earlier try) with the account's spendable credit.

    :param refuse: raise when it does not cover the cost (a dry run only reports it).
    :returns: ``{"credits", "spendable", "estimated_cost", "covers"}`` for the preview and the log.
    :raises MessageCentralInsufficientCreditError: the cost is over the balance (``refuse``), naming both.
    """
    cost = round(segments * price_per_segment * share, 4)
    spendable = balance.spendable
    result = {"credits": balance.credits, "spendable": spendable, "estimated_cost": cost, "covers": cost <= spendable}
    if refuse and cost > spendable:
        part = "" if share >= 1 else f" for the {share:.0%} not sent yet"
        floor = "" if spendable == balance.credits else f" ({spendable:g} spendable above the account's minimum)"
        raise MessageCentralInsufficientCreditError(
            f"estimated cost {cost:g} ({segments} segment(s) x {price_per_segment:g}{part}) is over the account's "
            f"balance of {balance.credits:g}{floor}; nothing was sent (top up, or send to fewer recipients)"
        )
    return result
