"""The embedded default needs no optional extra: with the Postgres drivers absent (as after the README's
first command, ``pip install -e .``), the definitions load and a sync runs through ``dagster asset
materialize`` to the sandbox. The drivers are hidden from every process of the run (the CLI's and each
step's) by a ``sitecustomize`` on PYTHONPATH that refuses to import them."""

from __future__ import annotations

import os
from pathlib import Path

from activation_pipeline_tests.conftest import Project, dagster_materialize

HIDDEN = ("psycopg", "psycopg_binary", "psycopg2", "adbc_driver_postgresql", "adbc_driver_manager")

SITECUSTOMIZE = f"""
import sys

class _HideOptionalDrivers:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {HIDDEN!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (hidden by the test: the postgres extra is not installed)")
        return None

sys.meta_path.insert(0, _HideOptionalDrivers())
"""


def test_a_sync_runs_on_the_embedded_default_without_the_postgres_drivers(project: Project, tmp_path: Path) -> None:
    hide = tmp_path / "hide_drivers"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(SITECUSTOMIZE)
    project.write("products", [project.case.row(i, 0) for i in range(5)])
    project.add_activation()  # the case's default activation, sync_products (add_activation writes the config)
    python_path = os.pathsep.join(p for p in (str(hide), os.environ.get("PYTHONPATH", "")) if p)
    env = project.env(PYTHONPATH=python_path)

    done = dagster_materialize("sources/products,segments/catalog,activations/sync_products", env, cwd=tmp_path)

    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert sorted(project.held()) == sorted(project.case.sent_id(project.case.row(i, 0)) for i in range(5))
