"""Bad input, property-based: broken config files and hostile records.

1. Configs: random mutations of a valid activations.yaml (wrong types, unknown keys,
   missing required keys, bad enum values, bad names, out-of-range numbers, dangling
   references, non-mapping roots, invalid YAML text, arbitrary garbage). Every one fails
   ``load_config`` with a ``ConfigError`` whose message starts with the file and the
   entry/field; nothing else ever escapes, and a file that does load also builds the code
   location (no Dagster or pydantic traceback later).
2. Records: nulls, unicode (emoji, RTL, accents, combining marks, NUL), strings around
   Batch's 10,000-character limit, NaN/inf prices, duplicate, empty and over-long keys go
   through a real materialization. Each record is either recorded ``invalid`` in
   ``activation_state.sync_records`` with the reason, or stored by the sandbox exactly as
   it was in the segment.
"""

from __future__ import annotations

import math
import re
import tempfile
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import requests
import yaml
from dagster import AssetKey, materialize, schedule
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st

from activation_pipeline.config import SCHEDULE_PRESETS, ConfigError, load_config
from activation_pipeline.definitions import build_definitions
from activation_pipeline.platforms import PLATFORMS
from activation_pipeline_tests.conftest import Project
from activation_pipeline_tests.test_sync_modes import metadata

# --------------------------------------------------------------------------- configs

ENTRIES = {"sources": "products", "segments": "catalog", "destinations": "shop", "activations": "to_batch"}


def valid_document() -> dict[str, Any]:
    """Every documented field set, so every field can be broken."""
    return {
        "partitions": {"start_date": "2026-01-01", "timezone": "Europe/Paris"},
        "sources": {"products": {"path": "products.csv", "format": "csv", "description": "Product catalogue"}},
        "segments": {
            "catalog": {"primary_key": "sku", "sql": "SELECT sku, name, price, brand FROM sources.products", "description": "Products for sale"}
        },
        "destinations": {
            "shop": {
                "platform": "batch",
                "base_url": "https://api.batch.com/2.11",
                "secrets": {"rest_api_key": "BATCH_REST_API_KEY", "project_key": "BATCH_PROJECT_KEY"},
                "settings": {"api_version": "2.11", "timeout_seconds": 10},
            }
        },
        "activations": {
            "to_batch": {
                "segment": "catalog",
                "destination": "shop",
                "object": "products",
                "title": "Product catalogue",
                "mode": "full_then_delta",
                "operation": "mirror",
                "identifier": "sku",
                "mapping": {"name": "name", "price": "price"},
                "custom_attributes": ["brand"],
                "schedule": {"cron": "30 3 * * *", "timezone": "Europe/Paris"},
                "full_resync_schedule": "weekly",
                "enabled": True,
                "continuous": False,
                "max_items_per_request": 200,
                "concurrency": 4,
                "max_delete_fraction": 0.2,
            }
        },
    }


FIELDS: dict[str, tuple[str, ...]] = {
    "sources": ("path", "format", "description", "partition_column"),
    "segments": ("sql", "primary_key", "description", "partition_column"),
    "destinations": ("platform", "base_url", "secrets", "settings"),
    "activations": (
        "segment",
        "destination",
        "object",
        "title",
        "mode",
        "operation",
        "identifier",
        "mapping",
        "custom_attributes",
        "schedule",
        "full_resync_schedule",
        "enabled",
        "continuous",
        "max_items_per_request",
        "concurrency",
        "max_delete_fraction",
    ),
}
REQUIRED = {
    ("sources", "path"),
    ("segments", "sql"),
    ("segments", "primary_key"),
    ("destinations", "platform"),
    ("activations", "segment"),
    ("activations", "destination"),
    ("activations", "object"),
}
ENUMS = {
    ("sources", "format"): {"csv", "parquet"},
    ("activations", "mode"): {"full_then_delta", "full_only"},
    ("activations", "operation"): {"upsert", "mirror", "delete_only", "update_only"},
    ("destinations", "platform"): set(PLATFORMS),
}
NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
BATCH_KEY = re.compile(r"[a-z0-9_]+")

