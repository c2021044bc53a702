"""Source files keep their meaning, and a file that cannot be loaded says where.

Each test writes a real file, materializes the source asset (and, where the effect reaches
a platform, the segment and a Batch activation against the sandbox), and asserts what the
warehouse table or the platform holds, or the Failure's message and that the table loaded
before is untouched.
"""

from __future__ import annotations

import codecs
import math
from typing import Any

import polars as pl
import pytest
import yaml
from dagster import AssetKey, materialize

from activation_pipeline.config import ConfigError, DestinationConfig, load_config
from activation_pipeline.definitions import build_definitions
from activation_pipeline.platforms import PLATFORMS
from activation_pipeline.platforms.base import Record, SyncTarget
from activation_pipeline_tests.conftest import Project
from activation_pipeline_tests.platform_cases import CASES
from activation_pipeline_tests.test_sync_modes import metadata

GOOD = b"sku,name,price,brand\nSKU-1,Mug,12.5,Acme\nSKU-2,Cup,3,Acme\n"
GOOD_ROWS = [("SKU-1", "Mug", 12.5, "Acme"), ("SKU-2", "Cup", 3.0, "Acme")]


class SourceProject(Project):
    """The conftest project, with the source's file written as raw bytes and its options set."""

    def __init__(self, *args: Any):
        super().__init__(*args)
        self.file_name = "products.csv"
        self.source: dict[str, Any] = {}

    def write_config(self) -> None:
        super().write_config()
        document = yaml.safe_load(self.config_path.read_text())
        document["sources"]["products"] = {"path": self.file_name, **self.source}
        self.config_path.write_text(yaml.safe_dump(document, sort_keys=False))

    def write_file(self, content: bytes) -> None:
        (self.root / self.file_name).write_bytes(content)

    def load_source(self, content: bytes | None = None):
        if content is not None:
            self.write_file(content)
        self.write_config()
        defs = build_definitions(load_config(self.config_path), warehouse=self.warehouse)
        return materialize(
            list(defs.assets), selection=[AssetKey(["sources", "products"])], resources=defs.resources, instance=self.instance, raise_on_error=False
        )

    def table(self) -> list[tuple]:
        return self.sql("SELECT * FROM sources.products ORDER BY ALL")

    def types(self) -> dict[str, str]:
        return dict(
            self.sql("SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'sources' AND table_name = 'products'")
        )


def failure(result) -> str:
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failures, "the source loaded"
    data = failures[0].step_failure_data
    return (data.user_failure_data.description if data.user_failure_data else None) or data.error.message


@pytest.fixture
def files(tmp_path, sandbox, instance) -> SourceProject:
    return SourceProject(tmp_path, sandbox, instance)


def loaded_good_table(files: SourceProject) -> list[tuple]:
    assert files.load_source(GOOD).success
    table = files.table()
    assert table == GOOD_ROWS
    return table


# --------------------------------------------------------------------------- item 2: types


def test_a_key_column_with_leading_zeros_is_sent_as_written(files):
    files.add_activation()
    files.write_file(b"sku,name,price,brand\n007,Mug,12.5,Acme\n0042,Cup,3,Acme\n100,Bowl,4,Acme\n")
    meta = metadata(files.materialize())
    assert meta["added_succeeded"] == 3
    assert files.types()["sku"] == "VARCHAR"
    assert set(files.catalog()) == {"007", "0042", "100"}
    assert files.catalog()["007"] == {"name": "Mug", "price": 12.5, "brand": "Acme"}


def test_a_column_that_any_row_contradicts_stays_text_and_clean_columns_get_their_type(files):
    lines = [f"SKU-{i},{i},{i}.5,true,2026-01-{1 + i % 28:02d},2026-01-01 10:00:{i % 60:02d},+4477{i:08d}" for i in range(30_000)]
    lines.append("SKU-LAST,A12,1.5,false,2026-02-01,2026-02-01T10:00:00Z,+447700000000")  # far past the first rows
    files.write_file(("sku,code,price,active,day,seen_at,phone\n" + "\n".join(lines) + "\n").encode())
    assert files.load_source().success
    assert files.types() == {
        "sku": "VARCHAR",
        "code": "VARCHAR",
        "price": "DOUBLE",
        "active": "BOOLEAN",
        "day": "DATE",
        "seen_at": "TIMESTAMP",
        "phone": "VARCHAR",
    }
    assert files.sql("SELECT code FROM sources.products WHERE sku IN ('SKU-7', 'SKU-LAST') ORDER BY sku") == [("7",), ("A12",)]


def test_declared_columns_give_their_types_whatever_the_values_look_like(files):
    files.source = {"columns": {"sku": "integer", "name": "string", "price": "decimal(10,2)", "brand": "string"}}
    assert files.load_source(b"sku,name,price,brand\n1,007,12.50,true\n2,3,4,2026-01-01\n").success
    assert files.types() == {"sku": "BIGINT", "name": "VARCHAR", "price": "DECIMAL(10,2)", "brand": "VARCHAR"}
    assert [(s, n, float(p), b) for s, n, p, b in files.table()] == [(1, "007", 12.5, "true"), (2, "3", 4.0, "2026-01-01")]


