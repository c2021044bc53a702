"""The config file can never reach the ledger by a side door.

1. Names from the config that reach SQL (column names, entry names) are checked when the file
   loads: a hostile one (a double quote that would close the identifier, a control character,
   an empty or over-long name) fails the load naming the field, and a synced warehouse is left
   exactly as it was. A legal but odd name (spaces, apostrophes, SQL comment marks, unicode)
   syncs end to end.
2. The file itself: a key given twice names both lines, a syntax error names its line, a plain
   http base URL off this machine and a relative path climbing out with ``..`` fail the load.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from activation_pipeline.config import ConfigError, load_config
from activation_pipeline_tests.conftest import Project, expected_items, product, reset_stats, sandbox_stats
from activation_pipeline_tests.test_sync_modes import metadata

ROWS = [product(i) for i in range(1, 6)]


def warehouse_state(project: Project) -> dict[str, list[tuple]]:
    """Every row of every table and view in the warehouse: sources, segments, snapshots, ledger."""
    with duckdb.connect(str(project.warehouse), read_only=True) as conn:
        tables = conn.execute("SELECT table_schema, table_name FROM information_schema.tables ORDER BY ALL").fetchall()
        return {f"{schema}.{table}": conn.execute(f'SELECT * FROM {schema}."{table}" ORDER BY ALL').fetchall() for schema, table in tables}


@pytest.fixture
def synced(project: Project) -> Project:
    """A project whose first sync the platform confirmed: 5 products in Batch and in the snapshot."""
    project.add_activation()
    project.write_products(ROWS)
    project.materialize()
    assert project.snapshot_keys() == {r["sku"] for r in ROWS}
    return project


def document(project: Project) -> dict[str, Any]:
    return yaml.safe_load(project.config_path.read_text())


# --------------------------------------------------------------------------- 1. names that reach SQL

INJECTIONS = [
    'sku" IS NULL OR 1=1 --',
    'sku"; DROP TABLE activation_state.sync_runs; --',
    'x" FROM sources.products; DELETE FROM activation_state."sync_products"; SELECT "y',
    '"',
    'Product "ID"',
]
INVISIBLE = ["\x00", "\n", "\r", "\t", "\x1b", "\x7f", "\u200b", "\u2028", "\ufeff", "\u00a0", "\u200f"]
printable = st.text(
    st.characters(exclude_characters='"', exclude_categories=["Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"]), min_size=1, max_size=12
)


@st.composite
def hostile_names(draw: st.DrawFn) -> str:
    """A name that breaks the rule in one known way (the test's own oracle, not the code's)."""
    kind = draw(st.sampled_from(["injection", "quote", "invisible", "empty", "padded", "too_long"]))
    if kind == "injection":
        return draw(st.sampled_from(INJECTIONS))
    if kind == "empty":
        return ""
    if kind == "too_long":
        return draw(printable) + "k" * draw(st.integers(min_value=256, max_value=400))
    base = draw(printable)
    at = draw(st.integers(min_value=0, max_value=len(base)))
    if kind == "quote":
        return base[:at] + '"' + base[at:]
    if kind == "invisible":
        return base[:at] + draw(st.sampled_from(INVISIBLE)) + base[at:]
    return draw(st.sampled_from([" ", "  ", "\u3000"])) + base if draw(st.booleans()) else base + " "


# every field whose name reaches SQL, as the error must name it ("{name}": the hostile name itself)
FIELDS = [
    "segments.catalog.primary_key",
    "segments.catalog.partition_column",
    "sources.products.partition_column",
    "activations.sync_products.identifier",
    "activations.sync_products.scope.column",
    "activations.sync_products.mapping.name",
    "activations.sync_products.mapping.{name}",
    "activations.sync_products.custom_attributes",
    "sources.{name}",
    "segments.{name}",
    "destinations.{name}",
    "activations.{name}",
]


def with_hostile_name(doc: dict[str, Any], field: str, name: str) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    activation = doc["activations"]["sync_products"]
    if field.endswith(".{name}") and field.count(".") == 1:  # an entry's own name
        kind = field.split(".")[0]
        (entry,) = doc[kind].values()  # the fixture has one entry of each kind: renamed
        doc[kind] = {name: entry}
    elif field == "sources.products.partition_column":
        doc["partitions"] = {"start_date": "2026-01-01"}  # so the name, not the missing block, is what is wrong
        doc["sources"]["products"]["partition_column"] = name
    elif field.startswith("segments.catalog."):
        doc["segments"]["catalog"][field.rsplit(".", 1)[1]] = name
    elif field.endswith(".identifier"):
        activation["identifier"] = name
    elif field.endswith(".scope.column"):
        activation["scope"], activation["object"] = {"column": name, "values": ["acme"]}, "products_{scope}"
    elif field.endswith(".mapping.name"):
        activation["mapping"]["name"] = name
    elif field.endswith(".mapping.{name}"):
        activation["mapping"][name] = "name"
    else:
        activation["custom_attributes"].append(name)
    return doc


@settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(FIELDS), name=hostile_names())
def test_a_hostile_name_in_any_field_that_reaches_sql_fails_the_load_naming_it_and_the_warehouse_is_untouched(synced, field, name):
    before = warehouse_state(synced)
    path = synced.root / "hostile.yaml"
    path.write_text(yaml.safe_dump(with_hostile_name(document(synced), field, name), sort_keys=False))
    with pytest.raises(ConfigError) as error:
        load_config(path)
    note(str(error.value))
    assert str(error.value).startswith(f"{path}: {field.replace('{name}', name)}")
    # and says what is allowed: the SQL name rule, the entry-name rule or the platform's field rule
    assert any(
        says in error.value.problem for says in ("allowed: 1 to 255 printable characters", "names are lowercase letters", "batch field names allow")
    )
    assert warehouse_state(synced) == before
    assert synced.catalog() == expected_items(ROWS)


def test_after_every_hostile_config_the_valid_one_still_syncs_and_resends_nothing(synced):
    before = warehouse_state(synced)["activation_state.sync_products"]
    for name in INJECTIONS:
        path = synced.root / "hostile.yaml"
        path.write_text(yaml.safe_dump(with_hostile_name(document(synced), "segments.catalog.primary_key", name)))
        with pytest.raises(ConfigError, match=r"segments\.catalog\.primary_key: name .* holds a double quote"):
            load_config(path)
    reset_stats(synced.sandbox)
    result = metadata(synced.materialize())
    assert (result["added_succeeded"], result["changed_succeeded"], result["unchanged_skipped"]) == (0, 0, len(ROWS))
    assert sandbox_stats(synced.sandbox)["items_received"] == 0  # counted by the platform: nothing resent
    assert synced.sql('SELECT key, row_hash, identifier FROM activation_state."sync_products" ORDER BY key') == [
        (key, row_hash, identifier) for key, row_hash, _, _, _, identifier in sorted(before)
    ]
    assert synced.catalog() == expected_items(ROWS)


ODD_KEY = "Réf' produit; -- 🙂"
ODD_PRICE = "Prix € TTC (d'achat)"


class OddNamesProject(Project):
    """The conftest project, its segment's key and price columns renamed to names that need quoting."""

    def write_config(self) -> None:
        super().write_config()
        doc = yaml.safe_load(self.config_path.read_text())
        doc["segments"]["catalog"] = {
            "primary_key": ODD_KEY,
            "sql": (
                f"""SELECT sku AS "{ODD_KEY}", name AS "nom du produit", price AS "{ODD_PRICE}", brand AS "Marque d'origine" FROM sources.products"""
            ),
        }
        self.config_path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))


