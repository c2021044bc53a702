"""`nulls: send | omit` on every platform: a mapped value that becomes null either clears the
platform's field (send, or the platform's documented behaviour) or is left out so the platform
keeps its value (omit); a choice a platform cannot honour is refused when the config loads.

Each test runs two real materializations against the sandbox: a record with a value, then the
same record with that value null (beside a second record whose value changes, so one request
carries records with different field sets), and reads the emulator's state back."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from dagster import DagsterInstance

from activation_pipeline.config import ConfigError, load_config
from activation_pipeline_tests.conftest import Project, point_at_sandbox, run_metadata
from activation_pipeline_tests.platform_cases import CASES as PLATFORM_CASES
from activation_pipeline_tests.platform_cases import PlatformCase

COLUMNS = ["id", "email", "name", "surname", "tier", "price", "url"]
# each platform's activation: `tier` is the value that becomes null
ACTIVATIONS: dict[str, dict[str, Any]] = {
    "batch": {"object": "products", "mapping": {"name": "name"}, "custom_attributes": ["tier"]},
    "yotpo": {"object": "external_id", "mapping": {"first_name": "name"}, "custom_attributes": ["tier"]},
    "dotdigital": {"object": "list", "title": "Nulls", "identifier": "email", "mapping": {"FIRSTNAME": "name", "tier": "tier"}},
    "connectif": {"object": "products", "mapping": {"name": "name", "unitPrice": "price", "productDetailUrl": "url", "brand": "tier"}},
    "synerise": {"object": "profiles", "mapping": {"email": "email", "firstName": "name", "lastName": "surname"}, "custom_attributes": ["tier"]},
}


def row(i: int, tier: str | None) -> dict[str, Any]:
    return {
        "id": f"P{i}",
        "email": f"person.{i}@example.com",
        "name": f"Name{i}",
        "surname": f"Surname{i}",
        "tier": tier,
        "price": 10.0 + i,
        "url": f"https://shop.example.com/p/{i}",
    }


def held(platform: str, sandbox_url: str) -> dict[str, Any]:
    """What the platform holds for the `tier` value of each record, by id: the value, or MISSING."""

    def get(path: str, **params: Any) -> Any:
        response = requests.get(f"{sandbox_url}/_sandbox/{path}", params=params, timeout=10)
        if response.status_code == 404:  # a Batch catalog not created yet
            return {"items": {}}
        response.raise_for_status()
        return response.json()

    if platform == "batch":
        return {k: v.get("tier", MISSING) for k, v in get("batch/catalogs/products/items")["items"].items()}
    if platform == "yotpo":
        found = get("yotpo/customers", store="sandbox-store")["customers"]
        return {k: (c.get("custom_properties") or {}).get("tier", MISSING) for k, c in found.items()}
    if platform == "dotdigital":
        return {
            f"P{email.split('.')[1].split('@')[0]}": c["dataFields"].get("TIER", MISSING) for email, c in get("dotdigital/state")["contacts"].items()
        }
    if platform == "connectif":
        return {k: p.get("brand", MISSING) for k, p in get("connectif/products")["products"].items()}
    return {p["customId"]: (p.get("attributes") or {}).get("tier", MISSING) for p in get("synerise/profiles")["profiles"]}


MISSING = "<not held>"


class NullsProject(Project):
    """rows.csv → segments.people (keyed by id) → one activation on the platform under test."""

    def __init__(self, root: Path, sandbox: Any, instance: DagsterInstance, case: PlatformCase):
        super().__init__(root, sandbox, instance, case)
        self.platform, self.destination, self.partitions = case.platform, "dest", None
        self.tables, self.sources = {"rows": COLUMNS}, {"rows": {"path": "rows.csv"}}
        self.segments = {"people": {"primary_key": "id", "sql": "SELECT * FROM sources.rows"}}

    def configure(self, nulls: str | None) -> None:
        activation = {"segment": "people", "destination": "dest", "concurrency": 1, **ACTIVATIONS[self.platform]}
        if nulls is not None:
            activation["nulls"] = nulls
        self.activations = {"sync": activation}
        self.write_config()

    def run(self, rows: list[dict[str, Any]]) -> dict[str, Any]:  # type: ignore[override]
        self.write("rows", rows)
        return run_metadata(self.materialize("sync"), "sync")

    def changed_statuses(self) -> dict[str, str]:
        """The ledger's outcome of each record the second run sent as changed."""
        return dict(self.sql("SELECT key, status FROM activation_state.sync_records WHERE change = 'changed'"))


