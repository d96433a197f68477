"""
The send plan the three send operators share: what a task would send, worked out before any request.

A :class:`SendPlan` holds the task's send units (one message, bulk chunks or workbooks, each with its ledger
key and the hook call that sends it), the audience counts, the segment tally and a few samples. The operators
build a plan; :class:`~airflow_provider_messagecentral.campaign.run.CampaignRunner` previews or sends it. This
module also writes what a send task returns (its XCom summary) and the error that stops a campaign midway.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_messagecentral.campaign.ledger import COUNTED_IF_REPORTED, UnitResult, unit_key
from airflow_provider_messagecentral.exceptions import (
    MessageCentralBulkError,
    MessageCentralError,
    MessageCentralUncertainError,
)
from airflow_provider_messagecentral.safety.cost import SegmentTally

if TYPE_CHECKING:
    from airflow_provider_messagecentral.audience.phone import PhoneNumber
    from airflow_provider_messagecentral.audience.workbook_build import BuiltWorkbooks, WorkbookPart
    from airflow_provider_messagecentral.client.request import SendRequest
    from airflow_provider_messagecentral.hooks.messagecentral import MessageCentralHook

#: At most this many transaction ids go into the XCom summary.
MAX_XCOM_TRANSACTION_IDS = 20


@dataclass
class SendUnit:
    """
    One request of a campaign: a single message, a bulk chunk or a workbook.

    :param key: the unit's ledger key (:func:`~airflow_provider_messagecentral.campaign.ledger.unit_key`).
    :param label: how logs and errors name it (``"chunk 2/5"``).
    :param recipients: its numbers (msisdn).
    :param send: makes the request through the hook; returns the API's ``data``.
    """

    key: str
    label: str
    recipients: list[str]
    send: Callable[[], dict[str, Any]] = field(repr=False)


@dataclass
class SendPlan:
    """
    What a send task would send: its units in order, with the counts a summary and a preview report.

    :param units: the requests, in order (none when every valid recipient is suppressed).
    :param message_type: the request's ``messageType`` (send windows depend on it).
    :param country_codes: dialling codes of the recipients (send windows depend on them).
    :param tally: segments of every recipient's text.
    :param samples: a few recipients' texts as a dry run shows them.
    :param invalid: numbers or rows left out as invalid.
    :param duplicates: numbers left out because they came earlier.
    :param suppressed: numbers left out by the suppression list.

    Example::

        plan = SendPlan(chunk_units(hook, chunks, request), request.message_type, {"91"}, tally)
        runner.run(plan, context, what="bulk send")
    """

    units: list[SendUnit]
    message_type: str
    country_codes: set[str]
    tally: SegmentTally
    samples: list[dict[str, Any]] = field(default_factory=list)
    invalid: int = 0
    duplicates: int = 0
    suppressed: int = 0

    @property
    def recipients(self) -> int:
        return sum(len(unit.recipients) for unit in self.units)


def single_unit(hook: MessageCentralHook, number: PhoneNumber, request: SendRequest) -> SendUnit:
    """The one unit of a single send."""
    mobiles = [number.msisdn]
    key = unit_key("single", mobiles, request.message, request.key_options())
    return SendUnit(key, f"send to +{number.msisdn}", mobiles, lambda: hook.send_to(number, request))


def chunk_units(
    hook: MessageCentralHook, chunks: Sequence[Sequence[PhoneNumber]], request: SendRequest
) -> list[SendUnit]:
    """One unit per bulk chunk (numbers of one dialling code each)."""

    def unit(index: int, chunk: Sequence[PhoneNumber]) -> SendUnit:
        mobiles = [n.msisdn for n in chunk]
        key = unit_key("bulk", mobiles, request.message, request.key_options())
        return SendUnit(key, f"chunk {index}/{len(chunks)}", mobiles, lambda: hook.send_chunk(chunk, request))

    return [unit(index, chunk) for index, chunk in enumerate(chunks, start=1)]


def workbook_units(hook: MessageCentralHook, built: BuiltWorkbooks, request: SendRequest) -> list[SendUnit]:
    """One unit per built workbook; its key covers its recipients and a digest of its rows."""
    country_code = built.country_code

    def unit(part: WorkbookPart) -> SendUnit:
        def send() -> dict[str, Any]:
            if part.content is not None:  # the user's workbook, as it was read and checked
                return hook.send_workbook(part.content, request, filename=part.path.name, country_code=country_code)
            return hook.send_workbook(part.path, request, country_code=country_code)

        key = unit_key("file", part.mobiles, request.message, request.key_options(), content=part.digest)
        return SendUnit(key, part.label(built.part_count), part.mobiles, send)

    return [unit(part) for part in built.parts]


def preview_summary(campaign: str, plan: SendPlan) -> dict[str, Any]:
    """The summary a dry run starts from: nothing accepted, the plan's counts."""
    return {
        "campaign": campaign,
        "recipients": plan.recipients,
        "accepted": 0,
        "skipped": 0,
        "invalid": plan.invalid,
        "duplicates": plan.duplicates,
        "suppressed": plan.suppressed,
        "chunks": len(plan.units),
    }


