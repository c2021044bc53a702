"""The Dotdigital target model: what an activation's ``object`` and ``options`` address.

``list`` is the contacts of a list (an address book) named after the activation's title, or given by
``options.list_id``; ``insight:<collection>`` and ``contact_insight:<collection>`` are account- and
contact-scoped insight data. Sources and choices: docs/platforms/dotdigital.md.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from activation_pipeline.platforms.base import TargetError

Kind = Literal["list", "insight", "contact_insight"]
LIST: Kind = "list"
ACCOUNT_INSIGHT: Kind = "insight"
CONTACT_INSIGHT: Kind = "contact_insight"
# the schema ``collectionName`` of the v3 insight data service (developer.dotdigital.com/reference-link/importinsightdata)
COLLECTION_NAME = r"[-A-Za-z_][-A-Za-z0-9_]{1,255}"
OBJECT_PATTERN = rf"^(list|insight:{COLLECTION_NAME}|contact_insight:{COLLECTION_NAME})$"
OBJECT_RULE = (
    "list (contacts in the list named after the title), insight:<collection> (account-scoped insight data) "
    "or contact_insight:<collection> (contact-scoped, e.g. orders); <collection> is an alias under the "
    "destination's settings.collections or a collection name matching ^[-A-Za-z_][-A-Za-z0-9_]{1,255}$"
)
MAX_LIST_NAME = 128
MATCH_IDENTIFIERS = ("email", "mobileNumber")
MERGE_OPTIONS = ("overwrite", "overwriteIfNotEmpty", "overwriteIfEmpty")
COLLECTION_TYPES = (
    "cartInsight",
    "catalog",
    "consentInsight",
    "custom",
    "easyEditorExtensions",
    "nostoEmailCampaigns",
    "orders",
    "productCategories",
    "webInsight",
    "wishList",
)
OPTIONS = ("list_id", "match_identifier", "merge_option", "collection_type", "contact_email")
LIST_OPTIONS = frozenset({"list_id", "match_identifier", "merge_option"})
INSIGHT_OPTIONS = frozenset({"collection_type", "contact_email"})


@dataclass(frozen=True)
class DotdigitalTarget:
    """A list's contacts, or an insight data collection (by alias or name), with the options that shape the import."""

    kind: Kind
    collection: str = ""  # insight: the alias or collection name after the colon
    collection_type: str = ""
    contact_email: str = ""  # contact_insight: the platform field holding the contact's email
    match_identifier: str = "email"  # list: the contact identifier the records carry
    merge_option: str = "overwrite"
    list_id: int | None = None  # list: given by options.list_id, else found by the title

    @property
    def is_list(self) -> bool:
        return self.kind == LIST

    @property
    def scope(self) -> str:
        """The insight import's ``collectionScope``."""
        return "contact" if self.kind == CONTACT_INSIGHT else "account"

    @classmethod
    def parse(cls, object_name: str, options: Mapping[str, Any]) -> DotdigitalTarget:
        if not re.fullmatch(OBJECT_PATTERN, object_name):
            raise TargetError("object", f"{object_name!r}: dotdigital object names allow {OBJECT_RULE}")
        kind, _, collection = object_name.partition(":")
        allowed = LIST_OPTIONS if kind == LIST else INSIGHT_OPTIONS - ({"contact_email"} if kind == ACCOUNT_INSIGHT else set())
        for option in sorted(set(options) - allowed):
            raise TargetError(f"options.{option}", f"not an option of a Dotdigital {kind} activation; it takes {', '.join(sorted(allowed))}")
        if kind == LIST:
            return cls(
                LIST,
                match_identifier=_choice(options, "match_identifier", MATCH_IDENTIFIERS, "email"),
                merge_option=_choice(options, "merge_option", MERGE_OPTIONS, "overwrite"),
                list_id=_list_id(options),
            )
        if kind == CONTACT_INSIGHT:
            return cls(
                CONTACT_INSIGHT,
                collection,
                _choice(options, "collection_type", COLLECTION_TYPES, "orders"),
                contact_email=options.get("contact_email", "email"),
            )
        return cls(ACCOUNT_INSIGHT, collection, _choice(options, "collection_type", COLLECTION_TYPES, "catalog"))


def _choice(options: Mapping[str, Any], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = options.get(name, default)
    if value not in allowed:
        raise TargetError(f"options.{name}", f"{value!r}; allowed: {', '.join(allowed)}")
    return value


def _list_id(options: Mapping[str, Any]) -> int | None:
    list_id = options.get("list_id")
    if list_id is not None and (isinstance(list_id, bool) or not isinstance(list_id, int) or list_id <= 0):
        raise TargetError("options.list_id", f"{list_id!r} is not a list id (a positive integer)")
    return list_id


# a contact-scoped record is deleted per contact, and one that left the segment carries no contact email
OBJECT_OPERATIONS = ((rf"^{CONTACT_INSIGHT}:{COLLECTION_NAME}$", frozenset({"upsert"})),)


def operation_refusal(object_name: str, operation: str, allowed: frozenset[str]) -> str:
    """The load's words when an object does not take an operation (PlatformSpec.operation_refusal)."""
    kind = object_name.partition(":")[0]
    why = (
        ": contact-scoped insight records are deleted per contact, and a record that left the segment carries no contact email"
        if kind == CONTACT_INSIGHT
        else ""
    )
    return f"Dotdigital {kind} activations support {', '.join(sorted(allowed))}, not {operation!r}{why}"


def list_named_by_title(object_name: str, title: str, options: dict[str, Any]) -> dict[str, str]:
    """A list without ``list_id`` is found (or created) by its name, the title: a new title is another list."""
    # not parsed: the object may still hold an activation's unreplaced {scope}
    return {"list": title[:MAX_LIST_NAME]} if object_name == LIST and "list_id" not in options else {}
