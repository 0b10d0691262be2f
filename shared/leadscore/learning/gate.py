"""The champion/challenger gate: both models score the same newest labelled leads (each lead
aged as of its own first score), and the challenger is promoted only if it is not worse.

Figures per model (`leadscore.model.backtest.evaluate`, the same code as `leadscore backtest`):
AUC, Brier score, lift and conversion in the top decile, conversion per tier. The rule:

    challenger AUC   >= champion AUC   - PromotionAucTolerance   (default 0.005)
    challenger Brier <= champion Brier + PromotionBrierTolerance (default 0.005)

A tolerance, because on a few hundred judged leads two equally good models differ by more
than noise-free thousandths; a challenger within it is still taken, since it was trained on
more recent leads. Set both to 0 to demand strictly no loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field

from leadscore.learning.dataset import LabelledLead, rows_and_times
from leadscore.model.backtest import evaluate

DEFAULT_AUC_TOLERANCE = 0.005
DEFAULT_BRIER_TOLERANCE = 0.005


class GatePolicy(BaseModel):
    auc_tolerance: float = Field(default=DEFAULT_AUC_TOLERANCE, ge=0, le=1)
    brier_tolerance: float = Field(default=DEFAULT_BRIER_TOLERANCE, ge=0, le=1)


class TierFigures(BaseModel):
    tier: str
    leads: int
    conversion_rate: float
    lift: float


class ModelFigures(BaseModel):
    """How one model ranked the judged leads."""

    version: str
    rows: int
    conversions: int
    auc: float | None
    brier: float
    lift_top_decile: float  # conversion in the best-ranked 10 % over the base rate
    conversion_top_decile: float
    tiers: list[TierFigures]


class GateVerdict(BaseModel):
    passed: bool
    auc_delta: float | None  # challenger - champion
    brier_delta: float  # challenger - champion (lower is better)
    reasons: list[str]


def judge_models(model: Any, leads: Sequence[LabelledLead]) -> tuple[ModelFigures, dict]:
    """`model` (a `leadscore.model.LeadModel`) on the judged leads: its figures and the full
    backtest report (what `leadscore.model.backtest_html` draws)."""
    rows, times = rows_and_times(leads)
    probability, scores = model.predict(rows, now=times)
    labels = [int(lead.positive) for lead in leads]
    report = evaluate(labels, probability, scores, model.tiers)
    top = next(row for row in report["precision_at_k"] if row["k"] == "top 10%")
    figures = ModelFigures(
        version=model.version, rows=report["rows"], conversions=report["conversions"],
        auc=report["auc"], brier=report["brier"], lift_top_decile=top["lift"],
        conversion_top_decile=top["precision"],
        tiers=[TierFigures(tier=row["tier"], leads=row["leads"],
                           conversion_rate=row["conversion_rate"], lift=row["lift"])
               for row in report["tiers"]])
    return figures, report


def verdict(champion: ModelFigures, challenger: ModelFigures, policy: GatePolicy) -> GateVerdict:
    reasons = []
    brier_delta = round(challenger.brier - champion.brier, 6)
    brier_ok = brier_delta <= policy.brier_tolerance
    reasons.append(f"Brier {challenger.brier:.4f} vs champion {champion.brier:.4f} "
                   f"({brier_delta:+.4f}; allowed up to +{policy.brier_tolerance:.4f}): "
                   f"{'ok' if brier_ok else 'worse'}")
    if champion.auc is None or challenger.auc is None:
        reasons.insert(0, "AUC undefined: the judged leads hold only one outcome")
        return GateVerdict(passed=False, auc_delta=None, brier_delta=brier_delta,
                           reasons=reasons)
    auc_delta = round(challenger.auc - champion.auc, 6)
    auc_ok = auc_delta >= -policy.auc_tolerance
    reasons.insert(0, f"AUC {challenger.auc:.4f} vs champion {champion.auc:.4f} "
                      f"({auc_delta:+.4f}; allowed down to -{policy.auc_tolerance:.4f}): "
                      f"{'ok' if auc_ok else 'worse'}")
    return GateVerdict(passed=auc_ok and brier_ok, auc_delta=auc_delta, brier_delta=brier_delta,
                       reasons=reasons)
