"""The Dagster instance of a checkout: `.dagster_home/`, shared by `activation-pipeline demo` and
`dagster dev` run from the repository root, so the UI shows what the demo synced.

`dagster dev` without DAGSTER_HOME reads the repository's dagster.yaml, whose storage keys point
at `.dagster_home/`; the demo opens the same folder as a DAGSTER_HOME whose dagster.yaml holds the
repository's other settings (pools, nux, telemetry): a home without storage keys stores in itself,
in the same layout."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

INSTANCE_FOLDER = ".dagster_home"
STORAGE_KEYS = ("storage", "local_artifact_storage", "compute_logs")


def instance_settings(dagster_yaml: Path) -> dict[str, Any]:
    """The settings of a dagster.yaml without its storage keys (a missing file: no settings)."""
    settings = yaml.safe_load(dagster_yaml.read_text()) if dagster_yaml.exists() else None
    return {key: value for key, value in (settings or {}).items() if key not in STORAGE_KEYS}


def prepare_home(home: Path, dagster_yaml: Path) -> Path:
    """Make ``home`` a DAGSTER_HOME with the settings of ``dagster_yaml``, storing in itself."""
    home.mkdir(parents=True, exist_ok=True)
    text = (
        f"# Written from {dagster_yaml.resolve()} without its storage keys: this instance stores in\n"
        "# this folder. Edit that file, not this one (it is rewritten by `activation-pipeline demo`).\n"
        + yaml.safe_dump(instance_settings(dagster_yaml), sort_keys=False)
    )
    target = home / "dagster.yaml"
    if not target.exists() or target.read_text() != text:
        target.write_text(text)
    return home


def use_project_home(root: Path) -> Path:
    """DAGSTER_HOME as set, or else ``root/.dagster_home`` (prepared, and set for this process)."""
    if os.environ.get("DAGSTER_HOME"):
        return Path(os.environ["DAGSTER_HOME"])
    home = prepare_home(root.resolve() / INSTANCE_FOLDER, root / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)
    return home
