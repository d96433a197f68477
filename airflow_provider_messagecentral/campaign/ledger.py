"""
The send ledger: every send unit (single message, bulk chunk, workbook) of a task instance, exactly once.

A *campaign* is one send task instance: ``make_campaign_key(dag_id, run_id, task_id, map_index)``. Each unit
has a deterministic key (a hash of its recipients, message and send options). Before a request the unit is
marked ``pending`` (committed, with its recipients); after MessageCentral accepts it, ``accepted`` with the
returned ids and its recipients. A retried task (same run, next try) skips accepted units; a ``pending`` unit —
the request went out but no answer was recorded (crash, timeout) — follows ``on_uncertain``: ``"skip"``
(default: never double-text a customer, logged as a WARNING) or ``"resend"``. Once MessageCentral's delivery
reports for its recipients are stored, the store reconciles a pending unit (it counts as accepted, evidence:
delivery reports), so a later try skips it as accepted whatever ``on_uncertain`` says, and the campaign's
counts include its recipients. A new DAG run is a new campaign.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from airflow_provider_messagecentral.campaign.keys import campaign_key_of
from airflow_provider_messagecentral.exceptions import (
    MessageCentralError,
    MessageCentralUncertainError,
    MessageCentralValidationError,
)
from airflow_provider_messagecentral.reports.store import LedgerUnit, ReportStore, get_store

log = logging.getLogger(__name__)

ON_UNCERTAIN = ("skip", "resend")
#: What happens to the recipients of a unit whose outcome is unknown (logs and errors say it).
COUNTED_IF_REPORTED = "will be counted if MessageCentral reports deliveries for them"
UnitStatus = Literal["sent", "accepted_before", "uncertain_skipped"]


def check_on_uncertain(value: object) -> str:
    if value not in ON_UNCERTAIN:
        raise MessageCentralValidationError(f"on_uncertain must be 'skip' or 'resend', got {value!r}")
    return str(value)


def unit_key(
    kind: str,
    recipients: Iterable[str],
    message: str,
    options: Mapping[str, Any],
    *,
    content: bytes | str = b"",
) -> str:
    """
    The deterministic key of a send unit: ``<kind>-`` and 32 hex digits.

    :param kind: ``single``, ``bulk`` or ``file``.
    :param recipients: the unit's numbers (msisdn digits); their order does not matter.
    :param message: the text (with placeholders for file sends).
    :param options: send options (flow/message type, sender id, template/entity ids...); empty ones ignored.
    :param content: anything else that changes what recipients receive (e.g. a digest of workbook rows).
    """
    digest = hashlib.sha256()
    head = {
        "kind": kind,
        "message": message,
        "options": {k: str(v) for k, v in sorted(options.items()) if v not in (None, "")},
    }
    digest.update(json.dumps(head, sort_keys=True, ensure_ascii=False).encode("utf-8"))
    ordered = sorted(recipients)
    if ordered:  # "\n" before each number, as one buffer
        digest.update(("\n" + "\n".join(ordered)).encode("ascii", "replace"))
    digest.update(b"\x00")
    digest.update(content.encode("utf-8") if isinstance(content, str) else content)
    return f"{kind}-{digest.hexdigest()[:32]}"


@dataclass
class UnitResult:
    """
    What happened to one unit in this try.

    :param status: ``sent`` (accepted now), ``accepted_before`` (by an earlier try) or ``uncertain_skipped``
        (an earlier try's outcome is unknown and ``on_uncertain="skip"``).
    :param data: the API's ``data`` for a unit sent now.
    :param reconciled: ``accepted_before`` because delivery reports for its recipients showed an earlier try's
        unanswered request was sent.
    """

    unit_key: str
    label: str
    recipients: int
    status: UnitStatus
    transaction_id: str | None = None
    data: dict[str, Any] | None = None
    reconciled: bool = False

    @property
    def accepted(self) -> bool:
        return self.status in ("sent", "accepted_before")


class SendLedger:
    """
    The ledger of one campaign (send task instance), read once when the task starts.

    :param store: the report store holding the ledger.
    :param campaign_key: the campaign (see :func:`make_campaign_key`).
    :param on_uncertain: ``"skip"`` or ``"resend"`` units left ``pending`` by an earlier try.
    :param logger: where to log decisions (the operator's task log).

    Example::

        ledger = SendLedger.for_task(context, kind="bulk", store_url=url)
        key = unit_key("bulk", mobiles, message, options)
        result = ledger.run(key, mobiles, lambda: hook.send_chunk(chunk, params), label="chunk 1/3")
    """

    def __init__(
        self,
        store: ReportStore,
        campaign_key: str,
        *,
        on_uncertain: str = "skip",
        logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
    ) -> None:
        self.store = store
        self.campaign_key = campaign_key
        self.on_uncertain = check_on_uncertain(on_uncertain)
        self.log = logger or log
        self.previous: dict[str, LedgerUnit] = store.get_units(campaign_key)

    @classmethod
    def for_task(
        cls,
        context: Mapping[str, Any],
        *,
        kind: str,
        store_url: str | None,
        on_uncertain: str = "skip",
        logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
    ) -> SendLedger:
        """Open (and record) the campaign of the running task instance: ``context["ti"]`` names it."""
        ti = context["ti"]
        map_index = getattr(ti, "map_index", -1)
        map_index = -1 if map_index is None else int(map_index)
        key = campaign_key_of(ti)
        store = get_store(store_url)
        store.ensure_campaign(
            key, dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id, map_index=map_index, kind=kind
        )
        return cls(store, key, on_uncertain=on_uncertain, logger=logger)

    def state(self, key: str) -> str | None:
        """The state an earlier try left the unit in (``None``: never tried)."""
        unit = self.previous.get(key)
        return unit.state if unit is not None else None

    def would_send(self, key: str) -> bool:
        """Whether the unit goes out on this try: not accepted before, nor pending with ``on_uncertain="skip"``."""
        state = self.state(key)
        return not (state == "accepted" or (state == "pending" and self.on_uncertain == "skip"))

    def run(
        self,
        key: str,
        mobiles: Sequence[str],
        send: Callable[[], dict[str, Any]],
        *,
        label: str,
    ) -> UnitResult:
        """
        Send one unit unless the ledger says not to; record the outcome.

        :param key: the unit key (:func:`unit_key`).
        :param mobiles: the unit's recipients as msisdn digits (stored per recipient on acceptance).
        :param send: makes the request; returns the API's ``data``.
        :param label: how the unit is named in logs and errors (``"chunk 2/5"``).
        :raises MessageCentralError: the send's error, after recording it (uncertain: left pending).
        """
        prior = self.previous.get(key)
        if prior is not None and prior.state == "accepted":
            return self._accepted_before(prior, label, len(mobiles))
        if prior is not None and prior.state == "pending":
            if self.on_uncertain == "skip":
                self.log.warning(
                    "%s: an earlier try sent it but recorded no answer (crash or timeout), so its %d recipient(s) "
                    "may or may not have been texted; they %s. on_uncertain='skip': not sending it again (set "
                    "on_uncertain='resend' to resend uncertain units)",
                    label,
                    len(mobiles),
                    COUNTED_IF_REPORTED,
                )
                return UnitResult(key, label, len(mobiles), "uncertain_skipped")
            self.log.warning(
                "%s: an earlier try's outcome is unknown and no delivery report for it has arrived; "
                "on_uncertain='resend': sending it again, so its %d recipient(s) may get the message twice",
                label,
                len(mobiles),
            )
        self.store.mark_pending(self.campaign_key, key, len(mobiles), mobiles=mobiles)
        try:
            data = send()
        except MessageCentralUncertainError:
            self.log.error(
                "%s: no answer from MessageCentral; it may or may not have been sent. Left 'pending' in the "
                "ledger: its recipients %s. A retry follows on_uncertain=%r",
                label,
                COUNTED_IF_REPORTED,
                self.on_uncertain,
            )
            raise
        except MessageCentralError as err:
            self.store.mark_failed(self.campaign_key, key, f"{label}: {err}")
            raise
        transaction_id = data.get("transactionId")
        self.store.mark_accepted(
            self.campaign_key,
            key,
            transaction_id=None if transaction_id is None else str(transaction_id),
            verification_id=None if data.get("verificationId") is None else str(data.get("verificationId")),
            response=data,
            mobiles=list(mobiles),
        )
        return UnitResult(
            key,
            label,
            len(mobiles),
            "sent",
            None if transaction_id is None else str(transaction_id),
            data,
        )

    def _accepted_before(self, prior: LedgerUnit, label: str, recipients: int) -> UnitResult:
        """The result of a unit an earlier try sent: answered, or reconciled by its delivery reports."""
        if prior.reconciled:
            self.log.info(
                "%s (%d recipients): an earlier try recorded no answer, but MessageCentral reported deliveries "
                "for its recipients, so it was sent: counted as accepted, not sending it again",
                label,
                prior.recipients,
            )
        else:
            self.log.info(
                "%s (%d recipients) was accepted by an earlier try (transaction %s): not sending it again",
                label,
                prior.recipients,
                prior.transaction_id,
            )
        return UnitResult(
            prior.unit_key, label, recipients, "accepted_before", prior.transaction_id, reconciled=prior.reconciled
        )
