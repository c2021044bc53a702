"""Cross-checks of a parsed activations.yaml: names, references between entries, each platform's own
rules, and every name that reaches SQL. Each problem is a ConfigError naming the entry and field."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from activation_pipeline.config_file import ConfigError
from activation_pipeline.platforms import PLATFORMS
from activation_pipeline.platforms.base import TargetError
from activation_pipeline.platforms.resource import base_url_problem
from activation_pipeline.sql_identifiers import identifier_problem

if TYPE_CHECKING:
    from activation_pipeline.config import ProjectConfig

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,62}$")  # sources, segments, destinations, activations


def check_references(config: ProjectConfig) -> None:
    path = config.path
    for kind in ("sources", "segments", "destinations", "activations"):
        for name in getattr(config, kind):
            if not NAME_PATTERN.fullmatch(name):
                raise ConfigError(path, f"{kind}.{name}", "", "names are lowercase letters, digits and underscores, starting with a letter")
    partitioned = [n for n, source in config.sources.items() if source.partition_column]
    if partitioned and config.partitions is None:
        raise ConfigError(
            path, f"sources.{partitioned[0]}", "partition_column", "a partitioned source needs partitions.start_date at the top of the file"
        )
    for name, segment in config.segments.items():
        for table in segment.referenced_tables("sources"):
            if table not in config.sources:
                raise ConfigError(path, f"segments.{name}", "sql", f"reads sources.{table}, which is not declared under sources")
        for table in segment.referenced_tables("segments"):
            if table not in config.segments or table == name:
                raise ConfigError(path, f"segments.{name}", "sql", f"reads segments.{table}, which is not another declared segment")
    for name, destination in config.destinations.items():
        spec = PLATFORMS.get(destination.platform)
        if spec is None:
            raise ConfigError(
                path, f"destinations.{name}", "platform", f"{destination.platform!r} is not supported; allowed: {', '.join(sorted(PLATFORMS))}"
            )
        unknown = set(destination.secrets) - set(spec.secrets)
        if unknown:
            raise ConfigError(
                path, f"destinations.{name}", f"secrets.{sorted(unknown)[0]}", f"unknown secret; {spec.name} takes {', '.join(spec.secrets)}"
            )
        if problem := base_url_problem(destination.base_url, spec.base_url_env):  # at load, not at the first run
            raise ConfigError(path, f"destinations.{name}", "base_url", problem)
        for secret, env_name in destination.secrets.items():
            if not re.fullmatch(r"[A-Z_][A-Z0-9_]*", env_name):
                raise ConfigError(
                    path, f"destinations.{name}", f"secrets.{secret}", "must name an environment variable (UPPER_CASE), never hold the secret itself"
                )
    for name, activation in config.activations.items():
        entry = f"activations.{name}"
        if name == "prune":  # `activation-pipeline ledger prune` is a command
            raise ConfigError(path, entry, "", "the name 'prune' is reserved (`activation-pipeline ledger prune`); choose another")
        if activation.segment not in config.segments:
            raise ConfigError(
                path, entry, "segment", f"{activation.segment!r} is not a declared segment; declared: {', '.join(sorted(config.segments))}"
            )
        if activation.destination not in config.destinations:
            raise ConfigError(
                path,
                entry,
                "destination",
                f"{activation.destination!r} is not a declared destination; declared: {', '.join(sorted(config.destinations))}",
            )
        spec = PLATFORMS[config.destinations[activation.destination].platform]
        if activation.operation not in spec.operations:
            raise ConfigError(path, entry, "operation", f"{spec.name} supports {', '.join(sorted(spec.operations))}, not {activation.operation!r}")
        if problem := spec.operation_problem(activation.object, activation.operation):
            raise ConfigError(path, entry, "operation", problem)
        limit = activation.max_items_per_request
        if limit is not None and limit > spec.max_items_per_request:
            raise ConfigError(
                path, entry, "max_items_per_request", f"{limit} exceeds {spec.name}'s limit of {spec.max_items_per_request} items per request"
            )
        for field in [*activation.mapping, *activation.custom_attributes]:
            problem = spec.field_name_problem(field)
            if problem:
                where = f"mapping.{field}" if field in activation.mapping else "custom_attributes"
                raise ConfigError(path, entry, where, f"{field!r}: {problem}")
        if "{scope}" in activation.object and activation.scope is None:
            raise ConfigError(path, entry, "object", f"{activation.object!r} names {{scope}} but the activation has no scope")
        objects = [activation.object.replace("{scope}", v) for v in activation.scope.values] if activation.scope else [activation.object]
        object_problem = next(filter(None, map(spec.object_name_problem, objects)), None)
        if object_problem:
            raise ConfigError(path, entry, "object", f"{activation.object!r}: {object_problem}")
        if activation.scope is not None and config.segment_partition_column(activation.segment) is not None:
            raise ConfigError(
                path, entry, "scope", f"segment {activation.segment!r} is partitioned by day; a scope applies to unpartitioned segments only"
            )
        for option in sorted(set(activation.options) - set(spec.activation_options)):
            allowed = ", ".join(spec.activation_options) or "none"
            raise ConfigError(path, entry, f"options.{option}", f"unknown option; {spec.name} takes {allowed}")
        for object_name in objects:  # the platform's target model: what the object and options name, typed
            try:
                spec.parse_target(object_name, dict(activation.options))
            except TargetError as refused:
                raise ConfigError(path, entry, refused.field, str(refused)) from None
        if activation.nulls is not None and (why := spec.nulls_problem(activation.nulls, activation.object)):
            raise ConfigError(path, entry, "nulls", f"{activation.nulls!r} is not possible on {spec.name} {activation.object!r}: {why}")
        for other in activation.after:
            if other not in config.activations or other == name:
                raise ConfigError(
                    path,
                    entry,
                    "after",
                    f"{other!r} is not another declared activation; declared: {', '.join(sorted(set(config.activations) - {name}))}",
                )
        if activation.schedule is None and spec.default_schedule is not None:
            # the platform's default (Dotdigital: every six hours)
            activation = config.activations[name] = activation.model_copy(update={"schedule": spec.default_schedule})
        if spec.activation_problem is not None:  # a platform's own rules (e.g. Yotpo's identity rules)
            found = spec.activation_problem(activation)
            if found:
                raise ConfigError(path, entry, *found)


def check_run_order(config: ProjectConfig) -> None:
    """``after:`` becomes asset deps: a cycle would fail the code location with Dagster's own error, so say where."""
    state: dict[str, str] = {}  # name -> "visiting" | "done"

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            cycle = trail[trail.index(name) :] + [name]
            raise ConfigError(config.path, f"activations.{trail[-1]}", "after", f"a cycle: {' -> '.join(cycle)} (each runs after the next)")
        state[name] = "visiting"
        for other in config.activations[name].after:
            visit(other, [*trail, name])
        state[name] = "done"

    for name in config.activations:
        visit(name, [])


def check_identifiers(config: ProjectConfig) -> None:
    """Every name that reaches SQL follows sql_identifiers' rule (entry names follow NAME_PATTERN); checked after
    the platforms' field-name rules, which say more. A mapping's platform field becomes an f__<field> alias."""
    named = [(f"sources.{n}", "partition_column", s.partition_column) for n, s in config.sources.items()]
    named += [(f"segments.{n}", f, getattr(s, f)) for n, s in config.segments.items() for f in ("primary_key", "partition_column")]
    for name, activation in config.activations.items():
        entry = f"activations.{name}"
        named += [(entry, "identifier", activation.identifier), (entry, "scope.column", activation.scope.column if activation.scope else None)]
        named += [(entry, f"mapping.{field}", n) for field, column in activation.mapping.items() for n in (field, column)]
        named += [(entry, "custom_attributes", column) for column in activation.custom_attributes]
    for entry, field, column in named:
        if column is not None and (problem := identifier_problem(column)):
            raise ConfigError(config.path, entry, field, f"name {problem}")
