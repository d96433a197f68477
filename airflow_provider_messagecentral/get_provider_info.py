"""What Airflow's ProvidersManager learns of this provider: connection form, hooks, operators, triggers, links."""

from __future__ import annotations

from typing import Any

from airflow_provider_messagecentral import __version__

_PKG = "airflow_provider_messagecentral"
_INTEGRATION = "MessageCentral"


def get_provider_info() -> dict[str, Any]:
    """Describe this provider to Airflow's ProvidersManager (``apache_airflow_provider`` entry point)."""
    return {
        "package-name": "airflow-provider-messagecentral",
        "name": "MessageCentral",
        "description": "SMS, WhatsApp and RCS campaigns through the MessageCentral Message Now API, "
        "with delivery reports received, stored and waited on.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": _INTEGRATION,
                "external-doc-url": "https://www.messagecentral.com/product/message-now/api",
                "tags": ["service"],
            }
        ],
        "connection-types": [
            {
                "connection-type": "messagecentral",
                "hook-class-name": f"{_PKG}.hooks.messagecentral.MessageCentralHook",
                "hook-name": "MessageCentral",
                "conn-fields": _CONN_FIELDS,
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port"],
                    "relabeling": {
                        "host": "Base URL",
                        "login": "Customer ID",
                        "password": "Account password",
                    },
                    "placeholders": {
                        "host": "https://cpaas.messagecentral.com",
                        "login": "C-24C217810E09483",
                        "password": "MessageCentral account password (base64-encoded by the hook)",
                    },
                },
            }
        ],
        "hooks": [{"integration-name": _INTEGRATION, "python-modules": [f"{_PKG}.hooks.messagecentral"]}],
        "operators": [{"integration-name": _INTEGRATION, "python-modules": [f"{_PKG}.operators.messagecentral"]}],
        "sensors": [{"integration-name": _INTEGRATION, "python-modules": [f"{_PKG}.sensors.messagecentral"]}],
        "triggers": [
            {
                "integration-name": _INTEGRATION,
                "python-modules": [f"{_PKG}.triggers.messagecentral", f"{_PKG}.triggers.send_window"],
            }
        ],
        "notifications": [f"{_PKG}.notifications.messagecentral.MessageCentralNotifier"],
        "extra-links": [f"{_PKG}.links.messagecentral.MessageCentralDeliveryReportLink"],
    }


def _field(label: str, description: str, kind: str = "string", **schema: Any) -> dict[str, Any]:
    return {"label": label, "description": description, "schema": {"type": [kind, "null"], **schema}}


# Numbers are stored as JSON numbers, not strings: Airflow registers every string value of a connection's
# extra with its secret masker, and warns ("Skipping masking for a secret as it's too short") in every task
# and trigger for short ones such as a country code "91". Numbers are not registered.


_CONN_FIELDS: dict[str, Any] = {
    "email": _field("Registered e-mail", "E-mail registered with MessageCentral (sent on token requests)."),
    "auth_token": _field(
        "Pre-issued auth token",
        "Optional. A token issued by MessageCentral; when set the hook skips the token call.",
        format="password",
    ),
    "country": _field("Account country code", "Dialling code of the account, e.g. 91.", "integer", default=91),
    "sender_id": _field("Default sender ID", "Registered sender id, e.g. UTOMOB."),
    "flow_type": _field(
        "Default flow type",
        "SMS, WHATSAPP, RCS or SAUTH.",
        default="SMS",
        enum=["SMS", "WHATSAPP", "RCS", "SAUTH", None],
    ),
    "message_type": _field(
        "Default message type",
        "PROMOTIONAL, TRANSACTIONAL or OTP.",
        default="PROMOTIONAL",
        enum=["PROMOTIONAL", "TRANSACTIONAL", "OTP", None],
    ),
    "reports_url": _field(
        "Reports database URL",
        "SQLAlchemy URL of the delivery-report store. Default: SQLite under $AIRFLOW_HOME.",
    ),
    "reports_conn_id": _field(
        "Reports database connection id",
        "Airflow connection of the delivery-report store (instead of a URL).",
    ),
    "timeout": _field(
        "Timeout (s)",
        "Read timeout in seconds (the connect_timeout extra sets the connect timeout, default 10).",
        "number",
        default=30,
    ),
    "max_retries": _field("Max retries", "Retries of 429/5xx/connection errors per request.", "integer", default=5),
    "rate_limit_per_second": _field(
        "Rate limit (requests/s)", "Client-side cap on requests per second for one hook; empty = none.", "number"
    ),
    "send_window": _field(
        "Promotional send window",
        "When PROMOTIONAL messages may go out, e.g. '09:00-21:00 Asia/Kolkata' (replaces that default for "
        "Indian numbers); 'off' for none. A task's send_window wins.",
    ),
    "price_per_segment": _field(
        "Price per SMS segment", "Optional. Used to estimate a campaign's cost (dry-run preview, max_cost).", "number"
    ),
    "max_cost": _field(
        "Campaign budget (max cost)",
        "Optional. Campaigns whose estimated cost is higher are refused before sending.",
        "number",
    ),
    "check_balance": _field(
        "Check the balance before sending",
        "Read the account's credit balance before a campaign and refuse one whose estimated cost is higher "
        "(needs the price per segment; built on an endpoint MessageCentral's own app uses but does not document).",
        "boolean",
        default=False,
    ),
}
