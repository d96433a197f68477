"""
Bulk-file workbooks: placeholders, rendering, building workbooks from rows and checking users' workbooks.

The code lives in :mod:`.workbook_build` (placeholders, :func:`render`, :func:`build_workbooks`) and
:mod:`.workbook_check` (:func:`check_workbook`, :func:`iter_workbook_rows`); import from here.
"""

from __future__ import annotations

from airflow_provider_messagecentral.audience.workbook_build import (
    PLACEHOLDER_RE,
    BuiltWorkbooks,
    InvalidCell,
    WorkbookPart,
    build_workbooks,
    cell_text,
    placeholders,
    render,
)
from airflow_provider_messagecentral.audience.workbook_check import (
    WorkbookCheck,
    check_workbook,
    column_letter,
    iter_workbook_rows,
    open_checked,
)

__all__ = [
    "PLACEHOLDER_RE",
    "BuiltWorkbooks",
    "InvalidCell",
    "WorkbookCheck",
    "WorkbookPart",
    "build_workbooks",
    "cell_text",
    "check_workbook",
    "column_letter",
    "iter_workbook_rows",
    "open_checked",
    "placeholders",
    "render",
]
