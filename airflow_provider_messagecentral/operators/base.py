"""The shared base of the send operators: arguments, template handling, the hook, and handing a plan over."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperator

from airflow_provider_messagecentral.campaign.ledger import check_on_uncertain
from airflow_provider_messagecentral.campaign.plan import SendPlan
from airflow_provider_messagecentral.campaign.run import CampaignOptions, CampaignRunner
from airflow_provider_messagecentral.client.request import (
    MAX_MESSAGE_CHARS,
    SendRequest,
    check_choice,
    check_country_code,
    check_dlt_ids,
    check_message,
)
from airflow_provider_messagecentral.client.settings import FLOW_TYPES, MESSAGE_TYPES
from airflow_provider_messagecentral.exceptions import MessageCentralValidationError
from airflow_provider_messagecentral.hooks.messagecentral import MessageCentralHook
from airflow_provider_messagecentral.links.messagecentral import MessageCentralDeliveryReportLink
from airflow_provider_messagecentral.operators.credit import credit_check, show_in_preview
from airflow_provider_messagecentral.operators.outlets import attach_to_outlets
from airflow_provider_messagecentral.reports.store import get_store
from airflow_provider_messagecentral.safety import send_window as windows
from airflow_provider_messagecentral.safety.cost import (
    DEFAULT_MAX_SEGMENTS,
    SegmentTally,
    check_max_segments,
    check_money,
)
from airflow_provider_messagecentral.safety.preview import dry_run_reason
from airflow_provider_messagecentral.safety.suppression import SuppressionList, load_suppression

if TYPE_CHECKING:
    from airflow.sdk import Context

_LONGEST_FLOW = max(MAX_MESSAGE_CHARS, key=lambda flow: MAX_MESSAGE_CHARS[flow])


def is_templated(value: object) -> bool:
    """Whether ``value`` is (or holds) Jinja that is rendered at run time: then it is checked at execute."""
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    return not isinstance(value, (int, float, bool, type(None)))


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


class BaseMessageCentralSendOperator(BaseOperator):
    """
    Shared arguments, validation and template handling of the send operators; subclasses build a send plan.

    A subclass checks its own arguments, builds a
    :class:`~airflow_provider_messagecentral.campaign.plan.SendPlan` in ``execute`` and hands it to
    :meth:`run_plan`, which previews a dry run or sends the units through the ledger.

    .. code-block:: python

        class MessageCentralSendOperator(BaseMessageCentralSendOperator):
            campaign_kind = "single"

            def execute(self, context):
                request = self.prepare_request()
                plan = SendPlan([single_unit(self.hook, number, request)], request.message_type, {"91"},
                                self.segment_tally(request))
                return self.run_plan(plan, context, what="single send")

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
    :param dry_run: preview instead of sending (see :mod:`airflow_provider_messagecentral.safety.preview`).
    :param send_window: ``(start, end, tz)``, ``"09:00-21:00 Asia/Kolkata"`` or ``None``; default: the
        connection's, else 09:00-21:00 IST for promotional traffic to India.
    :param on_outside_window: ``"defer"`` (default), ``"skip"`` or ``"fail"`` when the window is closed.
    :param suppression: numbers never to text: a list, a .csv/.txt file or a SQL query; templated.
    :param suppression_conn_id: the Airflow SQL connection of a suppression query.
    :param use_suppression_table: also leave out the report store's suppression table (default True).
    :param max_segments: the most SMS segments one message may take (``None``: no limit).
    :param price_per_segment: price of one segment, for the estimated cost (default: the connection's).
    :param max_cost: refuse a campaign whose estimated cost is higher (default: the connection's).
    :param check_balance: read the account's balance before the first request and refuse a campaign whose
        estimated cost is higher (default: the connection's ``check_balance`` extra); a dry run shows it.
    """

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
        check_balance: bool | None = None,
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
        if check_balance is not None and not isinstance(check_balance, bool):
            raise MessageCentralValidationError(f"check_balance must be True, False or None, got {check_balance!r}")
        self.check_balance = check_balance
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
        if flow is not None and not is_templated(flow):
            flow = check_choice("flow_type", flow, FLOW_TYPES)
        if self.message_type is not None and not is_templated(self.message_type):
            check_choice("message_type", self.message_type, MESSAGE_TYPES)
        message = self.message
        if not is_templated(message) and not _is_template_file(message, self.template_ext):
            if not isinstance(message, str):
                raise MessageCentralValidationError(f"message must be text, got {type(message).__name__}")
            # Without an explicit flow type the connection's applies: check the largest limit now and the
            # flow's own limit at execute.
            check_message(message, flow if flow in FLOW_TYPES else _LONGEST_FLOW)
        if not is_templated(self.country_code) and self.country_code is not None:
            check_country_code(self.country_code)
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
        """The hook of the task's connection (one per task instance; every send of the task shares its token)."""
        return MessageCentralHook(messagecentral_conn_id=self.messagecentral_conn_id)

    def prepare_request(self) -> SendRequest:
        """Validate the rendered message and options against the connection (no HTTP): what every unit sends."""
        if not isinstance(self.message, str):
            raise MessageCentralValidationError(f"message must be text, got {type(self.message).__name__}")
        return self.hook.prepare_send(self.message, **self._options())

    def suppression_list(self, country: str) -> SuppressionList:
        """The task's ``suppression`` plus (``use_suppression_table``) the report store's suppression table."""
        store = get_store(self.hook.settings.store_url) if self.use_suppression_table else None
        suppression = load_suppression(self.suppression, country, conn_id=self.suppression_conn_id, store=store)
        self.log.info("Suppression: %s", suppression.describe())
        return suppression

    def segment_tally(self, request: SendRequest) -> SegmentTally:
        """An empty tally for the request's flow type, with the task's ``max_segments``."""
        return SegmentTally(flow_type=request.flow_type, max_segments=self.max_segments)

    def run_plan(self, plan: SendPlan, context: Context, *, what: str) -> dict[str, Any]:
        """
        Preview (dry run) or send ``plan`` through the ledger; the XCom summary, which also becomes the extra of
        the task's asset events (``outlets``: see :mod:`~airflow_provider_messagecentral.operators.outlets`).
        """
        options = CampaignOptions(
            kind=self.campaign_kind,
            on_uncertain=self.on_uncertain,
            dry_run=bool(self.dry_run),
            send_window=self.send_window,
            on_outside_window=self.on_outside_window,
            price_per_segment=self.price_per_segment,
            max_cost=self.max_cost,
        )
        check = self.check_balance if self.check_balance is not None else self.hook.settings.check_balance
        credit = None
        if check:  # before the first request; a dry run only shows it
            dry = dry_run_reason(bool(self.dry_run), context) is not None
            credit = credit_check(
                self.hook,
                plan,
                context,
                price_per_segment=self.price_per_segment,
                on_uncertain=self.on_uncertain,
                dry_run=dry,
            )
        runner = CampaignRunner(options, self.hook.settings, log=self.log, defer=self.defer)
        summary = runner.run(plan, context, what=what)
        if check and summary.get("dry_run"):
            show_in_preview(summary, credit, self.log)
        attach_to_outlets(self, context, summary, stage="dry_run" if summary.get("dry_run") else "sent")
        return summary

    def execute_in_window(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the send window opened: the ledger skips what was sent before the pause."""
        opened = (event or {}).get("moment")
        self.log.info("The send window opened (%s): resuming the campaign", opened)
        return self.execute(context)