short_text = st.text(max_size=12)
lists = st.lists(short_text, min_size=0, max_size=3)
mappings = st.dictionaries(st.text(min_size=1, max_size=6), st.integers(), min_size=1, max_size=2)
letters = st.text(st.characters(categories=["Lu", "Ll"]), min_size=1, max_size=12)  # never a number nor a boolean word
not_bool_word = letters.filter(lambda s: s.lower() not in {"true", "false", "yes", "no", "on", "off", "t", "f", "y", "n"})
numbers = st.one_of(st.integers(), st.floats())

# values pydantic never coerces to the field's type (lax mode does turn "10" into 10 and true into 1)
NOT_A_STRING = st.one_of(numbers, st.booleans(), lists, mappings, st.none())
WRONG_TYPE: dict[str, st.SearchStrategy[Any]] = {
    "full_resync_schedule": st.one_of(numbers, st.booleans(), st.lists(short_text, min_size=1, max_size=2)),
    "continuous": st.one_of(not_bool_word, lists, mappings, st.none()),
    "path": NOT_A_STRING,
    "description": NOT_A_STRING,
    "sql": NOT_A_STRING,
    "primary_key": NOT_A_STRING,
    "platform": NOT_A_STRING,
    "segment": NOT_A_STRING,
    "destination": NOT_A_STRING,
    "object": NOT_A_STRING,
    "title": NOT_A_STRING,
    "mode": NOT_A_STRING,
    "operation": NOT_A_STRING,
    "format": st.one_of(numbers, st.booleans(), lists, mappings),
    "base_url": st.one_of(numbers, st.booleans(), lists, mappings),
    "identifier": st.one_of(numbers, st.booleans(), lists, mappings),
    "secrets": st.one_of(
        short_text,
        numbers,
        st.booleans(),
        st.lists(short_text, min_size=1, max_size=2),
        st.none(),
        st.fixed_dictionaries({"rest_api_key": st.one_of(numbers, lists, st.none())}),
    ),
    "settings": st.one_of(short_text, numbers, st.booleans(), st.lists(short_text, min_size=1, max_size=2), st.none()),
    "mapping": st.one_of(
        short_text,
        numbers,
        st.booleans(),
        st.lists(short_text, min_size=1, max_size=2),
        st.none(),
        st.fixed_dictionaries({"name": st.one_of(numbers, lists, st.none())}),
    ),
    "custom_attributes": st.one_of(
        short_text, numbers, st.booleans(), mappings, st.none(), st.lists(st.one_of(numbers, st.none(), mappings), min_size=1, max_size=2)
    ),
    "schedule": st.one_of(
        numbers, st.booleans(), st.lists(short_text, min_size=1, max_size=2), st.fixed_dictionaries({"cron": st.one_of(numbers, lists, st.none())})
    ),
    "partition_column": st.one_of(numbers, st.booleans(), lists, mappings),
    "enabled": st.one_of(
        not_bool_word, st.integers().filter(lambda i: i not in (0, 1)), st.floats().filter(lambda f: f not in (0.0, 1.0)), lists, mappings, st.none()
    ),
    "max_items_per_request": st.one_of(letters, st.floats().filter(lambda f: not f.is_integer()), lists, mappings),
    "concurrency": st.one_of(letters, st.floats().filter(lambda f: not f.is_integer()), lists, mappings, st.none()),
    "max_delete_fraction": st.one_of(letters, st.just(math.nan), lists, mappings, st.none()),
}
OUT_OF_RANGE = {
    "max_items_per_request": st.one_of(st.integers(max_value=0), st.integers(min_value=201)),
    "concurrency": st.one_of(st.integers(max_value=0), st.integers(min_value=33)),
    "max_delete_fraction": st.one_of(st.floats(max_value=-1e-9), st.floats(min_value=1.000001), st.just(math.inf)),
}
BAD_NAMES = st.one_of(
    st.sampled_from(["Products", "my-products", "1st", "products\n", "prodücts", "a" * 64, "", " products", "to batch"]),
    st.text(max_size=70).filter(lambda s: not NAME.fullmatch(s)),
)


