"""Connectif's bulk CSV import: a large upsert run goes through ``POST /imports`` instead of one PATCH
per product, and only the rows the import confirmed advance the snapshot. Real materializations against
the sandbox's emulator; every assertion lands on what the emulator holds and counted."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests

from activation_pipeline_tests.conftest import Project
from activation_pipeline_tests.platform_cases import connectif_expected as expected
from activation_pipeline_tests.platform_cases import connectif_item as item

BULK = {"bulk_import_min_records": 20, "bulk_import_rows": 25}  # 20+ products: imports of at most 25


@pytest.fixture
def connectif(project_for: Callable[[str], Project]) -> Project:
    project = project_for("connectif")
    project.destination_settings = dict(BULK)
    project.add_activation()
    return project


def requests_by_method(project: Project) -> dict[str, int]:
    """``METHOD path-kind`` -> count, from the emulator's log of recent requests (imports, polls, reports, products)."""
    counts: dict[str, int] = {}
    recent = requests.get(f"{project.sandbox.url}/_sandbox/stats", timeout=10).json()["recent"]
    for entry in (e for e in recent if e["platform"] == "connectif"):
        parts = entry["path"].strip("/").split("/")
        kind = "/".join(parts[:2]) if parts[0] != "imports" else {1: "imports", 2: "imports/poll"}.get(len(parts), f"imports/{parts[-1]}")
        name = f"{entry['method']} {kind}"
        counts[name] = counts.get(name, 0) + 1
    return counts


def imports(project: Project) -> list[dict[str, Any]]:
    return project.admin("GET", "imports")["imports"]


def test_a_first_sync_above_the_threshold_goes_through_imports_then_a_small_delta_uses_patch(connectif):
    rows = [item(i) for i in range(1, 61)]
    first = connectif.run(rows)
    assert (first["added_planned"], first["added_succeeded"], first["added_failed"]) == (60, 60, 0)
    assert connectif.products() == expected(rows)
    # three imports of 20 rows (60 spread evenly over imports of at most 25), not one PATCH
    assert [(i["status"], i["total"], i["success"], i["errors"]) for i in imports(connectif)] == [("finished", 20, 20, 0)] * 3
    sent = requests_by_method(connectif)
    assert sent["POST imports"] == 3 and "PATCH products/product-id" not in sent
    assert connectif.stats()["items_received"] == 60
    assert connectif.snapshot_keys() == {r["sku"] for r in rows}

    connectif.reset_stats()
    second = [item(i, price=99.0) if i in (3, 4) else item(i) for i in range(1, 61)]
    delta = connectif.run(second)
    assert (delta["changed_succeeded"], delta["unchanged_skipped"]) == (2, 58)
    sent = requests_by_method(connectif)
    assert sent["PATCH products/product-id"] == 2 and "POST imports" not in sent
    assert len(imports(connectif)) == 3  # no new import
    assert connectif.products() == expected(second)


def test_a_row_the_import_refuses_is_rejected_with_connectifs_reason_and_only_it_is_resent_once_fixed(connectif):
    connectif.admin("POST", "config", {"allowed_domains": ["https://shop.example.com"]})
    rows = [item(i) for i in range(1, 31)]
    rows[6] = item(7, product_url="https://elsewhere.example.org/p/7")
    first = connectif.run(rows)
    assert (first["added_succeeded"], first["added_failed"]) == (29, 1)
    status, message = connectif.last_run_records()["SKU-0007"]
    assert status == "rejected" and "non authorized domain" in message
    assert set(connectif.products()) == {r["sku"] for r in rows} - {"SKU-0007"}
    assert "SKU-0007" not in connectif.snapshot_keys() and len(connectif.snapshot_keys()) == 29
    assert sum(i["errors"] for i in imports(connectif)) == 1

    connectif.reset_stats()
    rows[6] = item(7)
    second = connectif.run(rows)
    assert (second["added_succeeded"], second["unchanged_skipped"]) == (1, 29)
    assert connectif.stats()["items_received"] == 1  # only the fixed product reached Connectif, by PATCH
    assert requests_by_method(connectif)["PATCH products/product-id"] == 1
    assert connectif.products() == expected(rows)


def test_an_import_that_fails_or_never_finishes_is_resent_next_run(connectif):
    rows = [item(i) for i in range(1, 31)]  # two imports of 15
    connectif.admin("POST", "config", {"import_outcome": "error"})
    failed = connectif.run(rows)
    assert (failed["added_succeeded"], failed["added_failed"]) == (0, 30)
    assert {status for status, _ in connectif.last_run_records().values()} == {"no_answer"}
    assert connectif.products() == {} and connectif.snapshot_keys() == set()
    assert [i["status"] for i in imports(connectif)] == ["error", "error"]

    connectif.admin("POST", "config", {"import_outcome": "finished", "import_seconds": 3600})
    connectif.destination_settings = {**BULK, "import_timeout_seconds": 0.5}
    connectif.write_config()
    stuck = connectif.run(rows)
    assert stuck["added_failed"] == 30 and connectif.snapshot_keys() == set()
    assert all("still processing" in message for _, message in connectif.last_run_records().values())

    connectif.admin("POST", "config", {"import_seconds": 0.2})
    connectif.destination_settings = dict(BULK)
    connectif.write_config()
    resent = connectif.run(rows)
    assert (resent["added_planned"], resent["added_succeeded"]) == (30, 30)
    assert connectif.products() == expected(rows)
    assert [i["status"] for i in imports(connectif)][-2:] == ["finished", "finished"]


def test_products_a_csv_cannot_carry_exactly_go_by_patch_within_a_bulk_run(connectif):
    rows = [item(i) for i in range(1, 26)]
    rows[0] = item(1, name=" Padded name ")  # surrounding spaces: an importer may trim them
    rows[1] = item(2, brand=None)  # no brand: a file of its own columns (no empty cell is ever sent)
    result = connectif.run(rows)
    assert result["added_succeeded"] == 25
    assert requests_by_method(connectif)["PATCH products/product-id"] == 1
    assert sorted(i["total"] for i in imports(connectif)) == [1, 23]
    assert connectif.products()["SKU-0002"].get("brand") is None
    assert connectif.products()["SKU-0001"]["name"] == " Padded name "


def test_bulk_settings_are_checked_when_the_config_loads(connectif):
    from activation_pipeline.config import ConfigError, load_config

    connectif.destination_settings = {"bulk_import_rows": 1}
    connectif.write_config()
    with pytest.raises(ConfigError, match="bulk_import_rows"):
        load_config(connectif.config_path)
