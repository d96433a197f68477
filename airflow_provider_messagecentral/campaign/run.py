"""
Running a send plan: budget and send-window checks, then a dry-run preview or the units through the ledger.

:class:`CampaignRunner` is what the three send operators share once they have built a
:class:`~airflow_provider_messagecentral.campaign.plan.SendPlan`: it refuses a campaign over budget, resolves
the send window, previews a dry run, or sends the units in order through the send ledger (exactly once across
retries), checking the window before each unit (defer, skip or fail when it closes), logging progress per
unit and, when a unit fails, raising an error that says what was and was not sent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from airflow_provider_messagecentral.campaign.keys import campaign_key_of
from airflow_provider_messagecentral.campaign.ledger import SendLedger, UnitResult
from airflow_provider_messagecentral.campaign.plan import SendPlan, SendUnit, preview_summary, sent_summary, stopped_at
from airflow_provider_messagecentral.campaign.progress import ChunkProgress
from airflow_provider_messagecentral.compat import AirflowFailException, AirflowSkipException
from airflow_provider_messagecentral.exceptions import MessageCentralError
from airflow_provider_messagecentral.safety import send_window as windows
from airflow_provider_messagecentral.safety.cost import check_budget
from airflow_provider_messagecentral.safety.preview import dry_run_reason, log_preview, preview
from airflow_provider_messagecentral.triggers.send_window import SendWindowTrigger

if TYPE_CHECKING:
    from pendulum import DateTime

    from airflow_provider_messagecentral.client.settings import MessageCentralSettings

#: The operator method a task deferred for a closed send window resumes into.
RESUME_METHOD = "execute_in_window"


@dataclass(frozen=True)
class CampaignOptions:
    """
    A send task's campaign arguments (the operator's, checked at ``__init__``).

    :param kind: ``single``, ``bulk`` or ``file`` (recorded with the campaign in the ledger).
    :param on_uncertain: ``"skip"`` or ``"resend"`` units an earlier try left without an answer.
    :param dry_run: the task's ``dry_run`` (the run's param and the Airflow Variable are read at run time).
    :param send_window: the task's ``send_window`` as rendered (``"default"``: the connection's or the rule's).
    :param on_outside_window: ``"defer"``, ``"skip"`` or ``"fail"``.
    :param price_per_segment: the task's price (``None``: the connection's).
    :param max_cost: the task's budget (``None``: the connection's).
    """

    kind: str
    on_uncertain: str = "skip"
    dry_run: bool = False
    send_window: object = windows.DEFAULT
    on_outside_window: str = "defer"
    price_per_segment: float | None = None
    max_cost: float | None = None


class CampaignRunner:
    """
    Preview or send a :class:`SendPlan` for one task instance.

    :param options: the task's campaign arguments.
    :param settings: the connection's settings (store URL, send window, price and budget defaults).
    :param log: the task's logger.
    :param defer: the operator's ``defer`` (called with ``trigger`` and ``method_name``; never returns).

    Example::

        runner = CampaignRunner(CampaignOptions(kind="bulk"), hook.settings, log=self.log, defer=self.defer)
        return runner.run(plan, context, what="bulk send")
    """

    def __init__(
        self,
        options: CampaignOptions,
        settings: MessageCentralSettings,
        *,
        log: Any,
        defer: Callable[..., NoReturn],
    ) -> None:
        self.options = options
        self.settings = settings
        self.log = log
        self._defer = defer

    def run(self, plan: SendPlan, context: Mapping[str, Any], *, what: str) -> dict[str, Any]:
        """Check budget and window, then return the preview of a dry run or send the units: the XCom summary."""
        reason = dry_run_reason(self.options.dry_run, context)
        if not plan.units and reason is None:
            raise AirflowSkipException(
                f"nobody to text: all {plan.suppressed} valid recipient(s) are on the suppression list; "
                "nothing was sent"
            )
        options, settings = self.options, self.settings
        price = options.price_per_segment if options.price_per_segment is not None else settings.price_per_segment
        max_cost = options.max_cost if options.max_cost is not None else settings.max_cost
        cost = check_budget(plan.tally.segments, price, max_cost)
        rule = self._window_rule(plan)
        decision = windows.window_decision(rule, options.on_outside_window, windows.now())
        if reason is not None:
            result = preview(
                preview_summary(campaign_key_of(context["ti"]), plan),
                reason=reason,
                samples=plan.samples,
                tally=plan.tally,
                price_per_segment=price,
                estimated_cost=cost,
                window=decision,
            )
            log_preview(self.log, result)
            return result
        self.log.info(
            "Send window: %s%s",
            rule.reason,
            "" if rule.window is None else f" (now {decision['now']}: {'open' if decision['open'] else 'closed'})",
        )
        if cost is not None:
            self.log.info("Estimated cost %g (%d segment(s) x %g)", cost, plan.tally.segments, price)
        ledger = SendLedger.for_task(
            context, kind=options.kind, store_url=settings.store_url, on_uncertain=options.on_uncertain, logger=self.log
        )
        results = self._run_units(ledger, plan.units, what=what, window=rule.window)
        return sent_summary(ledger.campaign_key, plan, results, cost)

    def _window_rule(self, plan: SendPlan) -> windows.WindowRule:
        settings = self.settings
        connection_value: object = settings.send_window if settings.send_window_set else windows.DEFAULT
        return windows.resolve_send_window(
            self.options.send_window,
            connection_value,
            message_type=plan.message_type,
            country_codes=plan.country_codes,
        )

    def _run_units(
        self, ledger: SendLedger, units: list[SendUnit], *, what: str, window: windows.SendWindow | None
    ) -> list[UnitResult]:
        """
        Send the units in order through the ledger; on an error, say what was and was not sent.

        With a ``window``, the clock is checked before every unit that would be sent: outside it the task
        defers (or skips/fails, see ``on_outside_window``) between units, and resumes into the operator's
        ``execute_in_window``.
        """
        progress = ChunkProgress(len(units), sum(len(u.recipients) for u in units), self.log, what=what)
        results: list[UnitResult] = []
        for index, unit in enumerate(units):
            if window is not None and ledger.would_send(unit.key):
                moment = windows.now()
                if not window.is_open(moment):
                    self._outside_window(window, moment, results, units[index:])
            try:
                result = ledger.run(unit.key, unit.recipients, unit.send, label=unit.label)
            except MessageCentralError as err:
                raise stopped_at(err, results, units, index) from err
            results.append(result)
            note = "" if result.status == "sent" else result.status.replace("_", " ")
            progress.chunk_done(result.recipients, note=note)
        return results

    def _outside_window(
        self, window: windows.SendWindow, moment: DateTime, results: list[UnitResult], rest: list[SendUnit]
    ) -> None:
        """The window is closed at ``moment``, before ``rest[0]``: defer until it opens, skip or fail."""
        opens = window.next_open(moment)
        accepted = sum(r.recipients for r in results if r.accepted)
        where = (
            f"before {rest[0].label}: {accepted} recipient(s) sent so far, "
            f"{sum(len(u.recipients) for u in rest)} in {len(rest)} request(s) left"
        )
        text = (
            f"Send window {window.describe()} is closed now ({moment.in_timezone(window.tz).isoformat()}) {where}; "
            f"it opens {opens.isoformat()}"
        )
        action = self.options.on_outside_window
        if action == "defer":
            self.log.info("%s. Deferring until then (no worker slot is held); the rest goes out once.", text)
            self._defer(
                trigger=SendWindowTrigger(moment=opens.isoformat(), window=window.describe()),
                method_name=RESUME_METHOD,
            )
        if action == "skip":
            raise AirflowSkipException(f"{text}. on_outside_window='skip': not sending the rest")
        raise AirflowFailException(f"{text}. on_outside_window='fail'")
