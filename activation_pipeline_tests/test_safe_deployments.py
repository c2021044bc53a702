"""A Dagster+ branch deployment, or a deployment the config names as a dry-run one, never pushes to a
real platform unless the config allows it: the run plans and reports as a dry run and says why. The
loopback sandbox is always pushed to. Real materializations; "real platform" is a non-loopback https
base URL that this machine cannot reach, so a run that did try to push would fail saying so."""

from __future__ import annotations

import pytest

from activation_pipeline_tests.conftest import product, reset_stats, run_metadata, sandbox_stats

REAL = "https://api.batch.example.com/2.11"  # not the sandbox: nothing may be sent there from a branch


@pytest.fixture
def real_destination(project, monkeypatch):
    monkeypatch.setenv("BATCH_REST_API_KEY", "key-from-the-branch-deployment")
    monkeypatch.setenv("BATCH_PROJECT_KEY", "project-from-the-branch-deployment")
    project.write_products([product(i) for i in range(1, 6)])
    project.destination_extra["base_url"] = REAL
    project.add_activation()
    return project


def test_a_branch_deployment_plans_as_a_dry_run_and_says_why(real_destination, monkeypatch):
    monkeypatch.setenv("DAGSTER_CLOUD_IS_BRANCH_DEPLOYMENT", "1")
    monkeypatch.setenv("DAGSTER_CLOUD_DEPLOYMENT_NAME", "feature-prices")
    result = real_destination.materialize()
    assert result.success  # planned, nothing sent: the unreachable platform was never called
    meta = run_metadata(result, real_destination.case.activation_name)
    assert "branch deployment 'feature-prices'" in meta["dry_run_reason"] and "deployments.branch: live" in meta["dry_run_reason"]
    assert meta["added_planned"] == 5 and meta["added_succeeded"] == 0
    assert real_destination.sql("SELECT count(*) FROM activation_state.sync_runs")[0][0] == 0  # a dry run records nothing


def test_a_branch_deployment_pushes_when_the_config_says_live(real_destination, monkeypatch):
    monkeypatch.setenv("DAGSTER_CLOUD_IS_BRANCH_DEPLOYMENT", "1")
    real_destination.top_level["deployments"] = {"branch": "live"}
    real_destination.write_config()
    result = real_destination.materialize(raise_on_error=False)
    assert not result.success  # it tried the real platform, which this machine cannot reach
    failure = next(e for e in result.all_events if e.is_step_failure).step_failure_data.error.message
    assert "cannot reach https://api.batch.example.com:443" in failure


def test_a_deployment_named_as_dry_run_never_pushes_and_production_does(real_destination, monkeypatch):
    real_destination.top_level["deployments"] = {"dry_run_deployments": ["staging"]}
    real_destination.write_config()
    monkeypatch.setenv("DAGSTER_CLOUD_DEPLOYMENT_NAME", "staging")
    meta = run_metadata(real_destination.materialize(), real_destination.case.activation_name)
    assert "deployment 'staging'" in meta["dry_run_reason"]
    monkeypatch.setenv("DAGSTER_CLOUD_DEPLOYMENT_NAME", "prod")
    result = real_destination.materialize(raise_on_error=False)
    assert not result.success  # production pushes (and here cannot reach the platform)


def test_a_branch_deployment_still_syncs_to_the_loopback_sandbox(project, sandbox, monkeypatch):
    monkeypatch.setenv("DAGSTER_CLOUD_IS_BRANCH_DEPLOYMENT", "1")
    project.write_products([product(i) for i in range(1, 6)])
    project.add_activation()
    reset_stats(sandbox)
    meta = run_metadata(project.materialize(), project.case.activation_name)
    assert "dry_run_reason" not in meta and meta["added_succeeded"] == 5
    assert sandbox_stats(sandbox)["items_received"] == 5 and len(project.catalog()) == 5
