"""The lead-scoring model: features, training, scoring, reasons and backtests.

Owns: features.toml and the feature schema (`config`, `features`), the model directory and
scoring with it (`scoring`: `load`, `LeadModel`, `ScoreResult`; the trees' linear partner and
their blend: `linear`), the wording of reasons (`reasons`), training (`training`, its fitting
recipe `fitting`) and backtest figures and reports (`backtest`, `backtest_html`); `contract` is
what the rest of the package sees of a model.
May import: base.

`leadscore.model.load(path)` is the Python scoring API (DESIGN.md). The names below resolve on
first use (PEP 562), so importing `leadscore.model.contract` or `.config` never loads numpy or
lightgbm, which only the model layer carries.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {"load": "scoring", "LeadModel": "scoring", "ScoreResult": "scoring", "Tiers": "scoring"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
