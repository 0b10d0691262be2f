"""Drift: how the leads scored in a window differ from the ones the model was trained on.

Population stability index per feature and for the score, over the bins of the model's
training reference (`leadscore.model.reference`):

    PSI = Σ (actual_i − expected_i) · ln(actual_i / expected_i)

with shares smoothed by half a lead per bin (`SMOOTHING`) on both sides, so a bin empty in
training but populated now — a category or a level of engagement the model never saw — is
large drift instead of a division by zero, and a bin merely empty in a small window is not.
Rule of thumb (and the alarm's threshold): < 0.1 stable, 0.1-0.25 moving, > 0.25 shifted.

PSI of a window without any change is not 0: sampling alone gives about (bins − 1) / leads,
so windows with fewer than `min_leads` leads are reported but not emitted as metrics.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel

from leadscore.model.reference import Reference, profile
from leadscore.monitoring.snapshots import Snapshot, model_inputs

if TYPE_CHECKING:
    from leadscore.model.scoring import LeadModel

SMOOTHING = 0.5  # leads added to every bin before taking shares
DRIFT_THRESHOLD = 0.25  # the alarm's; reports mark features above it

WindowStatus = Literal["measured", "too_few_leads", "no_leads", "no_reference"]


def shares(counts: Sequence[int], smoothing: float = 0.0) -> list[float]:
    total = sum(counts) + smoothing * len(counts)
    if total <= 0:
        return [0.0] * len(counts)
    return [(count + smoothing) / total for count in counts]


def psi(expected: Sequence[int], actual: Sequence[int]) -> float:
    """Population stability index of `actual` counts against `expected` counts (same bins)."""
    if len(expected) != len(actual):
        raise ValueError(f"{len(expected)} reference bins, {len(actual)} observed")
    e, a = shares(expected, SMOOTHING), shares(actual, SMOOTHING)
    return sum((ai - ei) * math.log(ai / ei) for ei, ai in zip(e, a, strict=True))


class BinShare(BaseModel):
    label: str
    training: float  # share of the training leads (validation leads for the score)
    window: float  # share of the window's leads


class FeatureDrift(BaseModel):
    name: str
    column: str
    kind: str
    psi: float
    absent: bool  # no lead of the window had the property at all: the model saw it missing
    bins: list[BinShare]


class ScoreDrift(BaseModel):
    psi: float
    bins: list[BinShare]


class WindowDrift(BaseModel):
    days: int
    scored_from: datetime
    scored_to: datetime
    leads: int
    status: WindowStatus
    note: str = ""
    versions: dict[str, int] = {}  # which models scored the window's leads, and how many
    max_psi: float | None = None  # over the features
    max_feature: str | None = None
    score: ScoreDrift | None = None
    features: list[FeatureDrift] = []


def _bins(labels: Sequence[str], expected: Sequence[int], actual: Sequence[int]) -> list[BinShare]:
    return [BinShare(label=label, training=round(e, 4), window=round(a, 4))
            for label, e, a in zip(labels, shares(expected), shares(actual), strict=True)]


def window_drift(model: LeadModel, reference: Reference | None, leads: Sequence[Snapshot], *,
                 days: int, scored_from: datetime, scored_to: datetime,
                 min_leads: int) -> WindowDrift:
    """PSI of every model feature and of the model's score over the leads first scored in the
    window, each lead's features taken as stored and aged from its own scoring time; the
    scores are the model's own (the model in use re-scores leads another version scored)."""
    window = WindowDrift(days=days, scored_from=scored_from, scored_to=scored_to,
                         leads=len(leads), status="measured",
                         versions=dict(Counter(lead.model_version for lead in leads)))
    if reference is None:
        return window.model_copy(update={
            "status": "no_reference",
            "note": "the model in use has no training reference (trained before monitoring "
                    "existed): retrain it to measure drift"})
    if not leads:
        return window.model_copy(update={"status": "no_leads",
                                         "note": "no lead was first scored in this window"})
    email = model.config.features.email
    measured = profile(model, reference, [model_inputs(lead.features, email) for lead in leads],
                       [lead.scored_at for lead in leads])
    features = []
    for name, bins in reference.features.items():
        actual = measured.feature_counts[name]
        features.append(FeatureDrift(
            name=name, column=bins.column, kind=bins.kind, psi=round(psi(bins.counts, actual), 4),
            absent=all(bins.column not in lead.features for lead in leads),
            bins=_bins(bins.labels, bins.counts, actual)))
    worst = max(features, key=lambda f: f.psi)
    score = ScoreDrift(psi=round(psi(reference.score.counts, measured.score_counts), 4),
                       bins=_bins(reference.score.labels, reference.score.counts,
                                  measured.score_counts))
    status: WindowStatus = "measured" if len(leads) >= min_leads else "too_few_leads"
    note = "" if status == "measured" else (
        f"{len(leads)} leads, fewer than the {min_leads} needed: sampling alone moves PSI by "
        f"about {(len(worst.bins) - 1) / len(leads):.2f}, so these figures are not emitted")
    return window.model_copy(update={"status": status, "note": note, "max_psi": worst.psi,
                                     "max_feature": worst.name, "score": score,
                                     "features": features})
