"""
Send operators: one number, the same text to many numbers, and per-recipient texts from an .xlsx workbook.

The operators are thin: they validate their arguments (at ``__init__`` where the values are not templated,
else at ``execute``; always before any HTTP request), load the audience, and call
:class:`~airflow_provider_messagecentral.hooks.messagecentral.MessageCentralHook`. Every send unit goes
through the send ledger (:mod:`airflow_provider_messagecentral.campaign.ledger`), so a retried task never texts a
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
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_messagecentral.audience.phone import PhoneNumber, chunked, parse_number
from airflow_provider_messagecentral.audience.sources import (
    dataframe_rows,
    load_numbers,
    normalize_audience,
    sql_rows,
)
from airflow_provider_messagecentral.audience.workbook import (
    WorkbookPart,
    build_workbooks,
    check_workbook,
    iter_workbook_rows,
    placeholders,
    render,
)
from airflow_provider_messagecentral.audience.workbook_build import _PartWriter
from airflow_provider_messagecentral.campaign.ledger import unit_key
from airflow_provider_messagecentral.client.request import SendRequest
from airflow_provider_messagecentral.exceptions import (
    MessageCentralValidationError,
)
from airflow_provider_messagecentral.hooks.messagecentral import (
    DEFAULT_CHUNK_SIZE,
    MessageCentralHook,
)
from airflow_provider_messagecentral.operators._base import (
    ON_INVALID,
    _is_templated,
    _MessageCentralSendOperator,
    _Plan,
    _Unit,
)
from airflow_provider_messagecentral.safety.cost import (
    SegmentTally,
)
from airflow_provider_messagecentral.safety.preview import SAMPLES
from airflow_provider_messagecentral.safety.suppression import SuppressionList

if TYPE_CHECKING:
    from airflow.sdk import Context


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
        request = self._request(hook)
        country = request.country
        raw = self.mobile_number
        if isinstance(raw, bool) or not isinstance(raw, (str, int)):
            raise MessageCentralValidationError(
                f"mobile_number must be one number as text or integer, got {type(raw).__name__}"
            )
        try:
            number = raw if isinstance(raw, PhoneNumber) else parse_number(raw, country)
        except ValueError as err:
            raise MessageCentralValidationError(f"mobile_number {str(raw)[:40]!r}: {err}") from None
        mobiles = [number.msisdn]
        tally = self._tally(request)
        message_type = request.message_type
        if self._suppression_list(hook, country).lookup(mobiles):
            self.log.warning("+%s is on the suppression list: not texting it", number.msisdn)
            plan = _Plan([], 0, message_type, {number.country_code}, tally, [], suppressed=1)
            return self._nobody_left(context, hook, plan, "single send")
        tally.add(self.message, where=f"task {self.task_id!r} (to +{number.msisdn})")
        key = unit_key("single", mobiles, self.message, request.key_options())
        unit = _Unit(key, f"send to +{number.msisdn}", mobiles, lambda: hook.send_to(number, request))
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
        request = self._request(hook)
        country = request.country
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
        tally = self._tally(request)
        counts = {"invalid": len(audience.invalid), "duplicates": audience.duplicates, "suppressed": len(suppressed)}
        codes = {n.country_code for n in numbers}
        if not numbers:
            plan = _Plan([], 0, request.message_type, codes, tally, [], **counts)
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
        key_options = request.key_options()
        units = [
            _Unit(
                unit_key("bulk", [n.msisdn for n in chunk], self.message, key_options),
                f"chunk {index}/{len(chunks)}",
                [n.msisdn for n in chunk],
                _chunk_sender(hook, chunk, request),
            )
            for index, chunk in enumerate(chunks, start=1)
        ]
        samples = [self._sample(n.e164, self.message, tally) for n in numbers[:SAMPLES]]
        plan = _Plan(units, len(numbers), request.message_type, codes, tally, samples, **counts)
        return self._send_plan(context, hook, plan, what="bulk send")


def _chunk_sender(
    hook: MessageCentralHook, chunk: Sequence[PhoneNumber], request: SendRequest
) -> Callable[[], dict[str, Any]]:
    return lambda: hook.send_chunk(chunk, request)


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
        request = self._request(hook)
        country = request.country
        if self.columns is not None and not isinstance(self.columns, Mapping):
            raise MessageCentralValidationError(
                f"columns must map placeholder names to columns, got {type(self.columns).__name__}"
            )
        key_options = request.key_options()
        tally = self._tally(request)
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
            country_code = codes[0] if len(codes) == 1 else None
            if len(codes) > 1:
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
                        _file_sender(hook, part.path, request, country_code),
                    )
                )
            if suppressed:
                self.log.info("Left out %d suppressed number(s)", suppressed)
            plan = _Plan(
                units,
                recipients,
                request.message_type,
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
    hook: MessageCentralHook, path: Path, request: SendRequest, country_code: str | None
) -> Callable[[], dict[str, Any]]:
    return lambda: hook.send_workbook(path, request, country_code=country_code)


__all__ = [
    "MessageCentralBulkSendOperator",
    "MessageCentralFileSendOperator",
    "MessageCentralSendOperator",
]
