"""
The HTTP transport: the API's paths, the pooled session, one request with transport failures turned into our
errors, and the ``key`` URL parameter (the base64 password) kept out of urllib3's debug log.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from airflow_provider_messagecentral.client.retries import transport_error
from airflow_provider_messagecentral.exceptions import MessageCentralError

TOKEN_PATH = "/auth/v1/authentication/token"  # noqa: S105 - a URL path, not a password
SEND_PATH = "/verification/v3/send"
#: Used by MessageCentral's own app, not in its API docs (see docs/messagecentral-api.md).
REPORTS_PATH = "/reports/getDetailedReports"
BALANCE_PATH = "/wallet/credits/balance"


class _RedactKeyParam(logging.Filter):
    """urllib3 logs request URLs at DEBUG; the token URL carries the base64 password in ``key``."""

    _pattern = re.compile(r"([?&]key=)[^&\s\"']+")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.args = tuple(self._pattern.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = self._pattern.sub(r"\1***", record.msg)
        return True


logging.getLogger("urllib3.connectionpool").addFilter(_RedactKeyParam())


def new_session(base_url: str | None = None) -> requests.Session:
    """
    A keep-alive session with a pool large enough for threaded sends; retries are ours, not urllib3's.

    :param base_url: the API this session talks to. ``requests`` reads the environment on every request
        (proxy variables, ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``, ``~/.netrc``): for one API that is the
        same answer each time, so it is read once here, for ``base_url``, and kept in the session.
    """
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=32, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers.update({"accept": "*/*"})
    if base_url:
        session.proxies.update(requests.utils.get_environ_proxies(base_url))
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        if bundle:
            session.verify = bundle
        netrc_auth = requests.utils.get_netrc_auth(base_url)
        if netrc_auth:
            session.auth = netrc_auth
        session.trust_env = False  # what it would read is in the session now
    return session


def request(
    session: requests.Session, method: str, url: str, *, what: str, timeout: tuple[float, float], **kwargs: Any
) -> requests.Response:
    """One HTTP request; transport failures become our errors with no URL (and so no key) in them."""
    failure: MessageCentralError | None = None
    try:
        resp = session.request(method, url, timeout=timeout, **kwargs)
    except requests.RequestException as err:
        failure = transport_error(err, what)
    if failure is not None:
        raise failure  # raised outside the except block: the original error (and its URL) is not chained
    return resp
