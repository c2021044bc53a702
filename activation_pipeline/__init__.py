"""activation_pipeline: warehouse segments synced to marketing platforms as Dagster assets.

``activation_pipeline.ActivationsComponent`` is imported on first use, so that the sandbox and the
CLI start without loading Dagster's component machinery (PEP 562 module ``__getattr__``)."""

from __future__ import annotations

from typing import Any

__all__ = ["ActivationsComponent"]


def __getattr__(name: str) -> Any:
    if name == "ActivationsComponent":
        from activation_pipeline.component import ActivationsComponent

        return ActivationsComponent
    raise AttributeError(f"module 'activation_pipeline' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