def test_a_value_that_breaks_a_declared_type_fails_naming_file_line_column_value_and_type(files):
    before = loaded_good_table(files)
    files.source = {"columns": {"price": "double"}}
    # a quoted cell over two lines: the file line, not the record number, is named
    result = files.load_source(b'sku,name,price,brand\nSKU-1,"Mug\nlarge",12.5,Acme\nSKU-2,Cup,3,Acme\nSKU-3,Bowl,twelve,Acme\n')
    assert failure(result) == "sources.products: products.csv: line 5, column price: 'twelve' is not a double"
    assert files.table() == before


def test_an_unknown_column_type_fails_the_config_load_naming_the_field(files):
    files.source = {"columns": {"price": "float"}}
    files.write_config()
    with pytest.raises(ConfigError) as raised:
        load_config(files.config_path)
    assert str(raised.value).startswith(f"{files.config_path}: sources.products.columns.price: 'float' is not a column type; allowed: string")


def test_a_declared_column_missing_from_the_file_fails_naming_the_file_and_its_columns(files):
    before = loaded_good_table(files)
    files.source = {"columns": {"zip": "string"}}
    result = files.load_source(GOOD)
    assert failure(result) == (
        "sources.products: products.csv: column 'zip' is declared under sources.products.columns "
        "but the file has no such column; its columns: sku, name, price, brand"
    )
    assert files.table() == before


def test_a_parquet_column_is_cast_strictly_to_its_declared_type_naming_the_row(files):
    files.file_name = "products.parquet"
    frame = pl.DataFrame({"sku": ["SKU-1", "SKU-2"], "name": ["Mug", "Cup"], "price": [12.0, 3.5], "brand": ["A", "B"]})
    frame.write_parquet(files.root / "products.parquet")
    files.source = {"columns": {"price": "integer"}}
    assert failure(files.load_source()) == "sources.products: products.parquet: row 2, column price: 3.5 is not an integer (64-bit)"
    files.source = {"columns": {"price": "decimal(10,2)", "sku": "string"}}
    assert files.load_source().success
    assert files.types()["price"] == "DECIMAL(10,2)"


def test_a_nan_or_infinite_csv_price_is_refused_with_its_reason_and_never_sent_as_text(files):
    files.add_activation()
    files.write_file(b"sku,name,price,brand\nSKU-1,Mug,12.5,Acme\nSKU-2,Cup,NaN,Acme\nSKU-3,Bowl,inf,Acme\nSKU-4,Jug,-inf,Acme\n")
    meta = metadata(files.materialize())
    assert files.types()["price"] == "DOUBLE"
    assert (meta["invalid"], meta["added_succeeded"]) == (3, 1)
    assert files.catalog() == {"SKU-1": {"name": "Mug", "price": 12.5, "brand": "Acme"}}
    assert dict(files.sql("SELECT key, message FROM activation_state.sync_records WHERE status = 'invalid'")) == {
        "SKU-2": "price: nan is not a finite number",
        "SKU-3": "price: inf is not a finite number",
        "SKU-4": "price: -inf is not a finite number",
    }
    assert files.snapshot_keys() == {"SKU-1"}


# --------------------------------------------------------------------------- item 3: load errors

UTF16 = codecs.BOM_UTF16_LE + "sku,name,price,brand\r\nSKU-1,Mug,1,A\r\n".encode("utf-16-le")
BROKEN_CSV = {
    "too_many_fields": (
        b"sku,name,price,brand\nSKU-1,Mug,1,A\nSKU-2,Cup,1,A,extra\n",
        "line 3: too many fields: 5 where the header has 4 (sku, name, price, brand)",
    ),
    "too_few_fields": (
        b'sku,name,price,brand\nSKU-1,"Mug\nlarge",1,A\nSKU-2,Cup\n',
        "line 4: too few fields: 2 where the header has 4 (sku, name, price, brand)",
    ),
    "invalid_utf8": (b"sku,name,price,brand\nSKU-1,Mug,1,A\nSKU-2,Caf\xe9,1,A\n", "line 3, column name: not valid UTF-8; save the file as UTF-8"),
    "empty": (b"", "the file is empty (0 bytes); a CSV source needs at least its header line"),
    "utf16": (UTF16, "the file is UTF-16 (it starts with a UTF-16 byte order mark); save it as UTF-8"),
    "semicolons": (
        b"sku;name;price;brand\nSKU-1;Mug;1,5;A\n",
        "line 1: the header is one column 'sku;name;price;brand': the file looks ';'-separated; set delimiter: ';' on sources.products",
    ),
    "unclosed_quote": (
        b'sku,name,price,brand\nSKU-1,"Mug,1,A\nSKU-2,Cup,1,A\n',
        "line 2, column name: a quoted value is not closed, or text follows its closing quote",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN_CSV))
