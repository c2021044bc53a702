"""The executor every job runs with, chosen by ``ACTIVATION_EXECUTOR`` instead of a code change.

- unset, empty or ``multiprocess``: Dagster's multiprocess executor (a process per step), its processes
  forked from a server that has already imported Dagster, DuckDB, Polars and the engine
  (``start_method: forkserver``): a step starts in about a second instead of three or more, which is
  most of the time of a run of many small steps (``test_end_to_end.py``'s 50 steps: 118 s instead of
  210 s). Its run config (``max_concurrent``, ``tag_concurrency_limits``, ``start_method``, ...) is
  Dagster's, so ``start_method: {spawn: {}}`` in a run's config goes back to a fresh interpreter per step,
  as it does by itself where the temporary folder's path is too long for the forkserver's socket;
- ``in_process``: Dagster's in-process executor (every step in the run's process);
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
import tempfile
from typing import Any

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


# what a step process needs, imported once by the forkserver (not the definitions: a project of its own
# builds them from its own module, which the child then loads)
FORKSERVER_PRELOAD = ["activation_pipeline.assembly"]


def forkserver_fits() -> bool:
    """Whether multiprocessing's forkserver can listen where it would: a Unix socket at
    ``$TMPDIR/pymp-XXXXXXXX/listener-XXXXXXXX``, whose path may not exceed 107 bytes (a long TMPDIR fails
    every step with "AF_UNIX path too long")."""
    return len(os.fsencode(os.path.join(tempfile.gettempdir(), "pymp-xxxxxxxx", "listener-xxxxxxxx"))) <= 100


def _preloading(config: dict[str, Any]) -> dict[str, Any]:
    """Dagster's multiprocess config, forkserver by default (spawn where its socket would not fit)."""
    start = {"forkserver": {"preload_modules": FORKSERVER_PRELOAD}} if forkserver_fits() else {"spawn": {}}
    return {"start_method": start, **config}


MULTIPROCESS = multiprocess_executor.configured(_preloading, name="multiprocess", config_schema=multiprocess_executor.config_schema.as_field())


def executor_from_env() -> ExecutorDefinition:
    """The executor ``ACTIVATION_EXECUTOR`` names (unset: multiprocess, forked from a preloaded server)."""
    choice = os.environ.get(EXECUTOR_ENV, "").strip()
    if not choice or choice == "multiprocess":
        return MULTIPROCESS
    if choice == "in_process":
        return in_process_executor
    if choice == "celery":
        return _celery_executor()
    if choice == "k8s":
        return _import_extra("dagster_k8s", "pip install 'activation_pipeline[k8s]'", "k8s").k8s_job_executor  # type: ignore[attr-defined]
    raise ExecutorChoiceError(
        f"{EXECUTOR_ENV}={choice!r} is not an executor: use one of {', '.join(CHOICES)}, or leave it unset for Dagster's default"
    )
