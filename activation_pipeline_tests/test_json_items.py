"""Request items built in the plan statement (platforms/json_items.py, sync/item_sql.py) are the items the
client's Python builds, and are refused for the same reasons: checked on many generated rows of every
column type the statement builds, and through real syncs to the sandbox's Batch endpoint."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from activation_pipeline.platforms import PLATFORMS
from activation_pipeline.platforms.base import Record, SyncTarget
from activation_pipeline.platforms.batch import BatchResource
from activation_pipeline.platforms.batch.client import BatchClient, _attributes
from activation_pipeline.platforms.http import PlatformSession
from activation_pipeline.sync import state
from activation_pipeline.sync.diff import PlanRequest, identifier_unknown, plan_operations
from activation_pipeline.sync.engine import SyncJob, run_sync
from activation_pipeline.warehouse import DuckDBSession

COLUMNS = {  # segment column -> its type; each is mapped to the platform field of the same name
    "name": "VARCHAR",
    "price": "DOUBLE",
    "ratio": "FLOAT",
    "stock": "BIGINT",
    "huge": "HUGEINT",
    "unsigned": "UBIGINT",
    "active": "BOOLEAN",
    "launch": "DATE",
    "seen": "TIMESTAMP",
    "seen_tz": "TIMESTAMP WITH TIME ZONE",
    "amount": "DECIMAL(18,3)",
    "tags": "VARCHAR[]",
    "sizes": "INTEGER[]",
}
TARGET = SyncTarget(activation="items", title="items", object="items", model=PLATFORMS["batch"].target)

texts = st.one_of(
    st.none(),
    st.text(st.characters(codec="utf-8"), max_size=20),
    st.sampled_from(["", 'é"\\\n\t\x01\x7f', "🙂" * 10_000, "x" * 10_001, "ש" * 10_001, "\u2028\ufeff"]),
)
floats = st.one_of(st.none(), st.floats(), st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 5e-324, 1e16, 0.1 + 0.2]))
moments = st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9999, 12, 30))  # in UTC, still a Python datetime
tags = st.one_of(st.none(), st.lists(st.one_of(st.none(), st.text(max_size=70)), max_size=17))
rows = st.fixed_dictionaries(
    {
        "sku": st.one_of(st.none(), st.just(""), st.text(min_size=1, max_size=8), st.sampled_from(["K" * 512, "K" * 513, "🙂" * 513])),
        "name": texts,
        "price": floats,
        "ratio": st.one_of(st.none(), st.floats(width=32)),
        "stock": st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)),
        "huge": st.one_of(st.none(), st.integers(-(2**127) + 1, 2**127 - 1)),
        "unsigned": st.one_of(st.none(), st.integers(0, 2**64 - 1)),
        "active": st.one_of(st.none(), st.booleans()),
        "launch": st.one_of(st.none(), st.dates()),
        "seen": st.one_of(st.none(), moments, moments.map(lambda m: m.replace(microsecond=0))),
        "seen_tz": st.one_of(st.none(), moments.map(lambda m: m.replace(tzinfo=timezone(timedelta(hours=5, minutes=30))))),
        "amount": st.one_of(st.none(), st.decimals(min_value=-(10**14), max_value=10**14, places=3, allow_nan=False)),
        "tags": tags,
        "sizes": st.one_of(st.none(), st.lists(st.one_of(st.none(), st.integers(-(2**31), 2**31 - 1)), max_size=17)),
    }
)


def batch_client() -> BatchClient:
    """The real client; planning never calls the platform, so its session points nowhere."""
    return BatchClient(PlatformSession("http://127.0.0.1:9", {}, ()))


def write_segment(conn: duckdb.DuckDBPyConnection, records: list[dict[str, Any]], columns: dict[str, str] = COLUMNS) -> None:
    conn.execute("CREATE SCHEMA IF NOT EXISTS segments")
    conn.execute(f"CREATE OR REPLACE TABLE segments.items (sku VARCHAR, {', '.join(f'{c} {t}' for c, t in columns.items())})")
    placeholders = ", ".join(["?", *(f"CAST(? AS {t})" if t in ("HUGEINT", "UBIGINT") else "?" for t in columns.values())])
    values = [[r["sku"], *(str(r[c]) if columns[c] in ("HUGEINT", "UBIGINT") and r[c] is not None else r[c] for c in columns)] for r in records]
    if values:
        conn.executemany(f"INSERT INTO segments.items VALUES ({placeholders})", values)


def request(columns: dict[str, str] = COLUMNS, activation: str = "items") -> PlanRequest:
    return PlanRequest(
        activation=activation,
        segment_table="segments.items",
        primary_key="sku",
        identifier="sku",
        columns={c: c for c in columns},
        mode="full_then_delta",
        operation="mirror",
    )


def python_item(identifier: str, fields: dict[str, Any]) -> Any:
    """The item the client builds in Python, as the platform parses it."""
    return json.loads(json.dumps({"id": identifier, "action": "add", "attributes": _attributes(fields)}))


@settings(max_examples=100, deadline=None, database=None)
@given(st.lists(rows, min_size=1, max_size=15))
def test_items_built_in_the_plan_equal_the_python_items_and_are_refused_for_the_same_reasons(tmp_path_factory, records):
    client = batch_client()
    folder = tmp_path_factory.mktemp("plan")
    with duckdb.connect() as conn:
        write_segment(conn, records)
        session = DuckDBSession(conn)
        state.ensure_state(session, "items")
        plan = plan_operations(session, request(), folder / "plan.parquet", lambda op, types: client.json_items(TARGET, op, types))
        in_python = plan_operations(session, request(), folder / "python.parquet")  # the plan of a client without declared items
    assert plan.items and plan.items_fallback is None and not in_python.items
    assert not [c for c in pq.read_schema(plan.path).names if c.startswith("f__")]  # the items carry the fields
    python_rows = {r["__key"]: r for r in pq.read_table(in_python.path).to_pylist() if r["__op"] == "upsert"}
    planned = [r for r in pq.read_table(plan.path).to_pylist() if r["__op"] == "upsert"]
    assert len(planned) == len(python_rows) == plan.counts.get("op_upsert", 0)
    for row in planned:
        fields = {c: python_rows[row["__key"]][f"f__{c}"] for c in COLUMNS}  # what the push hands the client when it builds the item
        identifier = row["__identifier"]
        record = Record(row["__key"], identifier, fields)
        expected = identifier_unknown("sku") if identifier is None else client.invalid_reason(TARGET, record, "upsert")
        assert row["__invalid"] == expected, row
        if expected is None:
            built, expected_item = json.loads(row["__body"]), python_item(identifier, fields)
            assert built == expected_item, {
                k: (v, built["attributes"].get(k)) for k, v in expected_item["attributes"].items() if built["attributes"].get(k) != v
            }
        else:
            assert row["__body"] is None


def test_a_column_type_the_statement_cannot_build_falls_back_to_python_and_says_why(tmp_path):
    client = batch_client()
    with duckdb.connect() as conn:
        conn.execute("CREATE SCHEMA segments")
        conn.execute("CREATE TABLE segments.items AS SELECT 'A' AS sku, 'n' AS name, [1.5, 'nan'::DOUBLE] AS history")
        session = DuckDBSession(conn)
        state.ensure_state(session, "items")
        columns = {"name": "VARCHAR", "history": "DOUBLE[]"}
        plan = plan_operations(session, request(columns), tmp_path / "plan.parquet", lambda op, types: client.json_items(TARGET, op, types))
    assert (plan.items, plan.items_fallback) == (False, "history: a DOUBLE[] column is built in Python")


class PythonItems:
    """The same Batch client without its declared items: every item is built and checked in Python, as before."""

    def __init__(self, inner: BatchClient):
        self.inner = inner

    def prepare(self, target: SyncTarget) -> None:
        self.inner.prepare(target)

    def invalid_reason(self, target: SyncTarget, record: Record, op: Any) -> str | None:
        return self.inner.invalid_reason(target, record, op)

    def send(self, target: SyncTarget, op: Any, records: Any) -> Any:
        assert all(r.item is None for r in records)
        return self.inner.send(target, op, records)

    @property
    def requests_sent(self) -> int:
        return self.inner.requests_sent

    @property
    def retries(self) -> int:
        return self.inner.retries

    def close(self) -> None:
        self.inner.close()


def sync(database: Path, state_dir: Path, client: Any, catalog: str) -> Any:
    job = SyncJob(
        plan=request(SENT, activation=catalog),
        target=SyncTarget(activation=catalog, title=catalog, object=catalog, model=PLATFORMS["batch"].target),
        platform="batch",
        max_items_per_request=7,
        concurrency=2,
        max_delete_fraction=1.0,
        auto_synced=False,
        segment_sql_hash="x",
        state_dir=state_dir,
    )

    @contextmanager
    def connect() -> Iterator[DuckDBSession]:
        with duckdb.connect(str(database)) as conn:
            yield DuckDBSession(conn)

    return run_sync(job, client, connect)


SENT = {c: t for c, t in COLUMNS.items() if c not in ("huge", "unsigned", "sizes")}  # Batch arrays hold strings


def sync_rows() -> list[dict[str, Any]]:
    moment = datetime(2024, 2, 29, 23, 59, 58, 123456)
    rows = [
        {
            "sku": f"SKU-{i:03d}",
            "name": ["Café", "🙂 ש 中", "", None, 'q"uo\\te\n'][i % 5],
            "price": [1.5, 0.1 + 0.2, 1e16, None, -0.0][i % 5],
            "ratio": [1.1, None][i % 2],
            "stock": [i, 2**62, None][i % 3],
            "huge": None,
            "unsigned": None,
            "active": [True, False, None][i % 3],
            "launch": [date(2024, 1, 2), None][i % 2],
            "seen": [moment, moment.replace(microsecond=0), None][i % 3],
            "seen_tz": [moment.replace(tzinfo=timezone(timedelta(hours=-7))), None][i % 2],
            "amount": [Decimal("12.345"), None][i % 2],
            "tags": [["a", "b"], [], None, ["x" * 64]][i % 4],
            "sizes": [[1, None, 3], None][i % 2],
        }
        for i in range(40)
    ]
    invalid = {"price": math.nan, "name": "x" * 10_001, "tags": ["y" * 65], "sku": "K" * 513}
    for i, (column, value) in enumerate(invalid.items()):
        rows[i * 3] = {**rows[i * 3], column: value}
    rows[1] = {**rows[1], "sku": ""}
    return rows


def test_a_real_sync_stores_and_refuses_exactly_what_the_python_items_did(tmp_path, sandbox):
    database = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(database)) as conn:
        write_segment(conn, sync_rows(), SENT)
    os_client = BatchResource(requests_per_second=0, items_per_second=0)
    built = sync(database, tmp_path / "state", os_client.client(), "in_sql")
    before = sync(database, tmp_path / "state", PythonItems(os_client.client()), "in_python")
    assert (built.counts.as_dict(), built.requests) == (before.counts.as_dict(), before.requests)
    assert built.counts.invalid == 5 and built.succeeded == 35, before.failed_sample

    def stored(catalog: str) -> dict[str, Any]:
        answer = requests.get(f"{sandbox.url}/_sandbox/batch/catalogs/{catalog}/items", timeout=30)
        answer.raise_for_status()
        return answer.json()["items"]

    assert stored("in_sql") == stored("in_python") and len(stored("in_sql")) == 35
    with duckdb.connect(str(database), read_only=True) as conn:
        ledger = {
            activation: sorted(
                conn.execute(
                    "SELECT key, change, operation, status, message, payload FROM activation_state.sync_records WHERE activation = ?", [activation]
                ).fetchall()
            )
            for activation in ("in_sql", "in_python")
        }
    assert ledger["in_sql"] == ledger["in_python"]
    assert {m for *_, status, m, _ in ledger["in_sql"] if status == "invalid"} == {
        "identifier must be a non-empty string of at most 512 characters",
        "price: nan is not a finite number",
        "name: string of 10001 characters exceeds 10000",
        "tags: arrays hold at most 15 strings of 64 characters",
    }

    with duckdb.connect(str(database)) as conn:  # a change, then a mirror's deletion: both paths again
        conn.execute("UPDATE segments.items SET price = 2.5 WHERE sku = 'SKU-004'")
        conn.execute("DELETE FROM segments.items WHERE sku = 'SKU-005'")
    built = sync(database, tmp_path / "state", os_client.client(), "in_sql")
    before = sync(database, tmp_path / "state", PythonItems(os_client.client()), "in_python")
    assert built.counts.as_dict() == before.counts.as_dict()
    assert (built.counts.changed.succeeded, built.counts.removed.succeeded) == (1, 1)
    assert stored("in_sql") == stored("in_python") and stored("in_sql")["SKU-004"]["price"] == 2.5