def _is_cron(value: str) -> bool:
    """The oracle: whether Dagster's public ``@schedule`` takes ``value`` as its cron."""
    try:
        with warnings.catch_warnings():  # a warning (an interval past its field's range) is not a refusal
            warnings.simplefilter("ignore")
            schedule(cron_schedule=value, job_name="oracle", name="oracle")(lambda: {})
    except Exception:  # DagsterInvalidDefinitionError, or the cron parser's own errors on garbage
        return False
    return True


def yaml_values() -> st.SearchStrategy[Any]:
    """Anything a YAML file can hold."""
    scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20))
    return st.recursive(
        scalars, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)), max_leaves=8
    )


@st.composite
def broken_configs(draw: st.DrawFn) -> tuple[Any, str, str]:
    """(document, where the message must point, what it must say) for a surely-invalid mutation."""
    doc = valid_document()
    kind = draw(
        st.sampled_from(
            [
                "wrong_type",
                "unknown_key",
                "missing",
                "bad_enum",
                "bad_name",
                "out_of_range",
                "dangling_reference",
                "bad_platform_name",
                "not_a_mapping",
                "bad_schedule",
                "bad_partitions",
            ]
        )
    )
    section = draw(st.sampled_from(list(ENTRIES)))
    entry_name = ENTRIES[section]
    entry = doc[section][entry_name]
    if kind == "wrong_type":
        field = draw(st.sampled_from(FIELDS[section]))
        entry[field] = draw(WRONG_TYPE[field])
        return doc, f"{section}.{entry_name}.{field}", ""
    if kind == "unknown_key":
        level = draw(st.sampled_from(["root", "entry", "schedule"]))
        if level == "root":
            key = draw(st.one_of(st.just("path"), st.text(min_size=1, max_size=12)).filter(lambda k: k not in [*ENTRIES, "partitions"]))
            doc[key] = draw(yaml_values())
            return doc, key, "unknown field"
        if level == "schedule":
            key = draw(st.text(min_size=1, max_size=12).filter(lambda k: k not in ("cron", "timezone")))
            doc["activations"]["to_batch"]["schedule"][key] = draw(yaml_values())
            return doc, f"activations.to_batch.schedule.{key}", "unknown field"
        key = draw(st.text(min_size=1, max_size=12).filter(lambda k: k not in FIELDS[section]))
        entry[key] = draw(yaml_values())
        return doc, f"{section}.{entry_name}.{key}", "unknown field"
    if kind == "missing":
        section, field = draw(st.sampled_from(sorted(REQUIRED)))
        del doc[section][ENTRIES[section]][field]
        return doc, f"{section}.{ENTRIES[section]}.{field}", "required field is missing"
    if kind == "bad_enum":
        (section, field), allowed = draw(st.sampled_from(sorted(ENUMS.items())))
        value = draw(st.text(max_size=20).filter(lambda s: s not in allowed))
        doc[section][ENTRIES[section]][field] = value
        return doc, f"{section}.{ENTRIES[section]}.{field}", "" if field != "platform" else "is not supported; allowed: "
    if kind == "bad_name":
        name = draw(BAD_NAMES)
        doc[section] = {name: entry}
        return doc, f"{section}.{name}", "names are lowercase letters, digits and underscores"
    if kind == "out_of_range":
        field = draw(st.sampled_from(sorted(OUT_OF_RANGE)))
        doc["activations"]["to_batch"][field] = draw(OUT_OF_RANGE[field])
        return doc, f"activations.to_batch.{field}", ""
    if kind == "dangling_reference":
        field = draw(st.sampled_from(["segment", "destination", "sql"]))
        name = draw(st.from_regex(r"[a-z][a-z0-9_]{0,9}", fullmatch=True).filter(lambda s: s not in ("catalog", "shop", "products")))
        if field == "sql":
            doc["segments"]["catalog"]["sql"] = f"SELECT * FROM sources.{name}"
            return doc, "segments.catalog.sql", f"reads sources.{name}, which is not declared"
        doc["activations"]["to_batch"][field] = name
        return doc, f"activations.to_batch.{field}", "is not a declared"
    if kind == "bad_platform_name":
        where = draw(st.sampled_from(["mapping", "custom_attributes", "object", "secrets"]))
        bad = draw(
            st.one_of(
                st.sampled_from(["Brand", "brand name", "brand\n", "prix-ttc", "é"]),
                st.text(min_size=0, max_size=12).filter(lambda s: not BATCH_KEY.fullmatch(s)),
            )
        )
        activation = doc["activations"]["to_batch"]
        if where == "mapping":
            activation["mapping"][bad] = "name"
            return doc, f"activations.to_batch.mapping.{bad}", "batch field names allow"
        if where == "custom_attributes":
            activation["custom_attributes"].append(bad)
            return doc, "activations.to_batch.custom_attributes", "batch field names allow"
        if where == "object":
            activation["object"] = bad
            return doc, "activations.to_batch.object", "batch object names allow"
        env = draw(st.text(max_size=20).filter(lambda s: not re.fullmatch(r"[A-Z_][A-Z0-9_]*", s)))
        doc["destinations"]["shop"]["secrets"]["rest_api_key"] = env
        return doc, "destinations.shop.secrets.rest_api_key", "must name an environment variable"
    if kind == "not_a_mapping":
        level = draw(st.sampled_from(["root", "section", "entry"]))
        value = draw(st.one_of(st.none(), st.booleans(), numbers, short_text, lists))
        if level == "root":
            return value, "", "the file must be a mapping"
        if level == "section":
            doc[section] = value
            return doc, section, ""
        doc[section][entry_name] = value
        return doc, f"{section}.{entry_name}", ""
    if kind == "bad_partitions":
        if draw(st.booleans()):
            doc["partitions"]["start_date"] = draw(
                st.one_of(st.sampled_from(["2026-02-30", "yesterday", "2026/01/01", ""]), lists, mappings, st.none())
            )
            return doc, "partitions.start_date", ""
        doc["partitions"]["timezone"] = draw(
            st.one_of(st.sampled_from(["Mars/Olympus", "Europe", ""]), st.text(max_size=20)).filter(lambda s: not _valid_timezone(s))
        )
        return doc, "partitions.timezone", ""
    # bad_schedule: a preset that is not one, a cron that is not one, a time zone that does not exist
    activation = doc["activations"]["to_batch"]
    which = draw(st.sampled_from(["preset", "cron", "timezone"]))
    if which == "timezone":
        activation["schedule"]["timezone"] = draw(
            st.one_of(st.sampled_from(["Mars/Olympus", "Europe", "", "UTC+1"]), st.text(max_size=20)).filter(lambda s: s not in ("UTC", "utc"))
        )
        assume(not _valid_timezone(activation["schedule"]["timezone"]))
        return doc, "activations.to_batch.schedule.timezone", "is not an IANA time zone"
    value = draw(
        st.one_of(st.sampled_from(["fortnightly", "a b c d e", "61 * * * *", "* * * *", "0 0 31 2 *", "daily\n"]), st.text(max_size=20)).filter(
            lambda s: s not in SCHEDULE_PRESETS and not _is_cron(s)
        )
    )
    if which == "cron":
        activation["schedule"]["cron"] = value
        return doc, "activations.to_batch.schedule.cron", "is not a valid 5-field cron"
    activation["schedule"] = value
    return doc, "activations.to_batch.schedule", "nor a valid 5-field cron"


