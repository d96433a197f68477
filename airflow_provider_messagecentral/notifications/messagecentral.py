"""MessageCentralNotifier: text people when a task or DAG run fails (or succeeds), or a deadline is missed."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseNotifier
from asgiref.sync import sync_to_async

from airflow_provider_messagecentral.client.request import SEND_OPTIONS, check_dlt_ids
from airflow_provider_messagecentral.exceptions import MessageCentralValidationError
from airflow_provider_messagecentral.hooks.messagecentral import MessageCentralHook

if TYPE_CHECKING:
    import jinja2
    from airflow.sdk import Context

DEFAULT_FAILURE_MESSAGE = (
    "Airflow: {{ ti.task_id if ti else '' }} in {{ dag.dag_id if dag else '' }} failed "
    "(run {{ run_id }}, try {{ ti.try_number if ti else '' }})"
)


class MessageCentralNotifier(BaseNotifier):
    """
    Send an SMS through MessageCentral from an Airflow callback (``on_failure_callback``,
    ``on_success_callback`` ...) of a task or a DAG.

    ``mobile_numbers`` and ``message`` are Jinja templates rendered with the callback's context: ``dag``,
    ``ti`` (``ti.task_id``, ``ti.try_number``, ``ti.log_url``), ``run_id``, ``ds`` ... One number is sent with
    ``send_message``, several with ``send_bulk``. A failure to send is logged as an error and never raised, so
    it cannot hide the failure that triggered the callback.

    Works as a task-level and as a DAG-level callback (a DAG-level callback under ``dag.test()`` gets a
    serialized DAG without a template environment: the notifier then renders with Airflow's default one).
    Every call renders the templates given here afresh, so one instance can serve many tasks and runs.

    It is also an async notifier (:meth:`async_notify`) for the triggerer: a DAG's deadline alert with
    ``AsyncCallback(MessageCentralNotifier, kwargs={...})`` texts when a run is late. The triggerer passes a
    small context there: ``dag_run``, the run as the REST API shows it (``dag_run.dag_id``,
    ``dag_run.dag_run_id`` ...), and ``deadline`` (``deadline.deadline_time``); no ``ti`` or ``dag``.

    .. code-block:: python

        from airflow_provider_messagecentral.notifications.messagecentral import MessageCentralNotifier

        BashOperator(
            task_id="load",
            bash_command="exit 1",
            on_failure_callback=MessageCentralNotifier(
                mobile_numbers=["+919816111111"],
                message="{{ ti.task_id }} failed in {{ dag.dag_id }}, try {{ ti.try_number }}: {{ ti.log_url }}",
            ),
        )

    :param mobile_numbers: one number or a list (national numbers read with ``country_code``); templated.
    :param message: the text; templated.
    :param messagecentral_conn_id: the ``messagecentral`` connection.
    :param country_code: dialling code for national numbers (default: the connection's).
    :param sender_id: registered sender id (default: the connection's).
    :param flow_type: ``SMS``, ``WHATSAPP``, ``RCS`` or ``SAUTH`` (default: the connection's).
    :param message_type: default ``TRANSACTIONAL`` (alerts are not promotions).
    :param template_id: DLT template id; needs ``entity_id``.
    :param entity_id: DLT entity id; needs ``template_id``.
    :param context: the context to render with when the notifier is awaited (Airflow's async callbacks pass it).
    """

    template_fields: Sequence[str] = (
        "mobile_numbers",
        "message",
        "country_code",
        "sender_id",
        "flow_type",
        "message_type",
        "template_id",
        "entity_id",
    )

    def __init__(
        self,
        mobile_numbers: str | int | Sequence[str | int],
        message: str = DEFAULT_FAILURE_MESSAGE,
        *,
        messagecentral_conn_id: str = MessageCentralHook.default_conn_name,
        country_code: str | None = None,
        sender_id: str | None = None,
        flow_type: str | None = None,
        message_type: str | None = "TRANSACTIONAL",
        template_id: str | None = None,
        entity_id: str | None = None,
        context: Context | None = None,
    ) -> None:
        super().__init__(context=context)
        if isinstance(mobile_numbers, (list, tuple)) and not mobile_numbers:
            raise MessageCentralValidationError("mobile_numbers is empty: nobody to notify")
        if mobile_numbers is None or isinstance(mobile_numbers, (bool, float, dict, bytes)):
            raise MessageCentralValidationError(
                f"mobile_numbers must be a number or a list of numbers, got {type(mobile_numbers).__name__}"
            )
        if not isinstance(message, str) or not message.strip():
            raise MessageCentralValidationError("message must be non-empty text")
        check_dlt_ids(template_id, entity_id)
        self.mobile_numbers = mobile_numbers
        self.message = message
        self.messagecentral_conn_id = messagecentral_conn_id
        self.country_code = country_code
        self.sender_id = sender_id
        self.flow_type = flow_type
        self.message_type = message_type
        self.template_id = template_id
        self.entity_id = entity_id
        self._templates = {name: getattr(self, name) for name in self.template_fields}
        self._render_error: Exception | None = None
        #: the outcome of the last notification (for tests and callers): ``"sent"`` or the error text.
        self.last_outcome: str | None = None

    def _options(self) -> dict[str, Any]:
        """The rendered send options; ``None`` and empty ones mean the connection's defaults."""
        return {name: getattr(self, name) for name in SEND_OPTIONS}

    def _numbers(self) -> list[str | int]:
        value: Any = self.mobile_numbers
        if isinstance(value, str):
            parts = [p.strip() for p in value.replace(";", ",").replace("\n", ",").split(",")]
            return [p for p in parts if p]
        if isinstance(value, int) and not isinstance(value, bool):
            return [value]
        return list(value)

    @cached_property
    def hook(self) -> MessageCentralHook:
        """The MessageCentral hook of ``messagecentral_conn_id`` (cached)."""
        return MessageCentralHook(messagecentral_conn_id=self.messagecentral_conn_id)

    def render_template_fields(self, context: Context, jinja_env: jinja2.Environment | None = None) -> None:
        """
        Render the template fields from the templates given to ``__init__`` (so one notifier serves many
        callbacks); a rendering error is kept for :meth:`notify` to report, not raised.

        A DAG without ``get_template_env`` (the serialized DAG that DAG-level callbacks get under
        ``dag.test()``) renders with Airflow's default template environment.
        """
        self._restore_templates()
        dag = context.get("dag")
        if jinja_env is None and dag is not None and not hasattr(dag, "get_template_env"):
            jinja_env = self.get_template_env(dag=None)
        try:
            super().render_template_fields(context, jinja_env)
        except Exception as err:
            self._render_error = err

    def notify(self, context: Context) -> None:
        """Send the rendered message; log (never raise) a failure."""
        try:
            if self._render_error is not None:
                raise self._render_error
            self._send()
            self.last_outcome = "sent"
        except Exception as err:
            self.last_outcome = f"{type(err).__name__}: {err}"
            self.log.error("MessageCentral notification was NOT sent (%s); the callback carries on", self.last_outcome)
        finally:
            self._restore_templates()

    async def async_notify(self, context: Context) -> None:
        """
        Send the rendered message from async code (the triggerer: deadline alerts, async callbacks); log (never
        raise) a failure.

        The hook is synchronous (retries, rate limit, token cache, secret masking: the very same as
        :meth:`notify`), so the send runs in a worker thread and the event loop goes on serving other triggers
        meanwhile. ``sync_to_async`` (not ``asyncio.to_thread``) so that the Airflow SDK calls the hook makes in
        that thread (a connection lookup, masking a secret) reach the triggerer's supervisor through its loop.
        """
        await sync_to_async(self.notify, thread_sensitive=False)(context)

    def _send(self) -> None:
        numbers = self._numbers()
        if not numbers:
            raise MessageCentralValidationError("mobile_numbers rendered to nothing: nobody to notify")
        if len(numbers) == 1:
            data = self.hook.send_message(numbers[0], self.message, **self._options())
            self.log.info("MessageCentral notification sent (transaction %s)", data.get("transactionId"))
            return
        results = self.hook.send_bulk(numbers, self.message, **self._options())
        self.log.info(
            "MessageCentral notification sent to %d number(s) in %d request(s)",
            sum(len(r.get("recipients", ())) for r in results),
            len(results),
        )

    def _restore_templates(self) -> None:
        """Put the templates back (rendering replaces them in place) and forget the last rendering error."""
        for name, template in self._templates.items():
            setattr(self, name, template)
        self._render_error = None


__all__ = ["MessageCentralNotifier"]
