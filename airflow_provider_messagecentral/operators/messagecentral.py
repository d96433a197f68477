"""
Send operators: one number, the same text to many numbers, and per-recipient texts from an .xlsx workbook.

The operators are thin: they validate their arguments (at ``__init__`` where the values are not templated,
else at ``execute``; always before any HTTP request), load the audience, and call
:class:`~airflow_provider_messagecentral.hooks.messagecentral.MessageCentralHook`. Every send unit goes
through the send ledger (:mod:`airflow_provider_messagecentral.ledger`), so a retried task never texts a
recipient twice. Each returns a small JSON-able summary as its XCom::

    {"campaign": "mc-...", "recipients": 1200, "accepted": 1200, "skipped": 0, "invalid": 3,
     "duplicates": 7, "chunks": 3, "transaction_ids": ["...", "...", "..."]}

``transaction_ids`` is present when there are at most 20 of them. ``skipped`` counts recipients of units an
earlier try sent without recording the answer (``on_uncertain="skip"``): they may or may not have been texted.
``suppressed`` counts numbers left out by the suppression list, ``segments`` the SMS segments of the campaign
and ``estimated_cost`` their price (``None`` without ``price_per_segment``).

Campaign safety (:mod:`airflow_provider_messagecentral.safety`): ``dry_run`` (and the run-level switches) stops
before the first request and returns a preview; ``send_window``/``on_outside_window`` keep promotional traffic
to its hours, deferring (no worker slot held) until the window opens, also between chunks of a long campaign;
``suppression`` and the store's suppression table keep numbers out of every request; ``max_segments``,
``price_per_segment`` and ``max_cost`` refuse a campaign before anything is sent.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from airflow_provider_messagecentral.audience import (
    dataframe_rows,
    load_numbers,
    normalize_audience,
    sql_rows,
)
from airflow_provider_messagecentral.exceptions import (
    MessageCentralBulkError,
    MessageCentralError,
    MessageCentralUncertainError,
    MessageCentralValidationError,
)
from airflow_provider_messagecentral.hooks.messagecentral import (
    DEFAULT_CHUNK_SIZE,
    MAX_MESSAGE_CHARS,
    MessageCentralHook,
    check_dlt_ids,
    check_message,
)
from airflow_provider_messagecentral.ledger import SendLedger, UnitResult, check_on_uncertain, unit_key
from airflow_provider_messagecentral.links import MessageCentralDeliveryReportLink
from airflow_provider_messagecentral.phone import PhoneNumber, chunked, parse_number
from airflow_provider_messagecentral.progress import ChunkProgress
from airflow_provider_messagecentral.reports.store import get_store, make_campaign_key, resolve_store_url
from airflow_provider_messagecentral.safety import send_window as windows
from airflow_provider_messagecentral.safety.cost import (
    DEFAULT_MAX_SEGMENTS,
    SegmentTally,
    check_budget,
    check_max_segments,
    check_money,
)
from airflow_provider_messagecentral.safety.preview import SAMPLES, dry_run_reason, log_preview, preview, sample
from airflow_provider_messagecentral.safety.suppression import SuppressionList, load_suppression
from airflow_provider_messagecentral.settings import FLOW_TYPES, MESSAGE_TYPES
from airflow_provider_messagecentral.triggers.send_window import SendWindowTrigger
from airflow_provider_messagecentral.workbook import (
    WorkbookPart,
    build_workbooks,
    check_workbook,
    iter_workbook_rows,
    placeholders,
    render,
)
from airflow_provider_messagecentral.workbook_build import _PartWriter

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


def _check_choice(name: str, value: object, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value.upper() not in choices:
        raise MessageCentralValidationError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value.upper()


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
            flow = _check_choice("flow_type", flow, FLOW_TYPES)
        if self.message_type is not None and not _is_templated(self.message_type):
            _check_choice("message_type", self.message_type, MESSAGE_TYPES)
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

    def _request_params(self, hook: MessageCentralHook) -> dict[str, str]:
        """Validate message and options against the connection (no HTTP); the request's parameters."""
        if not isinstance(self.message, str):
            raise MessageCentralValidationError(f"message must be text, got {type(self.message).__name__}")
        options = {k: v for k, v in self._options().items() if k != "country_code"}
        return hook._send_params(self.message, options)

    def _country(self, hook: MessageCentralHook) -> str:
        code = str(self.country_code).strip().lstrip("+") if self.country_code not in (None, "") else ""
        code = code or hook.settings.country
        if not code.isdigit():
            raise MessageCentralValidationError(f"country_code must be a dialling code like '91', got {code!r}")
        return code

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
        url = resolve_store_url(settings.reports_url, settings.reports_conn_id)
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
            store = get_store(resolve_store_url(settings.reports_url, settings.reports_conn_id))
        suppression = load_suppression(self.suppression, country, conn_id=self.suppression_conn_id, store=store)
        self.log.info("Suppression: %s", suppression.describe())
        return suppression

    def _tally(self, params: Mapping[str, str]) -> SegmentTally:
        return SegmentTally(flow_type=params.get("flowType", "SMS"), max_segments=self.max_segments)

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
            ti = context["ti"]
            map_index = getattr(ti, "map_index", -1)
            campaign = make_campaign_key(ti.dag_id, ti.run_id, ti.task_id, -1 if map_index is None else int(map_index))
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

    def _ledger_options(self, params: Mapping[str, str]) -> dict[str, str]:
        """What a unit key covers besides recipients and message: the request's options."""
        return {k: v for k, v in params.items() if k not in ("customerId", "message")}


