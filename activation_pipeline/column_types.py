"""Column types of a source file: the names a config may declare, how text becomes each type,
and the safe inference used when a column is not declared.

Everything here is a Polars expression over whole columns: a 10M-row file is typed without a
Python loop over its rows.
"""

from __future__ import annotations

import re

import polars as pl

COLUMN_TYPES = ("string", "integer", "double", "boolean", "date", "timestamp")
DECIMAL = re.compile(r"decimal\((\d{1,2}),\s*(\d{1,2})\)")
ALLOWED_TYPES = ", ".join(COLUMN_TYPES) + ", decimal(precision, scale)"

WRITTEN_AS_TEXT = r"^(\+|[+-]?0\d)"  # 007, -012 (not 0, 0.5), +4477…: identifiers and phone numbers, not numbers
INTEGER_TEXT = r"^[+-]?\d+$"
LONG_INTEGER_TEXT = r"^[+-]?\d{16,}$"  # more digits than a double keeps exactly
DATE_TEXT = r"^\d{4}-\d{2}-\d{2}$"
TIMESTAMP_TEXT = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}"
BOOLEANS = {"true": True, "false": False}
DECLARED_BOOLEANS = {**BOOLEANS, "1": True, "0": False}


def column_type_problem(name: str) -> str | None:
    """Why ``name`` is not a column type a config may declare (None: it is one)."""
    if name in COLUMN_TYPES:
        return None
    match = DECIMAL.fullmatch(name)
    if match and 1 <= int(match[1]) <= 38 and int(match[2]) <= int(match[1]):
        return None
    return f"{name!r} is not a column type; allowed: {ALLOWED_TYPES} (precision 1-38, scale at most the precision)"


def described(type_name: str) -> str:
    """The type as an error message names it: 'a double', 'an integer', 'a date (YYYY-MM-DD)'."""
    return {
        "integer": "an integer (64-bit)",
        "double": "a double",
        "boolean": "a boolean (true or false)",
        "date": "a date (YYYY-MM-DD)",
        "timestamp": "a timestamp (YYYY-MM-DD HH:MM[:SS[.fff]], optionally T and an offset)",
    }.get(type_name, f"a {type_name} (at most {type_name.split(',')[-1].strip(' )')} decimals)")


def polars_type(type_name: str) -> pl.DataType:
    match = DECIMAL.fullmatch(type_name)
    if match:
        return pl.Decimal(int(match[1]), int(match[2]))
    return {
        "string": pl.String(),
        "integer": pl.Int64(),
        "double": pl.Float64(),
        "boolean": pl.Boolean(),
        "date": pl.Date(),
        "timestamp": pl.Datetime("us"),
    }[type_name]


def parse_text(column: str, type_name: str, *, declared: bool = True) -> pl.Expr:
    """Text of ``column`` as ``type_name``; a value that is not one becomes null (callers compare nulls)."""
    text = pl.col(column)
    if type_name == "string":
        return text
    if declared:  # a quoted empty cell ("") of a typed column is no value (inferred, it keeps the column string)
        text = pl.when(text != "").then(text)
    if type_name == "integer":
        return text.str.to_integer(strict=False)
    if type_name == "boolean":
        choices = DECLARED_BOOLEANS if declared else BOOLEANS
        return text.str.to_lowercase().replace_strict(choices, default=None, return_dtype=pl.Boolean)
    if type_name == "date":
        return text.str.to_date("%Y-%m-%d", strict=False)
    if type_name == "timestamp":
        spaced = text.str.replace("T", " ", literal=True)
        aware = spaced.str.to_datetime("%Y-%m-%d %H:%M:%S%.f%#z", strict=False, time_unit="us")
        return pl.coalesce(
            spaced.str.to_datetime("%Y-%m-%d %H:%M:%S%.f", strict=False, time_unit="us"),
            spaced.str.to_datetime("%Y-%m-%d %H:%M", strict=False, time_unit="us"),
            aware.dt.convert_time_zone("UTC").dt.replace_time_zone(None),  # offsets are stored as UTC
            spaced.str.to_date("%Y-%m-%d", strict=False).cast(pl.Datetime("us")),
        )
    match = DECIMAL.fullmatch(type_name)
    if match:  # a digit beyond the scale would be rounded away: not a value of this type
        parsed = text.cast(polars_type(type_name), strict=False)
        beyond = text.str.contains(rf"\.\d{{{match[2]}}}\d*[1-9]")
        # 1.5e-3 has no digit after the scale as written, yet it is rounded to 0.00
        beyond = beyond | (text.str.contains("[eE]") & (parsed.cast(pl.Float64) != text.cast(pl.Float64, strict=False)).fill_null(False))
        return pl.when(beyond).then(None).otherwise(parsed)
    return text.cast(pl.Float64, strict=False)  # NaN and inf included


