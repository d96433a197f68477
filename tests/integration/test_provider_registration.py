"""The installed package is discovered by the real ``airflow`` CLI, with its connection form."""

from __future__ import annotations

import json
import os
from pathlib import Path

import airflow
import jsonschema
import pytest
from helpers import airflow_cli

from airflow_provider_messagecentral import get_provider_info

pytestmark = pytest.mark.integration


def test_provider_info_validates_against_installed_schema() -> None:
    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), schema)


def test_provider_info_modules_import() -> None:
    import importlib

    info = get_provider_info()
    for section in ("hooks", "operators", "sensors", "triggers"):
        for entry in info[section]:
            for module in entry["python-modules"]:
                importlib.import_module(module)
    for path in info["notifications"] + [c["hook-class-name"] for c in info["connection-types"]]:
        module, _, name = path.rpartition(".")
        assert hasattr(importlib.import_module(module), name), path


def test_airflow_providers_list_shows_the_package(airflow_home: Path) -> None:
    result = airflow_cli("providers", "list", "-o", "json")
    assert result.returncode == 0, result.stderr[-2000:]
    packages = {p["package_name"]: p for p in json.loads(result.stdout)}
    assert "airflow-provider-messagecentral" in packages


def test_airflow_providers_hooks_shows_the_connection_type(airflow_home: Path) -> None:
    result = airflow_cli("providers", "hooks", "-o", "json")
    assert result.returncode == 0, result.stderr[-2000:]
    hooks = {h["connection_type"]: h for h in json.loads(result.stdout)}
    assert hooks["messagecentral"]["class"] == "airflow_provider_messagecentral.hooks.messagecentral.MessageCentralHook"


def test_connection_form_widgets_and_behaviour(airflow_home: Path) -> None:
    widgets = airflow_cli("providers", "widgets", "-o", "json")
    assert widgets.returncode == 0, widgets.stderr[-2000:]
    names = {w["connection_parameter_name"] for w in json.loads(widgets.stdout)}
    for field in ("email", "auth_token", "country", "sender_id", "reports_url"):
        assert f"extra__messagecentral__{field}" in names
    behaviours = airflow_cli("providers", "behaviours", "-o", "json")
    assert behaviours.returncode == 0, behaviours.stderr[-2000:]
    assert "messagecentral" in behaviours.stdout


def test_connections_test_cli_against_the_sandbox(sandbox, airflow_db: Path) -> None:
    from helpers import sandbox_connection

    env = {
        "AIRFLOW_CONN_MC_CLI": json.dumps(sandbox_connection(sandbox.url)),
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
    }
    result = airflow_cli("connections", "test", "mc_cli", env=env)
    out = result.stdout + result.stderr
    assert "Connection success!" in out, out[-2000:]
    assert os.environ.get("AIRFLOW_CONN_MC_CLI") is None


def test_airflow_lists_the_extra_link_and_triggers(airflow_home: Path) -> None:
    links = airflow_cli("providers", "links", "-o", "json")
    assert links.returncode == 0, links.stderr[-2000:]
    assert "airflow_provider_messagecentral.links.messagecentral.MessageCentralDeliveryReportLink" in links.stdout
    triggers = airflow_cli("providers", "triggers", "-o", "json")
    assert triggers.returncode == 0, triggers.stderr[-2000:]
    assert "MessageCentralDeliveryTrigger" in triggers.stdout or "triggers.messagecentral" in triggers.stdout
    assert "triggers.send_window" in triggers.stdout