def _valid_timezone(name: str) -> bool:
    """The IANA database of the standard library, which Dagster reads a schedule's timezone from (public API)."""
    from zoneinfo import ZoneInfo

    try:
        ZoneInfo(name)
        return True
    except Exception:
        return False


def dump(document: Any) -> str:
    return yaml.safe_dump(document, sort_keys=False)


def fuzz_dump(document: Any) -> str:
    text = dump(document)
    assume(dump(yaml.safe_load(text)) == text)  # a document YAML itself cannot round-trip is not the point
    return text


FUZZ = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def test_the_valid_document_used_for_mutations_loads_and_builds(tmp_path):
    path = tmp_path / "activations.yaml"
    path.write_text(dump(valid_document()))
    config = load_config(path)
    assert config.activations["to_batch"].cron == ("30 3 * * *", "Europe/Paris")
    build_definitions(config, warehouse=tmp_path / "w.duckdb")


@FUZZ
@given(case=broken_configs())
def test_a_broken_config_fails_with_a_config_error_naming_file_entry_and_field(tmp_path, case):
    document, where, says = case
    path = tmp_path / "activations.yaml"
    path.write_text(fuzz_dump(document))
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    note(message)
    assert message.startswith(f"{path}: {where}" if where else f"{path}: ")
    assert says in message
    assert error.value.path == str(path)


