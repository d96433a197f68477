"""Connection settings: every field and extra of a ``messagecentral`` connection, parsed in one place."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_messagecentral.client.choices import FLOW_TYPES, MESSAGE_TYPES, check_choice
from airflow_provider_messagecentral.client.store_url import resolve_store_url
from airflow_provider_messagecentral.client.window import SendWindow, parse_send_window
from airflow_provider_messagecentral.exceptions import MessageCentralValidationError

DEFAULT_BASE_URL = "https://cpaas.messagecentral.com"


def _extra_value(extra: dict[str, Any], name: str) -> Any:
    """Read an extra by plain name; accept the legacy ``extra__messagecentral__name`` form too."""
    value = extra.get(name)
    if value in (None, ""):
        value = extra.get(f"extra__messagecentral__{name}")
    return None if value == "" else value


def _number(extra: dict[str, Any], name: str, default: float | None, cast: type) -> Any:
    value = _extra_value(extra, name)
    if value is None:
        return default
    try:
        number = cast(value)
    except (TypeError, ValueError):
        raise ValueError(f"connection extra {name!r} must be a number, got {value!r}") from None
    if number < 0:
        raise ValueError(f"connection extra {name!r} must not be negative, got {value!r}")
    return number


def _flag(extra: dict[str, Any], name: str) -> bool:
    value = _extra_value(extra, name)
    if value is None or isinstance(value, bool):
        return bool(value)
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"connection extra {name!r} must be true or false, got {value!r}")


@dataclass(frozen=True)
class MessageCentralSettings:
    """
    What the hook needs from a ``messagecentral`` connection, every field and extra parsed and checked once.
    ``repr`` shows no secret.

    .. code-block:: python

        settings = MessageCentralSettings.from_connection(BaseHook.get_connection("messagecentral_default"))
        settings.base_url, settings.country, settings.store_url
    """

    conn_id: str
    base_url: str = DEFAULT_BASE_URL
    customer_id: str = ""
    password: str = field(default="", repr=False)
    email: str = ""
    auth_token: str | None = field(default=None, repr=False)
    country: str = "91"
    sender_id: str | None = None
    flow_type: str = "SMS"
    message_type: str = "PROMOTIONAL"
    reports_url: str | None = field(default=None, repr=False)
    reports_conn_id: str | None = None
    timeout: float = 30.0
    connect_timeout: float = 10.0
    max_retries: int = 5
    max_retry_wait: float = 60.0
    rate_limit_per_second: float | None = None
    token_lifetime: float = 24 * 3600.0
    #: the ``send_window`` extra: replaces the default window of PROMOTIONAL traffic; ``None`` with
    #: ``send_window_set`` switches it off ("off" in the extra).
    send_window: SendWindow | None = None
    send_window_set: bool = False
    price_per_segment: float | None = None
    max_cost: float | None = None
    #: read the balance before a campaign and refuse one that would overspend (the ``check_balance`` extra).
    check_balance: bool = False

    @property
    def store_url(self) -> str:
        """
        The SQLAlchemy URL of the report store this connection names: its ``reports_url`` extra, else the
        Airflow connection ``reports_conn_id``, else SQLite under ``$AIRFLOW_HOME``. Looking up
        ``reports_conn_id`` is a blocking call (run it in a thread from async code).
        """
        return resolve_store_url(self.reports_url, self.reports_conn_id)

    @classmethod
    def from_connection(cls, conn: Any) -> MessageCentralSettings:
        """Build settings from an Airflow ``Connection`` (SDK or core); raise ``ValueError`` on bad extras."""
        extra = conn.extra_dejson if hasattr(conn, "extra_dejson") else json.loads(conn.extra or "{}")
        return cls.from_parts(
            conn_id=conn.conn_id,
            host=conn.host,
            login=conn.login,
            password=conn.password,
            port=getattr(conn, "port", None),
            schema=getattr(conn, "schema", None),
            extra=extra,
        )

    @classmethod
    def from_parts(
        cls,
        *,
        conn_id: str,
        host: str | None,
        login: str | None,
        password: str | None,
        extra: dict[str, Any],
        port: int | None = None,
        schema: str | None = None,
    ) -> MessageCentralSettings:
        base_url = (host or "").strip() or DEFAULT_BASE_URL
        if "://" not in base_url:
            base_url = f"{schema or 'https'}://{base_url}"
        if port and base_url.count(":") < 2:
            base_url = f"{base_url}:{port}"
        flow_type = check_choice("connection extra 'flow_type'", _extra_value(extra, "flow_type") or "SMS", FLOW_TYPES)
        message_type = check_choice(
            "connection extra 'message_type'", _extra_value(extra, "message_type") or "PROMOTIONAL", MESSAGE_TYPES
        )
        rate = _number(extra, "rate_limit_per_second", None, float)
        raw_window = _extra_value(extra, "send_window")
        try:
            window = parse_send_window(raw_window)
        except MessageCentralValidationError as err:
            raise ValueError(f"connection extra 'send_window': {err}") from None
        return cls(
            conn_id=conn_id,
            base_url=base_url.rstrip("/"),
            customer_id=(login or "").strip(),
            password=password or "",
            email=str(_extra_value(extra, "email") or ""),
            auth_token=_extra_value(extra, "auth_token"),
            country=str(_extra_value(extra, "country") or "91").lstrip("+"),
            sender_id=_extra_value(extra, "sender_id"),
            flow_type=flow_type,
            message_type=message_type,
            reports_url=_extra_value(extra, "reports_url"),
            reports_conn_id=_extra_value(extra, "reports_conn_id"),
            timeout=_number(extra, "timeout", 30.0, float),
            connect_timeout=_number(extra, "connect_timeout", 10.0, float),
            max_retries=_number(extra, "max_retries", 5, int),
            max_retry_wait=_number(extra, "max_retry_wait", 60.0, float),
            rate_limit_per_second=rate or None,
            token_lifetime=_number(extra, "token_lifetime", 24 * 3600.0, float),
            send_window=window,
            send_window_set=raw_window is not None,
            price_per_segment=_number(extra, "price_per_segment", None, float),
            max_cost=_number(extra, "max_cost", None, float),
            check_balance=_flag(extra, "check_balance"),
        )