def test_columns_named_with_spaces_apostrophes_comment_marks_and_unicode_sync_and_only_changes_are_resent(sandbox, instance, tmp_path):
    project = OddNamesProject(tmp_path, sandbox, instance)
    project.add_activation(identifier=ODD_KEY, mapping={"name": "nom du produit", "price": ODD_PRICE}, custom_attributes=[])
    project.write_products(ROWS)
    result = project.materialize()
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["primary_key_not_null"] and checks["primary_key_unique"]
    assert project.catalog() == {sku: {"name": item["name"], "price": item["price"]} for sku, item in expected_items(ROWS).items()}
    changed = [*ROWS[:4], product(5, price=99.5)]
    project.write_products(changed)
    second = metadata(project.materialize())
    assert (second["changed_succeeded"], second["unchanged_skipped"]) == (1, 4)
    assert project.catalog()["SKU-0005"]["price"] == 99.5
    payload = project.sql("SELECT payload FROM activation_state.latest_records WHERE key = 'SKU-0005'")[0][0]
    assert '"price":99.5' in payload.replace(" ", "")


def test_a_scope_column_with_an_odd_name_splits_the_sync_by_its_values(sandbox, instance, tmp_path):
    project = OddNamesProject(tmp_path, sandbox, instance)
    rows = [product(1, brand="acme"), product(2, brand="globex"), product(3, brand="acme")]
    project.add_activation(
        identifier=ODD_KEY,
        mapping={"name": "nom du produit"},
        custom_attributes=[],
        object="products_{scope}",
        scope={"column": "Marque d'origine", "values": ["acme", "globex"]},
    )
    project.write_products(rows)
    project.materialize()
    assert set(project.catalog("products_acme")) == {"SKU-0001", "SKU-0003"}
    assert set(project.catalog("products_globex")) == {"SKU-0002"}
    assert dict(project.sql('SELECT partition_key, count(*) FROM activation_state."sync_products" GROUP BY ALL')) == {"acme": 2, "globex": 1}


