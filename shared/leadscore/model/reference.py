"""The training-time reference a model in use is monitored against: `metadata["reference"]`.

`training_reference(schema, matrix, validation_scores)` runs at training: it bins every feature
of the training matrix and the 0-100 scores of the held-back validation leads, so monitoring
needs no access to the training data. `Reference.from_metadata` reads it back, and
`profile(model, rows, times)` puts stored leads into the same bins (their features computed as
of their own scoring time) and re-scores them with the model.

Bins per feature, the last one always "(missing)" (empty, unparsable or a declared sentinel):

- numeric, datetime (age in days): up to 10 quantile bins of the training values, each `≤` an
  edge that is an observed value, plus one above the last edge (values larger than any the
  model was trained on);
- categorical: the model's `TOP_CATEGORIES` most frequent categories (the vocabulary is ordered
  by frequency, so they are codes 0..k-1) and "(other)": rarer ones and categories the model
  never saw, which the features module maps to the model's unknown category;
- boolean, email (free-mail or not): false, true.

Score bins: < 10, 10-19, ..., ≥ 90 on the 0-100 score.

No personal data: numeric edges are quantiles, category labels the model's own vocabulary
(already in its schema).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from leadscore.model.config import Kind
from leadscore.model.features import FeatureSchema, FeatureSpec, Vectorizer

if TYPE_CHECKING:
    from leadscore.model.scoring import LeadModel

REFERENCE_FORMAT = 1
MAX_NUMERIC_BINS = 10
TOP_CATEGORIES = 10
SCORE_EDGES = (10, 20, 30, 40, 50, 60, 70, 80, 90)
MISSING = "(missing)"
OTHER = "(other)"
_EDGE_DIGITS = 6  # edges are rounded before counting, so training and monitoring bin alike


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FeatureBins(_Frozen):
    """One feature's bins: labels and training counts (same length, "(missing)" last), plus
    how values fall into them: quantile `edges` (numeric, datetime) or the number of
    categories with a bin of their own (`top`, categorical)."""

    column: str
    kind: Kind
    labels: list[str] = Field(min_length=2)
    counts: list[int]
    edges: list[float] = []
    top: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> FeatureBins:
        if len(self.counts) != len(self.labels) or min(self.counts) < 0:
            raise ValueError("counts must be one non-negative number per label")
        expected = {"numeric": len(self.edges) + 2, "datetime": len(self.edges) + 2,
                    "categorical": self.top + 2, "boolean": 3, "email": 3}[self.kind]
        if len(self.labels) != expected:
            raise ValueError(f"{self.kind} feature needs {expected} bins, has {len(self.labels)}")
        if self.edges != sorted(set(self.edges)):
            raise ValueError("edges must increase")
        return self


class ScoreBins(_Frozen):
    edges: list[int]
    labels: list[str]
    counts: list[int]

    @model_validator(mode="after")
    def _consistent(self) -> ScoreBins:
        if not len(self.labels) == len(self.counts) == len(self.edges) + 1:
            raise ValueError("score bins need one label and count per bin (edges + 1)")
        return self


class Reference(_Frozen):
    format: Literal[1]
    rows: int = Field(gt=0)  # training rows the feature bins count
    features: dict[str, FeatureBins]  # by model feature name
    score: ScoreBins

    @classmethod
    def from_metadata(cls, metadata: Mapping) -> Reference | None:
        """The model's reference; None when its metadata predates references. A malformed
        one is a ValueError saying what is wrong."""
        raw = metadata.get("reference")
        if raw is None:
            return None
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                                 for e in exc.errors()[:3])
            raise ValueError(f"unreadable reference in the model metadata: {problems}") from None


# --------------------------------------------------------------------------- binning


def _quantile_edges(values: np.ndarray) -> list[float]:
    present = values[~np.isnan(values)]
    if not len(present):
        return []
    cut = np.quantile(present, np.linspace(0, 1, MAX_NUMERIC_BINS + 1)[1:-1], method="lower")
    return sorted({round(float(edge), _EDGE_DIGITS) for edge in cut})


def _number(value: float) -> str:
    return f"{value:.4g}"


def _labels(spec: FeatureSpec, edges: Sequence[float], top: int) -> list[str]:
    if spec.kind in ("numeric", "datetime"):
        unit = " days" if spec.kind == "datetime" else ""
        if not edges:
            return [f"any{unit}", MISSING]
        inner = [f"≤ {_number(edges[0])}{unit}"]
        inner += [f"{_number(low)} – {_number(high)}{unit}" for low, high in pairwise(edges)]
        return [*inner, f"> {_number(edges[-1])}{unit}", MISSING]
    if spec.kind == "categorical":
        return [*spec.vocabulary[:top], OTHER, MISSING]
    if spec.kind == "email":
        return ["business domain", "free-mail domain", MISSING]
    return ["false", "true", MISSING]


def bin_indices(bins: FeatureBins, values: np.ndarray) -> np.ndarray:
    """The bin of each value of one feature column (model inputs, NaN = missing)."""
    values = np.asarray(values, dtype=np.float64)
    missing = np.isnan(values)
    filled = np.where(missing, 0.0, values)
    if bins.kind in ("numeric", "datetime"):
        index = np.searchsorted(np.asarray(bins.edges, dtype=np.float64), filled, side="left")
    elif bins.kind == "categorical":
        index = np.minimum(filled, bins.top).astype(np.int64)  # every code ≥ top is "other"
    else:
        index = (filled > 0.5).astype(np.int64)
    return np.where(missing, len(bins.labels) - 1, index)


def _count(indices: np.ndarray, size: int) -> list[int]:
    return np.bincount(indices, minlength=size)[:size].astype(int).tolist()


def score_bin_counts(scores: np.ndarray | Sequence[int]) -> list[int]:
    indices = np.searchsorted(np.asarray(SCORE_EDGES), np.asarray(scores), side="right")
    return _count(indices, len(SCORE_EDGES) + 1)


def _score_labels() -> list[str]:
    edges = SCORE_EDGES
    return ([f"< {edges[0]}"] + [f"{low}–{high - 1}" for low, high in pairwise(edges)]
            + [f"≥ {edges[-1]}"])


def training_reference(schema: FeatureSchema, matrix: np.ndarray,
                       validation_scores: np.ndarray) -> dict:
    """`metadata["reference"]`: the binned training distribution of every feature of
    `matrix` (the training rows as the model saw them) and of the 0-100 scores of the
    held-back validation leads (the population the score is a percentile of)."""
    features = {}
    for j, spec in enumerate(schema.features):
        edges = _quantile_edges(matrix[:, j]) if spec.kind in ("numeric", "datetime") else []
        top = min(TOP_CATEGORIES, len(spec.vocabulary)) if spec.kind == "categorical" else 0
        labels = _labels(spec, edges, top)
        draft = FeatureBins(column=spec.column, kind=spec.kind, labels=labels,
                            counts=[0] * len(labels), edges=edges, top=top)
        counts = _count(bin_indices(draft, matrix[:, j]), len(labels))
        features[spec.name] = draft.model_copy(update={"counts": counts}).model_dump(
            exclude_defaults=True)
    score = ScoreBins(edges=list(SCORE_EDGES), labels=_score_labels(),
                      counts=score_bin_counts(validation_scores))
    return {"format": REFERENCE_FORMAT, "rows": len(matrix), "features": features,
            "score": score.model_dump()}


# --------------------------------------------------------------------------- monitoring


@dataclass(frozen=True)
class Profile:
    """Stored leads through a model: each feature's counts in its reference bins (by feature
    name), the counts of the model's scores in the score bins, and each lead's score and
    probability."""

    feature_counts: dict[str, list[int]]
    score_counts: list[int]
    scores: list[int]
    probabilities: list[float]


def profile(model: LeadModel, reference: Reference, rows: Sequence[Mapping[str, str | None]],
            times: Sequence[datetime]) -> Profile:
    """Bins `rows` (HubSpot property strings as stored at scoring) as `reference` bins the
    training data, each row's datetime ages measured from its own time in `times`."""
    if not rows:
        return Profile({name: [0] * len(b.labels) for name, b in reference.features.items()},
                       [0] * len(reference.score.labels), [], [])
    matrix = Vectorizer(model.schema).transform(rows, list(times))
    columns = {spec.name: j for j, spec in enumerate(model.schema.features)}
    counts = {name: _count(bin_indices(bins, matrix[:, columns[name]]), len(bins.labels))
              for name, bins in reference.features.items() if name in columns}
    probabilities, scores = model.predict(rows, now=list(times))
    return Profile(counts, score_bin_counts(scores), np.asarray(scores).astype(int).tolist(),
                   np.round(probabilities, 6).tolist())