class MessageCentralSendOperator(_MessageCentralSendOperator):
    """
    Send one SMS (or WhatsApp/RCS message) to one number.

    Works with dynamic task mapping: ``MessageCentralSendOperator.partial(...).expand(mobile_number=[...])``.
    The hook caches its token per process, so mapped tasks that run in one worker process share one token;
    a pre-issued ``auth_token`` connection extra avoids the token call altogether.

    .. code-block:: python

        MessageCentralSendOperator(
            task_id="notify_customer",
            mobile_number="{{ params.mobile }}",
            message="Your order {{ params.order }} has shipped",
            message_type="TRANSACTIONAL",
        )

    :param mobile_number: national number (read with ``country_code``) or international (``+91...``);
        templated.
    :param message: the text, or the name of a ``.txt`` template file (no whitespace in the name); templated.
        At most 1530 characters for SMS/SAUTH, 3072 for RCS, 4096 for WhatsApp.
    :param messagecentral_conn_id: the ``messagecentral`` connection.
    :param country_code: dialling code for national numbers (default: the connection's ``country``).
    :param sender_id: registered sender id (default: the connection's).
    :param flow_type: ``SMS``, ``WHATSAPP``, ``RCS`` or ``SAUTH`` (default: the connection's).
    :param message_type: ``PROMOTIONAL``, ``TRANSACTIONAL`` or ``OTP`` (default: the connection's).
    :param template_id: DLT template id; needs ``entity_id``.
    :param entity_id: DLT entity id; needs ``template_id``.
    :param on_uncertain: what a retry does with a send whose answer never came: ``"skip"`` (default,
        never double-text) or ``"resend"``.
    """

    template_fields: Sequence[str] = (*_MessageCentralSendOperator.template_fields, "mobile_number")
    campaign_kind = "single"

    def __init__(self, *, mobile_number: str | int, message: str, **kwargs: Any) -> None:
        super().__init__(message=message, **kwargs)
        self.mobile_number = mobile_number
        wrong = isinstance(mobile_number, (bool, float, bytes, list, tuple, dict, set))
        if wrong and not isinstance(mobile_number, PhoneNumber):
            raise MessageCentralValidationError(
                f"mobile_number must be one number as text or integer, got {type(mobile_number).__name__}"
            )

    def execute(self, context: Context) -> dict[str, Any]:
        hook = self.hook
        params = self._request_params(hook)
        country = self._country(hook)
        raw = self.mobile_number
        if isinstance(raw, bool) or not isinstance(raw, (str, int)):
            raise MessageCentralValidationError(
                f"mobile_number must be one number as text or integer, got {type(raw).__name__}"
            )
        try:
            number = raw if isinstance(raw, PhoneNumber) else parse_number(raw, country)
        except ValueError as err:
            raise MessageCentralValidationError(f"mobile_number {str(raw)[:40]!r}: {err}") from None
        options = self._options()
        mobiles = [number.msisdn]
        tally = self._tally(params)
        message_type = params["messageType"]
        if self._suppression_list(hook, country).lookup(mobiles):
            self.log.warning("+%s is on the suppression list: not texting it", number.msisdn)
            plan = _Plan([], 0, message_type, {number.country_code}, tally, [], suppressed=1)
            return self._nobody_left(context, hook, plan, "single send")
        tally.add(self.message, where=f"task {self.task_id!r} (to +{number.msisdn})")
        key = unit_key("single", mobiles, self.message, self._ledger_options(params))
        unit = _Unit(
            key, f"send to +{number.msisdn}", mobiles, lambda: hook.send_message(number, self.message, **options)
        )
        samples = [self._sample(number.e164, self.message, tally)]
        plan = _Plan([unit], 1, message_type, {number.country_code}, tally, samples)
        summary = self._send_plan(context, hook, plan, what="single send")
        if summary.get("dry_run"):
            return summary
        ids = summary.get("transaction_ids") or []
        if summary["accepted"] and ids:
            self.log.info("MessageCentral accepted the message to +%s (transaction %s)", number.msisdn, ids[0])
        return summary


