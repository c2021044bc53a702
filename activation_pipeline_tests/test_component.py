"""``activation_pipeline.ActivationsComponent`` in a team's own ``dg`` project, and this repository under ``dg``.

Every ``dg`` command runs as a user runs it, in a subprocess, in a project built in a temporary folder
by ``create-dagster project``, with no network."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from activation_pipeline import ActivationsComponent
from activation_pipeline.assembly import build_definitions
from activation_pipeline.component import ActivationsAttributes
from activation_pipeline.config import ProjectConfig, load_config
from activation_pipeline_tests.conftest import free_port, reset_stats, sandbox_stats, wait_for_webserver

REPO = Path(__file__).resolve().parents[1]
DG = Path(sys.executable).with_name("dg")
COMPONENT = "activation_pipeline.ActivationsComponent"


def user_project(root: Path) -> Path:
    """A new ``dg`` project named shop_data, made by Dagster's own ``create-dagster project`` (offline:
    nothing is installed; the project's ``src/`` is put on the path, as ``pip install -e .`` would)."""
    made = subprocess.run(
        [str(DG.with_name("create-dagster")), "project", str(root), "--no-uv-sync"],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    assert (root / "src" / "shop_data" / "definitions.py").exists()
    return root


def dg(project: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    # this checkout (a worktree may be tested) and the project's own src/, as an installed package would be
    path = os.pathsep.join([str(REPO), str(project / "src")])
    environment = {**os.environ, **(env or {}), "PYTHONPATH": path, "PATH": f"{DG.parent}{os.pathsep}{os.environ['PATH']}", "NO_COLOR": "1"}
    return subprocess.run([str(DG), *args], cwd=project, env=environment, capture_output=True, text=True, timeout=timeout)


def defs_yaml(project: Path) -> Path:
    return project / "src" / "shop_data" / "defs" / "syncs" / "defs.yaml"


def listed(project: Path, env: dict[str, str] | None = None) -> dict[str, set[str]]:
    """What ``dg list defs`` shows: asset keys, check keys, job, schedule and sensor names."""
    answer = dg(project, "list", "defs", "--json", env=env)
    assert answer.returncode == 0, answer.stderr[-3000:]
    found = json.loads(answer.stdout)
    return {
        "assets": {a["asset_key"] for a in found["assets"]},
        "asset_checks": {c["key"] for c in found["asset_checks"]},
        **{kind: {item["name"] for item in found[kind]} for kind in ("jobs", "schedules", "sensors")},
    }


@pytest.fixture
def scaffolded(tmp_path: Path) -> Path:
    project = user_project(tmp_path / "shop_data")
    components = dg(project, "list", "components", "--json")
    assert components.returncode == 0, components.stderr[-3000:]
    assert COMPONENT in {item["key"] for item in json.loads(components.stdout)["items"]}
    answer = dg(project, "scaffold", "defs", COMPONENT, "syncs")
    assert answer.returncode == 0, answer.stderr[-3000:]
    return project


def test_a_scaffolded_component_syncs_its_starter_catalog_to_the_sandbox_and_mirrors_a_change(scaffolded: Path, sandbox: Any) -> None:
    document = yaml.safe_load(defs_yaml(scaffolded).read_text())
    assert document["type"] == COMPONENT
    assert set(document["attributes"]) == {"sources", "segments", "destinations", "activations"}
    checked = dg(scaffolded, "check", "yaml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    env = {"BATCH_BASE_URL": f"{sandbox.url}/batch/2.11", "DAGSTER_HOME": str(scaffolded / "home")}
    (scaffolded / "home").mkdir()

    run = dg(scaffolded, "launch", "--job", "sync_products_to_batch", env=env)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    items = requests.get(f"{sandbox.url}/_sandbox/batch/catalogs/products/items", timeout=10).json()["items"]
    assert items == {"SKU-1": {"name": "Linen shirt", "price": 39.9}, "SKU-2": {"name": "Wool scarf", "price": 24.5}}
    assert (scaffolded / "data" / "warehouse.duckdb").exists()  # the default warehouse is in the project, not in the cwd of a test

    csv = defs_yaml(scaffolded).with_name("products.csv")  # the scarf is on sale and the tote is back: only those two are sent
    csv.write_text(csv.read_text().replace("Wool scarf,24.50", "Wool scarf,19.90").replace("12.00,discontinued", "12.00,in_stock"))
    reset_stats(sandbox)
    run = dg(scaffolded, "launch", "--job", "sync_products_to_batch", env=env)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    items = requests.get(f"{sandbox.url}/_sandbox/batch/catalogs/products/items", timeout=10).json()["items"]
    assert items == {
        "SKU-1": {"name": "Linen shirt", "price": 39.9},
        "SKU-2": {"name": "Wool scarf", "price": 19.9},
        "SKU-3": {"name": "Canvas tote", "price": 12.0},
    }
    assert sandbox_stats(sandbox, "batch")["items_received"] == 2


def test_dg_check_yaml_names_the_field_and_line_of_a_schema_error(scaffolded: Path) -> None:
    path = defs_yaml(scaffolded)
    lines = path.read_text().splitlines()
    wrong = next(i for i, line in enumerate(lines) if line.strip() == "operation: mirror")
    lines[wrong] = lines[wrong].replace("mirror", "mirrror")
    path.write_text("\n".join(lines) + "\n")
    answer = dg(scaffolded, "check", "yaml")
    assert answer.returncode != 0
    output = answer.stdout + answer.stderr
    assert f"defs.yaml:{wrong + 1}" in output
    assert "attributes.activations.products_to_batch.operation" in output
    assert "'mirrror' is not one of ['upsert', 'mirror', 'delete_only', 'update_only']" in output


def test_dg_check_defs_names_defs_yaml_and_the_entry_of_a_reference_to_nothing(scaffolded: Path) -> None:
    path = defs_yaml(scaffolded)
    path.write_text(path.read_text().replace("segment: sellable_products", "segment: sellable_product"))
    assert dg(scaffolded, "check", "yaml").returncode == 0  # well-formed: only the cross-check knows segments
    answer = dg(scaffolded, "check", "defs")
    assert answer.returncode != 0
    assert f"{path}: activations.products_to_batch.segment: 'sellable_product' is not a declared segment" in answer.stdout + answer.stderr


def test_the_component_given_this_repositorys_config_defines_what_this_repository_defines(tmp_path: Path) -> None:
    """Editing defs.yaml into this repository's activations.yaml yields its sources, segments, activations,
    checks, jobs, schedules and sensors; and ``dg list defs`` in this repository lists the same."""
    project = user_project(tmp_path / "shop_data")
    attributes = yaml.safe_load((REPO / "data" / "activations.yaml").read_text())
    for source in attributes["sources"].values():  # the repository's demo files, where they are
        source["path"] = str(REPO / "data" / source["path"])
    attributes["warehouse"] = str(tmp_path / "warehouse.duckdb")
    defs_yaml(project).parent.mkdir(parents=True)
    defs_yaml(project).write_text(yaml.safe_dump({"type": COMPONENT, "attributes": attributes}, sort_keys=False))

    theirs = listed(project)
    ours = listed(REPO, repository_env(tmp_path))  # this repository under dg ([tool.dg] in pyproject.toml)
    assert theirs == ours
    reference = build_definitions(load_config(REPO / "data" / "activations.yaml"), tmp_path / "reference.duckdb")
    assert ours["assets"] == {key.to_user_string() for key in reference.resolve_all_asset_keys()}
    assert ours["schedules"] == {s.name for s in reference.schedules or []}
    assert {"source_files_changed", "record_failed_syncs"} <= ours["sensors"]


def repository_env(tmp_path: Path) -> dict[str, str]:
    """This repository's own config, with a warehouse of the test's (the checkout's may be in use)."""
    return {"ACTIVATION_CONFIG": str(REPO / "data" / "activations.yaml"), "ACTIVATION_WAREHOUSE": str(tmp_path / "repository.duckdb")}


def test_dg_check_defs_and_dg_dev_serve_this_repository(tmp_path: Path) -> None:
    checked = dg(REPO, "check", "defs", env=repository_env(tmp_path))
    assert checked.returncode == 0, (checked.stdout + checked.stderr)[-3000:]
    port, home = free_port(), tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry: {enabled: false}\nnux: {enabled: false}\n")
    log = open(tmp_path / "dg_dev.log", "w")
    path = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    process = subprocess.Popen(
        [str(DG), "dev", "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO,
        env={
            **os.environ,
            **repository_env(tmp_path),
            "DAGSTER_HOME": str(home),
            "PYTHONPATH": path,
            "PATH": f"{DG.parent}{os.pathsep}{os.environ['PATH']}",
        },
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_webserver(url, tmp_path / "dg_dev.log")
        query = "{ assetNodes { assetKey { path } } }"
        nodes = requests.post(f"{url}/graphql", json={"query": query}, timeout=60).json()["data"]["assetNodes"]
        served = {"/".join(node["assetKey"]["path"]) for node in nodes}
        assert served == {key.to_user_string() for key in build_definitions(load_config(), tmp_path / "w.duckdb").resolve_all_asset_keys()}
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # as for dagster dev: started in the background it may ignore SIGINT
        process.wait()


def test_templates_render_everywhere_but_platform_settings_and_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOP_EXPORTS", "/srv/exports")
    monkeypatch.setenv("CONTENT_API", "https://content.example.com/v1")
    component = ActivationsComponent.resolve_from_yaml(
        """
sources:
  articles: {path: "{{ env.SHOP_EXPORTS }}/articles.csv"}
segments:
  journal: {primary_key: article_id, sql: "SELECT article_id, title FROM sources.articles\\n"}
destinations:
  content_api:
    platform: http
    base_url: "{{ env.CONTENT_API }}"
    settings: {upsert: {method: POST, path: "/{object}", body: {items: "{{records}}"}}}
activations:
  articles_to_http:
    segment: journal
    destination: content_api
    object: articles
    mode: full_then_delta
    operation: upsert
    mapping: {title: title}
    options: {record: {id: "{{identifier}}", name: "{{fields.title}}"}}
"""
    )
    config = component.project_config(Path("/srv/project/defs/syncs"))
    assert config.sources["articles"].path == "/srv/exports/articles.csv"
    assert config.destinations["content_api"].base_url == "https://content.example.com/v1"
    assert config.destinations["content_api"].settings["upsert"]["body"] == {"items": "{{records}}"}  # the http destination's own
    assert config.activations["articles_to_http"].options == {"record": {"id": "{{identifier}}", "name": "{{fields.title}}"}}
    assert config.segments["journal"].sql == "SELECT article_id, title FROM sources.articles\n"  # not a template: kept as written
    assert config.path == Path("/srv/project/defs/syncs/defs.yaml")


def test_the_components_attributes_are_activations_yamls_sections() -> None:
    """A section added to activations.yaml's schema and not to the component's fails here."""
    sections = set(ProjectConfig.model_fields) - {"path"}
    assert set(ActivationsAttributes.model_fields) == sections | {"warehouse"}
    assert set(ActivationsComponent.model_fields) == sections | {"warehouse"}