@st.composite
def garbled_configs(draw: st.DrawFn) -> str | bytes:
    """Arbitrary damage: a field or a whole section replaced by any YAML value, text cut or
    spliced with YAML syntax, random text, random bytes."""
    kind = draw(st.sampled_from(["garbage_value", "garbage_section", "spliced_text", "random_text", "random_bytes", "deep"]))
    if kind == "random_text":
        return draw(st.text(max_size=200))
    if kind == "random_bytes":
        return draw(st.binary(max_size=200))
    if kind == "deep":
        depth = draw(st.integers(min_value=100, max_value=5000))
        return draw(st.sampled_from(["[" * depth + "]" * depth, "{a: " * depth + "1" + "}" * depth, "- " * depth + "x"]))
    doc = valid_document()
    if kind == "garbage_value":
        section = draw(st.sampled_from(list(ENTRIES)))
        field = draw(st.sampled_from(FIELDS[section]))
        doc[section][ENTRIES[section]][field] = draw(yaml_values())
        return fuzz_dump(doc)
    if kind == "garbage_section":
        doc[draw(st.sampled_from([*ENTRIES, "partitions"]))] = draw(yaml_values())
        return fuzz_dump(doc)
    text = yaml.safe_dump(doc, sort_keys=False)
    at = draw(st.integers(min_value=0, max_value=len(text)))
    junk = draw(
        st.one_of(
            st.sampled_from(
                [
                    "[",
                    "{",
                    "]",
                    ": ",
                    "\t",
                    "- ",
                    "&a ",
                    "*a",
                    "!!python/object:os.system ",
                    "'",
                    '"',
                    "? ",
                    "---\n",
                    "...\n",
                    "%YAML 9.9\n",
                    "\x00",
                    "\ufeff",
                    "<<: *a\n",
                ]
            ),
            st.text(max_size=10),
        )
    )
    cut = draw(st.integers(min_value=0, max_value=20))
    return text[:at] + junk + text[at + cut :]


@FUZZ
@given(content=garbled_configs())
def test_whatever_the_file_holds_loading_raises_a_config_error_or_builds(tmp_path, content):
    """Never a bare traceback: a file either fails with a ConfigError naming it, or loads into
    a config the code location builds without error."""
    path = tmp_path / "activations.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    try:
        config = load_config(path)
    except ConfigError as error:
        note(str(error))
        assert str(error).startswith(f"{path}: ")
        return
    build_definitions(config, warehouse=tmp_path / "w.duckdb")


@pytest.mark.parametrize(
    "content, says",
    [
        (b"\xff\xfesources: {}\n", "not UTF-8 text"),
        (("[" * 3000 + "]" * 3000).encode(), "nested too deeply"),
        (b"path: elsewhere.yaml\nsources: {}\n", "path: unknown field"),
    ],
)
def test_a_non_utf8_or_too_deeply_nested_file_or_one_setting_path_fails_with_a_config_error(tmp_path, content, says):
    path = tmp_path / "activations.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=re.escape(says)) as error:
        load_config(path)
    assert str(error.value).startswith(f"{path}: ")


def test_a_config_path_that_is_a_folder_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot be read"):
        load_config(tmp_path)


@pytest.mark.parametrize(
    "settings_, where",
    [
        ({"timeout_seconds": "soon"}, "destinations.shop.settings.timeout_seconds"),
        ({"max_retries": [1]}, "destinations.shop.settings.max_retries"),
        ({"base_url": "https://elsewhere.example"}, "destinations.shop.settings"),
    ],
)
def test_settings_the_platform_refuses_fail_the_load_naming_the_setting(tmp_path, settings_, where):
    document = valid_document()
    document["destinations"]["shop"]["settings"] = settings_
    path = tmp_path / "activations.yaml"
    path.write_text(dump(document))
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value).startswith(f"{path}: {where}")


