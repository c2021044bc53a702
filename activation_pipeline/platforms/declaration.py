"""``PlatformSpec``: the one object that declares a platform to the rest of the project.

A platform package exports one ``PlatformSpec``; the registry (``platforms/__init__.py``) lists
them. Its capabilities are data (operations per object, item and byte limits, verification, the
null rule), its ``resource`` is the Dagster resource model (secrets, settings and base URL derive
from it) and its ``target`` parses an activation's ``object`` and ``options`` into the typed target
the client is given with every call.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from activation_pipeline.platforms.base import NullChoice, TargetError
from activation_pipeline.platforms.resource import PlatformResource


@dataclass(frozen=True)
class PlatformSpec:
    """What config validation and the asset factories need to know of a platform."""

    name: str
    resource: type[PlatformResource]
    operations: frozenset[str]
    max_items_per_request: int
    # parses (object, options) into the platform's typed target; raises TargetError naming the field
    target: Callable[[str, Mapping[str, Any]], Any] | None = None
    # (object pattern, operations): where some objects take fewer operations than the platform
    object_operations: tuple[tuple[str, frozenset[str]], ...] = ()
    # optional: the platform's words, (object, operation, allowed) -> why, when an object refuses an operation
    operation_refusal: Callable[[str, str, frozenset[str]], str] | None = None
    max_bytes_per_request: int | None = None
    field_pattern: str = r"^[A-Za-z0-9_]+$"
    field_rule: str = "letters, digits and underscores only"
    object_pattern: str = r"^.+$"
    object_rule: str = "any non-empty name"
    # optional: (field, problem) when an activation (config.ActivationConfig) cannot work on this platform
    activation_problem: Callable[[Any], tuple[str, str] | None] | None = None
    activation_options: tuple[str, ...] = ()  # names an activation may set under `options`
    target_options: tuple[str, ...] = ()  # those of them that change which platform record a row addresses
    # more that names the platform object, from (object, title, options): a Dotdigital list is found by its title
    target_details: Callable[[str, str, dict[str, Any]], dict[str, str]] | None = None
    default_schedule: str | None = None  # schedule of an activation that names none (a preset or cron)
    verifies: bool = False  # the client implements VerifyingClient.verify
    # what a null mapped value does when the activation sets no `nulls:`: "send" (the client sends the
    # platform's null / clear) or "omit" (the field is left out of that record: the platform keeps its value)
    nulls_default: NullChoice = "send"
    # (choice, object pattern, why): a `nulls:` choice this platform cannot honour for those objects; the load refuses it
    nulls_refused: tuple[tuple[NullChoice, str, str], ...] = ()

    # --- derived from the resource model ---------------------------------------------------------
    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(self.resource.secret_fields())

    @property
    def settings(self) -> tuple[str, ...]:
        return self.resource.setting_names()

    @property
    def base_url_env(self) -> str:
        """The environment variable a destination's unset base_url falls back to."""
        return self.resource.base_url_env()

    def resource_factory(self, destination: Any) -> PlatformResource:
        return self.resource.from_destination(destination)

    # --- checks the config load runs ---------------------------------------------------------------
    def operations_for(self, object_name: str) -> frozenset[str]:
        """The operations this object takes: its own entry in ``object_operations``, else the platform's."""
        return next((ops for pattern, ops in self.object_operations if re.fullmatch(pattern, object_name)), self.operations)

    def operation_problem(self, object_name: str, operation: str) -> str | None:
        """Why this object does not take ``operation`` (the platform's words if it has some); None if it does."""
        if operation in (allowed := self.operations_for(object_name)):
            return None
        if self.operation_refusal is not None:
            return self.operation_refusal(object_name, operation, allowed)
        return f"{self.name} {object_name!r} supports {', '.join(sorted(allowed))}, not {operation!r}"

    def parse_target(self, object_name: str, options: Mapping[str, Any]) -> Any:
        """The typed target of (object, options); raises TargetError naming the field."""
        return self.target(object_name, options) if self.target is not None else None

    def field_name_problem(self, name: str) -> str | None:
        return None if re.fullmatch(self.field_pattern, name) else f"{self.name} field names allow {self.field_rule}"

    def object_name_problem(self, name: str) -> str | None:
        return None if re.fullmatch(self.object_pattern, name) else f"{self.name} object names allow {self.object_rule}"

    def nulls_problem(self, choice: NullChoice, object_name: str) -> str | None:
        """Why ``nulls: <choice>`` cannot work for this object of this platform; None if it can."""
        return next((why for refused, pattern, why in self.nulls_refused if refused == choice and re.fullmatch(pattern, object_name)), None)


__all__ = ["PlatformSpec", "TargetError"]
