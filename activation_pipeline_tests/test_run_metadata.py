"""What a run shows in Dagster: the summary table first, the failed and invalid records as typed tables,
the ledger query whole, ``dagster/row_count``, and each asset's owners and code references from the config."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from dagster import AssetKey, TableMetadataValue

from activation_pipeline.config import ConfigError, load_config
from activation_pipeline.definitions import build_definitions
from activation_pipeline_tests.conftest import product
from activation_pipeline_tests.test_partitions import DAYS, completed_orders, ledger, shop, sync_day  # noqa: F401 (shop: fixture)

# SKU-0002's price is NaN (made in SQL): invalid for Batch, never sent
NAN_PRICE_SQL = "SELECT sku, name, brand, CASE sku WHEN 'SKU-0002' THEN 'NaN'::DOUBLE ELSE price END AS price FROM sources.products"


def event_metadata(result: Any, activation: str = "sync_products") -> dict[str, Any]:
    return dict(result.asset_materializations_for_node(f"activations__{activation}")[0].metadata)


def rows(table: TableMetadataValue) -> list[dict[str, Any]]:
    return [dict(record.data) for record in table.records]


def summary(table: TableMetadataValue) -> dict[str, tuple]:
    return {r["records"]: (r["planned"], r["succeeded"], r["failed"], r["skipped"], r["not sent"]) for r in rows(table)}


def run_query(project: Any, markdown: str) -> list[tuple]:
    """Paste the metadata's SQL as a user would."""
    assert markdown.startswith("```sql\n") and markdown.endswith("\n```")
    return project.sql(markdown.removeprefix("```sql\n").removesuffix("\n```"))


def test_a_run_with_a_rejected_and_an_invalid_record_shows_them_in_the_summary_and_as_tables(project):
    project.segment_sql = NAN_PRICE_SQL
    project.add_activation()
    project.write_products([product(i) for i in range(1, 11)])
    project.fault(kind="reject_ids", ids=["SKU-0007"])
    meta = event_metadata(project.materialize())

    assert next(iter(meta)) == "summary" and isinstance(meta["summary"], TableMetadataValue)
    assert [c.name for c in meta["summary"].schema.columns] == ["records", "planned", "succeeded", "failed", "skipped", "not sent"]
    assert summary(meta["summary"]) == {
        "added": (10, 8, 1, None, None),
        "changed": (0, 0, 0, None, None),
        "removed": (0, 0, 0, None, 0),
        "unchanged": (0, 0, 0, None, 0),
        "invalid": (None, None, None, None, 1),
        "total": (10, 8, 1, 0, 1),
    }
    assert len(project.catalog()) == 8 and "SKU-0007" not in project.catalog() and "SKU-0002" not in project.catalog()
    # the numeric keys Dagster plots stay, and agree with the table
    assert (meta["added_succeeded"].value, meta["added_failed"].value, meta["invalid"].value) == (8, 1, 1)
    assert meta["dagster/row_count"].value == len(project.snapshot_keys()) == 8

    (message,) = [m for (m,) in project.sql("SELECT message FROM activation_state.sync_records WHERE key = 'SKU-0007'")]
    assert "SKU-0007" in message
    assert [c.name for c in meta["failed_records"].schema.columns] == ["key", "change", "status", "message"]
    assert rows(meta["failed_records"]) == [{"key": "SKU-0007", "change": "added", "status": "rejected", "message": message}]
    assert rows(meta["invalid_records"]) == [
        {"key": "SKU-0002", "change": "added", "status": "invalid", "message": "price: nan is not a finite number"}
    ]

    # the ledger query, pasted as is, lists this run's ten records and nothing else
    records = run_query(project, meta["ledger_query"].value)
    assert sorted((r[1], r[4]) for r in records) == sorted(
        [(f"SKU-{i:04d}", "confirmed") for i in range(1, 11) if i not in (2, 7)] + [("SKU-0007", "rejected"), ("SKU-0002", "invalid")]
    )
    assert meta["ledger_run_id"].value in meta["ledger_query"].value

    # next run: the rejected record is resent, the invalid one is still refused, the others are left alone
    requests.delete(f"{project.sandbox.url}/_sandbox/faults", timeout=5).raise_for_status()
    again = event_metadata(project.materialize())
    assert summary(again["summary"]) == {
        "added": (2, 1, 0, None, None),
        "changed": (0, 0, 0, None, None),
        "removed": (0, 0, 0, None, 0),
        "unchanged": (0, 0, 0, None, 8),
        "invalid": (None, None, None, None, 1),
        "total": (2, 1, 0, 0, 9),
    }
    assert "failed_records" not in again and [r["key"] for r in rows(again["invalid_records"])] == ["SKU-0002"]
    assert again["dagster/row_count"].value == len(project.catalog()) == 9