def test_a_misspelt_setting_is_refused_rather_than_silently_ignored(tmp_path):
    document = valid_document()
    document["destinations"]["shop"]["settings"] = {"max_retires": 2}
    path = tmp_path / "activations.yaml"
    path.write_text(dump(document))
    with pytest.raises(ConfigError, match=r"destinations\.shop\.settings\.max_retires"):
        load_config(path)


@pytest.mark.parametrize("primary_key", ["Product ID", "référence", "k" * 64])
def test_a_primary_key_column_any_sql_can_name_either_loads_or_is_refused_by_name(tmp_path, primary_key):
    document = valid_document()
    document["segments"]["catalog"]["primary_key"] = primary_key
    document["segments"]["catalog"]["sql"] = f'SELECT sku AS "{primary_key}", name, price, brand FROM sources.products'
    document["activations"]["to_batch"]["identifier"] = primary_key
    path = tmp_path / "activations.yaml"
    path.write_text(dump(document))
    try:
        config = load_config(path)
    except ConfigError as error:
        assert str(error).startswith(f"{path}: segments.catalog.primary_key")
        return
    build_definitions(config, warehouse=tmp_path / "w.duckdb")


# --------------------------------------------------------------------------- records

SCHEMA = {"sku": pl.Utf8, "name": pl.Utf8, "price": pl.Float64, "brand": pl.Utf8}
UNICODE = [
    "Café crème brûlée",
    "naïve façade Ångström",
    "שלום עולם",
    "مرحبا بالعالم",
    "🙂",
    "👩🏽‍💻 dev kit",
    "e\u0301te\u0301",
    "\u200fRTL mark\u200e",
    "中文商品名",
    "a\x00b",
    "line\nbreak\ttab",
    "\u2028sep",
    "\ufeffBOM",
]
MAX_STRING = 10_000


class ParquetProject(Project):
    """The conftest project, reading products.parquet instead of products.csv (Polars reads
    CSV "nan" as a string, so NaN/inf prices and exact nulls need Parquet)."""

    def write_config(self) -> None:
        super().write_config()
        document = yaml.safe_load(self.config_path.read_text())
        document["sources"]["products"]["path"] = "products.parquet"
        self.config_path.write_text(yaml.safe_dump(document, sort_keys=False))

    def write_records(self, rows: list[dict[str, Any]]) -> None:
        pl.DataFrame(rows, schema=SCHEMA, orient="row").write_parquet(self.root / "products.parquet")

    def materialize_activation_alone(self):
        """As after a failed blocking check, or from the UI: the activation without its upstream."""
        defs = build_definitions(load_config(self.config_path), warehouse=self.warehouse)
        return materialize(
            list(defs.assets), selection=[AssetKey(["activations", "sync_products"])], resources=defs.resources, instance=self.instance
        )


def expected_reason(row: dict[str, Any], copies: int) -> str | None:
    """Why the engine must refuse this row (None: it must be sent), in the order it checks."""
    sku = row["sku"]
    if sku is None:
        return "primary key is null"
    if copies > 1:
        return f"primary key appears {copies} times in the segment"
    if not sku or len(sku) > 512:
        return "identifier must be a non-empty string of at most 512 characters"
    for field in ("name", "price", "brand"):  # mapping, then custom attributes
        value = row[field]
        if isinstance(value, float) and not math.isfinite(value):
            return f"{field}: {value} is not a finite number"
        if isinstance(value, str) and len(value) > MAX_STRING:
            return f"{field}: string of {len(value)} characters exceeds {MAX_STRING}"
    return None


