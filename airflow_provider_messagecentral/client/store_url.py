"""
Where the report store lives: default SQLite file, Airflow connections, URL normalisation and masking.

One source of truth: the ``messagecentral`` connection's ``reports_url`` / ``reports_conn_id`` extras, read by
the operators (ledger), the sensor and trigger (:attr:`MessageCentralSettings.store_url`) and the receiver
(:func:`choose_receiver_store`, which takes the connection id). ``--store-url`` and
``$MESSAGECENTRAL_REPORTS_URL`` are explicit overrides of the receiver only.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

log = logging.getLogger(__name__)

DEFAULT_DB_NAME = "messagecentral_reports.db"
#: The environment variable that overrides where the delivery-report receiver and its CLI store reports.
STORE_URL_ENV = "MESSAGECENTRAL_REPORTS_URL"
#: The environment variable naming the ``messagecentral`` connection the receiver reads its store from.
CONN_ID_ENV = "MESSAGECENTRAL_CONN_ID"
#: The Airflow configuration option (``[messagecentral] conn_id``, or ``AIRFLOW__MESSAGECENTRAL__CONN_ID``)
#: naming that connection when ``$MESSAGECENTRAL_CONN_ID`` is not set.
CONN_ID_OPTION = ("messagecentral", "conn_id")
DEFAULT_CONN_ID = "messagecentral_default"


def default_store_url() -> str:
    """``sqlite:///$AIRFLOW_HOME/messagecentral_reports.db`` (``AIRFLOW_HOME`` defaults to ``~/airflow``)."""
    home = os.environ.get("AIRFLOW_HOME") or str(Path("~/airflow").expanduser())
    return f"sqlite:///{Path(home).expanduser().resolve() / DEFAULT_DB_NAME}"


def normalize_store_url(url: str) -> str:
    """
    Turn what users write into a SQLAlchemy URL: ``postgres://`` and ``postgresql://`` use psycopg 3.

    Raises ``ValueError`` (without echoing a password) when the URL cannot be parsed.
    """
    text = url.strip()
    for prefix in ("postgres://", "postgresql://"):
        if text.startswith(prefix):
            text = "postgresql+psycopg://" + text[len(prefix) :]
            break
    try:
        make_url(text)
    except ArgumentError as err:
        scheme = text.split(":", 1)[0][:30]
        raise ValueError(
            f"not a database URL (scheme {scheme!r}); expected sqlite:///path or postgresql://..."
        ) from err
    return text


def mask_url(url: str) -> str:
    """The URL with its password replaced by ``***`` (safe for logs, reprs and error texts)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable database URL>"


def connection_database_url(conn: Any) -> str:
    """
    The SQLAlchemy URL of an Airflow SQL connection: its URI (``postgres`` rewritten to psycopg 3, extras that
    are not driver parameters dropped); a ``sqlite`` connection's host is the file path.
    """
    if (conn.conn_type or "").lower() == "sqlite":
        path = conn.host or ""
        return f"sqlite:///{path}" if path else "sqlite://"
    uri = conn.get_uri()
    if "__extra__=" in uri:
        # Extras that are not URL query parameters mean nothing to the database driver.
        uri = uri.partition("?")[0]
    return normalize_store_url(uri)


def resolve_store_url(reports_url: str | None = None, reports_conn_id: str | None = None) -> str:
    """
    The SQLAlchemy URL of the report store.

    ``reports_url`` wins; else the Airflow connection ``reports_conn_id`` (any SQL connection, see
    :func:`connection_database_url`); else :func:`default_store_url`.

    :param reports_url: a SQLAlchemy URL such as ``sqlite:////data/reports.db`` or ``postgresql://u:p@h/db``.
    :param reports_conn_id: an Airflow connection id holding the database.
    """
    if reports_url:
        return normalize_store_url(reports_url)
    if reports_conn_id:
        from airflow.sdk import BaseHook

        return connection_database_url(BaseHook.get_connection(reports_conn_id))
    return default_store_url()


# -- the receiver's store ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoreChoice:
    """
    The report store a receiver writes to, and why.

    :param url: the SQLAlchemy URL (may hold a password: show :attr:`masked`).
    :param source: where it came from: ``"connection <conn_id>"``, ``"MESSAGECENTRAL_REPORTS_URL"``,
        ``"--store-url"`` (or another label of an explicit URL) or ``"default"``.
    :param reason: one line for the log saying why this store.
    :param warn: log it as a warning: the connection is not defined, or an override differs from its store.

    Example::

        choice = choose_receiver_store(conn_id="messagecentral_default")
        print(choice.masked, choice.source)  # postgresql+psycopg://u:***@db/reports connection messagecentral_default
    """

    url: str
    source: str
    reason: str = ""
    warn: bool = False

    @property
    def masked(self) -> str:
        """:attr:`url` with its password replaced by ``***``."""
        return mask_url(self.url)


def receiver_conn_id(explicit: str | None = None) -> str:
    """
    The ``messagecentral`` connection the receiver reads its store from: ``explicit`` (``--conn-id``), else
    ``$MESSAGECENTRAL_CONN_ID``, else the Airflow option ``[messagecentral] conn_id``, else
    ``messagecentral_default``.
    """
    for value in (explicit, os.environ.get(CONN_ID_ENV)):
        if value and value.strip():
            return value.strip()
    try:
        from airflow_provider_messagecentral.compat import conf

        configured = conf.get(*CONN_ID_OPTION, fallback=None)
    except Exception:  # an unreadable airflow.cfg must not hide the default
        log.debug("Cannot read [%s] %s from the Airflow configuration", *CONN_ID_OPTION, exc_info=True)
        configured = None
    return str(configured).strip() if configured and str(configured).strip() else DEFAULT_CONN_ID


def get_airflow_connection(conn_id: str) -> Any | None:
    """
    The Airflow connection ``conn_id``, ``None`` when it is not defined.

    Looked up as tasks do (environment variables, secrets backends and, inside the api-server, the metadata
    database), then, for a process outside Airflow's components (``reports serve``), in the metadata database
    when there is one.
    """
    from airflow.sdk import BaseHook

    from airflow_provider_messagecentral.compat import AirflowNotFoundException

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        if not _metadata_database_exists():
            return None
    from airflow.models.connection import Connection

    try:
        return Connection.get_connection_from_secrets(conn_id)
    except AirflowNotFoundException:
        return None


def _metadata_database_exists() -> bool:
    """Whether Airflow's metadata database is configured and, for SQLite, its file exists (never create one)."""
    from airflow_provider_messagecentral.compat import conf

    url = conf.get("database", "sql_alchemy_conn", fallback=None)
    if not url:
        return False
    try:
        parsed = make_url(url)
    except ArgumentError:
        return False
    if parsed.get_backend_name() == "sqlite":
        return Path(parsed.database or "").is_file() if parsed.database else False
    return True