def test_a_dry_run_shows_its_plan_in_the_summary_and_no_ledger_query(project):
    project.add_activation()
    project.write_products([product(i) for i in range(1, 6)])
    meta = event_metadata(project.materialize(run_config={"dry_run": True}))
    assert summary(meta["summary"])["added"] == (5, 0, 0, None, None)
    assert (meta["status"].value, meta["dagster/row_count"].value) == ("dry_run", 0)
    assert "ledger_query" not in meta and project.catalog() == {}


def test_a_scoped_run_shows_each_scope_as_a_typed_table_and_one_query_for_all_its_scopes(project):
    project.add_activation(object="products_{scope}", scope={"column": "brand", "values": ["acme", "globex"]})
    project.write_products([product(i, brand="acme" if i <= 3 else "globex") for i in range(1, 6)])
    meta = event_metadata(project.materialize())

    assert isinstance(meta["scopes"], TableMetadataValue)
    assert [c.name for c in meta["scopes"].schema.columns] == ["scope", "status", "added", "changed", "removed", "failed", "invalid", "snapshot"]
    assert rows(meta["scopes"]) == [
        {"scope": "acme", "status": "succeeded", "added": 3, "changed": 0, "removed": 0, "failed": 0, "invalid": 0, "snapshot": 3},
        {"scope": "globex", "status": "succeeded", "added": 2, "changed": 0, "removed": 0, "failed": 0, "invalid": 0, "snapshot": 2},
    ]
    assert summary(meta["summary"])["total"] == (5, 5, 0, 0, 0) and meta["dagster/row_count"].value == 5
    assert "partition_key IN ('acme', 'globex')" in meta["ledger_query"].value
    assert sorted((r[0], r[1]) for r in run_query(project, meta["ledger_query"].value)) == [
        ("acme", "SKU-0001"),
        ("acme", "SKU-0002"),
        ("acme", "SKU-0003"),
        ("globex", "SKU-0004"),
        ("globex", "SKU-0005"),
    ]


def test_a_partitioned_run_names_its_day_in_the_ledger_query(shop, sandbox, instance):  # noqa: F811
    meta = sync_day(shop, DAYS[0], instance)
    assert f"partition_key = '{DAYS[0]}'" in meta["ledger_query"]
    query = meta["ledger_query"].removeprefix("```sql\n").removesuffix("\n```")
    assert {row[1] for row in ledger(shop, query)} == completed_orders(shop, [DAYS[0]])
    assert meta["dagster/row_count"] == len(completed_orders(shop, [DAYS[0]]))


def entry_line(text: str, entry: str) -> int:
    return text.splitlines().index(f"  {entry}:") + 1


def test_owners_and_code_references_come_from_the_config_entry(project):
    project.add_activation(owners=["team:crm", "ana@example.com"])
    document = project.config_path.read_text().replace("primary_key: sku\n", "primary_key: sku\n    owners:\n    - team:data\n")
    project.config_path.write_text(document)
    defs = build_definitions(load_config(project.config_path), warehouse=project.warehouse)

    for key, owners, factory in [
        (AssetKey(["activations", "sync_products"]), ["team:crm", "ana@example.com"], "activations.py"),
        (AssetKey(["segments", "catalog"]), ["team:data"], "segments.py"),
        (AssetKey(["sources", "products"]), [], "sources.py"),
    ]:
        spec = defs.get_assets_def(key).specs_by_key[key]
        assert list(spec.owners) == owners
        config_ref, factory_ref = spec.metadata["dagster/code_references"].code_references
        section, name = key.path
        assert (config_ref.file_path, config_ref.line_number) == (str(project.config_path.resolve()), entry_line(document, name))
        assert config_ref.label == f"activations.yaml: {section}.{name}"
        assert factory_ref.file_path.endswith(f"activation_pipeline/assets/{factory}") and factory_ref.line_number


@pytest.mark.parametrize("owner", ["marketing", "team:", "ana@example"])
def test_an_owner_that_is_neither_an_email_nor_a_team_fails_the_load_naming_the_entry(project, owner):
    project.add_activation(owners=["team:crm", owner])
    with pytest.raises(ConfigError) as raised:
        load_config(project.config_path)
    assert str(raised.value) == (
        f"{project.config_path}: activations.sync_products.owners.1: {owner!r} is not an owner: give an email "
        "address (someone@example.com) or a team as team:<name> (team:marketing)"
    )
