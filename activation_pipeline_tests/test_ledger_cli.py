"""The ledger answers "what did we send, when, and what did the platform say": its views,
the `activation-pipeline ledger` command, and progress in the run log."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import requests

from activation_pipeline_tests.conftest import product
from activation_pipeline_tests.test_sync_modes import metadata

pytestmark = pytest.mark.on_both_backends  # the ledger's views, the command and the README's queries on DuckDB and PostgreSQL


def three_runs(project) -> None:
    """Run 1 adds 1-5; run 2 changes 2's price, removes 5 and fails 3; run 3 retries 3."""
    project.add_activation(mode="full_then_delta", operation="mirror", max_delete_fraction=1.0)
    project.write_products([product(i) for i in range(1, 6)])
    project.materialize()
    project.write_products([product(1), product(2, price=77.0), product(3, price=33.0), product(4)])
    project.fault(kind="reject_ids", ids=["SKU-0003"])
    project.materialize()
    requests.delete(f"{project.sandbox.url}/_sandbox/faults", timeout=5)
    project.materialize()


def test_latest_records_holds_the_last_confirmed_version_of_each_record(project):
    three_runs(project)
    latest = {
        key: (op, in_platform, json.loads(payload) if payload else None)
        for key, op, in_platform, payload in project.sql(
            "SELECT key, last_operation, in_platform, payload FROM activation_state.latest_records WHERE activation = 'sync_products'"
        )
    }
    assert latest["SKU-0002"] == ("upsert", True, {"name": "Product 2", "price": 77.0, "brand": "Acme"})
    assert latest["SKU-0003"] == ("upsert", True, {"name": "Product 3", "price": 33.0, "brand": "Acme"})
    assert latest["SKU-0005"] == ("delete", False, None)
    assert set(latest) == {f"SKU-{i:04d}" for i in range(1, 6)}


def test_record_history_tells_the_story_of_one_key_across_runs(project):
    three_runs(project)
    history = project.sql(
        """SELECT change, status, message FROM activation_state.record_history
           WHERE activation = 'sync_products' AND key = 'SKU-0003' ORDER BY recorded_at"""
    )
    assert [(c, s) for c, s, _ in history] == [("added", "confirmed"), ("changed", "rejected"), ("changed", "confirmed")]
    assert "SKU-0003" in history[1][2]  # the platform's own words


def test_the_ledger_command_prints_latest_records_and_a_keys_history(project):
    three_runs(project)
    env = {**os.environ, "ACTIVATION_WAREHOUSE": str(project.warehouse)}
    command = [sys.executable, "-m", "activation_pipeline.cli", "ledger", "sync_products"]
    latest = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    assert "latest confirmed records of sync_products: 5 row(s) of 5" in latest
    assert "SKU-0005" in latest and "delete" in latest
    history = subprocess.run([*command, "SKU-0003"], env=env, capture_output=True, text=True, check=True).stdout
    assert "history of SKU-0003 in sync_products: 3 row(s)" in history
    assert history.count("confirmed") == 2 and "rejected" in history
    unknown = subprocess.run([*command[:-1], "no_such_activation"], env=env, capture_output=True, text=True)
    assert unknown.returncode != 0 and "known: sync_products" in unknown.stderr


def test_a_long_sync_reports_progress_in_the_run_log(project, instance):
    project.add_activation(max_items_per_request=10, concurrency=1)
    project.write_products([product(i) for i in range(1, 121)])
    project.fault(kind="slow", seconds=0.5, count=100, path_contains="items/edit")
    result = project.materialize()
    assert metadata(result)["added_succeeded"] == 120
    messages = [str(r.user_message) for r in instance.all_logs(result.run_id)]
    progress = [m for m in messages if "records," in m and "ETA" in m]
    assert progress, "no progress line in the run log"
    assert "sent " in progress[0] and "/120 records" in progress[0]


def test_the_readmes_ledger_queries_run_and_answer(project):
    """The SQL a user copies from the README works against a real ledger."""
    import re
    from pathlib import Path

    three_runs(project)
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## The ledger", 1)[1].split("\n## ", 1)[0]
    queries = [q.strip() for block in re.findall(r"```sql\n(.*?)```", section, re.S) for q in block.split(";") if q.strip()]
    assert len(queries) == 3
    answers = [project.sql(q.replace("products_to_batch", "sync_products").replace("SKU-0000005", "SKU-0003")) for q in queries]
    latest, history, failures = answers
    assert [(op, in_platform) for op, in_platform, *_ in latest] == [("upsert", True)]
    assert [status for *_, status, _message, _payload in history] == ["confirmed", "rejected", "confirmed"]
    assert [(key, message is not None) for *_, key, message in failures] == [("SKU-0003", True)]


def test_the_demo_summary_has_one_aligned_line_per_activation(project):
    """What `activation-pipeline demo` prints after its runs, read from the ledger."""
    from activation_pipeline.cli import run_summary

    three_runs(project)
    with project.backend.session(read_only=True) as conn:
        run_ids = [r[0] for r in conn.fetch_all("SELECT run_id FROM activation_state.sync_runs ORDER BY started_at")]
        header, *rows = run_summary(conn, run_ids)
    assert header.split() == ["activation", "parts", "status", "planned", "sent", "ok", "failed", "invalid", "skipped", "snapshot"]
    assert len(rows) == 1
    # run 1 plans 5 adds, run 2 two changes and a removal, run 3 the rejected change again: 9 planned, 8 confirmed,
    # 1 failed (the rejection); the snapshot holds 4 records at the end
    assert rows[0].split() == ["sync_products", "-", "partial,succeeded", "9", "8", "1", "0", "0", "4"]
