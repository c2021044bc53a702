"""Safe deployments: a Dagster+ branch deployment, or a deployment named as a dry-run one (staging),
never pushes to a real platform unless the config says so; it plans and reports as a dry run.

Dagster+ sets ``DAGSTER_CLOUD_IS_BRANCH_DEPLOYMENT=1`` in branch deployments and
``DAGSTER_CLOUD_DEPLOYMENT_NAME`` in every deployment
(https://docs.dagster.io/dagster-plus/managing-deployments/reserved-environment-variables).
A destination on the loopback sandbox is always pushed to: nothing leaves the machine.
"""

from __future__ import annotations

import os

from activation_pipeline.config import DeploymentsConfig
from activation_pipeline.platforms.resource import is_loopback

BRANCH_ENV = "DAGSTER_CLOUD_IS_BRANCH_DEPLOYMENT"
NAME_ENV = "DAGSTER_CLOUD_DEPLOYMENT_NAME"


def push_refusal(policy: DeploymentsConfig, base_url: str) -> str | None:
    """Why this deployment may not push to ``base_url`` (the run becomes a dry run), or None when it may."""
    if is_loopback(base_url):
        return None
    name = os.environ.get(NAME_ENV, "")
    if os.environ.get(BRANCH_ENV) == "1" and policy.branch != "live":
        where = f"branch deployment {name!r}" if name else "a branch deployment"
        return (
            f"{where} (${BRANCH_ENV}=1) does not push to {base_url}: this run is a dry run; "
            "set deployments.branch: live in the config to push from branch deployments"
        )
    if name and name in policy.dry_run_deployments:
        return f"deployment {name!r} is listed under deployments.dry_run_deployments: this run is a dry run, nothing is sent to {base_url}"
    return None
