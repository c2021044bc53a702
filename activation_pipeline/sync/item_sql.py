"""A declared JSON item (``platforms/json_items.py``) compiled into SQL for the plan statement.

``ItemDialect.compile`` answers two expressions over the plan's columns: ``body``, the item's JSON text,
and ``invalid``, why the record is refused before sending (NULL when it is valid), checked in the order
the client's Python check uses (identifier, then each field in mapping order). It answers a
``Fallback`` naming why when a column's type or the declaration is one it cannot write exactly as the
client's Python would; the engine then builds those items in Python, as before. ``DuckDBItems`` is the
DuckDB dialect; a backend whose dialect lacks one (Postgres, for now) falls back the same way.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from activation_pipeline.platforms.json_items import JsonField, JsonItemShape
from activation_pipeline.sql_identifiers import quote_literal


@dataclass(frozen=True)
class ItemSql:
    body: str
    invalid: str


@dataclass(frozen=True)
class Fallback:
    reason: str


@dataclass(frozen=True)
class ItemColumn:
    """A mapped field as the plan statement holds it: its SQL expression and its database type."""

    name: str
    sql: str
    db_type: str


INTEGER = re.compile(r"^U?(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT)$")


class ItemDialect:
    """What a backend's SQL needs to build an item; ``compile`` is shared, the pieces are the dialect's."""

    def json_object(self, pairs: Sequence[tuple[str, str]]) -> str:
        raise NotImplementedError

    def text_length(self, sql: str) -> str:
        raise NotImplementedError

    def as_text(self, sql: str) -> str:
        raise NotImplementedError

    def value(self, field: JsonField, column: ItemColumn) -> str | None:
        """The column's value as the client's Python would put it in JSON; None: this type is not supported."""
        raise NotImplementedError

    def not_finite(self, sql: str) -> str:
        raise NotImplementedError

    def non_finite_text(self, sql: str) -> str:
        """A NaN or an infinity as Python's ``str`` writes it: nan, inf, -inf."""
        raise NotImplementedError

    def array_problem(self, field: JsonField, column: ItemColumn) -> str | None:
        raise NotImplementedError

    def compile(self, shape: JsonItemShape, identifier: str, columns: Sequence[ItemColumn]) -> ItemSql | Fallback:
        """``identifier``: the SQL of the record's identifier (known not null where the body is used)."""
        pairs: list[tuple[str, str]] = []
        problems: list[tuple[str, str]] = []  # (condition, message SQL), in check order
        if shape.identifier_max_length is not None:
            rule = quote_literal(shape.identifier_rule.format(identifier_max_length=shape.identifier_max_length))
            problems.append((f"{identifier} = '' OR {self.text_length(identifier)} > {shape.identifier_max_length}", rule))
        for column in columns:
            field = shape.field(column.name)
            if field is None:
                return Fallback(f"the item declares no field {column.name!r}")
            value = self.value(field, column)
            if value is None:
                return Fallback(f"{column.name}: a {column.db_type} column is built in Python")
            key = quote_literal(field.key)
            if field.null_key is not None and field.null_key != field.key:
                key = f"CASE WHEN {column.sql} IS NULL THEN {quote_literal(field.null_key)} ELSE {key} END"
            pairs.append((key, value))
            name = field.name
            if field.kind == "float" and field.finite and not column.db_type.startswith("DECIMAL"):
                before, after = (quote_literal(part) for part in field.not_finite.format(name=name, value="\0").split("\0"))
                problems.append((self.not_finite(column.sql), f"{before} || {self.non_finite_text(column.sql)} || {after}"))
            if field.kind == "string" and field.max_length is not None:
                length = self.text_length(column.sql)
                before, after = (
                    quote_literal(part) for part in field.too_long.format(name=name, length="\0", max_length=field.max_length).split("\0")
                )
                problems.append((f"{length} > {field.max_length}", f"{before} || {length} || {after}"))
            if field.kind == "array" and (field.max_items is not None or field.max_item_length is not None):
                condition = self.array_problem(field, column)
                if condition is None:
                    return Fallback(f"{column.name}: a {column.db_type} column is checked in Python")
                message = field.array_rule.format(name=field.name, max_items=field.max_items, max_item_length=field.max_item_length)
                problems.append((condition, quote_literal(message)))
        item: list[tuple[str, str]] = [(quote_literal(shape.identifier_key), identifier)]
        item += [(quote_literal(k), _scalar(v)) for k, v in shape.constants]
        if shape.fields_key is None:
            item += pairs
        else:
            item.append((quote_literal(shape.fields_key), self.json_object(pairs)))
        invalid = "CASE " + " ".join(f"WHEN {c} THEN {m}" for c, m in problems) + " END" if problems else "NULL::VARCHAR"
        return ItemSql(body=self.as_text(self.json_object(item)), invalid=invalid)


