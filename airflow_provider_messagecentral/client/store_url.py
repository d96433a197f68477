"""Where the report store lives: default SQLite file, Airflow connections, URL normalisation and masking."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

DEFAULT_DB_NAME = "messagecentral_reports.db"
#: The environment variable that overrides where the delivery-report receiver and its CLI store reports.
STORE_URL_ENV = "MESSAGECENTRAL_REPORTS_URL"


def default_store_url() -> str:
    """``sqlite:///$AIRFLOW_HOME/messagecentral_reports.db`` (``AIRFLOW_HOME`` defaults to ``~/airflow``)."""
    home = os.environ.get("AIRFLOW_HOME") or str(Path("~/airflow").expanduser())
    return f"sqlite:///{Path(home).expanduser().resolve() / DEFAULT_DB_NAME}"


def receiver_store_url(explicit: str | None = None) -> str:
    """
    Where the receiver (app, plugin, ``python -m airflow_provider_messagecentral.reports``) stores reports.

    ``explicit`` (``--store-url``, ``create_app(store_url=...)``) wins; else ``$MESSAGECENTRAL_REPORTS_URL``;
    else :func:`default_store_url`. Returned normalised (see :func:`normalize_store_url`).
    """
    return normalize_store_url(explicit or os.environ.get(STORE_URL_ENV) or default_store_url())


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


def resolve_store_url(reports_url: str | None = None, reports_conn_id: str | None = None) -> str:
    """
    The SQLAlchemy URL of the report store.

    ``reports_url`` wins; else the Airflow connection ``reports_conn_id`` (any SQL connection: its URI,
    ``postgres`` rewritten to psycopg 3; a ``sqlite`` connection's host is the file path); else
    :func:`default_store_url`.

    :param reports_url: a SQLAlchemy URL such as ``sqlite:////data/reports.db`` or ``postgresql://u:p@h/db``.
    :param reports_conn_id: an Airflow connection id holding the database.
    """
    if reports_url:
        return normalize_store_url(reports_url)
    if reports_conn_id:
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(reports_conn_id)
        if (conn.conn_type or "").lower() == "sqlite":
            path = conn.host or ""
            return f"sqlite:///{path}" if path else "sqlite://"
        uri = conn.get_uri()
        if "__extra__=" in uri:
            # Extras that are not URL query parameters mean nothing to the database driver.
            base, _, _query = uri.partition("?")
            uri = base
        return normalize_store_url(uri)
    return default_store_url()
