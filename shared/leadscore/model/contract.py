"""The Python scoring API as the rest of the package sees it (DESIGN.md, "Python scoring API";
docs/CONTRACTS.md, "Python APIs"): what `leadscore.model.load()` returns, as protocols.

No numpy here: the score pipeline and `POST /score` type against this module, and the model
they are given is loaded from the model layer by the handler.
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