def _scalar(value: str | int | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return quote_literal(value)


class DuckDBItems(ItemDialect):
    """DuckDB's JSON extension: ``json_object`` writes strings, numbers (doubles as their shortest round trip,
    as Python's ``json`` does), booleans, lists and nulls exactly as ``json.dumps`` would parse back."""

    def json_object(self, pairs: Sequence[tuple[str, str]]) -> str:
        return f"json_object({', '.join(f'{k}, {v}' for k, v in pairs)})"  # JSON: an object nested in another stays one

    def text_length(self, sql: str) -> str:
        return f"length({sql})"  # code points, as Python's len

    def as_text(self, sql: str) -> str:
        return f"CAST({sql} AS VARCHAR)"

    def not_finite(self, sql: str) -> str:
        return f"NOT isfinite({sql})"

    def non_finite_text(self, sql: str) -> str:
        return f"CASE WHEN isnan({sql}) THEN 'nan' ELSE CAST({sql} AS VARCHAR) END"  # Python's str: a NaN is 'nan', whatever its sign

    def value(self, field: JsonField, column: ItemColumn) -> str | None:
        t, sql = column.db_type, column.sql
        if field.kind == "date":
            if t == "DATE":
                return f"strftime({sql}, '%Y-%m-%d') || 'T00:00:00Z'"
            if t in ("TIMESTAMP", "TIMESTAMP WITH TIME ZONE"):
                moment = f"timezone('UTC', {sql})" if t != "TIMESTAMP" else sql
                # utc_wire: microseconds only when there are some (datetime.isoformat's "auto")
                return (
                    f"strftime({moment}, '%Y-%m-%dT%H:%M:%S') || "
                    f"CASE WHEN strftime({moment}, '%f') = '000000' THEN '' ELSE '.' || strftime({moment}, '%f') END || 'Z'"
                )
            return None
        if t.startswith("DECIMAL"):  # Python sends float(Decimal): the nearest double to the decimal's text
            return f"CAST(CAST({sql} AS VARCHAR) AS DOUBLE)"
        if t in ("HUGEINT", "UHUGEINT"):  # the plan's Parquet holds these as doubles: Python sends the double
            return f"CAST({sql} AS DOUBLE)"
        if t in ("VARCHAR", "BOOLEAN", "DOUBLE", "FLOAT") or INTEGER.match(t):
            return sql
        if t.endswith("[]") and (t[:-2] == "VARCHAR" or INTEGER.match(t[:-2])) and "HUGEINT" not in t:
            return sql
        return None

    def array_problem(self, field: JsonField, column: ItemColumn) -> str | None:
        element = column.db_type[:-2]
        if not (element == "VARCHAR" or INTEGER.match(element)):
            return None  # str() of a float or a nested value differs from SQL's text
        checks = []
        if field.max_items is not None:
            checks.append(f"len({column.sql}) > {field.max_items}")
        if field.max_item_length is not None:  # Python measures str(v): a null element is 'None'
            checks.append(f"list_max(list_transform({column.sql}, lambda v: coalesce(length(CAST(v AS VARCHAR)), 4))) > {field.max_item_length}")
        return "(" + " OR ".join(checks) + ")"
