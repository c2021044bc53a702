"""activations.yaml as a document: read as UTF-8, parsed as YAML (``yaml.safe_load``'s semantics),
with every problem of the file itself (unreadable, not YAML, a key given twice) a ``ConfigError``
that names the line."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MERGE_TAG = "tag:yaml.org,2002:merge"


class ConfigError(ValueError):
    """activations.yaml is invalid; the message names file, entry, field and what is allowed."""

    def __init__(self, path: Path | str, entry: str, field: str, problem: str):
        self.path, self.entry, self.field, self.problem = str(path), entry, field, problem
        where = ".".join(part for part in (entry, field) if part)
        super().__init__(f"{path}: {where}: {problem}")


class _ConfigLoader(yaml.SafeLoader):
    """SafeLoader whose impossible dates (``2026-02-30``) are YAML errors with their line, not a bare ValueError."""

    def construct_yaml_timestamp(self, node: ScalarNode) -> date | datetime:
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError as exc:
            raise yaml.constructor.ConstructorError(None, None, f"{node.value!r} is not a valid date ({exc})", node.start_mark) from None


_ConfigLoader.add_constructor("tag:yaml.org,2002:timestamp", _ConfigLoader.construct_yaml_timestamp)


def read_document(path: Path) -> Any:
    """The file's YAML document (None when empty); ConfigError when it cannot be read or parsed."""
    if not path.exists():
        raise ConfigError(path, "", "", "file not found (set ACTIVATION_CONFIG to its path)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(path, "", "", f"not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    except OSError as exc:
        raise ConfigError(path, "", "", f"cannot be read ({exc.strerror or exc})") from None
    loader = None
    try:
        loader = _ConfigLoader(text)  # it already reads: a control character fails here
        node = loader.get_single_node()
        if node is None:
            return None
        _refuse_duplicate_keys(path, loader, node, [], set())
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise ConfigError(path, "", "", _yaml_problem(exc)) from None
    except RecursionError:
        raise ConfigError(path, "", "", "not valid YAML here (nested too deeply)") from None
    finally:
        if loader is not None:
            loader.dispose()


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark, context_mark = getattr(exc, "problem_mark", None), getattr(exc, "context_mark", None)
    line = f"line {mark.line + 1}: " if mark else ""
    problem = getattr(exc, "problem", None) or exc
    # "while parsing a flow sequence" started elsewhere: say where, an unclosed bracket is found only at its end
    context = getattr(exc, "context", None)
    if context and context_mark and (not mark or context_mark.line != mark.line):
        problem = f"{problem}, {context} that starts on line {context_mark.line + 1}"
    return f"{line}not valid YAML ({problem})"


def _refuse_duplicate_keys(path: Path, loader: yaml.SafeLoader, node: Node, where: list[str], seen: set[int]) -> None:
    """A key given twice in one mapping (two activations with one name, a field mapped twice) is refused,
    naming both lines: YAML would silently keep the last. Keys brought in by a ``<<`` merge may be overridden."""
    if id(node) in seen:  # an alias: its node was checked where it was defined
        return
    seen.add(id(node))
    if isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            _refuse_duplicate_keys(path, loader, item, [*where, str(index)], seen)
    if not isinstance(node, MappingNode):
        return
    first_seen: dict[Any, Any] = {}  # key -> its Mark
    for key_node, value_node in node.value:
        scalar = isinstance(key_node, ScalarNode)
        # compared as YAML will build them (`yes` and `true` are one key); a `<<` merge key has no value of its own
        key = "<<" if key_node.tag == MERGE_TAG else loader.construct_object(key_node, deep=True) if scalar else None
        name = str(key)
        if scalar:
            if key in first_seen:
                location, first, again = [*where, name], first_seen[key], key_node.start_mark
                lines = (
                    f"on lines {first.line + 1} and {again.line + 1}"
                    if first.line != again.line
                    else f"on line {first.line + 1} (columns {first.column + 1} and {again.column + 1})"
                )
                raise ConfigError(path, ".".join(location[:2]), ".".join(location[2:]), f"given twice, {lines}; each key once in a mapping")
            first_seen[key] = key_node.start_mark
        _refuse_duplicate_keys(path, loader, value_node, [*where, name], seen)


UNION_TAGS = {"str", "CronSchedule"}  # pydantic's branch names in the locations of schedule errors


def most_specific(errors: list[Any]) -> Any:
    """The first error, unless the same field has one that is not a mere type mismatch: a union
    (``schedule``: a preset string or ``{cron, timezone}``) reports every branch, and the branch
    the input's shape chose says what is wrong."""
    first = errors[0]
    for error in errors:
        if error["loc"][:3] == first["loc"][:3] and not error["type"].endswith("_type"):
            return error
    return first


def describe_error(error: Mapping[str, Any]) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown field (check its spelling against the README's config reference)"
    if error["type"] == "missing":
        return "required field is missing"
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "literal_error":
        return f"got {error.get('input')!r}; {message}"
    return message


def entry_lines(path: Path) -> dict[tuple[str, str], int]:
    """The 1-based line of each entry (``("activations", "products_to_batch")``) in a file ``read_document`` accepted:
    where an asset's code reference points."""
    loader = _ConfigLoader(path.read_text(encoding="utf-8"))
    try:
        root = loader.get_single_node()
    finally:
        loader.dispose()
    lines: dict[tuple[str, str], int] = {}
    for section, entries in root.value if isinstance(root, MappingNode) else []:
        if isinstance(section, ScalarNode) and isinstance(entries, MappingNode):
            for entry, _ in entries.value:
                if isinstance(entry, ScalarNode):
                    lines.setdefault((section.value, entry.value), entry.start_mark.line + 1)
    return lines
