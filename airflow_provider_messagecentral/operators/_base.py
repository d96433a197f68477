"""The machinery every send operator shares: validation, ledger, campaign safety, the XCom summary."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from airflow_provider_messagecentral.audience.phone import PhoneNumber
from airflow_provider_messagecentral.campaign.keys import campaign_key_of
from airflow_provider_messagecentral.campaign.ledger import SendLedger, UnitResult, check_on_uncertain
from airflow_provider_messagecentral.campaign.progress import ChunkProgress
from airflow_provider_messagecentral.client.request import (
    MAX_MESSAGE_CHARS,
    SendRequest,
    check_choice,
    check_dlt_ids,
    check_message,
)
from airflow_provider_messagecentral.client.settings import FLOW_TYPES, MESSAGE_TYPES
from airflow_provider_messagecentral.exceptions import (
    MessageCentralBulkError,
    MessageCentralError,
    MessageCentralUncertainError,
    MessageCentralValidationError,
)
from airflow_provider_messagecentral.hooks.messagecentral import MessageCentralHook
from airflow_provider_messagecentral.links.messagecentral import MessageCentralDeliveryReportLink
from airflow_provider_messagecentral.reports.store import get_store
from airflow_provider_messagecentral.safety import send_window as windows
from airflow_provider_messagecentral.safety.cost import (
    DEFAULT_MAX_SEGMENTS,
    SegmentTally,
    check_budget,
    check_max_segments,
    check_money,
)
from airflow_provider_messagecentral.safety.preview import dry_run_reason, log_preview, preview, sample
from airflow_provider_messagecentral.safety.suppression import SuppressionList, load_suppression
from airflow_provider_messagecentral.triggers.send_window import SendWindowTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context

#: At most this many transaction ids go into the XCom summary.
MAX_XCOM_TRANSACTION_IDS = 20
ON_INVALID = ("fail", "skip")
_LONGEST_FLOW = max(MAX_MESSAGE_CHARS, key=lambda flow: MAX_MESSAGE_CHARS[flow])


def _is_templated(value: object) -> bool:
    """Whether ``value`` is (or holds) Jinja that is rendered at run time: then it is checked at execute."""
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    return not isinstance(value, (int, float, bool, type(None), PhoneNumber)) and not isinstance(value, str)


def _is_template_file(value: object, extensions: Sequence[str]) -> bool:
    """
    Whether a templated string names a template file rather than being the text itself.

    Only a value that ends with one of ``extensions`` and holds no whitespace is read as a file: a message
    such as ``"Terms at example.com/terms.txt"`` stays a message.
    """
    return (
        isinstance(value, str)
        and value.endswith(tuple(extensions))
        and not any(ch.isspace() for ch in value)
        and "{{" not in value
    )


@dataclass
class _Unit:
    """One request to make: a single message, a bulk chunk or a workbook."""

    key: str
    label: str
    mobiles: list[str]
    send: Callable[[], dict[str, Any]]


@dataclass
class _Plan:
    """What a send task would send, computed before any request: units, counts, segments, samples."""

    units: list[_Unit]
    recipients: int
    message_type: str
    country_codes: set[str]
    tally: SegmentTally
    samples: list[dict[str, Any]]
    invalid: int = 0
    duplicates: int = 0
    suppressed: int = 0


class _MessageCentralSendOperator(BaseOperator):
    """Shared arguments, validation, ledger and XCom summary of the send operators."""

    template_fields: Sequence[str] = (
        "message",
        "country_code",
        "sender_id",
        "flow_type",
        "message_type",
        "template_id",
        "entity_id",
        "send_window",
        "suppression",
    )
    template_ext: Sequence[str] = (".txt",)
    template_fields_renderers: ClassVar[dict[str, str]] = {"message": "txt"}
    #: fields that may name a template file, with the extensions that mark one
    template_file_fields: ClassVar[dict[str, tuple[str, ...]]] = {"message": (".txt",)}
    ui_color = "#e8f4fd"
    operator_extra_links = (MessageCentralDeliveryReportLink(),)
    campaign_kind: ClassVar[str] = "single"

    def __init__(
        self,
        *,
        message: str,
        messagecentral_conn_id: str = MessageCentralHook.default_conn_name,
        country_code: str | int | None = None,
        sender_id: str | None = None,
        flow_type: str | None = None,
        message_type: str | None = None,
        template_id: str | None = None,
        entity_id: str | None = None,
        on_uncertain: str = "skip",
        dry_run: bool = False,
        send_window: Sequence[str] | str | None = windows.DEFAULT,
        on_outside_window: str = "defer",
        suppression: Iterable[str | int] | str | None = None,
        suppression_conn_id: str | None = None,
        use_suppression_table: bool = True,
        max_segments: int | None = DEFAULT_MAX_SEGMENTS,
        price_per_segment: float | None = None,
        max_cost: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(dry_run, bool):
            raise MessageCentralValidationError(f"dry_run must be True or False, got {dry_run!r}")
        # BaseOperator.dry_run() (render templates only) is unused by Airflow 3; the argument shadows it.
        self.dry_run = dry_run  # type: ignore[assignment,method-assign]
        windows.check_send_window_arg(send_window)
        self.send_window = send_window
        self.on_outside_window = windows.check_on_outside_window(on_outside_window)
        if isinstance(suppression, (bytes, Mapping, int, float)):
            raise MessageCentralValidationError(
                f"suppression must be a list of numbers, a file path or a SQL query, got {type(suppression).__name__}"
            )
        self.suppression = suppression
        self.suppression_conn_id = suppression_conn_id
        self.use_suppression_table = bool(use_suppression_table)
        self.max_segments = check_max_segments(max_segments)
        self.price_per_segment = check_money("price_per_segment", price_per_segment)
        self.max_cost = check_money("max_cost", max_cost)
        self.message = message
        self.messagecentral_conn_id = messagecentral_conn_id
        self.country_code = country_code
        self.sender_id = sender_id
        self.flow_type = flow_type
        self.message_type = message_type
        self.template_id = template_id
        self.entity_id = entity_id
        self.on_uncertain = check_on_uncertain(on_uncertain)
        self._validate_static()

    # -- validation -------------------------------------------------------------------------------------

    def _validate_static(self) -> None:
        """Check what can be checked before templates are rendered (values without Jinja)."""
        if not isinstance(self.messagecentral_conn_id, str) or not self.messagecentral_conn_id:
            raise MessageCentralValidationError(
                f"messagecentral_conn_id must be a connection id, got {self.messagecentral_conn_id!r}"
            )
        flow = self.flow_type
        if flow is not None and not _is_templated(flow):
            flow = check_choice("flow_type", flow, FLOW_TYPES)
        if self.message_type is not None and not _is_templated(self.message_type):
            check_choice("message_type", self.message_type, MESSAGE_TYPES)
        message = self.message
        if not _is_templated(message) and not _is_template_file(message, self.template_ext):
            if not isinstance(message, str):
                raise MessageCentralValidationError(f"message must be text, got {type(message).__name__}")
            # Without an explicit flow type the connection's applies: check the largest limit now and the
            # flow's own limit at execute.
            check_message(message, flow if flow in FLOW_TYPES else _LONGEST_FLOW)
        if not _is_templated(self.country_code) and self.country_code is not None:
            code = str(self.country_code).strip().lstrip("+")
            if not code.isdigit():
                raise MessageCentralValidationError(
                    f"country_code must be a dialling code like '91', got {self.country_code!r}"
                )
        check_dlt_ids(self.template_id, self.entity_id)

    def _options(self) -> dict[str, Any]:
        """The send options as rendered (None and empty left out: the connection's defaults apply)."""
        options = {
            "country_code": self.country_code,
            "sender_id": self.sender_id,
            "flow_type": self.flow_type,
            "message_type": self.message_type,
            "template_id": self.template_id,
            "entity_id": self.entity_id,
        }
        return {
            k: (str(v).strip() if k != "country_code" else str(v).strip().lstrip("+"))
            for k, v in options.items()
            if v not in (None, "")
        }

    def _request(self, hook: MessageCentralHook) -> SendRequest:
        """Validate message and options against the connection (no HTTP): the request every unit shares."""
        if not isinstance(self.message, str):
            raise MessageCentralValidationError(f"message must be text, got {type(self.message).__name__}")
        return hook.prepare_send(self.message, **self._options())

    # -- templates --------------------------------------------------------------------------------------

    def resolve_template_files(self) -> None:
        """Read template files only for the fields that may name one (``message``: a ``.txt`` file)."""
        for name, extensions in self.template_file_fields.items():
            value = getattr(self, name, None)
            if isinstance(value, str) and _is_template_file(value, extensions):
                env = self.get_template_env()
                try:
                    setattr(self, name, env.loader.get_source(env, value)[0])  # type: ignore[union-attr]
                except Exception:
                    self.log.debug("Template file %r of field %r not found yet; rendered at run time", value, name)
        self.prepare_template()

    def render_template_fields(self, context: Context, jinja_env: Any = None) -> None:
        self._file_field_ids = {
            id(getattr(self, name, None)): extensions for name, extensions in self.template_file_fields.items()
        }
        try:
            super().render_template_fields(context, jinja_env)
        finally:
            self._file_field_ids = {}

    def render_template(
        self, content: Any, context: Context, jinja_env: Any = None, seen_oids: set[int] | None = None
    ) -> Any:
        """Render text; only ``message`` (``.txt``) and ``sql`` (``.sql``) values are read as template files."""
        if isinstance(content, str) and content.endswith(tuple(self.template_ext)):
            extensions = getattr(self, "_file_field_ids", {}).get(id(content))
            if not (extensions and _is_template_file(content, extensions)):
                env = jinja_env or self.get_template_env()
                return self._render(env.from_string(content), context)
        return super().render_template(content, context, jinja_env, seen_oids)

    # -- execution --------------------------------------------------------------------------------------

    @cached_property
    def hook(self) -> MessageCentralHook:
        """The hook; tokens are cached per process, so mapped tasks in one worker share one token."""
        return MessageCentralHook(messagecentral_conn_id=self.messagecentral_conn_id)

    def _open_ledger(self, context: Context, hook: MessageCentralHook) -> SendLedger:
        settings = hook.settings
        url = settings.store_url
        return SendLedger.for_task(
            context,
            kind=self.campaign_kind,
            store_url=url,
            on_uncertain=self.on_uncertain,
            logger=self.log,  # type: ignore[arg-type]
        )

    # -- campaign safety ----------------------------------------------------------------------------------

    def _suppression_list(self, hook: MessageCentralHook, country: str) -> SuppressionList:
        """The task's ``suppression`` plus (``use_suppression_table``) the report store's suppression table."""
        store = None
        if self.use_suppression_table:
            settings = hook.settings
            store = get_store(settings.store_url)
        suppression = load_suppression(self.suppression, country, conn_id=self.suppression_conn_id, store=store)
        self.log.info("Suppression: %s", suppression.describe())
        return suppression

    def _tally(self, request: SendRequest) -> SegmentTally:
        return SegmentTally(flow_type=request.flow_type, max_segments=self.max_segments)

    def _sample(self, mobile: str, text: str, tally: SegmentTally) -> dict[str, Any]:
        return sample(mobile, text, segmented=tally.segmented)

    def _window_rule(self, hook: MessageCentralHook, plan: _Plan) -> windows.WindowRule:
        settings = hook.settings
        connection_value: object = settings.send_window if settings.send_window_set else windows.DEFAULT
        return windows.resolve_send_window(
            self.send_window, connection_value, message_type=plan.message_type, country_codes=plan.country_codes
        )

    def _send_plan(self, context: Context, hook: MessageCentralHook, plan: _Plan, *, what: str) -> dict[str, Any]:
        """Check the budget and the window, then preview (dry run) or send the plan's units through the ledger."""
        settings = hook.settings
        price = self.price_per_segment if self.price_per_segment is not None else settings.price_per_segment
        max_cost = self.max_cost if self.max_cost is not None else settings.max_cost
        cost = check_budget(plan.tally.segments, price, max_cost)
        rule = self._window_rule(hook, plan)
        decision = windows.window_decision(rule, self.on_outside_window, windows.now())
        reason = dry_run_reason(bool(self.dry_run), context)
        if reason is not None:
            campaign = campaign_key_of(context["ti"])
            summary = {
                "campaign": campaign,
                "recipients": plan.recipients,
                "accepted": 0,
                "skipped": 0,
                "invalid": plan.invalid,
                "duplicates": plan.duplicates,
                "suppressed": plan.suppressed,
                "chunks": len(plan.units),
            }
            result = preview(
                summary,
                reason=reason,
                samples=plan.samples,
                tally=plan.tally,
                price_per_segment=price,
                estimated_cost=cost,
                window=decision,
            )
            log_preview(self.log, result)  # type: ignore[arg-type]
            return result
        self.log.info(
            "Send window: %s%s",
            rule.reason,
            "" if rule.window is None else f" (now {decision['now']}: {'open' if decision['open'] else 'closed'})",
        )
        if cost is not None:
            self.log.info("Estimated cost %g (%d segment(s) x %g)", cost, plan.tally.segments, price)
        ledger = self._open_ledger(context, hook)
        results = self._run_units(ledger, plan.units, what=what, window=rule.window)
        summary = self._summary(
            ledger, results, recipients=plan.recipients, invalid=plan.invalid, duplicates=plan.duplicates
        )
        summary.update(suppressed=plan.suppressed, segments=plan.tally.segments, estimated_cost=cost)
        return summary

    def _nobody_left(self, context: Context, hook: MessageCentralHook, plan: _Plan, what: str) -> dict[str, Any]:
        """Every valid recipient is suppressed: a dry run previews that, a real run skips the task."""
        if dry_run_reason(bool(self.dry_run), context) is not None:
            return self._send_plan(context, hook, plan, what=what)
        raise AirflowSkipException(
            f"nobody to text: all {plan.suppressed} valid recipient(s) are on the suppression list; nothing was sent"
        )

    def execute_in_window(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the send window opened: the ledger skips what was sent before the pause."""
        opened = (event or {}).get("moment")
        self.log.info("The send window opened (%s): resuming the campaign", opened)
        return self.execute(context)

    def _outside_window(
        self,
        window: windows.SendWindow,
        moment: Any,
        results: list[UnitResult],
        units: list[_Unit],
        index: int,
    ) -> None:
        """The window is closed at ``moment``, before ``units[index]``: defer until it opens, skip or fail."""
        opens = window.next_open(moment)
        rest = units[index:]
        accepted = sum(r.recipients for r in results if r.accepted)
        where = (
            f"before {rest[0].label}: {accepted} recipient(s) sent so far, "
            f"{sum(len(u.mobiles) for u in rest)} in {len(rest)} request(s) left"
        )
        text = (
            f"Send window {window.describe()} is closed now ({moment.in_timezone(window.tz).isoformat()}) {where}; "
            f"it opens {opens.isoformat()}"
        )
        if self.on_outside_window == "defer":
            self.log.info("%s. Deferring until then (no worker slot is held); the rest goes out once.", text)
            self.defer(
                trigger=SendWindowTrigger(moment=opens.isoformat(), window=window.describe()),
                method_name="execute_in_window",
            )
        if self.on_outside_window == "skip":
            raise AirflowSkipException(f"{text}. on_outside_window='skip': not sending the rest")
        raise AirflowFailException(f"{text}. on_outside_window='fail'")

    def _would_send(self, ledger: SendLedger, unit: _Unit) -> bool:
        state = ledger.state(unit.key)
        return not (state == "accepted" or (state == "pending" and ledger.on_uncertain == "skip"))

    def _run_units(
        self,
        ledger: SendLedger,
        units: list[_Unit],
        *,
        what: str,
        window: windows.SendWindow | None = None,
    ) -> list[UnitResult]:
        """
        Send the units in order through the ledger; on an error, say what was and was not sent.

        With a ``window``, the clock is checked before every unit that would be sent: outside it the task
        defers (or skips/fails, see ``on_outside_window``) between units, and resumes into this method.
        """
        total = sum(len(u.mobiles) for u in units)
        progress = ChunkProgress(len(units), total, self.log, what=what)  # type: ignore[arg-type]
        results: list[UnitResult] = []
        for index, unit in enumerate(units):
            if window is not None and self._would_send(ledger, unit):
                moment = windows.now()
                if not window.is_open(moment):
                    self._outside_window(window, moment, results, units, index)
            try:
                result = ledger.run(unit.key, unit.mobiles, unit.send, label=unit.label)
            except MessageCentralError as err:
                raise self._stopped_at(err, results, units, index) from err
            results.append(result)
            note = "" if result.status == "sent" else result.status.replace("_", " ")
            progress.chunk_done(result.recipients, note=note)
        return results

    @staticmethod
    def _stopped_at(
        err: MessageCentralError, results: list[UnitResult], units: list[_Unit], index: int
    ) -> MessageCentralError:
        failed = units[index]
        accepted = [r for r in results if r.accepted]
        uncertain = [r for r in results if r.status == "uncertain_skipped"]
        rest = units[index + 1 :]
        parts = [f"{failed.label} ({len(failed.mobiles)} recipients) failed: {err.error_message}."]
        if isinstance(err, MessageCentralUncertainError):
            parts.append("It may or may not have been sent (left 'pending' in the ledger).")
        else:
            parts.append("It was not sent.")
        if accepted:
            labels = ", ".join(r.label for r in accepted[:10]) + (" ..." if len(accepted) > 10 else "")
            parts.append(f"Accepted: {sum(r.recipients for r in accepted)} recipients ({labels}).")
        else:
            parts.append("Nothing was accepted before it.")
        if uncertain:
            parts.append(
                f"Outcome unknown from an earlier try, not resent: {sum(r.recipients for r in uncertain)} recipients."
            )
        if rest:
            parts.append(
                f"Not sent: {sum(len(u.mobiles) for u in rest)} recipients ({rest[0].label} to {rest[-1].label})."
            )
        parts.append("A retry of this task sends only what was not accepted.")
        text = " ".join(parts)
        if isinstance(err, MessageCentralUncertainError):
            return MessageCentralUncertainError(text, code=err.code, http_status=err.http_status)
        small = [{"unit": r.label, "recipients": r.recipients, "transactionId": r.transaction_id} for r in accepted]
        return MessageCentralBulkError(text, code=err.code, http_status=err.http_status, accepted=small)

    @staticmethod
    def _summary(
        ledger: SendLedger,
        results: list[UnitResult],
        *,
        recipients: int,
        invalid: int = 0,
        duplicates: int = 0,
    ) -> dict[str, Any]:
        ids = [r.transaction_id for r in results if r.accepted and r.transaction_id]
        summary: dict[str, Any] = {
            "campaign": ledger.campaign_key,
            "recipients": recipients,
            "accepted": sum(r.recipients for r in results if r.accepted),
            "skipped": sum(r.recipients for r in results if r.status == "uncertain_skipped"),
            "invalid": invalid,
            "duplicates": duplicates,
            "chunks": len(results),
        }
        if len(ids) <= MAX_XCOM_TRANSACTION_IDS:
            summary["transaction_ids"] = ids
        return summary
