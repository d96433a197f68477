"""
What one receiver app knows: its callback secret, body limit, sender allow-list, report time zone, read-auth
switch and (chosen and opened on first use) its report store. Held on ``app.state.receiver``; the routers read
it with :func:`receiver_config`.

The store is the one the ``messagecentral`` connection names (the one the operators and the sensor read), unless
an explicit URL or ``$MESSAGECENTRAL_REPORTS_URL`` overrides it: see
:func:`~airflow_provider_messagecentral.client.store_url.choose_receiver_store`.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from fastapi import HTTPException, Request

from airflow_provider_messagecentral.client.store_url import StoreChoice, choose_receiver_store, normalize_store_url
from airflow_provider_messagecentral.reports.store import ReportStore, get_store

log = logging.getLogger(__name__)

SECRET_ENV = "MESSAGECENTRAL_CALLBACK_SECRET"  # noqa: S105 (the variable name, not a secret)
MIN_SECRET_LENGTH = 16
#: The label ``/health`` gives a store URL passed to ``create_app(store_url=...)``.
ARGUMENT_SOURCE = "store_url argument"
#: Seconds a failed store choice (unreadable connection, ...) is remembered before it is tried again.
RETRY_CHOICE_AFTER = 30.0


class StoreNotConfigured(Exception):
    """The receiver cannot tell which report store to use (the message says why; it holds no secret)."""


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def resolve_secret(secret: str | None = None) -> str | None:
    """The callback secret: the argument, else ``$MESSAGECENTRAL_CALLBACK_SECRET`` (``None`` when neither)."""
    value = secret if secret is not None else os.environ.get(SECRET_ENV)
    value = (value or "").strip()
    return value or None


def parse_networks(allowed_ips: Sequence[str] | None) -> list[Network]:
    """The sender allow-list as networks; ``ValueError`` naming the entry that is not an address/network."""
    networks = []
    for position, entry in enumerate(allowed_ips or [], start=1):
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError as err:
            raise ValueError(f"allowed_ips #{position} {entry!r} is not an IP address or network") from err
    return networks


@dataclass
class ReceiverConfig:
    """
    The settings of one receiver app and its lazily opened report store.

    Build it with :meth:`create` (which checks the options the way ``create_app`` documents); the routers
    reach it through ``request.app.state.receiver``.

    Example::

        config = ReceiverConfig.create("sqlite:////data/reports.db", secret="a-long-random-secret")
        config.secret_ok("a-long-random-secret")  # True (constant-time comparison)
        config.store_choice().source  # "store_url argument"
    """

    secret: bytes = field(repr=False)
    max_body_bytes: int = 65536
    networks: list[Network] = field(default_factory=list)
    timezone: str = "UTC"
    require_read_auth: bool = True
    #: an explicit store URL (``create_app(store_url=...)``); ``None``: chosen from the connection.
    explicit_store_url: str | None = field(default=None, repr=False)
    #: the ``messagecentral`` connection naming the store (``None``: ``$MESSAGECENTRAL_CONN_ID``, ...).
    conn_id: str | None = None
    _choice: StoreChoice | None = field(default=None, repr=False)
    _choice_error: tuple[float, str] | None = field(default=None, init=False, repr=False)
    _store: ReportStore | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @classmethod
    def create(
        cls,
        store_url: str | None = None,
        secret: str | None = None,
        *,
        max_body_bytes: int = 65536,
        allowed_ips: Sequence[str] | None = None,
        timezone: str = "UTC",
        require_read_auth: bool = True,
        allow_unconfigured: bool = False,
        conn_id: str | None = None,
        choice: StoreChoice | None = None,
    ) -> ReceiverConfig:
        """
        Check the options of ``create_app`` (``ValueError`` on a missing secret, bad limit, address or URL).

        :param choice: a store already chosen (``reports serve`` chooses once and hands it to its workers).
        """
        the_secret = resolve_secret(secret)
        if the_secret is None and not allow_unconfigured:
            raise ValueError(
                f"no callback secret: set the {SECRET_ENV} environment variable (or pass secret=) before "
                "starting the MessageCentral receiver"
            )
        if the_secret is not None and len(the_secret) < MIN_SECRET_LENGTH:
            log.warning(
                "The MessageCentral callback secret is short (%d characters): use %d or more random characters",
                len(the_secret),
                MIN_SECRET_LENGTH,
            )
        if max_body_bytes < 1:
            raise ValueError(f"max_body_bytes must be >= 1, got {max_body_bytes}")
        networks = parse_networks(allowed_ips)
        return cls(
            secret=the_secret.encode("utf-8") if the_secret else b"",
            max_body_bytes=max_body_bytes,
            networks=networks,
            timezone=timezone,
            require_read_auth=require_read_auth,
            explicit_store_url=normalize_store_url(store_url) if store_url else None,
            conn_id=conn_id,
            _choice=choice,
        )

    @property
    def configured(self) -> bool:
        """Whether a callback secret is set (without one, callbacks answer 503)."""
        return bool(self.secret)

    def store_choice(self) -> StoreChoice:
        """
        The report store this receiver writes to and why, chosen on first use and logged (blocking: it may
        look the connection up; call it in a thread from async code). Raises :class:`StoreNotConfigured` when
        the connection cannot be read (tried again after :data:`RETRY_CHOICE_AFTER` seconds).
        """
        if self._choice is not None:
            return self._choice
        with self._lock:
            if self._choice is not None:
                return self._choice
            if self._choice_error is not None and time.monotonic() - self._choice_error[0] < RETRY_CHOICE_AFTER:
                raise StoreNotConfigured(self._choice_error[1])
            try:
                choice = choose_receiver_store(self.explicit_store_url, self.conn_id, explicit_source=ARGUMENT_SOURCE)
            except Exception as err:
                reason = f"cannot choose the report store: {type(err).__name__}: {err}"
                log.error("MessageCentral receiver: %s", reason)
                self._choice_error = (time.monotonic(), reason)
                raise StoreNotConfigured(reason) from err
            log_store_choice(choice)
            self._choice = choice
            return choice

    @property
    def store_url(self) -> str:
        """The SQLAlchemy URL of :meth:`store_choice` (blocking on first use)."""
        return self.store_choice().url

    def store(self) -> ReportStore:
        """The report store, opened on first use (blocking: call it in a thread from async code)."""
        if self._store is None:
            self._store = get_store(self.store_url)  # get_store keeps one store per URL: a race is harmless
        return self._store

    def secret_ok(self, candidate: str | None) -> bool:
        """Whether ``candidate`` is the callback secret (constant-time; never with no secret configured)."""
        if not candidate or not self.secret:
            return False
        return hmac.compare_digest(candidate.encode("utf-8", "surrogateescape"), self.secret)

    def check_sender(self, request: Request) -> None:
        """403 when an allow-list is set and the request's client address is not on it."""
        if not self.networks:
            return
        host = request.client.host if request.client else ""
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        if address is None or not any(address in net for net in self.networks):
            raise HTTPException(status_code=403, detail="sender address not allowed")


def log_store_choice(choice: StoreChoice) -> None:
    """One log line naming the store the receiver writes to (password masked) and why."""
    level = logging.WARNING if choice.warn else logging.INFO
    log.log(
        level, "MessageCentral receiver stores reports in %s (from %s): %s", choice.masked, choice.source, choice.reason
    )


def receiver_config(request: Request) -> ReceiverConfig:
    """FastAPI dependency: the :class:`ReceiverConfig` of the app serving ``request``."""
    config: ReceiverConfig = request.app.state.receiver
    return config
