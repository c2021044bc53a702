"""This repository's code location: ``data/activations.yaml`` (or ``$ACTIVATION_CONFIG``) as ``defs``.

In a team's own Dagster project, the same is one ``activation_pipeline.ActivationsComponent``
(``activation_pipeline/component.py``)."""

from __future__ import annotations

from activation_pipeline.assembly import build_definitions
from activation_pipeline.config import load_config

__all__ = ["build_definitions", "defs"]

defs = build_definitions(load_config())
