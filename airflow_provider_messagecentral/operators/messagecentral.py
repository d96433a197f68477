"""
Send operators: one number, the same text to many numbers, and per-recipient texts from an .xlsx workbook.

The operators are thin: they validate their arguments (at ``__init__`` where the values are not templated,
else at ``execute``; always before any HTTP request), load the audience (``audience/``) and build a send plan
(``campaign/plan.py``) whose units call the hook's public send API; the campaign runner (``campaign/run.py``)
previews or sends it. Every send unit goes through the send ledger (``campaign/ledger.py``), so a retried task
never texts a recipient twice. Each returns a small JSON-able summary as its XCom::

    {"campaign": "mc-...", "recipients": 1200, "accepted": 1200, "skipped": 0, "invalid": 3,
     "duplicates": 7, "chunks": 3, "transaction_ids": ["...", "...", "..."]}

``transaction_ids`` is present when there are at most 20 of them. ``skipped`` counts recipients of units an
earlier try sent without recording the answer (``on_uncertain="skip"``): they may or may not have been texted,
and are counted (``reconciled``) once MessageCentral reports deliveries for them.
``suppressed`` counts numbers left out by the suppression list, ``segments`` the SMS segments of the campaign
and ``estimated_cost`` their price (``None`` without ``price_per_segment``).

Campaign safety (:mod:`airflow_provider_messagecentral.safety`): ``dry_run`` (and the run-level switches) stops
before the first request and returns a preview; ``send_window``/``on_outside_window`` keep promotional traffic
to its hours, deferring (no worker slot held) until the window opens, also between chunks of a long campaign;
``suppression`` and the store's suppression table keep numbers out of every request; ``max_segments``,
``price_per_segment`` and ``max_cost`` refuse a campaign before anything is sent.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_messagecentral.audience.phone import chunked, parse_number
from airflow_provider_messagecentral.audience.rows import check_on_invalid
from airflow_provider_messagecentral.audience.sources import dataframe_rows, load_audience, sql_rows
from airflow_provider_messagecentral.audience.workbook_build import (
    BuildOptions,
    BuiltWorkbooks,
    build_workbooks,
    check_rows_per_file,
)
from airflow_provider_messagecentral.audience.workbook_given import read_given_workbook
from airflow_provider_messagecentral.campaign.plan import SendPlan, chunk_units, single_unit, workbook_units
from airflow_provider_messagecentral.exceptions import MessageCentralValidationError
from airflow_provider_messagecentral.hooks.messagecentral import DEFAULT_CHUNK_SIZE
from airflow_provider_messagecentral.operators.base import BaseMessageCentralSendOperator, is_templated
from airflow_provider_messagecentral.safety.preview import SAMPLES, sample

if TYPE_CHECKING:
    from airflow.sdk import Context


class MessageCentralSendOperator(BaseMessageCentralSendOperator):
    """
    Send one SMS (or WhatsApp/RCS message) to one number.

    Works with dynamic task mapping. Each Airflow 3 task instance runs in its own process and fetches its own
    token, so many mapped sends make many token requests: give the connection a pre-issued ``auth_token``
    extra to make it none.

    .. code-block:: python

        MessageCentralSendOperator.partial(
            task_id="notify_customer", message="Your order has shipped", message_type="TRANSACTIONAL"
        ).expand(mobile_number=["9816111111", "+919816111112"])

    :param mobile_number: national number (read with ``country_code``) or international (``+91...``);
        templated.
    :param message: the text, or the name of a ``.txt`` template file (no whitespace in the name); templated.
        At most 1530 characters for SMS/SAUTH, 3072 for RCS, 4096 for WhatsApp.
    :param kwargs: the arguments every send operator takes (connection, ``country_code``, ``sender_id``,
        ``flow_type``, ``message_type``, ``template_id``, ``entity_id``, ``on_uncertain`` and the campaign
        safety ones: see :class:`~airflow_provider_messagecentral.operators.base.BaseMessageCentralSendOperator`)
        and ``BaseOperator``'s.
    """

    template_fields: Sequence[str] = (*BaseMessageCentralSendOperator.template_fields, "mobile_number")
    campaign_kind = "single"

    def __init__(self, *, mobile_number: str | int, message: str, **kwargs: Any) -> None:
        super().__init__(message=message, **kwargs)
        self.mobile_number = mobile_number
        if isinstance(mobile_number, (bool, float, bytes, list, tuple, dict, set)):
            raise MessageCentralValidationError(
                f"mobile_number must be one number as text or integer, got {type(mobile_number).__name__}"
            )

    def execute(self, context: Context) -> dict[str, Any]:
        request = self.prepare_request()
        raw = self.mobile_number
        if isinstance(raw, bool) or not isinstance(raw, (str, int)):
            raise MessageCentralValidationError(
                f"mobile_number must be one number as text or integer, got {type(raw).__name__}"
            )
        try:
            number = parse_number(raw, request.country)
        except ValueError as err:
            raise MessageCentralValidationError(f"mobile_number {str(raw)[:40]!r}: {err}") from None
        tally = self.segment_tally(request)
        plan = SendPlan([], request.message_type, {number.country_code}, tally)
        if self.suppression_list(request.country).lookup([number.msisdn]):
            self.log.warning("+%s is on the suppression list: not texting it", number.msisdn)
            plan.suppressed = 1
            return self.run_plan(plan, context, what="single send")
        tally.add(self.message, where=f"task {self.task_id!r} (to +{number.msisdn})")
        plan.units = [single_unit(self.hook, number, request)]
        plan.samples = [sample(number.e164, self.message, segmented=tally.segmented)]
        summary = self.run_plan(plan, context, what="single send")
        ids = summary.get("transaction_ids") or []
        if not summary.get("dry_run") and summary["accepted"] and ids:
            self.log.info("MessageCentral accepted the message to +%s (transaction %s)", number.msisdn, ids[0])
        return summary


class MessageCentralBulkSendOperator(BaseMessageCentralSendOperator):
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
    :param kwargs: the arguments every send operator takes (see :class:`MessageCentralSendOperator`) and
        ``BaseOperator``'s.
    """

    template_fields: Sequence[str] = (*BaseMessageCentralSendOperator.template_fields, "phone_numbers")
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
        self.chunk_size = chunk_size
        self.on_invalid = check_on_invalid(on_invalid)
        if isinstance(phone_numbers, (list, tuple)) and not phone_numbers:
            raise MessageCentralValidationError("phone_numbers is empty: nobody to send to")
        if isinstance(phone_numbers, (bytes, dict, int, float)):
            raise MessageCentralValidationError(
                f"phone_numbers must be a list of numbers or a file path, got {type(phone_numbers).__name__}"
            )

    def execute(self, context: Context) -> dict[str, Any]:
        request = self.prepare_request()
        source, audience = load_audience(self.phone_numbers, request.country)
        if audience.invalid:
            invalid = audience.error_text(origin=source.origin, where=source.where)
            if self.on_invalid == "fail":
                raise MessageCentralValidationError(
                    invalid + "; nothing was sent (on_invalid='skip' sends to the valid ones)"
                )
            self.log.warning("Skipping %s", invalid)
        if audience.duplicates:
            self.log.info("Removed %d duplicate number(s)", audience.duplicates)
        if not audience.numbers:
            raise MessageCentralValidationError(f"no valid number left in the {source.origin}: nothing was sent")
        numbers, suppressed = self.suppression_list(request.country).split(audience.numbers)
        if suppressed:
            self.log.info("Left out %d suppressed number(s)", len(suppressed))
        tally = self.segment_tally(request)
        codes = {n.country_code for n in numbers}
        plan = SendPlan(
            [],
            request.message_type,
            codes,
            tally,
            invalid=len(audience.invalid),
            duplicates=audience.duplicates,
            suppressed=len(suppressed),
        )
        if numbers:
            tally.add(self.message, where=f"task {self.task_id!r}", recipients=len(numbers))
            chunks = list(chunked(numbers, self.chunk_size))
            self.log.info(
                "Sending to %d recipient(s) in %d chunk(s) of up to %d (%d invalid, %d duplicate(s), "
                "%d suppressed left out)",
                *(len(numbers), len(chunks), self.chunk_size, plan.invalid, plan.duplicates, plan.suppressed),
            )
            plan.units = chunk_units(self.hook, chunks, request)
            plan.samples = [sample(n.e164, self.message, segmented=tally.segmented) for n in numbers[:SAMPLES]]
        return self.run_plan(plan, context, what="bulk send")


