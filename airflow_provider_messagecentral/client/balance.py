"""
The account's credit, from ``GET wallet/credits/balance?customerId=...``: an endpoint MessageCentral's own app
reads (``WalletBalanceDto``) but its API docs do not list. Its answer as the app reads it::

    {"responseCode": 200, "message": "SUCCESS",
     "data": {"customerId": "C-...", "credits": 1234.5, "lastRechargedCredit": 2000.0,
              "createdDateTime": "...", "updatedDateTime": "...", "minimumCreditsAllowed": "0",
              "userPaid": true}}

An account without the endpoint (HTTP 404 or 405) has no balance to read: ``None``, never an error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import requests

from airflow_provider_messagecentral.client.error_codes import is_success, refusal
from airflow_provider_messagecentral.client.responses import data_of, raise_for_http
from airflow_provider_messagecentral.exceptions import MessageCentralError

#: Answers meaning "this account has no balance endpoint".
NOT_AVAILABLE = (404, 405)


def _amount(value: object) -> float | None:
    """A number or numeric text as a float; ``None`` when absent, not a number or not finite."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


@dataclass(frozen=True)
class Balance:
    """
    The account's credit as MessageCentral reports it (in the account's credit units).

    :param credits: what is left.
    :param minimum_allowed: ``minimumCreditsAllowed``, the floor the account may not go under (``None``: not given).
    :param last_recharged: ``lastRechargedCredit``, the last top-up.
    :param customer_id: the account it is of.
    """

    credits: float
    minimum_allowed: float | None = None
    last_recharged: float | None = None
    customer_id: str | None = None

    @property
    def spendable(self) -> float:
        """Credits that may still be spent: ``credits`` less ``minimum_allowed`` (never below 0)."""
        return max(0.0, self.credits - (self.minimum_allowed or 0.0))


def parse_balance(resp: requests.Response, what: str = "balance request") -> Balance | None:
    """
    Read a balance answer: ``None`` for HTTP 404/405 (no such endpoint on this account), the named error of a
    refusal, else the :class:`Balance`. ``credits`` may be a number or numeric text.
    """
    if resp.status_code in NOT_AVAILABLE:
        return None
    body = raise_for_http(resp, what)
    code = body.get("responseCode")
    if code is not None and not is_success(code):
        reason = body.get("message") or "no reason given"
        raise refusal(code, f"{what}: MessageCentral refused it: {reason}", http_status=resp.status_code)
    data = data_of(body)
    credits = _amount(data.get("credits"))
    if credits is None:
        raise MessageCentralError(
            f"{what}: the answer carried no 'credits' number (got {str(data.get('credits'))[:40]!r})",
            http_status=resp.status_code,
        )
    customer = data.get("customerId")
    return Balance(
        credits=credits,
        minimum_allowed=_amount(data.get("minimumCreditsAllowed")),
        last_recharged=_amount(data.get("lastRechargedCredit")),
        customer_id=None if customer is None else str(customer),
    )
