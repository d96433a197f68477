"""The package's layers (docs/architecture.md): imports point down, never up."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "airflow_provider_messagecentral"
PREFIX = "airflow_provider_messagecentral."
AIRFLOW_FACING = ("hooks", "operators", "sensors", "triggers", "notifications", "plugins", "links")

#: area -> areas of ours it must never import (at module level or inside functions).
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "client": ("reports", "safety", "campaign", *AIRFLOW_FACING),
    "audience": ("reports", "campaign", *AIRFLOW_FACING),
    "safety": ("campaign", *AIRFLOW_FACING),
    "reports": ("campaign", *AIRFLOW_FACING),
    "campaign": ("operators", "sensors", "notifications", "plugins", "links"),
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def _area(module: str) -> str:
    return module[len(PREFIX) :].split(".", 1)[0]


@pytest.mark.parametrize("area", sorted(FORBIDDEN))
def test_lower_layers_never_import_higher_ones(area: str) -> None:
    wrong = sorted(
        f"{path.relative_to(PACKAGE)} imports {module}"
        for path in (PACKAGE / area).rglob("*.py")
        for module in _imports(path)
        if module.startswith(PREFIX) and _area(module) in FORBIDDEN[area]
    )
    assert not wrong, "\n".join(wrong)


def test_no_private_airflow_module_is_imported() -> None:
    wrong = sorted(
        f"{path.relative_to(PACKAGE)} imports {module}"
        for path in PACKAGE.rglob("*.py")
        for module in _imports(path)
        if module.startswith("airflow.") and any(part.startswith("_") for part in module.split(".")[1:])
    )
    assert not wrong, "\n".join(wrong)
