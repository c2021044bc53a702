"""The one place that wires a config into Definitions: assets, checks, resources, jobs, schedules and sensors.

Used by this repository's ``definitions.py`` and by ``ActivationsComponent``."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from dagster import Definitions, with_source_code_references

from activation_pipeline.asset_automation import build_automation_sensors, with_automation
from activation_pipeline.assets.activations import (
    build_activation_asset,
    destination_resource_key,
)
from activation_pipeline.assets.checks import build_segment_checks
from activation_pipeline.assets.mapped_columns import check_mapped_columns
from activation_pipeline.assets.observed_files import build_source_file_asset
from activation_pipeline.assets.segments import build_segment_asset
from activation_pipeline.assets.sources import build_source_asset
from activation_pipeline.assets.verification import build_verification_check, verifies
from activation_pipeline.automation import build_jobs, build_schedules, build_sensors
from activation_pipeline.config import ProjectConfig
from activation_pipeline.executors import executor_from_env
from activation_pipeline.platforms import PLATFORMS
from activation_pipeline.warehouse import WarehouseResource, warehouse_location


def build_definitions(config: ProjectConfig, warehouse: Path | str | None = None) -> Definitions:
    database = str(warehouse) if warehouse else warehouse_location()  # a DuckDB file path or a postgresql:// URL
    check_mapped_columns(config, database)  # a mapping to a column the stored segment lacks fails the load
    jobs = build_jobs(config)
    resources: dict[str, Any] = {"warehouse": WarehouseResource(database=database)}
    for name, destination in config.destinations.items():
        resources[destination_resource_key(name)] = PLATFORMS[destination.platform].resource_factory(destination)
    assets = [
        *(build_source_file_asset(config, name) for name in config.sources),
        *(build_source_asset(config, name) for name in config.sources),
        *(build_segment_asset(config, name) for name in config.segments),
        *(build_activation_asset(config, name) for name in config.activations),
    ]
    with warnings.catch_warnings():  # Dagster marks code references beta; the warning would print on every load
        warnings.filterwarnings("ignore", message=".*is currently in beta.*")
        referenced = with_source_code_references(with_automation(config, assets))  # each asset also points at its factory's function
    return Definitions(
        assets=referenced,
        asset_checks=[
            *(build_segment_checks(config, name) for name in config.segments),
            *(
                build_verification_check(config, name, destination_resource_key(activation.destination))
                for name, activation in config.activations.items()
                if verifies(config, name)
            ),
        ],
        resources=resources,
        jobs=list(jobs.values()),
        schedules=build_schedules(config, jobs),
        sensors=[*build_sensors(config, jobs), *build_automation_sensors(config)],
        executor=executor_from_env(),  # ACTIVATION_EXECUTOR (unset: multiprocess, its steps forked from a preloaded server)
    )
