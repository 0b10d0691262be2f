"""The lead-scoring model."""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {"load": "scoring", "LeadModel": "scoring", "ScoreResult": "scoring", "Tiers": "scoring",
         "score_csv": "scoring"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