class MessageCentralBulkSendOperator(_MessageCentralSendOperator):
    """
    Send the same text to many numbers, ``chunk_size`` numbers per request.

    Numbers are normalised (E.164, ``country_code`` for national ones), de-duplicated (the log says how many)
    and validated before the first request; invalid ones are reported with their position (and line, for
    files). Progress is logged per chunk (i/N chunks, recipients, rate, ETA).

    .. code-block:: python

        MessageCentralBulkSendOperator(
            task_id="flash_sale",
            phone_numbers="/data/audience.csv",  # or a list, or an upstream task's output
            message="Flash sale today: 20% off with code FLASH20",
            chunk_size=500,
        )

    :param phone_numbers: a list of numbers (e.g. ``upstream.output``), the text of a list, or the path of a
        CSV file (column named like mobile/phone/number, else the first) or text file (one per line);
        templated.
    :param message: the text, or the name of a ``.txt`` template file; templated.
    :param chunk_size: numbers per request (any integer >= 1).
    :param on_invalid: ``"fail"`` (default: fail before anything is sent) or ``"skip"`` invalid numbers.
    :param kwargs: the options of :class:`MessageCentralSendOperator` (connection, country_code, sender_id,
        flow_type, message_type, template_id, entity_id, on_uncertain) and ``BaseOperator``'s.
    """

    template_fields: Sequence[str] = (*_MessageCentralSendOperator.template_fields, "phone_numbers")
    campaign_kind = "bulk"

    def __init__(
        self,
        *,
        phone_numbers: Iterable[str | int] | str,
        message: str,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        on_invalid: str = "fail",
        **kwargs: Any,
    ) -> None:
        super().__init__(message=message, **kwargs)
        self.phone_numbers = phone_numbers
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise MessageCentralValidationError(f"chunk_size must be an integer >= 1, got {chunk_size!r}")
        if on_invalid not in ON_INVALID:
            raise MessageCentralValidationError(f"on_invalid must be 'fail' or 'skip', got {on_invalid!r}")
        self.chunk_size = chunk_size
        self.on_invalid = on_invalid
        if isinstance(phone_numbers, (list, tuple)) and not phone_numbers:
            raise MessageCentralValidationError("phone_numbers is empty: nobody to send to")
        if isinstance(phone_numbers, (bytes, dict, int, float)):
            raise MessageCentralValidationError(
                f"phone_numbers must be a list of numbers or a file path, got {type(phone_numbers).__name__}"
            )

    def execute(self, context: Context) -> dict[str, Any]:
        hook = self.hook
        params = self._request_params(hook)
        country = self._country(hook)
        audience = normalize_audience(load_numbers(self.phone_numbers), country)
        if audience.invalid:
            if self.on_invalid == "fail":
                raise MessageCentralValidationError(
                    audience.invalid_text() + "; nothing was sent (on_invalid='skip' sends to the valid ones)"
                )
            self.log.warning("Skipping %s", audience.invalid_text())
        if audience.duplicates:
            self.log.info("Removed %d duplicate number(s)", audience.duplicates)
        if not audience.numbers:
            raise MessageCentralValidationError(
                f"no valid number left in the {audience.source.origin}: nothing was sent"
            )
        numbers, suppressed = self._suppression_list(hook, country).split(audience.numbers)
        if suppressed:
            self.log.info("Left out %d suppressed number(s)", len(suppressed))
        tally = self._tally(params)
        counts = {"invalid": len(audience.invalid), "duplicates": audience.duplicates, "suppressed": len(suppressed)}
        codes = {n.country_code for n in numbers}
        if not numbers:
            plan = _Plan([], 0, params["messageType"], codes, tally, [], **counts)
            return self._nobody_left(context, hook, plan, "bulk send")
        tally.add(self.message, where=f"task {self.task_id!r}", recipients=len(numbers))
        chunks = list(chunked(numbers, self.chunk_size))
        self.log.info(
            "Sending to %d recipient(s) in %d chunk(s) of up to %d (%d invalid, %d duplicate(s), %d suppressed "
            "left out)",
            len(numbers),
            len(chunks),
            self.chunk_size,
            len(audience.invalid),
            audience.duplicates,
            len(suppressed),
        )
        key_options = self._ledger_options(params)
        units = [
            _Unit(
                unit_key("bulk", [n.msisdn for n in chunk], self.message, key_options),
                f"chunk {index}/{len(chunks)}",
                [n.msisdn for n in chunk],
                _chunk_sender(hook, chunk, params),
            )
            for index, chunk in enumerate(chunks, start=1)
        ]
        samples = [self._sample(n.e164, self.message, tally) for n in numbers[:SAMPLES]]
        plan = _Plan(units, len(numbers), params["messageType"], codes, tally, samples, **counts)
        return self._send_plan(context, hook, plan, what="bulk send")