# --------------------------------------------------------------------------- 2. the file itself


def line_of(text: str, fragment: str, occurrence: int = 1) -> int:
    lines = [i for i, line in enumerate(text.splitlines(), start=1) if fragment in line]
    return lines[occurrence - 1]


def write_text_config(project: Project, text: str) -> Path:
    project.config_path.write_text(text)
    return project.config_path


def test_two_activations_with_one_name_fail_the_load_naming_both_lines_and_nothing_confirmed_changes(synced):
    before, held = warehouse_state(synced), synced.catalog()
    text = yaml.safe_dump(document(synced), sort_keys=False)
    # `activations:` is the file's last section: this is a second entry of the same name, for another catalog
    text += "  sync_products:\n    segment: catalog\n    destination: batch_test\n    object: other_products\n"
    write_text_config(synced, text)
    with pytest.raises(ConfigError) as error:
        synced.materialize()  # the load fails: no run starts
    first, second = line_of(text, "  sync_products:", 1), line_of(text, "  sync_products:", 2)
    assert str(error.value) == (
        f"{synced.config_path}: activations.sync_products: given twice, on lines {first} and {second}; each key once in a mapping"
    )
    assert warehouse_state(synced) == before and synced.catalog() == held
    assert synced.catalog("other_products") == {}


def test_a_mapping_that_names_a_field_twice_fails_the_load_naming_both_lines(synced):
    before = warehouse_state(synced)
    text = yaml.safe_dump(document(synced), sort_keys=False)
    text = text.replace("      price: price\n", "      price: price\n      name: brand\n")
    path = write_text_config(synced, text)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    first, second = line_of(text, "      name: name"), line_of(text, "      name: brand")
    assert (
        str(error.value) == f"{path}: activations.sync_products.mapping.name: given twice, on lines {first} and {second}; each key once in a mapping"
    )
    assert warehouse_state(synced) == before


@pytest.mark.parametrize(
    "text, says",
    [
        (
            "sources:\n  products: {path: a.csv}\nsources:\n  products: {path: b.csv}\n",  # a whole section given twice
            "sources: given twice, on lines 1 and 3",
        ),
        ("yes: 1\ntrue: 2\n", "True: given twice, on lines 1 and 2"),  # two spellings of one YAML key (both are True)
    ],
)
def test_any_key_given_twice_in_one_mapping_is_refused_with_both_lines(tmp_path, text, says):
    path = tmp_path / "activations.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value) == f"{path}: {says}; each key once in a mapping"


def test_a_key_brought_in_by_a_merge_may_still_be_overridden(tmp_path):
    """yaml.safe_load's semantics otherwise hold: anchors, aliases and `<<` merges load as before."""
    path = tmp_path / "activations.yaml"
    path.write_text("""sources:
  products: {path: products.csv}
segments:
  catalog:
    primary_key: sku
    sql: SELECT sku, name FROM sources.products
destinations:
  shop: {platform: batch}
activations:
  to_products: &base
    segment: catalog
    destination: shop
    object: products
    mapping: {name: name}
  to_archive:
    <<: *base
    object: archive
""")
    config = load_config(path)
    assert config.activations["to_archive"].object == "archive"
    assert config.activations["to_archive"].mapping == config.activations["to_products"].mapping == {"name": "name"}


