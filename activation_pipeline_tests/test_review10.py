"""Review of #10: regressions found in retargeting, type recording and source loading."""

from __future__ import annotations

import requests

from activation_pipeline_tests.conftest import product
from activation_pipeline_tests.test_retargeting import retarget, snapshot
from activation_pipeline_tests.test_sync_modes import metadata

ROWS = [product(i) for i in range(1, 11)]


def test_a_retarget_whose_push_fails_keeps_the_old_snapshot_so_reverting_resends_nothing(project):
    project.add_activation()
    project.write_products(ROWS)
    project.materialize()
    before = snapshot(project)
    retarget(project, object="products_v2")
    project.fault(kind="status", status=401, count=1000)

    assert not project.materialize(raise_on_error=False).success

    requests.delete(f"{project.sandbox.url}/_sandbox/faults", timeout=5).raise_for_status()
    assert snapshot(project) == before  # nothing was confirmed in products_v2: the old snapshot still holds
    retarget(project, object="products")  # the user reverts
    result = metadata(project.materialize())
    assert "retargeted" not in result
    assert (result["unchanged_skipped"], result.get("added_planned", 0)) == (10, 0)
