"""
Who gets which count when several callbacks are committed in one transaction (group commit).

A batch holds the requests in arrival order. Each request's answer (``stored``, ``duplicates``,
``ignored_stale``) is what it would have been had the requests been committed one after another in that
order, starting from the rows the transaction holds locked:

* inside one request, its reports of one message are first judged against each other (the one replaced
  never reaches the database and counts as stale, the same status again as a duplicate): :func:`candidates`;
* then each request's surviving report of a message is judged against the message's standing so far
  (what the database held, then what earlier requests of the batch stored): :meth:`BatchAttribution.settle`.

Only the last winner of each message is written; the recipients go through every report stored, in order
(a report in the campaign window may match a recipient that the dateless final report after it cannot).
The judgement is :func:`.precedence.verdict` throughout. One difference from separate commits remains, and
only in the dates of a report row: when reports of one batch replace a message's stored status and then
come back to it (UNDELIV, then DELIVRD, then UNDELIV again, all newer), the answers count each replacement
as stored, but the report upsert sees the same status as stored and keeps the stored row with its dates;
separate commits would have left the last report's dates. Answers, statuses, recipients and campaign
summaries are the same.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from airflow_provider_messagecentral.reports.models import DeliveryReport, IngestResult
from airflow_provider_messagecentral.reports.store.precedence import Standing, verdict


@dataclass(frozen=True)
class IngestRequest:
    """
    One callback's validated reports, as handed to :meth:`IngestRoom.ingest_batch`.

    :param reports: validated reports, in the order the body listed them.
    :param raw_bodies: the received documents, appended to the raw audit table (one row each).
    :param remote: the sender's address, for the audit table.

    Example::

        request = IngestRequest([DeliveryReport(messageId="m1", status="DELIVRD")], ['{"messageId": "m1"}'])
    """

    reports: Sequence[DeliveryReport]
    raw_bodies: Sequence[str] = ()
    remote: str | None = None


#: A request's best report of one message and its standing (computed once per report).
Candidate = tuple[DeliveryReport, Standing]


def candidates(reports: Sequence[DeliveryReport]) -> tuple[dict[str, Candidate], int, int]:
    """
    One report per message of one request (the one that wins among the request's own), with its standing,
    and the counts of the reports that lost there (duplicates, stale): a duplicate status counts as a
    duplicate, a replaced or older one as stale.
    """
    best: dict[str, Candidate] = {}
    duplicates = stale = 0
    for report in reports:
        new = Standing.of(report)
        current = best.get(report.messageId)
        if current is None:
            best[report.messageId] = (report, new)
            continue
        judged = verdict(current[1], new)
        if judged == "store":
            best[report.messageId] = (report, new)
            stale += 1  # the one it replaced never reaches the database
        elif judged == "duplicate":
            duplicates += 1
        else:
            stale += 1
    return best, duplicates, stale


class Settlement(NamedTuple):
    """
    What :meth:`BatchAttribution.settle` decided.

    :param results: one answer per request, in order.
    :param winners: ``messageId -> report`` for every message a report of the batch replaced: the last one
        (the row to write).
    :param stored: every report that replaced its message's standing, in the order the requests would have
        stored them one after another (what the recipients go through).

    Example::

        results, winners, stored = BatchAttribution(requests).settle(held)
    """

    results: list[IngestResult]
    winners: dict[str, DeliveryReport]
    stored: list[DeliveryReport]


class BatchAttribution:
    """
    The requests of one group commit, judged as if committed one after another.

    Example::

        batch = BatchAttribution([IngestRequest([report_a]), IngestRequest([report_a_again])])
        results, winners, _ = batch.settle({})  # nothing stored yet
        assert (results[0].stored, results[1].duplicates) == (1, 1)
    """

    def __init__(self, requests: Sequence[IngestRequest]) -> None:
        self.requests = list(requests)
        self._judged = [candidates(request.reports) for request in self.requests]
        self.message_ids: list[str] = sorted({mid for best, _, _ in self._judged for mid in best})

    def settle(self, held: Mapping[str, Standing | None]) -> Settlement:
        """
        The answer of each request and what each message goes through, starting from ``held``.

        :param held: the stored standing of each message (absent or ``None``: not stored).
        """
        standing: dict[str, Standing | None] = dict(held)
        settled = Settlement([], {}, [])
        for best, duplicates, stale in self._judged:
            stored = 0
            for mid, (report, new) in best.items():
                old = standing.get(mid)
                judged = "store" if old is None else verdict(old, new)
                if judged == "store":
                    stored += 1
                    standing[mid] = new
                    settled.winners[mid] = report
                    settled.stored.append(report)
                elif judged == "duplicate":
                    duplicates += 1
                else:
                    stale += 1
            settled.results.append(IngestResult(stored=stored, duplicates=duplicates, ignored_stale=stale))
        return settled

    def raw_rows(self) -> list[tuple[str | None, str]]:
        """``(remote, body)`` of every raw document of the batch, request by request."""
        return [(request.remote or None, body) for request in self.requests for body in request.raw_bodies]