@pytest.mark.parametrize(
    "text, says",
    [
        (
            "sources:\n  products: {path: products.csv\nsegments: {}\n",  # an unclosed brace: found on the next line
            "line 3: not valid YAML (expected ',' or '}', but got ':', while parsing a flow mapping that starts on line 2)",
        ),
        ("sources:\n  products:\n\tpath: products.csv\n", "line 3: not valid YAML (found character '\\t' that cannot start any token)"),
        (
            "sources:\n  products:\n    path: a.csv\n   format: csv\n",  # an indentation that fits no level
            "line 4: not valid YAML (expected <block end>, but found '<block mapping start>', while parsing a block mapping that starts on line 2)",
        ),
        ("partitions:\n  start_date: 2026-02-30\n", "line 2: not valid YAML ('2026-02-30' is not a valid date (day is out of range for month))"),
    ],
)
def test_a_yaml_syntax_error_or_an_impossible_date_names_its_line(tmp_path, text, says):
    path = tmp_path / "activations.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value) == f"{path}: : {says}"


def test_a_key_given_twice_on_one_line_names_its_columns(tmp_path):
    path = tmp_path / "activations.yaml"
    path.write_text("activations:\n  x:\n    mapping: {name: name, name: title}\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value) == f"{path}: activations.x.mapping.name: given twice, on line 3 (columns 15 and 27); each key once in a mapping"


def test_a_plain_http_base_url_from_the_environment_fails_the_load_naming_the_variable(synced, monkeypatch):
    before, held = warehouse_state(synced), synced.catalog()
    monkeypatch.setenv("BATCH_BASE_URL", "http://api.example.com/2.11")
    with pytest.raises(ConfigError) as error:
        synced.materialize()
    assert str(error.value) == (
        f"{synced.config_path}: destinations.batch_test.base_url: BATCH_BASE_URL = "
        "'http://api.example.com/2.11': a non-loopback base URL must use https (credentials never travel in clear)"
    )
    assert warehouse_state(synced) == before and synced.catalog() == held


@pytest.mark.parametrize("url", ["https://api.example.com/2.11", "http://127.0.0.1:9/batch/2.11", "http://localhost:9", "http://[::1]:9"])
def test_an_https_or_loopback_base_url_loads_from_the_file_or_the_environment(tmp_path, monkeypatch, url):
    project_doc = {
        "sources": {"products": {"path": "products.csv"}},
        "segments": {"catalog": {"primary_key": "sku", "sql": "SELECT sku FROM sources.products"}},
        "destinations": {"shop": {"platform": "batch", "base_url": url}, "env_shop": {"platform": "batch"}},
    }
    monkeypatch.setenv("BATCH_BASE_URL", url)
    path = tmp_path / "activations.yaml"
    path.write_text(yaml.safe_dump(project_doc))
    assert load_config(path).destinations["shop"].base_url == url


@pytest.mark.parametrize("relative", ["../products.csv", "../../etc/passwd", "data/../../products.csv", "data/../products.csv", "..\\products.csv"])
def test_a_relative_source_path_with_dotdot_fails_the_load_naming_the_path(synced, relative):
    before = warehouse_state(synced)
    doc = document(synced)
    doc["sources"]["products"]["path"] = relative
    path = synced.root / "climbing.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value).startswith(f"{path}: sources.products.path: {relative!r}: a relative path may not contain '..'")
    assert warehouse_state(synced) == before


def test_an_absolute_source_path_outside_the_config_folder_loads_and_syncs(sandbox, instance, tmp_path):
    project = Project(tmp_path / "project", sandbox, instance)
    project.root.mkdir()
    project.write_products(ROWS)
    elsewhere = tmp_path / "elsewhere" / "products.csv"
    elsewhere.parent.mkdir()
    (project.root / "products.csv").rename(elsewhere)
    project.add_activation()
    doc = document(project)
    doc["sources"]["products"]["path"] = str(elsewhere)
    project.config_path.write_text(yaml.safe_dump(doc, sort_keys=False))
    project.materialize()
    assert project.catalog() == expected_items(ROWS)
