"""Names and values from the config inside SQL: the rule a name must follow, and the one way each is quoted.

Every column or table name that reaches a statement goes through ``quote_identifier`` (or
``qualified_name``); every string spliced into a statement that cannot take a bound parameter
(``COPY ... TO``, a fragment shared by several statements) goes through ``quote_literal``.
``identifier_problem`` is checked when the config loads, so a hostile name never gets this far.
"""

from __future__ import annotations

MAX_IDENTIFIER_LENGTH = 255
IDENTIFIER_RULE = (
    f"1 to {MAX_IDENTIFIER_LENGTH} printable characters (spaces, accents and punctuation are fine), "
    'no double quote ("), no control or invisible character, no leading or trailing space'
)


def identifier_problem(name: str) -> str | None:
    """Why ``name`` cannot be a column name here, or None when it can."""
    if not name:
        return f"is empty; allowed: {IDENTIFIER_RULE}"
    if len(name) > MAX_IDENTIFIER_LENGTH:
        return f"{name[:40]!r}… has {len(name)} characters; allowed: {IDENTIFIER_RULE}"
    if '"' in name:
        return f"{name!r} holds a double quote; allowed: {IDENTIFIER_RULE}"
    if not name.isprintable():  # control characters, NUL, line/paragraph separators, zero-width and non-breaking spaces
        return f"{name!r} holds a control or invisible character; allowed: {IDENTIFIER_RULE}"
    if name != name.strip():
        return f"{name!r} starts or ends with a space; allowed: {IDENTIFIER_RULE}"
    return None


def quote_identifier(name: str) -> str:
    """``name`` as a SQL identifier: in double quotes, an embedded double quote doubled."""
    return '"' + name.replace('"', '""') + '"'


def qualified_name(schema: str, name: str) -> str:
    """``schema."name"``: the schema is one of the code's own constants, the name comes from the config."""
    return f"{schema}.{quote_identifier(name)}"


def quote_literal(value: str) -> str:
    """``value`` as a SQL string literal: in single quotes, an embedded single quote doubled."""
    return "'" + str(value).replace("'", "''") + "'"