def test_a_broken_csv_fails_naming_the_place_and_keeps_the_table_loaded_before(files, case):
    content, problem = BROKEN_CSV[case]
    before = loaded_good_table(files)
    result = files.load_source(content)
    assert failure(result) == f"sources.products: products.csv: {problem}"
    assert files.table() == before


def test_a_truncated_parquet_file_fails_naming_the_file_and_keeps_the_table_loaded_before(files):
    files.file_name = "products.parquet"
    pl.DataFrame({"sku": ["SKU-1", "SKU-2"], "name": ["Mug", "Cup"], "price": [12.5, 3.0], "brand": ["Acme", "Acme"]}).write_parquet(
        files.root / "products.parquet"
    )
    assert files.load_source().success
    before = files.table()
    whole = (files.root / "products.parquet").read_bytes()
    message = failure(files.load_source(whole[: len(whole) // 2]))
    assert message.startswith("sources.products: products.parquet: not a readable Parquet file (truncated or corrupt?)")
    assert files.table() == before == GOOD_ROWS


def test_a_header_only_file_is_an_empty_table_with_its_declared_types(files):
    files.source = {"columns": {"price": "double"}}
    assert files.load_source(b"sku,name,price,brand\n").success
    assert files.table() == []
    assert files.types() == {"sku": "VARCHAR", "name": "VARCHAR", "price": "DOUBLE", "brand": "VARCHAR"}


def test_an_excel_utf8_bom_is_stripped_from_the_first_column_name(files):
    files.add_activation()
    files.write_file(codecs.BOM_UTF8 + GOOD.replace(b"\n", b"\r\n"))
    meta = metadata(files.materialize())
    assert meta["added_succeeded"] == 2
    assert files.table() == GOOD_ROWS
    assert set(files.catalog()) == {"SKU-1", "SKU-2"}


def test_a_semicolon_separated_file_loads_with_the_delimiter_option(files):
    files.source = {"delimiter": ";"}
    assert files.load_source(b'sku;name;price;brand\nSKU-1;"Mug; large";12.5;Acme\nSKU-2;Cup;3;Acme\n').success
    assert files.table() == [("SKU-1", "Mug; large", 12.5, "Acme"), ("SKU-2", "Cup", 3.0, "Acme")]


# --------------------------------------------------------------------------- NaN on a JSON platform


def test_a_nan_csv_value_nested_in_dotdigital_insight_data_is_refused_with_its_reason(project_for, tmp_path):
    dd = project_for("dotdigital")  # insight data whose records hold a nested object built from a CSV price
    dd.segments["people_details"] = {
        "primary_key": "email",
        "sql": "SELECT email, first_name, {'ltv': ltv, 'tier': tier} AS details FROM sources.people",
    }
    dd.add("products", segment="people_details", object="insight:products", mapping={"name": "first_name", "details": "details"})
    (tmp_path / "people.csv").write_text("email,first_name,tier,ltv\na@example.com,Ann,gold,10.5\nb@example.com,Bob,gold,NaN\n")
    meta = metadata(dd.materialize("products"), "products")
    assert (meta["invalid"], meta["added_succeeded"]) == (1, 1)
    assert dd.last_run_records("products")["b@example.com"] == ("invalid", "details.ltv: nan is not a finite number")
    assert dd.state()["insight"]["Catalog_Default"]["records"] == {
        "account": {"a@example.com": {"name": "Ann", "details": {"ltv": 10.5, "tier": "gold"}}}
    }
    assert dd.snapshot_keys("products") == {"a@example.com"}


def test_a_nan_csv_price_inside_an_array_is_refused_by_batch_and_the_rest_of_the_request_is_sent(files):
    files.segment_sql = "SELECT sku, name, brand, CASE WHEN isnan(price) THEN [price] ELSE [] END AS price FROM sources.products"
    files.add_activation()
    files.write_file(b"sku,name,price,brand\nSKU-1,Mug,12.5,Acme\nSKU-2,Cup,NaN,Acme\n")
    meta = metadata(files.materialize())
    assert (meta["invalid"], meta["added_succeeded"], meta["added_failed"]) == (1, 1, 0)
    assert dict(files.sql("SELECT key, message FROM activation_state.sync_records WHERE status = 'invalid'")) == {
        "SKU-2": "price[0]: nan is not a finite number"
    }
    assert files.catalog() == {"SKU-1": {"name": "Mug", "price": [], "brand": "Acme"}}


@pytest.mark.parametrize("platform", sorted(PLATFORMS))
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_every_platform_refuses_a_non_finite_number_alone_or_inside_a_list_never_sending_it_as_text(platform, value):
    spec = PLATFORMS[platform]
    client = spec.resource_factory(DestinationConfig(platform=platform)).client()
    target = SyncTarget("unit", "unit", CASES[platform].activation["object"], model=spec.target)  # the contract case's object
    assert (
        client.invalid_reason(target, Record("k1", "ann@example.com", {"tags": ["a", value]}), "upsert") == f"tags[1]: {value} is not a finite number"
    )
    assert client.invalid_reason(target, Record("k1", "ann@example.com", {"price": value}), "upsert") == f"price: {value} is not a finite number"