def _candidates(first: str) -> list[str]:
    """Types worth checking for a column whose first non-null value is ``first``, narrowest first."""
    if re.fullmatch(INTEGER_TEXT, first):
        return ["integer", "double"]
    if first.lower() in BOOLEANS:
        return ["boolean"]
    if re.fullmatch(DATE_TEXT, first):
        return ["date", "timestamp"]
    if re.match(TIMESTAMP_TEXT, first):
        return ["timestamp"]
    try:
        float(first)
    except ValueError:
        return []
    return ["double"]


def infer_types(frame: pl.DataFrame, skip: set[str]) -> dict[str, str]:
    """The type of each text column not in ``skip``: the narrowest one EVERY non-null value of the
    whole column parses as; a column with leading zeros or a leading +, or any contradicting value,
    stays string."""
    columns = [c for c in frame.columns if c not in skip and frame.schema[c] == pl.String]
    if not columns or frame.height == 0:
        return {}
    firsts = frame.select(pl.col(c).drop_nulls().first() for c in columns).row(0)
    checks: list[pl.Expr] = []
    candidates: dict[str, list[str]] = {}
    for index, (column, first) in enumerate(zip(columns, firsts, strict=True)):
        candidates[column] = _candidates(first) if first is not None else []
        numeric = [t for t in candidates[column] if t in ("integer", "double")]
        if numeric:
            checks.append(pl.col(column).str.contains(WRITTEN_AS_TEXT).any().alias(f"{index}:as_text"))
            checks.append(pl.col(column).str.contains(LONG_INTEGER_TEXT).any().alias(f"{index}:long"))
        checks.append(pl.col(column).null_count().alias(f"{index}:nulls"))
        for kind in candidates[column]:
            checks.append(parse_text(column, kind, declared=False).null_count().alias(f"{index}:{kind}"))
    stats = frame.select(checks).row(0, named=True)
    inferred: dict[str, str] = {}
    for index, column in enumerate(columns):
        if stats.get(f"{index}:as_text"):
            continue
        for kind in candidates[column]:
            if kind == "double" and stats[f"{index}:long"]:
                break  # a 16+ digit integer would lose digits as a double
            if stats[f"{index}:{kind}"] == stats[f"{index}:nulls"]:
                inferred[column] = kind
                break
    return inferred


def first_unparsed(frame: pl.DataFrame, types: dict[str, str]) -> tuple[int, str] | None:
    """(row index, column) of the first value, in file order, that is not of its column's type."""
    if not types or frame.height == 0:
        return None
    failed = frame.select(
        (pl.col(c).is_not_null() & (pl.col(c) != "") & parse_text(c, t).is_null()).arg_true().first().alias(c) for c, t in types.items()
    ).row(0, named=True)
    found = [(row, column) for column, row in failed.items() if row is not None]
    return min(found, key=lambda hit: (hit[0], list(types).index(hit[1]))) if found else None


def apply_types(frame: pl.DataFrame, types: dict[str, str]) -> pl.DataFrame:
    return frame.with_columns(parse_text(c, t).alias(c) for c, t in types.items() if t != "string")


def first_lossy_cast(frame: pl.DataFrame, types: dict[str, str]) -> tuple[int, str] | None:
    """For typed (Parquet) columns: the first value a strict cast to the declared type would lose."""
    exprs = []
    for column, type_name in types.items():
        source, target = frame.schema[column], polars_type(type_name)
        if source == pl.String:
            converted = parse_text(column, type_name)
        else:
            converted = pl.col(column).cast(target, strict=False)
        lost = pl.col(column).is_not_null() & converted.is_null()
        # 1.5 -> 1 and 10:30 on a day -> that day are casts Polars allows; here they are a loss
        if (source.is_numeric() and target.is_numeric()) or (source.is_temporal() and target == pl.Date()):
            lost = lost | (converted.cast(source, strict=False) != pl.col(column)).fill_null(False)
        exprs.append(lost.arg_true().first().alias(column))
    if not exprs or frame.height == 0:
        return None
    failed = frame.select(exprs).row(0, named=True)
    found = [(row, column) for column, row in failed.items() if row is not None]
    return min(found, key=lambda hit: (hit[0], list(types).index(hit[1]))) if found else None


def cast_typed(frame: pl.DataFrame, types: dict[str, str]) -> pl.DataFrame:
    return frame.with_columns(
        (parse_text(c, t) if frame.schema[c] == pl.String else pl.col(c).cast(polars_type(t), strict=False)).alias(c) for c, t in types.items()
    )
