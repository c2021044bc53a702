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
