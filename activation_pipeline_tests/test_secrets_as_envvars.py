"""Secrets reach the platform resources as ``dagster.EnvVar``: Dagster's config, and the UI's resource
page, hold the name of the environment variable, never its value; Dagster resolves it when a run
starts. Against the loopback sandbox a variable left unset means the sandbox's demo credential.
(A real platform whose variable is unset is refused before the run: test_security.py.)"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import requests
from dagster import EnvVar

from activation_pipeline.config import load_config
from activation_pipeline.dagster_home import prepare_home
from activation_pipeline.definitions import build_definitions
from activation_pipeline.platforms import PLATFORMS
from activation_pipeline_tests.conftest import dagster_dev, expected_items, product
from activation_pipeline_tests.platform_cases import CASES

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk_live_Ev4r9Qw2Zt7Yx1Lp3Mn8"
RESOURCE = "destination_batch_test"


def loaded_resources(project: Any) -> dict[str, Any]:
    """The resources of the Definitions the project's config file loads into, as `dagster dev` loads them."""
    return dict(build_definitions(load_config(project.config_path), warehouse=project.warehouse).resources or {})


def secrets_of(resource: Any) -> dict[str, Any]:
    return {name: getattr(resource, name) for name in type(resource).secret_fields()}


@pytest.mark.parametrize("platform", sorted(CASES))
def test_every_platform_resource_holds_its_secrets_as_envvars_naming_the_variables(project_for, monkeypatch, platform):
    case = CASES[platform]
    project = project_for(platform)
    project.add_activation()
    monkeypatch.setenv(case.base_url[0], "https://api.example.com")  # a real account: never the demo credential
    secrets = secrets_of(loaded_resources(project)[f"destination_{case.destination}"])
    assert set(secrets) == set(PLATFORMS[platform].secrets)
    assert all(isinstance(value, EnvVar) for value in secrets.values())
    assert {value.env_var_name for value in secrets.values()} == set(case.secret_envs)


def test_the_envvars_are_the_variables_the_destination_declares(project_for, monkeypatch):
    project = project_for("yotpo")
    project.destination_extra = {"secrets": {"store_id": "SHOP_STORE_ID", "secret": "SHOP_YOTPO_SECRET"}}
    project.add_activation()
    monkeypatch.setenv("SHOP_STORE_ID", "store-4242")
    monkeypatch.setenv("SHOP_YOTPO_SECRET", KEY)
    resource = loaded_resources(project)["destination_yotpo_test"]
    assert {name: value.env_var_name for name, value in secrets_of(resource).items()} == {"store_id": "SHOP_STORE_ID", "secret": "SHOP_YOTPO_SECRET"}
    assert KEY not in repr(resource) and "store-4242" not in repr(resource)


def test_against_the_sandbox_an_unset_variable_leaves_the_secret_unset_and_the_demo_credential_is_sent(project):
    project.add_activation()
    assert secrets_of(loaded_resources(project)[RESOURCE]) == {"rest_api_key": None, "project_key": None}
    rows = [product(i) for i in range(1, 4)]
    project.write_products(rows)
    project.materialize()
    assert project.catalog() == expected_items(rows)  # the sandbox refuses any key but its demo one


def test_a_variable_set_against_the_sandbox_is_an_envvar_and_its_value_is_what_the_platform_gets(project, monkeypatch):
    project.add_activation()
    monkeypatch.setenv("BATCH_REST_API_KEY", KEY)  # not the sandbox's key: the sandbox refuses it
    secrets = secrets_of(loaded_resources(project)[RESOURCE])
    assert secrets["rest_api_key"].env_var_name == "BATCH_REST_API_KEY" and secrets["project_key"] is None
    project.write_products([product(1)])
    assert not project.materialize(raise_on_error=False).success  # Dagster resolved the EnvVar: that key was sent
    assert project.catalog() == {}
    monkeypatch.delenv("BATCH_REST_API_KEY")
    assert project.materialize().success  # unset again: the demo credential
    assert project.catalog() == expected_items([product(1)])


RESOURCES = """{ repositoriesOrError { ... on RepositoryConnection { nodes {
  allTopLevelResourceDetails { name configuredValues { key value type } } } } } }"""


def test_the_ui_shows_the_variable_names_of_the_secrets_and_never_their_values(project, tmp_path, monkeypatch):
    """What the UI's resource page reads, over GraphQL from `dagster-webserver` on the project's config."""
    project.add_activation()
    monkeypatch.setenv("BATCH_REST_API_KEY", KEY)
    env = {
        **os.environ,
        "DAGSTER_HOME": str(prepare_home(tmp_path / "dagster_home", ROOT / "dagster.yaml")),
        "ACTIVATION_CONFIG": str(project.config_path),
        "ACTIVATION_WAREHOUSE": str(project.warehouse),
    }
    with dagster_dev(env, tmp_path) as url:  # the webserver's GraphQL, as the UI's resource page reads it
        response = requests.post(f"{url}/graphql", json={"query": RESOURCES}, timeout=60)
        response.raise_for_status()
    assert KEY not in response.text
    (repository,) = response.json()["data"]["repositoriesOrError"]["nodes"]
    (resource,) = [r for r in repository["allTopLevelResourceDetails"] if r["name"] == RESOURCE]
    values = {v["key"]: (v["type"], v["value"]) for v in resource["configuredValues"]}
    assert values["rest_api_key"] == ("ENV_VAR", "BATCH_REST_API_KEY")
    assert values["project_key"] == ("VALUE", "null")  # unset against the sandbox: the client sends the demo credential
    assert "project_sandbox" not in response.text
