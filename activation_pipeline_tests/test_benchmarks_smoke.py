"""The benchmark scripts still run end to end and write the figures issue #13 asks for.

A smoke run at 2,000 rows (one run of each side, no drt peer: that one installs a package with
pip), against a real sandbox; it checks what the sandbox received, not the speed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOP_LEVEL = (
    "first_sync_ratio",
    "diff_ratio",
    "incremental_share",
    "pacing_limit_share",
    "pacing_429_share",
    "peer_first_sync_ratio",
    "peer_rss_ratio",
    "no_change_seconds",
    "date",
    "machine",
    "command",
)


def test_run_all_writes_every_figure_from_runs_the_sandbox_received(tmp_path: Path) -> None:
    output = tmp_path / "latest.json"
    command = [sys.executable, "benchmarks/run_all.py", "--rows", "2000", "--repeats", "1", "--diff-sizes", "", "--sizes", "2000"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    completed = subprocess.run([*command, "--no-peer", "--output", str(output)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]

    result = json.loads(output.read_text())
    assert set(TOP_LEVEL) <= set(result)
    assert json.loads(completed.stdout[: completed.stdout.index("\n}\n") + 2]) == result  # what it printed is what it wrote
    for key in ("first_sync_ratio", "diff_ratio", "incremental_share", "no_change_seconds"):
        assert result[key] > 0
    assert result["peer_first_sync_ratio"] is None and result["notes"]["peer"] == "not run (--no-peer)"
    if result["pacing_limit_share"] is None:
        assert result["notes"]["pacing"]  # a missing figure says why

    first = result["details"]["first_sync"]
    assert [run["platform_items"] for run in first["engine_runs"]] == [2000]  # the sandbox holds every record
    assert [run["platform_items"] for run in first["floor_runs"]] == [2000]
    (changed,) = first["incremental_runs"]
    assert changed["changed_rows"] > 0 and changed["platform_items_received"] == changed["changed_rows"]
    assert [run["platform_items_received"] for run in first["no_change_runs"]] == [0]
    diff = result["details"]["diff"]["2000"]
    assert diff["changed"] == diff["bare_changed"] > 0  # the bare statement finds what the plan finds
    assert "| first sync, 2,000 records" in completed.stdout
