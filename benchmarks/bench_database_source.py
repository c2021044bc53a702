"""Reading a PostgreSQL table into a Polars frame, as a database source does (``sources.<t>.database``):
the engine's reader (ADBC, then ``numeric`` to double and the declared-type checks) against the
bare ways to get the same frame: ADBC alone (``fetch_arrow_table`` + ``pl.from_arrow``),
connectorx (``pl.read_database_uri(engine="connectorx")``) and psycopg 3's ``COPY ... TO STDOUT``
read as CSV by Polars. Also the fingerprint query the observation runs. Each side in its own
process, interleaved, repeated; a throw-away cluster (initdb) unless BENCH_DATABASE_URL is set.
Not a test: it prints its figures.

    python benchmarks/bench_database_source.py [ROWS] [REPEATS]     # default 1,000,000 rows, 3 repeats
"""

from __future__ import annotations

import io
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import emit, peak_rss_mb, run_child, spread  # noqa: E402

SIDES = ("engine", "adbc", "connectorx", "psycopg_copy", "fingerprint")
TABLE = "bench.products"
URL_ENV = "BENCH_DATABASE_URL"


def prepare(url: str, rows: int) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS bench CASCADE")
        conn.execute("CREATE SCHEMA bench")
        conn.execute(
            """CREATE TABLE bench.products AS SELECT i AS id, 'SKU-' || lpad(i::text, 8, '0') AS sku, 'Product ' || i AS name,
               round((random() * 500)::numeric, 2) AS price, (ARRAY['Acme', 'Globex', 'Initech'])[1 + i %% 3] AS brand,
               (i %% 97)::integer AS stock, timestamptz '2026-01-01' + i * interval '1 second' AS updated_at
               FROM generate_series(1, %s) AS i""",
            [rows],
        )
        conn.execute("ANALYZE bench.products")


def measure(side: str, url: str) -> dict[str, Any]:
    import polars as pl

    from activation_pipeline.assets.database_sources import database_fingerprint, read_database
    from activation_pipeline.config import SourceConfig

    for module in ("adbc_driver_postgresql.dbapi", "connectorx", "psycopg"):  # each side's driver loaded before the clock starts
        if available(module.split(".")[0]):
            __import__(module)
    source = SourceConfig.model_validate({"database": {"url_env": URL_ENV, "table": TABLE}})
    started = time.perf_counter()  # after the imports: every side is timed from its first byte asked for
    if side == "engine":
        frame = read_database("bench", source)
    elif side == "adbc":
        import adbc_driver_postgresql.dbapi as adbc

        with adbc.connect(url) as conn, conn.cursor() as cursor:
            cursor.execute(f"SELECT * FROM {TABLE}")
            frame = pl.from_arrow(cursor.fetch_arrow_table())  # type: ignore[assignment]  # price stays an opaque extension column
    elif side == "connectorx":
        frame = pl.read_database_uri(f"SELECT * FROM {TABLE}", url, engine="connectorx")
    elif side == "psycopg_copy":
        import psycopg

        buffer = io.BytesIO()
        with psycopg.connect(url) as conn, conn.cursor().copy(f"COPY {TABLE} TO STDOUT WITH (FORMAT csv, HEADER)") as copy:
            for chunk in copy:
                buffer.write(chunk)
        buffer.seek(0)
        frame = pl.read_csv(buffer, try_parse_dates=True)
    else:
        fingerprint = database_fingerprint("bench", source)
        return {"seconds": time.perf_counter() - started, "rss_mb": peak_rss_mb(), "rows": int(fingerprint.split(":")[0]), "types": {}}
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rss_mb": peak_rss_mb(), "rows": frame.height, "types": {c: str(t) for c, t in frame.schema.items()}}


def available(side: str) -> bool:
    """Whether the side's driver (or a driver module's name) is installed."""
    adbc = "adbc_driver_postgresql"
    module = {"adbc": adbc, "engine": adbc, "fingerprint": adbc, "psycopg_copy": "psycopg"}.get(side, side)
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def compare(rows: int, repeats: int, url: str) -> dict[str, Any]:
    os.environ[URL_ENV] = url  # the children read it there: a URL (and its password) never on a command line
    run_child(__file__, "--prepare", rows)
    sides = [s for s in SIDES if available(s)]
    runs: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
    for _ in range(repeats):  # interleaved, so a busy spell of the machine hits every side
        for side in sides:
            runs[side].append(run_child(__file__, "--measure", side))
    return {
        "rows": rows,
        "repeats": repeats,
        "seconds": {side: spread([r["seconds"] for r in results]) for side, results in runs.items()},
        "rss_mb": {side: max(r["rss_mb"] for r in results) for side, results in runs.items()},
        "rows_read": {side: results[0]["rows"] for side, results in runs.items()},
        "types": {side: results[0]["types"] for side, results in runs.items()},
        "missing": [s for s in SIDES if s not in sides],
    }


@contextmanager
def server() -> Iterator[str]:
    """BENCH_DATABASE_URL's server, or a throw-away cluster for this run."""
    if os.environ.get(URL_ENV):
        yield os.environ[URL_ENV]
        return
    from activation_pipeline_tests.postgres_server import postgres_bin_dir, throwaway_postgres

    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        sys.exit(f"no PostgreSQL binaries (apt-get install postgresql), and {URL_ENV} is not set")
    with throwaway_postgres(bin_dir) as cluster:
        yield cluster.url()


def main() -> None:
    if sys.argv[1:2] == ["--prepare"]:
        prepare(os.environ[URL_ENV], int(sys.argv[2]))
        emit({})
        return
    if sys.argv[1:2] == ["--measure"]:
        emit(measure(sys.argv[2], os.environ[URL_ENV]))
        return
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    with server() as url:
        result = compare(rows, repeats, url)
    engine = result["seconds"]["engine"]["median"]
    print(f"{TABLE}: {rows:,} rows (7 columns, price numeric(10,2)), {repeats} interleaved runs each, own process; median (min-max)")
    for side, figures in result["seconds"].items():
        ratio = figures["median"] / engine
        print(
            f"{side:13} {figures['median']:7.2f} s ({figures['min']:.2f}-{figures['max']:.2f})  x{ratio:5.2f} of engine"
            f"  peak RSS {result['rss_mb'][side]:6.0f} MB  rows {result['rows_read'][side]:,}"
        )
    for side, types in result["types"].items():
        if types:
            print(f"  {side:13} price: {types.get('price')}, updated_at: {types.get('updated_at')}")
    if result["missing"]:
        print(f"not measured (package not installed): {', '.join(result['missing'])}")


if __name__ == "__main__":
    main()
