"""The executor every job runs with, chosen by ``ACTIVATION_EXECUTOR`` instead of a code change.

- unset or empty: Dagster's default (each step in its own process, or in one process when asked);
- ``multiprocess`` / ``in_process``: Dagster's own executors;
- ``celery``: ``dagster_celery.celery_executor`` (``pip install '.[celery]'``), its broker read from
  ``ACTIVATION_CELERY_BROKER`` (e.g. ``redis://host:6379/0``) and its result backend from
  ``ACTIVATION_CELERY_BACKEND`` (default: the broker); steps run on ``dagster-celery worker start``
  processes listening to the same broker;
- ``k8s``: ``dagster_k8s.k8s_job_executor`` (``pip install dagster-k8s``), each step a Kubernetes job.

Executors are described at https://docs.dagster.io/guides/operate/run-executors. The extras are imported
only when chosen, so the embedded default needs neither.
"""

from __future__ import annotations

import importlib
import os

from dagster import ExecutorDefinition, in_process_executor, multiprocess_executor

EXECUTOR_ENV = "ACTIVATION_EXECUTOR"
CELERY_BROKER_ENV = "ACTIVATION_CELERY_BROKER"
CELERY_BACKEND_ENV = "ACTIVATION_CELERY_BACKEND"
CHOICES = ("multiprocess", "in_process", "celery", "k8s")


class ExecutorChoiceError(ValueError):
    """``ACTIVATION_EXECUTOR`` names an executor that is unknown, or whose package is not installed."""


def _import_extra(module: str, install: str, choice: str) -> object:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ExecutorChoiceError(f"{EXECUTOR_ENV}={choice} needs the package {module} ({exc.name} is missing): {install}") from None


def _celery_executor() -> ExecutorDefinition:
    if not os.environ.get(CELERY_BROKER_ENV):
        raise ExecutorChoiceError(f"{EXECUTOR_ENV}=celery needs {CELERY_BROKER_ENV}, the broker's URL (e.g. redis://127.0.0.1:6379/0)")
    dagster_celery = _import_extra("dagster_celery", "pip install 'activation_pipeline[celery]'", "celery")
    backend = CELERY_BACKEND_ENV if os.environ.get(CELERY_BACKEND_ENV) else CELERY_BROKER_ENV
    # {"env": ...} is resolved where the run starts: a password in the broker URL is never stored with the run
    return dagster_celery.celery_executor.configured(  # type: ignore[attr-defined]
        {"broker": {"env": CELERY_BROKER_ENV}, "backend": {"env": backend}}
    )


def executor_from_env() -> ExecutorDefinition | None:
    """The executor ``ACTIVATION_EXECUTOR`` names, or None for Dagster's default."""
    choice = os.environ.get(EXECUTOR_ENV, "").strip()
    if not choice:
        return None
    if choice == "multiprocess":
        return multiprocess_executor
    if choice == "in_process":
        return in_process_executor
    if choice == "celery":
        return _celery_executor()
    if choice == "k8s":
        return _import_extra("dagster_k8s", "pip install 'activation_pipeline[k8s]'", "k8s").k8s_job_executor  # type: ignore[attr-defined]
    raise ExecutorChoiceError(
        f"{EXECUTOR_ENV}={choice!r} is not an executor: use one of {', '.join(CHOICES)}, or leave it unset for Dagster's default"
    )