def _chunk_sender(
    hook: MessageCentralHook, chunk: Sequence[PhoneNumber], params: dict[str, str]
) -> Callable[[], dict[str, Any]]:
    return lambda: hook.send_chunk(chunk, params)


class MessageCentralFileSendOperator(_MessageCentralSendOperator):
    """
    Send per-recipient texts: ``##name##`` placeholders in ``message`` filled from each recipient's row.

    The audience comes from exactly one of: an existing ``.xlsx`` workbook, ``rows`` (mappings), a pandas
    ``dataframe`` (pandas is not required otherwise), or a ``sql`` query through an Airflow SQL connection
    (common-sql ``DbApiHook``; rows are streamed with ``fetchmany``). The operator streams the rows into
    workbooks of at most ``rows_per_file`` rows (bounded memory), validating every row first: errors name
    the row and column. Each workbook is one send unit of the ledger. For exactly-once sends across retries,
    a query must return the same rows in the same order on a retry (use ``ORDER BY``).

    .. code-block:: python

        MessageCentralFileSendOperator(
            task_id="balance_reminders",
            message="Hello ##var1##, your balance is ##var2##",
            sql="SELECT phone, first_name, balance FROM customers ORDER BY id",
            sql_conn_id="crm_postgres",
            number_column="phone",
            columns={"var1": "first_name", "var2": "balance"},
        )

    :param message: the text with ``##name##`` placeholders, or a ``.txt`` template file; templated.
    :param workbook: path of an ``.xlsx`` whose header row names the number column and one column per
        placeholder; templated.
    :param rows: a list of mappings (or an upstream task's output); templated.
    :param dataframe: a pandas DataFrame.
    :param sql: a query (or ``.sql`` template file) returning the number column and the placeholder columns;
        templated.
    :param sql_conn_id: the Airflow SQL connection for ``sql``.
    :param sql_parameters: parameters of the query; templated.
    :param number_column: the column holding the phone numbers (default ``"mobile"``); templated.
    :param columns: placeholder name -> source column (``{"var1": "first_name"}``); default: the name itself.
    :param rows_per_file: rows per uploaded workbook; larger audiences are split.
    :param on_invalid: ``"fail"`` (default: nothing is sent) or ``"skip"`` rows with a bad number or an
        empty placeholder value.
    :param work_dir: where the workbooks are built (a temporary directory inside it, removed afterwards).
    :param kwargs: the options of :class:`MessageCentralSendOperator` and ``BaseOperator``'s.
    """

    template_fields: Sequence[str] = (
        *_MessageCentralSendOperator.template_fields,
        "workbook",
        "rows",
        "sql",
        "sql_parameters",
        "number_column",
        "columns",
    )
    template_ext: Sequence[str] = (".txt", ".sql")
    template_fields_renderers: ClassVar[dict[str, str]] = {"message": "txt", "sql": "sql"}
    template_file_fields: ClassVar[dict[str, tuple[str, ...]]] = {"message": (".txt",), "sql": (".sql",)}
    campaign_kind = "file"

    def __init__(
        self,
        *,
        message: str,
        workbook: str | Path | None = None,
        rows: Iterable[Mapping[str, object]] | None = None,
        dataframe: Any = None,
        sql: str | None = None,
        sql_conn_id: str | None = None,
        sql_parameters: Mapping[str, Any] | Sequence[Any] | None = None,
        number_column: str = "mobile",
        columns: Mapping[str, str] | None = None,
        rows_per_file: int = 50_000,
        on_invalid: str = "fail",
        work_dir: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message=message, **kwargs)
        sources = {"workbook": workbook, "rows": rows, "dataframe": dataframe, "sql": sql}
        given = [name for name, value in sources.items() if value is not None]
        if len(given) != 1:
            raise MessageCentralValidationError(
                "give exactly one audience source of workbook=, rows=, dataframe=, sql=; "
                f"got {', '.join(given) or 'none'}"
            )
        if sql is not None and not sql_conn_id:
            raise MessageCentralValidationError("sql= needs sql_conn_id= (an Airflow SQL connection)")
        if isinstance(rows_per_file, bool) or not isinstance(rows_per_file, int) or rows_per_file < 1:
            raise MessageCentralValidationError(f"rows_per_file must be an integer >= 1, got {rows_per_file!r}")
        if on_invalid not in ON_INVALID:
            raise MessageCentralValidationError(f"on_invalid must be 'fail' or 'skip', got {on_invalid!r}")
        if isinstance(rows, (str, bytes)) and not _is_templated(rows):
            raise MessageCentralValidationError("rows must be a list of mappings, not text")
        if columns is not None and not isinstance(columns, Mapping):
            raise MessageCentralValidationError(
                f"columns must map placeholder names to columns, got {type(columns).__name__}"
            )
        self.workbook = str(workbook) if isinstance(workbook, Path) else workbook
        self.rows = rows
        self.dataframe = dataframe
        self.sql = sql
        self.sql_conn_id = sql_conn_id
        self.sql_parameters = sql_parameters
        self.number_column = number_column
        self.columns = columns
        self.rows_per_file = rows_per_file
        self.on_invalid = on_invalid
        self.work_dir = work_dir

    def _audience_rows(self, country: str) -> Iterator[Mapping[str, object]] | Iterable[Mapping[str, object]]:
        if self.workbook is not None:
            if not isinstance(self.workbook, str) or not self.workbook.strip():
                raise MessageCentralValidationError(f"workbook must be a file path, got {self.workbook!r}")
            check = check_workbook(
                self.workbook, self.message, number_column=self.number_column, default_country=country
            )
            self.log.info("Workbook %s: %d recipient row(s), columns %s", self.workbook, check.rows, check.columns)
            return iter_workbook_rows(self.workbook, self.number_column)
        if self.rows is not None:
            if isinstance(self.rows, (str, bytes, Mapping)):
                raise MessageCentralValidationError(f"rows must be a list of mappings, got {type(self.rows).__name__}")
            return self.rows
        if self.dataframe is not None:
            return dataframe_rows(self.dataframe)
        assert self.sql is not None and self.sql_conn_id is not None
        return sql_rows(self.sql, self.sql_conn_id, self.sql_parameters)

    def execute(self, context: Context) -> dict[str, Any]:
        hook = self.hook
        params = self._request_params(hook)
        country = self._country(hook)
        if self.columns is not None and not isinstance(self.columns, Mapping):
            raise MessageCentralValidationError(
                f"columns must map placeholder names to columns, got {type(self.columns).__name__}"
            )
        options = self._options()
        key_options = self._ledger_options(params)
        tally = self._tally(params)
        suppression = self._suppression_list(hook, country)
        rows = self._audience_rows(country)
        if tally.segmented and self.max_segments is not None:
            rows = _check_row_segments(rows, self.message, self.columns, tally)
        with tempfile.TemporaryDirectory(prefix="mc-audience-", dir=self.work_dir) as tmp:
            built = build_workbooks(
                rows,
                self.message,
                tmp,
                number_column=self.number_column,
                columns=self.columns,
                default_country=country,
                rows_per_file=self.rows_per_file,
                on_invalid=self.on_invalid,
            )
            if built.invalid:
                self.log.warning(
                    "Skipped %d invalid row(s): %s",
                    built.skipped,
                    "; ".join(p.describe() for p in built.invalid[:20]),
                )
            if built.duplicates:
                self.log.info("Removed %d row(s) with a duplicate number", built.duplicates)
            codes = sorted(built.country_codes)
            if len(codes) == 1:
                options["country_code"] = codes[0]
            elif len(codes) > 1:
                self.log.warning("The audience mixes dialling codes %s; numbers are written with their code", codes)
            self.log.info(
                "Built %d workbook(s) for %d recipient(s) (%d row(s) read)",
                len(built.parts),
                built.rows,
                built.input_rows,
            )
            units: list[_Unit] = []
            samples: list[dict[str, Any]] = []
            suppressed = recipients = 0
            for index, part in enumerate(built.parts, start=1):
                kept, left_out = _drop_suppressed(part, self.number_column, built.columns, suppression)
                suppressed += left_out
                if kept is None:
                    continue
                part = kept
                mobiles, digest = _part_contents(part.path, self.number_column, self.message, tally, samples)
                recipients += len(mobiles)
                units.append(
                    _Unit(
                        unit_key("file", mobiles, self.message, key_options, content=digest),
                        f"workbook {index}/{len(built.parts)} (rows {part.first_row}-{part.first_row + part.rows - 1})",
                        mobiles,
                        _file_sender(hook, part.path, self.message, options),
                    )
                )
            if suppressed:
                self.log.info("Left out %d suppressed number(s)", suppressed)
            plan = _Plan(
                units,
                recipients,
                params["messageType"],
                set(built.country_codes),
                tally,
                samples,
                invalid=built.skipped,
                duplicates=built.duplicates,
                suppressed=suppressed,
            )
            if not units:
                return self._nobody_left(context, hook, plan, "file send")
            return self._send_plan(context, hook, plan, what="file send")


