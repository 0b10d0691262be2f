"""The Python scoring API as the rest of the package sees it (DESIGN.md, "Python scoring API";
docs/CONTRACTS.md, "Python APIs"): what `leadscore.model.load()` returns, as protocols, and
`load_model`, which loads it on first use.

No numpy here: the score pipeline and `POST /score` type against this module, and the score
and score_api functions load the model from the model layer only when they first need it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol


class ScoreResultLike(Protocol):
    """`leadscore.model.ScoreResult`."""

    score: int
    probability: float
    tier: str
    reasons: list[str]


class ScoringModel(Protocol):
    """`leadscore.model.LeadModel`."""

    version: str
    properties: list[str]

    def score(self, properties: Mapping[str, str | None]) -> ScoreResultLike: ...

    def score_many(self, rows: Sequence[Mapping[str, str | None]],
                   with_reasons: bool = True) -> list[ScoreResultLike]: ...


def load_model(model_dir: str) -> ScoringModel:
    """`leadscore.model.load(model_dir)`, imported here: numpy and lightgbm come from the model
    layer and are loaded with the model, not with this module."""
    from leadscore.model import load

    return load(model_dir)
