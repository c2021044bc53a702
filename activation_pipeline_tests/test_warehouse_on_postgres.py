"""The warehouse on PostgreSQL as a user reaches it: a ``postgresql://`` URL in ACTIVATION_WAREHOUSE, the
password from PGPASSWORD (or in the URL), never printed."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from activation_pipeline_tests.conftest import product


def ledger_command(url: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {name: value for name, value in os.environ.items() if name != "PGPASSWORD"} | {"ACTIVATION_WAREHOUSE": url, **env}
    return subprocess.run(
        [sys.executable, "-m", "activation_pipeline.cli", "ledger", "sync_products"], env=environment, capture_output=True, text=True
    )


@pytest.mark.parametrize("warehouse_kind", ["postgres"], indirect=True)
def test_a_sync_on_postgres_is_read_back_by_the_ledger_command_with_the_password_from_pgpassword(project, postgres_server, monkeypatch, tmp_path):
    url = project.warehouse  # postgresql://user@host:port/database: no password in it
    assert postgres_server.password not in url
    monkeypatch.setenv("ACTIVATION_STATE_DIR", str(tmp_path / "state"))
    project.add_activation(mode="full_then_delta", operation="mirror")
    project.write_products([product(i) for i in range(1, 4)])
    project.materialize()
    assert set(project.catalog()) == {f"SKU-{i:04d}" for i in range(1, 4)}
    assert list((tmp_path / "state").iterdir()), "the plan and journal folders live in ACTIVATION_STATE_DIR"

    shown = ledger_command(url, PGPASSWORD=postgres_server.password)
    assert shown.returncode == 0, shown.stderr
    assert "latest confirmed records of sync_products: 3 row(s) of 3" in shown.stdout


def test_a_wrong_password_is_named_without_the_password(postgres_server):
    wrong = "not-the-password-4711"
    url = f"postgresql://{postgres_server.user}:{wrong}@{postgres_server.host}:{postgres_server.port}/postgres"
    answer = ledger_command(url)
    assert answer.returncode != 0
    assert f"{postgres_server.host}:{postgres_server.port}/postgres" in answer.stderr
    assert "password authentication failed" in answer.stderr
    assert wrong not in answer.stderr + answer.stdout


@pytest.mark.on_both_backends
def test_a_frame_loaded_in_bulk_comes_back_value_for_value(backend):
    """``Session.insert``, as a source load uses it (PostgreSQL: Polars writes CSV into ``COPY``): quotes, commas,
    newlines, an empty string apart from a null, NaN and infinities, the shortest exact doubles, decimals,
    dates, times with zone, booleans; a list column takes the row-by-row path."""
    import datetime
    from decimal import Decimal

    import polars as pl

    zone = datetime.timezone.utc
    frame = pl.DataFrame(
        {
            "text": ['he said "hi", then\nleft', "", None, "ünïcode ✓", "\\N"],
            "number": [0.1, None, float("nan"), float("inf"), -1.7976931348623157e308],
            "whole": [1, None, -(2**62), 0, 7],
            "amount": [Decimal("12.34"), None, Decimal("-0.01"), Decimal("99999.99"), Decimal("0.00")],
            "flag": [True, None, False, True, False],
            "day": [datetime.date(2024, 2, 29), None, datetime.date(1970, 1, 1), datetime.date(2999, 12, 31), datetime.date(2000, 1, 1)],
            "moment": [
                datetime.datetime(2024, 1, 1, 1, 2, 3, 456789, tzinfo=zone),
                None,
                datetime.datetime(1999, 12, 31, 23, 59, 59, tzinfo=zone),
                None,
                None,
            ],
        },
        schema_overrides={"amount": pl.Decimal(10, 2), "moment": pl.Datetime("us", "UTC")},
    )
    tags = pl.DataFrame({"key": ["a", "b"], "tags": [["x", "y,z"], None]})
    with backend.session() as session:
        session.execute(
            "CREATE TABLE loaded (text VARCHAR, number DOUBLE PRECISION, whole BIGINT, amount DECIMAL(10,2), flag BOOLEAN, "
            "day DATE, moment TIMESTAMP WITH TIME ZONE)"
        )
        session.execute("CREATE TABLE tagged (key VARCHAR, tags VARCHAR[])")
        assert session.insert("loaded", frame) == 5
        assert session.insert("tagged", tags) == 2
        back = session.fetch_all("SELECT text, number, whole, amount, flag, day, moment FROM loaded ORDER BY whole NULLS FIRST")
        tagged = session.fetch_all("SELECT key, tags FROM tagged ORDER BY key")
    expected = sorted(frame.rows(), key=lambda row: (row[2] is not None, row[2] or 0))
    assert len(back) == len(expected)
    for got, want in zip(back, expected, strict=True):
        assert got[0] == want[0]
        assert (got[1] != got[1] and want[1] != want[1]) or got[1] == want[1]  # NaN is NaN
        assert got[2:6] == want[2:6]
        assert (got[6] is None and want[6] is None) or got[6] == want[6]
    assert [(key, list(values) if values is not None else None) for key, values in tagged] == [("a", ["x", "y,z"]), ("b", None)]
