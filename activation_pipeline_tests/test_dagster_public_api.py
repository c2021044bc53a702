"""Only Dagster's public API: no module of the repository (package, tests, benchmarks, scripts)
imports a private ``dagster._…`` module (or one of a Dagster library's, ``dagster_graphql._…``),
which may change in any release."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRIVATE = re.compile(r"^dagster(_\w+)?\._")
SKIPPED = {"artifacts", "build", "dist", "node_modules", "__pycache__"}


def python_files() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*.py") if not any(part.startswith(".") or part in SKIPPED for part in p.relative_to(ROOT).parts))


def private_uses(source: str) -> list[tuple[int, str]]:
    """(line, name) of every private Dagster module imported, or reached as an attribute of ``dagster``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if PRIVATE.match(alias.name)]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]  # `from dagster import _check` too
            found += [(node.lineno, name) for name in names if PRIVATE.match(name)][:1]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and PRIVATE.match(f"{node.value.id}.{node.attr}"):
            found.append((node.lineno, f"{node.value.id}.{node.attr}"))
    return sorted(found)


def test_the_guard_sees_every_way_of_reaching_a_private_module():
    source = "\n".join(
        [
            "import dagster._core",
            "from dagster._utils import x",
            "from dagster import _check",
            "import dagster",
            "dagster._config",
            "from dagster_graphql._x import y",
        ]
    )
    assert [line for line, _ in private_uses(source)] == [1, 2, 3, 5, 6]
    assert private_uses("from dagster import EnvVar, schedule\nimport dagster_graphql\nimport dagster\ndagster.EnvVar\n") == []


def test_no_module_of_the_repository_uses_dagster_private_api():
    files = python_files()
    assert any(p.name == "definitions.py" for p in files) and any(p.parent.name == "benchmarks" for p in files)
    offenders = [f"{path.relative_to(ROOT)}:{line}: {name}" for path in files for line, name in private_uses(path.read_text())]
    assert offenders == [], "private Dagster API (use the public one: `from dagster import ...`):\n" + "\n".join(offenders)
