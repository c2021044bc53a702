"""Sources that are a table or a query of an external PostgreSQL database (``sources.<t>.database``).

Against a real throw-away Postgres (postgres_server.py): the rows are read through ADBC into the
warehouse as ``sources/<t>`` (a DuckDB file; for the tests marked on_both_backends also a PostgreSQL
warehouse, where the file sources are loaded with Polars too and the segment SQL runs in Postgres);
a segment reads them, and a Batch activation syncs them to the sandbox; a change in the database
changes the observed data version; a bad config, a missing variable, a wrong password or an
unreachable server fail with a message naming the source and never the URL or its password.
"""

from __future__ import annotations

import secrets
from typing import Any

import psycopg
import pytest
from dagster import AssetKey, materialize

from activation_pipeline.config import ConfigError, load_config
from activation_pipeline.definitions import build_definitions
from activation_pipeline_tests.conftest import Project, free_port, observe_source_files
from activation_pipeline_tests.postgres_server import PostgresServer
from activation_pipeline_tests.test_source_files import failure

URL_ENV = "CRM_DATABASE_URL"
PRODUCTS = [("SKU-1", "Mug", "12.50", "Acme"), ("SKU-2", "Cup", "3.00", "Acme"), ("SKU-3", "Plate", "7.25", "Other")]


@pytest.fixture
def crm(postgres_server: PostgresServer, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """A database of its own holding crm.products (price numeric(10,2)); its URL, set in CRM_DATABASE_URL."""
    name = postgres_server.create_database(f"crm_{secrets.token_hex(4)}")
    url = postgres_server.url(name)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA crm")
        conn.execute("CREATE TABLE crm.products (sku text PRIMARY KEY, name text, price numeric(10, 2), brand text, stock integer)")
        with conn.cursor().copy("COPY crm.products (sku, name, price, brand, stock) FROM STDIN") as copy:
            for row in PRODUCTS:
                copy.write_row((*row, 5))
    monkeypatch.setenv(URL_ENV, url)
    return url


def execute(url: str, statement: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statement)


def database_project(project: Project, **database: Any) -> Project:
    project.sources = {"products": {"database": {"url_env": URL_ENV, **database}}}
    project.add_activation()
    return project


def load(project: Project):
    defs = build_definitions(load_config(project.config_path), warehouse=project.warehouse)
    return materialize(
        list(defs.assets or []),
        selection=[AssetKey(["sources", "products"])],
        resources=defs.resources,
        instance=project.instance,
        raise_on_error=False,
    )


@pytest.mark.on_both_backends
def test_a_table_is_loaded_segmented_and_synced_to_the_platform(project: Project, crm: str) -> None:
    database_project(project, table="crm.products")
    result = project.materialize()
    assert result.success
    assert project.sql("SELECT sku, name, price, brand, stock FROM sources.products ORDER BY sku") == [
        ("SKU-1", "Mug", 12.5, "Acme", 5),
        ("SKU-2", "Cup", 3.0, "Acme", 5),
        ("SKU-3", "Plate", 7.25, "Other", 5),
    ]
    source = result.asset_materializations_for_node("sources__products")[0].metadata
    assert source["dagster/row_count"].value == 3
    assert [c.name for c in source["dagster/column_schema"].value.columns] == ["sku", "name", "price", "brand", "stock"]
    assert source["database"].value == f"table crm.products (${URL_ENV})"
    assert all(crm not in str(v.value) for v in source.values())
    catalog = project.catalog()
    assert {sku: (item["name"], item["price"]) for sku, item in catalog.items()} == {
        "SKU-1": ("Mug", 12.5),
        "SKU-2": ("Cup", 3.0),
        "SKU-3": ("Plate", 7.25),
    }

    execute(crm, "UPDATE crm.products SET name = 'Big mug' WHERE sku = 'SKU-1'")
    execute(crm, "INSERT INTO crm.products VALUES ('SKU-4', 'Bowl', 4.5, 'Acme', 1)")
    assert project.materialize().success
    assert {sku: item["name"] for sku, item in project.catalog().items()} == {"SKU-1": "Big mug", "SKU-2": "Cup", "SKU-3": "Plate", "SKU-4": "Bowl"}


def build(project: Project, *keys: list[str]):
    """Materialize these assets with their checks, as one run."""
    defs = build_definitions(load_config(project.config_path), warehouse=project.warehouse)
    assets = list(defs.assets or []) + list(defs.asset_checks or [])
    return materialize(assets, selection=[AssetKey(k) for k in keys], resources=defs.resources, instance=project.instance, raise_on_error=False)


@pytest.mark.on_both_backends
def test_a_query_source_with_declared_types_and_a_segment_over_it(project: Project, crm: str) -> None:
    database_project(project, query="SELECT sku, upper(name) AS name, price, brand FROM crm.products WHERE brand = 'Acme'")
    project.sources["products"]["columns"] = {"price": "decimal(10,2)"}
    project.segment_sql = "SELECT sku, name, price, brand FROM sources.products WHERE price > 5"
    project.write_config()
    result = build(project, ["sources", "products"], ["segments", "catalog"])
    assert result.success
    with project.backend.session(read_only=True) as session:
        assert session.columns("sources.products")["price"] == "DECIMAL(10,2)"
    assert project.sql("SELECT sku, name, CAST(price AS VARCHAR) FROM sources.products ORDER BY sku") == [
        ("SKU-1", "MUG", "12.50"),
        ("SKU-2", "CUP", "3.00"),
    ]
    assert project.sql("SELECT sku, name FROM segments.catalog ORDER BY sku") == [("SKU-1", "MUG")]  # the segment's SQL ran in the warehouse
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"primary_key_not_null": True, "primary_key_unique": True, "row_count_drop": True}


