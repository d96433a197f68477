"""
A long list of values as one bound value of a statement, whatever its length.

An ``IN (...)`` list takes one parameter per value, so long lists were read in chunks (one query each), and rows
made from a list were bound one parameter set per row. Here the list is one parameter: a PostgreSQL array, or a
JSON array that SQLite reads with ``json_each``. :func:`one_of` tests a column against it (the database finds
the values through the column's index); :func:`each_of` is a table of its values, to select rows from.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from sqlalchemy import String, any_, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect


def _bound(dialect: Dialect, values: Collection[str], name: str) -> Any:
    if dialect.name == "postgresql":
        return bindparam(name, list(values), type_=ARRAY(String))
    return bindparam(name, json.dumps(list(values), separators=(",", ":")))


def each_of(dialect: Dialect, values: Collection[str], name: str = "each_of") -> Any:
    """
    A table of ``values`` (text, in order) with one column ``value``, bound as one value named ``name``.

    Example::

        listed = each_of(conn.dialect, numbers)
        conn.execute(insert(table).from_select(["mobile"], select(listed.c.value)))
    """
    if dialect.name == "postgresql":  # unnest's column is named after its alias: name it
        return func.unnest(_bound(dialect, values, name)).table_valued("value").render_derived()
    return func.json_each(_bound(dialect, values, name)).table_valued("value")


def one_of(dialect: Dialect, column: Any, values: Collection[str], name: str = "one_of") -> Any:
    """
    The condition ``column`` is one of ``values`` (text), with the list bound as one value named ``name``.

    Example::

        query = select(t.suppression.c.mobile).where(one_of(conn.dialect, t.suppression.c.mobile, numbers))
    """
    if dialect.name == "postgresql":
        return column == any_(_bound(dialect, values, name))
    return column.in_(select(each_of(dialect, values, name).c.value))