def sent_summary(
    campaign: str, plan: SendPlan, results: list[UnitResult], estimated_cost: float | None
) -> dict[str, Any]:
    """
    A send task's XCom: counts, and the transaction ids when there are at most 20.

    ``accepted`` includes the recipients of units an earlier try sent without recording the answer that the
    store reconciled from their delivery reports; ``reconciled`` (present only when there are any) counts them.
    ``skipped`` counts recipients of units whose outcome is still unknown (``on_uncertain="skip"``).
    """
    ids = [r.transaction_id for r in results if r.accepted and r.transaction_id]
    reconciled = sum(r.recipients for r in results if r.reconciled)
    summary: dict[str, Any] = {
        "campaign": campaign,
        "recipients": plan.recipients,
        "accepted": sum(r.recipients for r in results if r.accepted),
        "skipped": sum(r.recipients for r in results if r.status == "uncertain_skipped"),
        "invalid": plan.invalid,
        "duplicates": plan.duplicates,
        "chunks": len(results),
    }
    if reconciled:
        summary["reconciled"] = reconciled
    if len(ids) <= MAX_XCOM_TRANSACTION_IDS:
        summary["transaction_ids"] = ids
    summary.update(suppressed=plan.suppressed, segments=plan.tally.segments, estimated_cost=estimated_cost)
    return summary


def stopped_at(
    err: MessageCentralError, results: list[UnitResult], units: list[SendUnit], index: int
) -> MessageCentralError:
    """The error that ends a campaign at ``units[index]``: what failed, what was and was not sent."""
    failed = units[index]
    accepted = [r for r in results if r.accepted]
    uncertain = [r for r in results if r.status == "uncertain_skipped"]
    rest = units[index + 1 :]
    parts = [f"{failed.label} ({len(failed.recipients)} recipients) failed: {err.error_message}."]
    if isinstance(err, MessageCentralUncertainError):
        parts.append(
            f"It may or may not have been sent (left 'pending' in the ledger): its recipients {COUNTED_IF_REPORTED}."
        )
    else:
        parts.append("It was not sent.")
    if accepted:
        labels = ", ".join(r.label for r in accepted[:10]) + (" ..." if len(accepted) > 10 else "")
        parts.append(f"Accepted: {sum(r.recipients for r in accepted)} recipients ({labels}).")
    else:
        parts.append("Nothing was accepted before it.")
    if uncertain:
        parts.append(
            f"Outcome unknown from an earlier try, not resent: {sum(r.recipients for r in uncertain)} recipients "
            f"(they may or may not have been texted; they {COUNTED_IF_REPORTED})."
        )
    if rest:
        parts.append(
            f"Not sent: {sum(len(u.recipients) for u in rest)} recipients ({rest[0].label} to {rest[-1].label})."
        )
    parts.append("A retry of this task sends only what was not accepted.")
    text = " ".join(parts)
    if isinstance(err, MessageCentralUncertainError):
        return MessageCentralUncertainError(text, code=err.code, http_status=err.http_status)
    small = [{"unit": r.label, "recipients": r.recipients, "transactionId": r.transaction_id} for r in accepted]
    return MessageCentralBulkError(text, code=err.code, http_status=err.http_status, accepted=small)