def assert_each_record_invalid_with_reason_or_stored_exactly(project: ParquetProject, rows: list[dict[str, Any]], meta: dict) -> None:
    copies = Counter(r["sku"] for r in rows)
    reasons = [expected_reason(r, copies[r["sku"]]) for r in rows]
    sent = {
        r["sku"]: {"name": r["name"], "price": r["price"], "brand": r["brand"]} for r, reason in zip(rows, reasons, strict=True) if reason is None
    }
    ledger = Counter(project.sql("SELECT key, status, message FROM activation_state.sync_records"))
    expected_ledger = Counter(
        (r["sku"], "invalid", reason) if reason else (r["sku"], "confirmed", None) for r, reason in zip(rows, reasons, strict=True)
    )
    assert ledger == expected_ledger
    assert project.catalog() == sent  # unicode, nulls and 10,000-character strings byte for byte
    assert (meta["invalid"], meta["added_succeeded"], meta["added_failed"]) == (len(rows) - len(sent), len(sent), 0)
    assert project.snapshot_keys() == set(sent)


@pytest.fixture
def parquet_project(tmp_path, sandbox, instance) -> ParquetProject:
    project = ParquetProject(tmp_path, sandbox, instance)
    project.add_activation()
    return project


def test_hostile_values_are_refused_with_their_reason_or_stored_exactly(parquet_project):
    rows = [{"sku": f"SKU-U{i:02d}", "name": text, "price": 1.5 + i, "brand": text[::-1]} for i, text in enumerate(UNICODE)] + [
        {"sku": "SKU-NULLS", "name": None, "price": None, "brand": None},
        {"sku": "SKU-10000", "name": "🙂" * MAX_STRING, "price": 1.0, "brand": "é" * MAX_STRING},
        {"sku": "SKU-10001", "name": "x" * (MAX_STRING + 1), "price": 1.0, "brand": "b"},
        {"sku": "SKU-BRAND-LONG", "name": "ok", "price": 1.0, "brand": "ש" * 20_000},
        {"sku": "SKU-NAN", "name": "n", "price": math.nan, "brand": "b"},
        {"sku": "SKU-INF", "name": "n", "price": math.inf, "brand": "b"},
        {"sku": "SKU-MINUS-INF", "name": "n", "price": -math.inf, "brand": "b"},
        {"sku": "SKU-TINY", "name": "n", "price": 5e-324, "brand": "b"},
        {"sku": "SKU-HUGE", "name": "n", "price": 1.7976931348623157e308, "brand": "b"},
        {"sku": "", "name": "empty key", "price": 1.0, "brand": "b"},
        {"sku": "K" * 512, "name": "longest key", "price": 1.0, "brand": "b"},
        {"sku": "K" * 513, "name": "key too long", "price": 1.0, "brand": "b"},
        {"sku": "SKU-🙂-שלום-é", "name": "unicode key", "price": 1.0, "brand": "b"},
    ]
    parquet_project.write_records(rows)
    meta = metadata(parquet_project.materialize())
    assert meta["status"] == "succeeded"
    assert_each_record_invalid_with_reason_or_stored_exactly(parquet_project, rows, meta)
    reasons = dict(parquet_project.sql("SELECT key, message FROM activation_state.sync_records WHERE status = 'invalid'"))
    assert reasons["SKU-NAN"] == "price: nan is not a finite number"
    assert reasons["SKU-10001"] == "name: string of 10001 characters exceeds 10000"
    assert reasons[""] == "identifier must be a non-empty string of at most 512 characters"


def test_null_and_duplicate_keys_stop_the_run_and_alone_are_refused_with_their_reason(parquet_project):
    rows = [
        {"sku": "SKU-1", "name": "Café", "price": 1.0, "brand": "b"},
        {"sku": "SKU-DUP", "name": "first", "price": 1.0, "brand": "b"},
        {"sku": "SKU-DUP", "name": "second", "price": 2.0, "brand": "b"},
        {"sku": "SKU-DUP", "name": "third", "price": math.nan, "brand": "b"},
        {"sku": None, "name": "no key", "price": 1.0, "brand": "b"},
        {"sku": "", "name": "empty", "price": 1.0, "brand": "b"},
        {"sku": "", "name": "empty again", "price": 1.0, "brand": "b"},
    ]
    parquet_project.write_records(rows)
    blocked = parquet_project.materialize(raise_on_error=False)
    checks = {e.check_name: e.passed for e in blocked.get_asset_check_evaluations()}
    assert (checks["primary_key_not_null"], checks["primary_key_unique"]) == (False, False)
    assert blocked.asset_materializations_for_node("activations__sync_products") == []
    assert parquet_project.catalog() == {}

    meta = metadata(parquet_project.materialize_activation_alone())
    assert_each_record_invalid_with_reason_or_stored_exactly(parquet_project, rows, meta)
    assert set(parquet_project.catalog()) == {"SKU-1"}


