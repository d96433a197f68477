"""
MessageCentralHook: the Airflow face of the MessageCentral client.

The hook holds the operations (sends, pulled delivery reports, credit); its base
:class:`~airflow_provider_messagecentral.hooks.authenticated.AuthenticatedHook` holds the connection's settings,
the pooled session, the token and the one authenticated request path. Their parts live in
:mod:`airflow_provider_messagecentral.client` (settings, request building, transport, responses, tokens, rate
limit, retries, report pages).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from airflow_provider_messagecentral.audience.phone import PhoneNumber, chunked, normalize_numbers, parse_number
from airflow_provider_messagecentral.campaign.progress import ChunkProgress
from airflow_provider_messagecentral.client import transport
from airflow_provider_messagecentral.client.balance import Balance, parse_balance
from airflow_provider_messagecentral.client.pulled import PulledPage, PulledReport, parse_pulled_page
from airflow_provider_messagecentral.client.report_query import DEFAULT_PAGE_SIZE, ReportQuery
from airflow_provider_messagecentral.client.request import SendRequest, build_send_request, workbook_upload
from airflow_provider_messagecentral.client.responses import (
    raise_for_http,
    send_result,
)
from airflow_provider_messagecentral.exceptions import (
    MessageCentralBulkError,
    MessageCentralError,
    MessageCentralValidationError,
)
from airflow_provider_messagecentral.hooks.authenticated import AuthenticatedHook

DEFAULT_CHUNK_SIZE = 500

log = logging.getLogger(__name__)


class MessageCentralHook(AuthenticatedHook):
    """
    Talk to the MessageCentral Message Now API with the credentials of a ``messagecentral`` connection.

    The hook fetches the auth token once and caches it per process (shared by threads and by every hook of
    the same connection) until shortly before it expires, refreshes it once on a 401/403, retries 429
    (honouring ``Retry-After``), 5xx and connection failures with bounded exponential backoff, and caps its
    request rate. Sends that may already have reached MessageCentral (read timeout, dropped connection)
    are not retried: they raise ``MessageCentralUncertainError`` and the caller decides.

    .. code-block:: python

        hook = MessageCentralHook(messagecentral_conn_id="messagecentral_default")
        hook.send_message("9999999999", "Your order has shipped", message_type="TRANSACTIONAL")

    :param messagecentral_conn_id: the Airflow connection (type ``messagecentral``) to use.
    :param token_cache: where tokens are cached; defaults to the process-wide cache.
    """

    # -- sends ------------------------------------------------------------------------------------------

    def _send(self, params: dict[str, str], *, what: str, files: dict[str, Any] | None = None) -> dict[str, Any]:
        """One send; uncertain failures (it may have arrived) are not retried."""
        return self._call(
            "POST",
            transport.SEND_PATH,
            what=what,
            params=params,
            files=files,
            retry_uncertain=False,
            read=lambda resp: send_result(resp, what),
        )

    def prepare_send(self, message: str, **options: Any) -> SendRequest:
        """
        Validate ``message`` and the send options against the connection (no HTTP): the request to send.

        :param options: country_code, flow_type, message_type, sender_id, template_id, entity_id; ``None``
            or empty means the connection's default.
        """
        return build_send_request(self.settings, message, options)

    def send_to(self, number: PhoneNumber, request: SendRequest) -> dict[str, Any]:
        """Send a prepared request to one (already parsed) number; the ``data`` part of the answer."""
        return self._send(request.to_number(number), what=f"send to +{number.msisdn}")

    def send_chunk(self, chunk: Sequence[PhoneNumber], request: SendRequest) -> dict[str, Any]:
        """One bulk request of a prepared request to numbers of one country code."""
        return self._send(request.to_chunk(chunk), what=f"bulk send of {len(chunk)} numbers")

    def send_workbook(
        self,
        workbook: str | os.PathLike[str] | bytes,
        request: SendRequest,
        *,
        filename: str | None = None,
        country_code: str | None = None,
    ) -> dict[str, Any]:
        """
        Upload an .xlsx workbook (path or bytes) with a prepared request; ``##varN##`` placeholders in its
        message are filled from the workbook's columns by MessageCentral.

        Validate the workbook first (``airflow_provider_messagecentral.audience.workbook_check.check_workbook``); this
        method only checks that the content is a zip-based .xlsx of at most 50 MiB.

        :param country_code: dialling code of the workbook's national numbers (default the request's).
        """
        files = workbook_upload(workbook, filename)
        what = f"file send of {files['file'][0]!r}"
        return self._send(request.to_workbook(country_code), what=what, files=files)

    def send_message(self, mobile_number: str | int | PhoneNumber, message: str, **options: Any) -> dict[str, Any]:
        """
        Send ``message`` to one number; return the ``data`` part of the answer (transactionId, ...).

        :param mobile_number: national number (read with ``country_code``, default the connection's
            country) or an international one (``+91...``).
        :param options: country_code, flow_type, message_type, sender_id, template_id, entity_id.
        """
        request = self.prepare_send(message, **options)
        if isinstance(mobile_number, PhoneNumber):
            return self.send_to(mobile_number, request)
        try:
            number = parse_number(mobile_number, request.country)
        except ValueError as err:
            raise MessageCentralValidationError(f"mobile number {str(mobile_number)[:40]!r}: {err}") from None
        return self.send_to(number, request)

    def send_bulk(
        self,
        phone_numbers: Iterable[str | int | PhoneNumber],
        message: str,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        **options: Any,
    ) -> list[dict[str, Any]]:
        """
        Send the same ``message`` to many numbers, ``chunk_size`` per request; one result per chunk.

        Numbers are validated (all of them, before the first request) and de-duplicated. Each result is the
        answer's ``data`` plus ``chunk`` (1-based) and ``recipients`` (msisdn of the chunk). If a chunk fails
        for good, :class:`MessageCentralBulkError` says which chunks were and were not sent.
        """
        request = self.prepare_send(message, **options)
        numbers = self.normalize(phone_numbers, request.country)
        chunks = list(chunked(numbers, chunk_size))
        progress = ChunkProgress(len(chunks), len(numbers), log, what="bulk send")
        results: list[dict[str, Any]] = []
        for index, chunk in enumerate(chunks, start=1):
            try:
                data = self.send_chunk(chunk, request)
            except MessageCentralError as err:
                raise MessageCentralBulkError.after(err, accepted=results, chunk=index, chunks=len(chunks)) from err
            results.append({**data, "chunk": index, "recipients": [n.msisdn for n in chunk]})
            progress.chunk_done(len(chunk))
        return results

    def send_file(
        self,
        workbook: str | os.PathLike[str] | bytes,
        message: str,
        *,
        filename: str | None = None,
        **options: Any,
    ) -> dict[str, Any]:
        """
        Upload an .xlsx workbook (path or bytes) for per-recipient texts: :meth:`prepare_send` then
        :meth:`send_workbook`.
        """
        return self.send_workbook(workbook, self.prepare_send(message, **options), filename=filename)

    # -- reports and credit ---------------------------------------------------------------------------

    def get_detailed_reports(
        self,
        start: datetime,
        end: datetime,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        message_type: str = "SMS",
        max_pages: int | None = None,
    ) -> Iterator[PulledReport]:
        """
        The per-message delivery reports MessageCentral holds for a time window, page by page
        (``POST reports/getDetailedReports``: used by MessageCentral's own app, not in its API docs).

        Rows carry no message id; ``mobile`` has the country code. The API takes whole days, so rows from
        up to a day around the window come back. Each page goes through the rate limit, the token and the
        retries like a send (a read is also retried after a timeout). Arguments are checked when called.

        :param start: start of the window (naive: UTC).
        :param end: end of the window (naive: UTC).
        :param page_size: rows per request (1-1000).
        :param message_type: ``SMS`` or ``OTP``.
        :param max_pages: pages read at most (default 200); a warning says when more may exist.
        """
        query = ReportQuery.build(
            self.settings.customer_id,
            start,
            end,
            page_size=page_size,
            message_type=message_type,
            max_pages=max_pages,
        )

        def fetch(page_no: int) -> PulledPage:
            what = f"detailed reports page {page_no + 1}"
            return self._call(
                "POST",
                transport.REPORTS_PATH,
                what=what,
                params=query.params(page_no),
                retry_uncertain=True,
                read=lambda resp: parse_pulled_page(raise_for_http(resp, what)),
            )

        return query.reports(fetch)

    def get_balance(self) -> Balance | None:
        """
        The account's credit (``GET wallet/credits/balance``: used by MessageCentral's own app, not in its API
        docs); ``None``, with one logged warning, when the account answers 404/405 (no such endpoint).
        """
        what = "balance request"
        balance = self._call(
            "GET",
            transport.BALANCE_PATH,
            what=what,
            params={"customerId": self.settings.customer_id},
            retry_uncertain=True,
            read=lambda resp: parse_balance(resp, what),
        )
        if balance is None:
            log.warning(
                "MessageCentral has no balance endpoint for this account (HTTP 404/405 on %s): the credit is "
                "not known, so it is not checked",
                transport.BALANCE_PATH,
            )
        return balance

    # -- helpers ----------------------------------------------------------------------------------------

    def normalize(
        self, phone_numbers: Iterable[str | int | PhoneNumber], country: str | None = None
    ) -> list[PhoneNumber]:
        """
        Validate and de-duplicate numbers with :func:`~airflow_provider_messagecentral.audience.phone.
        normalize_numbers`; one error lists every invalid number with its position.
        """
        if isinstance(phone_numbers, (str, bytes)):
            raise MessageCentralValidationError(
                "phone_numbers must be a list of numbers, not one string (split it first)"
            )
        items = [n.e164 if isinstance(n, PhoneNumber) else n for n in phone_numbers]
        if not items:
            raise MessageCentralValidationError("phone_numbers is empty: nobody to send to")
        audience = normalize_numbers(items, country or self.settings.country)
        if audience.invalid:
            raise MessageCentralValidationError(audience.error_text())
        return audience.numbers