def project_maker(tmp_path: Path, sandbox: Any, instance: DagsterInstance, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], NullsProject]:
    """``make(platform)``: a project on that platform's emulator, with the sandbox's demo credentials."""

    def make(platform: str) -> NullsProject:
        return NullsProject(tmp_path, sandbox, instance, point_at_sandbox(PLATFORM_CASES[platform], sandbox, monkeypatch))

    return make


@pytest.fixture
def nulls_project(tmp_path: Path, sandbox: Any, instance: DagsterInstance, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], NullsProject]:
    return project_maker(tmp_path, sandbox, instance, monkeypatch)


# platform, nulls (None: the platform's default), what the platform holds for P1 once its tier is null
CASES = [
    ("batch", None, None),  # default send: the attribute is stored as null (items/edit `add` replaces the item)
    ("batch", "send", None),
    ("yotpo", None, MISSING),  # default send: "" removes the custom property
    ("yotpo", "send", MISSING),
    ("yotpo", "omit", "gold"),  # left out: Yotpo keeps the property
    ("dotdigital", None, MISSING),  # default send: a null data field is cleared
    ("dotdigital", "send", MISSING),
    ("dotdigital", "omit", "gold"),  # left out of dataFields: Dotdigital keeps it
    ("connectif", None, "gold"),  # default omit: the PATCH merges, Connectif keeps its value
    ("connectif", "omit", "gold"),
    ("synerise", None, MISSING),  # default send: null deletes the custom attribute
    ("synerise", "send", MISSING),
    ("synerise", "omit", "gold"),  # left out: the profile keeps it
]


@pytest.mark.parametrize("platform, nulls, after", CASES)
def test_a_value_that_becomes_null_is_cleared_or_kept_as_the_activation_chooses(nulls_project, platform, nulls, after):
    project = nulls_project(platform)
    project.configure(nulls)
    first = project.run([row(1, "gold"), row(2, "silver")])
    assert first["added_succeeded"] == 2
    assert held(platform, project.sandbox.url) == {"P1": "gold", "P2": "silver"}
    # P1's tier becomes null; P2's changes: one request carries records with different field sets under omit
    second = project.run([row(1, None), row(2, "bronze")])
    assert (second["changed_succeeded"], second["changed_failed"], second["invalid"]) == (2, 0, 0)
    assert held(platform, project.sandbox.url) == {"P1": after, "P2": "bronze"}
    assert project.changed_statuses() == {"P1": "confirmed", "P2": "confirmed"}


@pytest.mark.parametrize(
    "platform, obj, nulls, why",
    [
        ("batch", "products", "omit", "items/edit `add` replaces an item whole"),
        ("connectif", "products", "send", "what Connectif does with a null is undocumented"),
        ("synerise", "catalog:products", "omit", "items/batch stores an item's value whole"),
    ],
)
def test_a_nulls_choice_the_platform_cannot_honour_fails_the_load_with_the_reason(nulls_project, platform, obj, nulls, why):
    project = nulls_project(platform)
    project.configure(nulls)
    document = yaml.safe_load(project.config_path.read_text())
    document["activations"]["sync"]["object"] = obj
    project.config_path.write_text(yaml.safe_dump(document, sort_keys=False))
    with pytest.raises(ConfigError) as error:
        load_config(project.config_path)
    assert (error.value.entry, error.value.field) == ("activations.sync", "nulls")
    assert f"{nulls!r} is not possible on {platform}" in str(error.value) and why in str(error.value)
    assert "use nulls: " in str(error.value)
    assert not project.warehouse.exists()  # nothing ran


def test_an_unknown_nulls_value_names_the_field_and_the_choices(nulls_project):
    project = nulls_project("batch")
    project.configure("clear")
    with pytest.raises(ConfigError) as error:
        load_config(project.config_path)
    assert (error.value.entry, error.value.field) == ("activations.sync", "nulls")
    assert "'send'" in str(error.value) and "'omit'" in str(error.value)