@pytest.mark.on_both_backends
def test_a_file_source_and_a_database_source_joined_by_a_segment(project: Project, crm: str) -> None:
    """A CSV loaded with Polars and a database table, in one warehouse (a Postgres one included), joined by segment SQL."""
    project.sources = {
        "products": {"database": {"url_env": URL_ENV, "table": "crm.products"}},
        "stock": {"path": "stock.csv", "columns": {"sku": "string", "warehouse_units": "integer"}},
    }
    project.tables["stock"] = ["sku", "warehouse_units"]
    project.write_stock([{"sku": "SKU-1", "warehouse_units": 0}, {"sku": "SKU-2", "warehouse_units": 12}, {"sku": "SKU-3", "warehouse_units": 7}])
    project.segment_sql = (
        "SELECT p.sku, p.name, p.price, p.brand, s.warehouse_units FROM sources.products AS p "
        "JOIN sources.stock AS s ON s.sku = p.sku WHERE s.warehouse_units > 0"
    )
    project.write_config()
    result = build(project, ["sources", "products"], ["sources", "stock"], ["segments", "catalog"])
    assert result.success
    assert project.sql("SELECT sku, name, price, warehouse_units FROM segments.catalog ORDER BY sku") == [
        ("SKU-2", "Cup", 3.0, 12),
        ("SKU-3", "Plate", 7.25, 7),
    ]
    segment = result.asset_materializations_for_node("segments__catalog")[0].metadata
    assert segment["dagster/row_count"].value == 2


def test_a_change_in_the_database_changes_the_observed_version(project: Project, crm: str) -> None:
    database_project(project, table="crm.products")
    defs = build_definitions(load_config(project.config_path), warehouse=project.warehouse)

    key = AssetKey(["source_files", "products"])

    def versions() -> list[str]:
        records = project.instance.fetch_observations(key, limit=100).records
        return [r.asset_observation.tags["dagster/data_version"] for r in reversed(records) if r.asset_observation]

    cursor = observe_source_files(defs, project.instance)
    assert len(versions()) == 1 and versions()[0].startswith("3:")  # three rows
    cursor = observe_source_files(defs, project.instance, cursor)
    assert len(versions()) == 1  # nothing changed: no new observation
    execute(crm, "UPDATE crm.products SET stock = 4 WHERE sku = 'SKU-2'")
    observe_source_files(defs, project.instance, cursor)
    first, second = versions()
    assert second != first and second.startswith("3:")
    # the load records the version it read, as a file's load records its content's
    result = materialize(list(defs.assets), selection=[AssetKey(["sources", "products"])], resources=defs.resources, instance=project.instance)
    assert result.asset_materializations_for_node("sources__products")[0].tags["dagster/data_version"] == second


@pytest.mark.parametrize(
    ("database", "field", "message"),
    [
        ({}, "sources.products.database", "give exactly one of table (schema.table) or query (a SELECT), not neither"),
        ({"table": "crm.products", "query": "SELECT 1"}, "sources.products.database", "not both"),
        ({"table": "products"}, "sources.products.database.table", "'products' is not schema.table"),
        ({"table": "crm.products", "url_env": "postgresql://u:hunter2@db/crm"}, "sources.products.database.url_env", "looks like a URL"),
        ({"query": "  "}, "sources.products.database.query", "the query is empty"),
    ],
)
def test_bad_config_names_the_field(project: Project, database: dict[str, Any], field: str, message: str) -> None:
    project.sources = {"products": {"database": {"url_env": URL_ENV, **database}}}
    project.write_config()
    with pytest.raises(ConfigError) as error:
        load_config(project.config_path)
    assert f"{field}: " in str(error.value) and message in str(error.value)
    assert "hunter2" not in str(error.value)


def test_a_file_and_a_database_at_once_is_refused(project: Project) -> None:
    project.sources = {"products": {"path": "products.csv", "database": {"url_env": URL_ENV, "table": "crm.products"}}}
    project.write_config()
    with pytest.raises(ConfigError, match=r"sources\.products\.database: a source is either a file \(path\) or a database"):
        load_config(project.config_path)


@pytest.mark.on_both_backends
def test_a_missing_table_or_variable_fails_clearly_and_keeps_the_loaded_table(project: Project, crm: str, monkeypatch: pytest.MonkeyPatch) -> None:
    database_project(project, table="crm.products")
    assert load(project).success
    before = project.sql("SELECT * FROM sources.products ORDER BY sku")
    database_project(project, table="crm.missing")
    message = failure(load(project))
    assert message.startswith(f"sources.products: table crm.missing of ${URL_ENV}: ") and 'relation "crm.missing" does not exist' in message
    monkeypatch.delenv(URL_ENV)
    message = failure(load(project))
    assert f"the environment variable {URL_ENV} (sources.products.database.url_env) is not set" in message
    assert project.sql("SELECT * FROM sources.products ORDER BY sku") == before


def test_a_wrong_password_or_unreachable_server_does_not_leak_the_url(
    project: Project, crm: str, postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    database_project(project, table="crm.products")
    wrong = crm.replace(postgres_server.password, "Wr0ngPassw0rdXyz")
    monkeypatch.setenv(URL_ENV, wrong)
    result = load(project)
    message = failure(result)
    assert "password authentication failed" in message
    unreachable = f"postgresql://activation:Unreach4blePass@127.0.0.1:{free_port()}/crm"
    monkeypatch.setenv(URL_ENV, unreachable)
    result_down = load(project)
    down = failure(result_down)
    assert "Connection refused" in down
    events = " ".join(str(e) for r in (result, result_down) for e in r.all_events)
    for secret in ("Wr0ngPassw0rdXyz", "Unreach4blePass", wrong, unreachable, postgres_server.password):
        assert secret not in message and secret not in down and secret not in events