def test_nan_and_infinite_prices_computed_in_the_segment_sql_are_refused_then_sent_once_fixed(project):
    """A CSV source cannot hold NaN (Polars reads it as a string); SQL can make one."""
    from activation_pipeline_tests.conftest import product

    project.segment_sql = """SELECT sku, name, brand,
        CASE sku WHEN 'SKU-0002' THEN 'NaN'::DOUBLE WHEN 'SKU-0003' THEN 'Infinity'::DOUBLE
                 WHEN 'SKU-0004' THEN price * 1e308 * 10 ELSE price END AS price
        FROM sources.products"""
    project.add_activation()
    rows = [product(i) for i in range(1, 6)]
    project.write_products(rows)
    meta = metadata(project.materialize())
    assert (meta["invalid"], meta["added_succeeded"]) == (3, 2)
    assert set(project.catalog()) == {"SKU-0001", "SKU-0005"}
    assert dict(project.sql("SELECT key, message FROM activation_state.sync_records WHERE status = 'invalid'")) == {
        "SKU-0002": "price: nan is not a finite number",
        "SKU-0003": "price: inf is not a finite number",
        "SKU-0004": "price: inf is not a finite number",
    }

    project.segment_sql = "SELECT sku, name, price, brand FROM sources.products"
    project.write_config()
    fixed = metadata(project.materialize())
    assert (fixed["added_planned"], fixed["added_succeeded"], fixed["invalid"]) == (3, 3, 0)
    assert project.catalog() == {r["sku"]: {"name": r["name"], "price": r["price"], "brand": r["brand"]} for r in rows}


huge_strings = st.builds(
    lambda char, n: char * n, st.sampled_from(["x", "é", "🙂", "ש", "中"]), st.sampled_from([MAX_STRING - 1, MAX_STRING, MAX_STRING + 1, 15_000])
)
texts = st.one_of(st.none(), st.sampled_from(UNICODE), st.text(st.characters(codec="utf-8"), max_size=40), huge_strings)
prices = st.one_of(st.none(), st.floats(), st.sampled_from([math.nan, math.inf, -math.inf, -0.0]))
skus = st.one_of(
    st.none(),
    st.just(""),
    st.builds("SKU-{}".format, st.integers(0, 30)),
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=30),
    st.sampled_from(["K" * 512, "K" * 513, "🙂" * 513, "שלום-é"]),
)


@st.composite
def segments(draw: st.DrawFn) -> list[dict[str, Any]]:
    rows = draw(st.lists(st.fixed_dictionaries({"sku": skus, "name": texts, "price": prices, "brand": texts}), min_size=1, max_size=12))
    for _ in range(draw(st.integers(0, 2))):  # duplicate keys, sometimes with different values
        copy = dict(draw(st.sampled_from(rows)))
        copy["price"] = draw(prices)
        rows.append(copy)
    return rows


@settings(max_examples=12, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=segments())
def test_any_segment_each_record_is_refused_with_its_reason_or_stored_exactly(sandbox, instance, rows):
    requests.post(f"{sandbox.url}/_sandbox/reset", timeout=5).raise_for_status()
    with tempfile.TemporaryDirectory() as root:
        project = ParquetProject(Path(root), sandbox, instance)
        project.add_activation()
        project.write_records(rows)
        result = project.materialize(raise_on_error=False)
        if any(r["sku"] is None for r in rows) or len({r["sku"] for r in rows}) < len(rows):
            assert result.asset_materializations_for_node("activations__sync_products") == []  # blocking checks
            result = project.materialize_activation_alone()
        assert_each_record_invalid_with_reason_or_stored_exactly(project, rows, metadata(result))
