"""Schedules and jobs from the config, evaluated with Dagster's own test tools."""

from __future__ import annotations

from pathlib import Path

import yaml
from dagster import DefaultScheduleStatus, RunRequest, build_schedule_context

from activation_pipeline.config import load_config
from activation_pipeline.definitions import build_definitions

DEMO = Path(__file__).resolve().parents[1] / "data" / "activations.yaml"


def demo_defs(tmp_path):
    return build_definitions(load_config(DEMO), warehouse=tmp_path / "w.duckdb")


def test_each_scheduled_activation_gets_its_cron_timezone_and_default_status(tmp_path):
    defs = demo_defs(tmp_path)
    schedules = {s.name: s for s in defs.schedules}
    daily = schedules["sync_products_to_batch_schedule"]
    assert (daily.cron_schedule, daily.execution_timezone, daily.default_status) == ("0 2 * * *", "UTC", DefaultScheduleStatus.RUNNING)
    hourly = schedules["sync_in_stock_to_batch_schedule"]  # enabled: false in the demo config
    assert (hourly.cron_schedule, hourly.default_status) == ("0 * * * *", DefaultScheduleStatus.STOPPED)
    custom = schedules["sync_price_refresh_to_batch_schedule"]
    assert (custom.cron_schedule, custom.execution_timezone) == ("30 3 * * *", "Europe/Paris")
    assert schedules["sync_discontinued_cleanup_schedule"].cron_schedule == "0 */6 * * *"


def test_a_schedule_tick_requests_an_incremental_run_of_the_activation_and_its_upstream(tmp_path):
    defs = demo_defs(tmp_path)
    schedule = next(s for s in defs.schedules if s.name == "sync_products_to_batch_schedule")
    with build_schedule_context() as context:
        requests = list(schedule.evaluate_tick(context).run_requests or [])
    assert len(requests) == 1 and isinstance(requests[0], RunRequest)
    job = defs.resolve_job_def("sync_products_to_batch")
    assert job.tags["sync"] == "incremental" and job.tags["activation"] == "products_to_batch"
    selected = {key.to_user_string() for key in job.asset_layer.selected_asset_keys}
    assert selected == {"activations/products_to_batch", "segments/sellable_products", "sources/products", "sources/order_lines"}


def test_the_weekly_full_resync_schedule_runs_with_full_resync_config(tmp_path):
    defs = demo_defs(tmp_path)
    schedule = next(s for s in defs.schedules if s.name == "full_resync_products_to_batch_schedule")
    assert schedule.cron_schedule == "0 3 * * 0"
    job = defs.resolve_job_def("full_resync_products_to_batch")
    assert job.tags["sync"] == "full_resync"
    assert job.run_config["ops"]["activations__products_to_batch"]["config"] == {"full_resync": True}


def test_the_full_resync_job_resends_everything_and_deletes_nothing(project, instance):
    from activation_pipeline_tests.conftest import expected_items, product

    project.add_activation(mode="full_then_delta", operation="mirror", max_delete_fraction=1.0, full_resync_schedule="weekly")
    rows = [product(i) for i in range(1, 11)]
    project.write_products(rows)
    project.materialize()
    project.write_products(rows[:6])
    defs = build_definitions(load_config(project.config_path), warehouse=project.warehouse)
    result = defs.resolve_job_def("full_resync_sync_products").execute_in_process(instance=instance)
    assert result.success
    meta = result.asset_materializations_for_node("activations__sync_products")[0].metadata
    assert meta["unchanged_resent"].value == 6 and meta["removed_planned"].value == 0
    assert project.catalog() == expected_items(rows)


def test_a_bad_full_resync_schedule_is_a_config_error(tmp_path):
    import pytest

    from activation_pipeline.config import ConfigError

    document = yaml.safe_load(DEMO.read_text())
    document["activations"]["products_to_batch"]["full_resync_schedule"] = "fortnightly"
    path = tmp_path / "activations.yaml"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(ConfigError, match="activations.products_to_batch.full_resync_schedule"):
        load_config(path)
