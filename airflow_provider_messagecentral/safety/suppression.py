"""
Suppression (opt-out, do-not-contact): numbers that must never be texted.

Two sources, combined: the task's ``suppression`` argument (a list of numbers, a CSV/text file, or a SQL query
through an Airflow SQL connection) and the suppression table of the report store (``mc_suppression``), which
users and pipelines append to: STOP replies collected elsewhere, numbers whose reports keep coming back
``REJECTD``. Numbers are compared in msisdn form (country code + national number, digits only), after the same
normalisation the audience gets, so ``09816100001``, ``+91 98161 00001`` and ``919816100001`` are one number.

A small API for the table::

    from airflow_provider_messagecentral.safety.suppression import suppress, unsuppress, list_suppression

    suppress(["+91 98161 00001"], reason="STOP reply", store_url="postgresql+psycopg://...")

and a CLI: ``python -m airflow_provider_messagecentral.reports suppression add|remove|list``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_provider_messagecentral.audience.phone import Audience, PhoneNumber, normalize_numbers
from airflow_provider_messagecentral.audience.sources import NUMBER_HEADER_WORDS, read_number_file, sql_rows
from airflow_provider_messagecentral.exceptions import MessageCentralValidationError
from airflow_provider_messagecentral.reports.store import ReportStore, get_store

log = logging.getLogger(__name__)

_SQL_RE = re.compile(r"^\s*(select|with)\b", re.IGNORECASE)
#: Numbers looked up in the store per query.
STORE_BATCH = 1_000


def is_sql(value: str) -> bool:
    """Whether a ``suppression`` string is a query (starts with SELECT or WITH) rather than a file path."""
    return bool(_SQL_RE.match(value))


def _normalise(numbers: Iterable[object], country: str) -> Audience:
    """The suppression entries through the one normaliser (other values, e.g. a query's Decimals, as text)."""
    return normalize_numbers((n if isinstance(n, (str, int)) else str(n) for n in numbers), country)


@dataclass
class SuppressionList:
    """
    The numbers (msisdn) of a task's ``suppression`` argument, plus the store's table when one is given.

    :param numbers: suppressed numbers from the argument, in msisdn form.
    :param store: the report store whose suppression table is consulted too (``None``: not consulted).
    :param unreadable: entries of the argument that are not phone numbers (ignored, counted for the log).
    :param origin: where the argument's numbers came from, for the log.

    Example::

        suppression = load_suppression(["9816100001"], "91", store=get_store(url))
        keep, dropped = suppression.split(numbers)
    """

    numbers: frozenset[str] = frozenset()
    store: ReportStore | None = None
    unreadable: int = 0
    origin: str = "none"
    _cache: dict[str, bool] = field(default_factory=dict, repr=False)
    _store_holds: bool | None = field(default=None, repr=False)

    @property
    def active(self) -> bool:
        """Whether anything can be suppressed: numbers from the argument, or in the store's table (asked once)."""
        return bool(self.numbers) or self._consults_store()

    def lookup(self, msisdns: Iterable[str]) -> set[str]:
        """
        The suppressed numbers among ``msisdns``.

        The store's table is asked once whether it holds any number; when it does, each batch of
        :data:`STORE_BATCH` numbers is one query (answers are remembered), else only the argument's numbers count.
        """
        given = list(msisdns)
        if not self._consults_store():
            return {m for m in given if m in self.numbers}
        assert self.store is not None
        wanted = [m for m in dict.fromkeys(given) if m not in self._cache]
        for start in range(0, len(wanted), STORE_BATCH):
            batch = wanted[start : start + STORE_BATCH]
            found = self.store.suppressed_among(batch)
            for m in batch:
                self._cache[m] = m in found or m in self.numbers
        return {m for m in given if self._cache[m]}

    def _consults_store(self) -> bool:
        """Whether the store's table has numbers to look up (asked once, on the first lookup)."""
        if self.store is None:
            return False
        if self._store_holds is None:
            self._store_holds = self.store.any_suppressed()
        return self._store_holds

    def split(self, numbers: Sequence[PhoneNumber]) -> tuple[list[PhoneNumber], list[PhoneNumber]]:
        """``(kept, suppressed)``, both in input order."""
        found = self.lookup(n.msisdn for n in numbers)
        return [n for n in numbers if n.msisdn not in found], [n for n in numbers if n.msisdn in found]

    def describe(self) -> str:
        parts = []
        if self.origin != "none":
            parts.append(f"{len(self.numbers)} number(s) from the {self.origin}")
        if self.store is not None:
            parts.append(f"the suppression table of {self.store.masked_url}")
        return " and ".join(parts) or "nothing"


def _first_number_column(row: Mapping[str, object]) -> str:
    for word in NUMBER_HEADER_WORDS:
        for name in row:
            if word in str(name).lower():
                return str(name)
    return str(next(iter(row)))


def _sql_numbers(sql: str, conn_id: str | None) -> Iterator[object]:
    if not conn_id:
        raise MessageCentralValidationError(
            "suppression is a SQL query: give suppression_conn_id= (an Airflow SQL connection) too"
        )
    column: str | None = None
    for row in sql_rows(sql, conn_id):
        if column is None:
            if not row:
                raise MessageCentralValidationError("the suppression query returned rows without columns")
            column = _first_number_column(row)
        yield row.get(column)


def load_suppression(
    value: object,
    country: str,
    *,
    conn_id: str | None = None,
    store: ReportStore | None = None,
) -> SuppressionList:
    """
    Read a task's ``suppression`` argument.

    :param value: ``None``; a list/tuple/set of numbers; the path of a ``.csv``/``.tsv`` (number column found
        by its header, like audiences) or ``.txt`` file (one number per line); or a SQL query (``SELECT ...``)
        run through ``conn_id``, whose column named like mobile/phone/number (else the first) holds numbers.
    :param country: dialling code for national numbers (the campaign's).
    :param conn_id: the Airflow SQL connection of a query.
    :param store: the report store whose suppression table is consulted too.
    :raises MessageCentralValidationError: for a missing file, a query without connection, or another type.
    """
    raw: Iterable[object]
    if value is None or value == "" or value == []:
        raw, origin = [], "none"
    elif isinstance(value, (list, tuple, set, frozenset)):
        raw, origin = list(value), "suppression list"
    elif isinstance(value, Path) or (isinstance(value, str) and not is_sql(value)):
        path = Path(str(value).strip())
        if not path.is_file():
            raise MessageCentralValidationError(
                f"suppression file {str(path)!r} does not exist (give a list of numbers, a .csv/.txt file or SQL)"
            )
        raw, origin = read_number_file(path).values, f"suppression file {path.name!r}"
    elif isinstance(value, str):
        raw, origin = _sql_numbers(value, conn_id), "suppression query"
    else:
        raise MessageCentralValidationError(
            f"suppression must be a list of numbers, a file path or a SQL query, got {type(value).__name__}"
        )
    audience = _normalise((item for item in raw if item is not None and str(item).strip() != ""), country)
    numbers = {n.msisdn for n in audience.numbers}
    unreadable = len(audience.invalid)
    if unreadable:
        log.warning("%d entr(y/ies) of the %s are not phone numbers and were ignored", unreadable, origin)
    return SuppressionList(frozenset(numbers), store, unreadable, origin)


# -- the store's suppression table -----------------------------------------------------------------------------


def _msisdns(numbers: Iterable[object], country: str) -> list[str]:
    """The numbers in msisdn form; refuses the lot when an entry is not a phone number."""
    audience = _normalise(numbers, country)
    if audience.invalid:
        bad = ", ".join(repr(i.raw) for i in audience.invalid[:10])
        raise MessageCentralValidationError(f"not phone numbers: {bad}")
    return [n.msisdn for n in audience.numbers]


def suppress(numbers: Iterable[object], *, reason: str = "", country: str = "91", store_url: str | None = None) -> int:
    """
    Add numbers to the store's suppression table (normalised with ``country``); returns how many were new.

    :raises MessageCentralValidationError: when an entry is not a phone number (nothing is added).
    """
    return get_store(store_url).add_suppressed(_msisdns(numbers, country), reason=reason)


def unsuppress(numbers: Iterable[object], *, country: str = "91", store_url: str | None = None) -> int:
    """Remove numbers from the store's suppression table; returns how many were on it."""
    return get_store(store_url).remove_suppressed(_msisdns(numbers, country))


def list_suppression(page: int = 1, page_size: int = 100, *, store_url: str | None = None) -> dict[str, Any]:
    """One page of the suppression table: ``{"items": [{"mobile", "reason", "added_at"}], "total", ...}``."""
    return get_store(store_url).list_suppressed(page=page, page_size=page_size)


__all__ = [
    "SuppressionList",
    "is_sql",
    "list_suppression",
    "load_suppression",
    "suppress",
    "unsuppress",
]