class MessageCentralFileSendOperator(BaseMessageCentralSendOperator):
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
        placeholder; templated. It is read once; when it needs no change (one part, no row left out, numbers
        as digits, values as text, the number column first) it is uploaded as given, else rebuilt.
    :param rows: a list of mappings (or an upstream task's output); templated.
    :param dataframe: a pandas DataFrame.
    :param sql: a query (or ``.sql`` template file) returning the number column and the placeholder columns;
        templated.
    :param sql_conn_id: the Airflow SQL connection for ``sql``.
    :param sql_parameters: parameters of the query; templated.
    :param number_column: the column holding the phone numbers (default ``"mobile"``); templated.
    :param columns: placeholder name -> source column (``{"var1": "first_name"}``); default: the name itself.
    :param rows_per_file: rows per uploaded workbook (1 to 1,048,575: one sheet); larger audiences are split.
    :param on_invalid: ``"fail"`` (default: nothing is sent) or ``"skip"`` rows with a bad number or an
        empty placeholder value.
    :param work_dir: where the workbooks are built (a temporary directory inside it, removed afterwards).
    :param kwargs: the arguments every send operator takes (see :class:`MessageCentralSendOperator`) and
        ``BaseOperator``'s.
    """

    template_fields: Sequence[str] = (
        *BaseMessageCentralSendOperator.template_fields,
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
        self.rows_per_file = check_rows_per_file(rows_per_file)
        self.on_invalid = check_on_invalid(on_invalid)
        if isinstance(rows, (str, bytes)) and not is_templated(rows):
            raise MessageCentralValidationError("rows must be a list of mappings, not text")
        self._check_columns(columns)
        self.workbook = str(workbook) if isinstance(workbook, Path) else workbook
        self.rows = rows
        self.dataframe = dataframe
        self.sql = sql
        self.sql_conn_id = sql_conn_id
        self.sql_parameters = sql_parameters
        self.number_column = number_column
        self.columns = columns
        self.work_dir = work_dir

    @staticmethod
    def _check_columns(columns: object) -> None:
        if columns is not None and not isinstance(columns, Mapping):
            raise MessageCentralValidationError(
                f"columns must map placeholder names to columns, got {type(columns).__name__}"
            )

    def _audience_rows(self) -> Iterable[Mapping[str, object]]:
        if self.rows is not None:
            if isinstance(self.rows, (str, bytes, Mapping)):
                raise MessageCentralValidationError(f"rows must be a list of mappings, got {type(self.rows).__name__}")
            return self.rows
        if self.dataframe is not None:
            return dataframe_rows(self.dataframe)
        assert self.sql is not None and self.sql_conn_id is not None
        return sql_rows(self.sql, self.sql_conn_id, self.sql_parameters)

    def _build(self, out_dir: str, options: BuildOptions) -> BuiltWorkbooks:
        """The audience's workbooks: a given workbook read once (sent as given when nothing must change)."""
        if self.workbook is None:
            return build_workbooks(self._audience_rows(), self.message, out_dir, **options.arguments())
        if not isinstance(self.workbook, str) or not self.workbook.strip():
            raise MessageCentralValidationError(f"workbook must be a file path, got {self.workbook!r}")
        given = read_given_workbook(self.workbook, self.message, out_dir, options)
        check = given.check
        self.log.info("Workbook %s: %d recipient row(s), columns %s", self.workbook, check.rows, check.columns)
        if given.built.as_given:
            self.log.info("The workbook needs no change: uploading it as given")
        return given.built

    def execute(self, context: Context) -> dict[str, Any]:
        request = self.prepare_request()
        self._check_columns(self.columns)
        tally = self.segment_tally(request)
        suppression = self.suppression_list(request.country)
        options = BuildOptions(
            number_column=self.number_column,
            columns=self.columns,
            default_country=request.country,
            rows_per_file=self.rows_per_file,
            on_invalid=self.on_invalid,
            suppressed=suppression.lookup if suppression.active else None,
            tally=tally,
        )
        with tempfile.TemporaryDirectory(prefix="mc-audience-", dir=self.work_dir) as tmp:
            built = self._build(tmp, options)
            self._log_build(built)
            plan = SendPlan(
                workbook_units(self.hook, built, request),
                request.message_type,
                set(built.country_codes),
                tally,
                built.samples,
                invalid=built.skipped,
                duplicates=built.duplicates,
                suppressed=built.suppressed,
            )
            return self.run_plan(plan, context, what="file send")

    def _log_build(self, built: BuiltWorkbooks) -> None:
        if built.invalid:
            shown = "; ".join(p.describe() for p in built.invalid[:20])
            self.log.warning("Skipped %d invalid row(s): %s", built.skipped, shown)
        if built.duplicates:
            self.log.info("Removed %d row(s) with a duplicate number", built.duplicates)
        if len(built.country_codes) > 1:
            codes = sorted(built.country_codes)
            self.log.warning("The audience mixes dialling codes %s; numbers are written with their code", codes)
        if built.suppressed:
            self.log.info("Left out %d suppressed number(s)", built.suppressed)
        self.log.info(
            "Built %d workbook(s) for %d recipient(s) (%d row(s) read)", len(built.parts), built.rows, built.input_rows
        )


__all__ = [
    "MessageCentralBulkSendOperator",
    "MessageCentralFileSendOperator",
    "MessageCentralSendOperator",
]
