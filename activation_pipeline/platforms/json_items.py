"""A request item whose shape is plain JSON, declared as data (Batch's catalog items).

A client that declares its item (``JsonItemsClient`` in ``platforms/base.py``) lets the engine build each
item's JSON text and its validity check in the plan statement, vectorised (``sync/item_sql.py``), instead of
a dict per record in Python; the client then only splices those texts into its request bodies. The
declaration says where each mapped field goes, how its value is written, and the rules that refuse a
record before it is sent, with the same messages as the client's own Python check (``invalid_reason``).
"""

from __future__ import annotations

from dataclasses import dataclass

Scalar = str | int | bool


@dataclass(frozen=True)
class JsonField:
    """One mapped field of the item.

    ``key``: its JSON key (Batch: ``date(created)`` for a date); ``null_key``: the key a null value is sent
    under, when it differs (Batch sends a null date as ``created``). ``kind`` is the field's logical type
    (``sync/diff.py``: string, integer, float, bool, date, array); a date is written in UTC with a ``Z``
    (``platforms/http.py`` ``utc_wire``). The rules, each with the message the record is refused with
    (``{name}``, ``{length}``, ``{value}`` and the rule's own numbers are filled in):
    """

    name: str
    key: str
    kind: str
    null_key: str | None = None
    max_length: int | None = None  # string: at most this many characters
    too_long: str = "{name}: string of {length} characters exceeds {max_length}"
    max_items: int | None = None  # array: at most this many elements …
    max_item_length: int | None = None  # … each at most this many characters as text
    array_rule: str = "{name}: arrays hold at most {max_items} strings of {max_item_length} characters"
    finite: bool = False  # float: NaN and infinities refused
    not_finite: str = "{name}: {value} is not a finite number"


@dataclass(frozen=True)
class JsonItemShape:
    """``{identifier_key: identifier, **constants, fields_key: {field.key: value, ...}}`` (fields at the item's
    top level when ``fields_key`` is None). ``identifier_max_length``: an empty identifier, or a longer
    one, is refused with ``identifier_rule``. Every mapped field must be declared in ``fields``."""

    identifier_key: str
    fields: tuple[JsonField, ...]
    constants: tuple[tuple[str, Scalar], ...] = ()
    fields_key: str | None = None
    identifier_max_length: int | None = None
    identifier_rule: str = "identifier must be a non-empty string of at most {identifier_max_length} characters"

    def field(self, name: str) -> JsonField | None:
        return next((f for f in self.fields if f.name == name), None)