def _check_row_segments(
    rows: Iterable[Mapping[str, object]],
    message: str,
    columns: Mapping[str, str] | None,
    tally: SegmentTally,
) -> Iterator[Mapping[str, object]]:
    """
    Pass the audience rows through unchanged, failing at the first whose text takes more than ``max_segments``.

    Rows whose placeholders cannot be filled are passed on: the workbook builder reports them.
    """
    mapping = dict(columns or {})
    names = {name: str(mapping.get(name, name)) for name in placeholders(message)}
    check = SegmentTally(tally.flow_type, tally.max_segments)
    for position, row in enumerate(rows, start=1):
        if isinstance(row, Mapping):
            try:
                text = render(message, {name: row.get(source) for name, source in names.items()})
            except MessageCentralValidationError:
                text = None
            if text is not None:
                check.add(text, where=f"row {position}")
        yield row


def _drop_suppressed(
    part: WorkbookPart, number_column: str, header: list[str], suppression: SuppressionList
) -> tuple[WorkbookPart | None, int]:
    """
    The part without suppressed numbers (rewritten only when it holds some; ``None`` when none is left), and
    how many numbers were left out.
    """
    if suppression.store is None and not suppression.numbers:
        return part, 0
    rows = list(iter_workbook_rows(part.path, number_column))
    found = suppression.lookup(row[number_column] for row in rows)
    if not found:
        return part, 0
    kept = [row for row in rows if row[number_column] not in found]
    left_out = len(rows) - len(kept)
    if not kept:
        return None, left_out
    writer = _PartWriter(part.path.parent, f"{part.path.stem}-kept", header, len(kept))
    for row in kept:
        writer.write([row.get(name, "") for name in header])
    new = writer.close()[0]
    return WorkbookPart(path=new.path, rows=len(kept), first_row=part.first_row), left_out


