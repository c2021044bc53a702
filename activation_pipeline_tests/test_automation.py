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
    project.reset_stats()
    result = defs.resolve_job_def("full_resync_sync_products").execute_in_process(instance=instance)
    assert result.success
    meta = result.asset_materializations_for_node("activations__sync_products")[0].metadata
    assert meta["unchanged_resent"].value == 6 and meta["removed_planned"].value == 0
    assert project.stats()["items_received"] == 6  # Batch received the six again, and no deletion
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


def sensor_tick(sensor_def, instance, cursor):
    from dagster import build_sensor_context

    with build_sensor_context(instance=instance, cursor=cursor) as context:
        result = sensor_def.evaluate_tick(context)
    return list(result.run_requests or []), result.cursor, result.skip_message


def test_a_changed_source_file_launches_only_what_reads_it_and_only_once(tmp_path, instance):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(DEMO.parent / "demo", data / "demo")
    shutil.copy(DEMO, data / "activations.yaml")
    defs = build_definitions(load_config(data / "activations.yaml"), warehouse=tmp_path / "w.duckdb")
    sensor_def = next(s for s in defs.sensors if s.name == "source_files_changed")

    requests, cursor, skip = sensor_tick(sensor_def, instance, None)
    assert requests == [] and "recorded" in skip  # a first tick only takes the baseline
    requests, cursor, skip = sensor_tick(sensor_def, instance, cursor)
    assert requests == [] and skip == "no source file changed"

    with open(data / "demo" / "products.csv", "a") as handle:
        handle.write(
            "SKU-9999999,,New Thing,9.99,0.2,Acme,1,black,Accessories/Hats,https://cdn.example.com/x.jpg,"
            "https://shop.example.com/p/x,discontinued,0,2026-11-01T00:00:00.000\n"
        )
    requests, cursor, _ = sensor_tick(sensor_def, instance, cursor)
    assert len(requests) == 1
    selected = {key.to_user_string() for key in requests[0].asset_selection}
    # every segment reading products and every activation pushing them, except products_to_batch: it is
    # continuous and has its own sensor, so it is left to that one
    assert selected == {
        "sources/products",
        "segments/in_stock_products",
        "segments/discontinued_products",
        "activations/in_stock_to_batch",
        "activations/price_refresh_to_batch",
        "activations/discontinued_cleanup",
        "segments/synerise_products",
        "activations/products_to_synerise",
        "segments/connectif_catalog",
        "activations/catalog_to_connectif",
        "segments/sellable_products",
        "activations/products_to_dotdigital",
    }
    assert requests[0].tags["changed_sources"] == "products"
    again, _, skip = sensor_tick(sensor_def, instance, cursor)
    assert again == [] and skip == "no source file changed"

    # products_to_batch is continuous: Dagster's automation syncs it when a file it reads changes, and only it
    from dagster import AssetKey, evaluate_automation_conditions, materialize

    from activation_pipeline_tests.conftest import observe_source_files, requested

    loaded = [AssetKey(["sources", "products"]), AssetKey(["sources", "order_lines"])]  # as after a first sync
    assert materialize(list(defs.assets), selection=loaded, resources=defs.resources, instance=instance).success
    sensors = {s.name: s for s in defs.sensors}
    assert sensors["observe_source_files"].minimum_interval_seconds == sensors["continuous_syncs"].minimum_interval_seconds == 30
    observed = observe_source_files(defs, instance)  # the files' data versions, before the change
    evaluation = evaluate_automation_conditions(defs, instance)
    assert requested(defs, evaluation) == {}
    (data / "demo" / "order_lines.csv").write_text((data / "demo" / "order_lines.csv").read_text() + "O000000001,9,SKU-0000001,1,1.0,1.0\n")
    observe_source_files(defs, instance, observed)
    evaluation = evaluate_automation_conditions(defs, instance, cursor=evaluation.cursor)
    assert requested(defs, evaluation) == {
        "sources/order_lines": {None},
        "segments/sellable_products": {None},
        "activations/products_to_batch": {None},
    }


def test_a_failed_sync_is_recorded_in_the_ledger_and_posted_to_the_webhook(project, instance, monkeypatch):
    import json
    import socket
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from dagster import DagsterEventType, build_run_status_sensor_context

    from activation_pipeline.automation import record_failed_syncs
    from activation_pipeline.warehouse import WarehouseResource
    from activation_pipeline_tests.conftest import product

    received = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    hook = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    monkeypatch.setenv("ACTIVATION_FAILURE_WEBHOOK_URL", f"http://127.0.0.1:{hook.server_port}/hooks/sync-failed")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        monkeypatch.setenv("BATCH_BASE_URL", f"http://127.0.0.1:{probe.getsockname()[1]}/batch/2.11")  # nobody listens
    project.add_activation()
    project.write_products([product(1)])
    result = project.materialize(raise_on_error=False)
    assert not result.success
    failure = next(e for e in instance.all_logs(result.run_id) if e.dagster_event and e.dagster_event.event_type == DagsterEventType.RUN_FAILURE)
    context = build_run_status_sensor_context(
        sensor_name="record_failed_syncs",
        dagster_event=failure.dagster_event,
        dagster_instance=instance,
        dagster_run=instance.get_run_by_id(result.run_id),
        resources={"warehouse": WarehouseResource(database=str(project.warehouse))},
    ).for_run_failure()
    record_failed_syncs(context)
    hook.shutdown()

    rows = project.sql("SELECT run_id, activation, error FROM activation_state.failed_runs")
    assert len(rows) == 1 and rows[0][:2] == (result.run_id, "sync_products") and "sandbox is not running" in rows[0][2]
    assert received and received[0]["run_id"] == result.run_id
    assert received[0]["failures"][0]["activation"] == "sync_products"