def connection_store_url(conn_id: str) -> str | None:
    """
    The store the ``messagecentral`` connection ``conn_id`` names (its ``reports_url``, else its
    ``reports_conn_id``'s database, else the default SQLite file); ``None`` when the connection is not defined.
    Raises ``ValueError`` saying what is wrong with the connection's extras.
    """
    from airflow_provider_messagecentral.client.settings import MessageCentralSettings

    conn = get_airflow_connection(conn_id)
    if conn is None:
        return None
    try:
        settings = MessageCentralSettings.from_connection(conn)
    except ValueError as err:
        raise ValueError(f"connection {conn_id!r}: {err}") from None
    if settings.reports_url or not settings.reports_conn_id:
        return resolve_store_url(settings.reports_url)
    database = get_airflow_connection(settings.reports_conn_id)
    if database is None:
        raise ValueError(
            f"connection {conn_id!r} names reports_conn_id {settings.reports_conn_id!r}, which is not defined"
        )
    return connection_database_url(database)


def choose_receiver_store(
    explicit: str | None = None, conn_id: str | None = None, *, explicit_source: str = "--store-url"
) -> StoreChoice:
    """
    Where the receiver (``reports serve``, the api-server plugin, the ``summary``/``suppression`` commands)
    stores reports: ``explicit`` (``--store-url``) wins, else ``$MESSAGECENTRAL_REPORTS_URL``, else the store
    the ``messagecentral`` connection names (:func:`receiver_conn_id`), else — the connection is not defined —
    :func:`default_store_url`. ``$MESSAGECENTRAL_REPORTS_URL`` (ambient, easily left behind) is compared with
    the connection's store and a difference is a warning (the sensor and the operators read the
    connection's); an explicit URL is taken as it is. ``ValueError`` on an unreadable URL or connection.
    """
    if explicit:  # deliberate: no connection is looked up (Airflow need not be configured at all)
        return StoreChoice(normalize_store_url(explicit), explicit_source, f"set by {explicit_source}")
    name = receiver_conn_id(conn_id)
    if os.environ.get(STORE_URL_ENV):
        url = normalize_store_url(os.environ[STORE_URL_ENV])
        reason, differs = _override_reason(url, STORE_URL_ENV, name)
        return StoreChoice(url, STORE_URL_ENV, reason, warn=differs)
    from_connection = connection_store_url(name)
    if from_connection is not None:
        return StoreChoice(from_connection, f"connection {name}", f"the store connection {name!r} names")
    return StoreChoice(
        default_store_url(),
        "default",
        f"connection {name!r} is not defined, so the default SQLite store is used; the operators and the "
        f"sensor cannot use a connection that does not exist: define {name!r} (its reports_url extra) or "
        f"set {CONN_ID_ENV} to the connection they use",
        warn=True,
    )


def _override_reason(url: str, source: str, conn_id: str) -> tuple[str, bool]:
    """Why an override is used, and whether it differs from the store the connection names."""
    try:
        named = connection_store_url(conn_id)
    except Exception as err:  # the override is what counts; the comparison is advice only
        return f"set by {source}; connection {conn_id!r} cannot be read ({type(err).__name__})", False
    if named is None:
        return f"set by {source} (connection {conn_id!r} is not defined)", False
    if named == url:
        return f"set by {source}; connection {conn_id!r} names the same store", False
    return (
        f"set by {source}, which OVERRIDES the store connection {conn_id!r} names ({mask_url(named)}): the "
        "operators and the delivery sensor read the connection's store, not this one"
    ), True