def _part_contents(
    path: Path,
    number_column: str,
    message: str | None = None,
    tally: SegmentTally | None = None,
    samples: list[dict[str, Any]] | None = None,
) -> tuple[list[str], bytes]:
    """
    The recipients (msisdn) of a built workbook and a digest of its rows (order-independent); with ``tally``,
    each row's text is rendered and counted, and the first few go to ``samples``.
    """
    mobiles: list[str] = []
    lines: list[str] = []
    for row in iter_workbook_rows(path, number_column):
        mobiles.append(row[number_column])
        lines.append("\x1f".join(f"{k}={v}" for k, v in row.items()))
        if tally is not None and message is not None:
            text = render(message, row)
            info = tally.add(text, where=f"the message to +{row[number_column]}")
            if samples is not None and len(samples) < SAMPLES:
                samples.append(
                    {
                        "mobile": f"+{row[number_column]}",
                        "text": text,
                        "encoding": info.encoding,
                        "segments": info.segments if tally.segmented else 1,
                    }
                )
    digest = hashlib.sha256()
    for line in sorted(lines):
        digest.update(line.encode("utf-8"))
        digest.update(b"\n")
    return mobiles, digest.digest()


def _file_sender(
    hook: MessageCentralHook, path: Path, message: str, options: dict[str, Any]
) -> Callable[[], dict[str, Any]]:
    return lambda: hook.send_file(path, message, **options)


__all__ = [
    "MessageCentralBulkSendOperator",
    "MessageCentralFileSendOperator",
    "MessageCentralSendOperator",
]
