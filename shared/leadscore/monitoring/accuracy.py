"""Realised accuracy: how the scores recorded at first score fared once outcomes were known.

A lead's outcome is final when its outcome window has closed (`outcome_window_days` after its
first score: a conversion later than that counts as none) or when it converted earlier. Only
cohorts whose windows have all closed are judged: a younger cohort has its conversions but not
yet its non-conversions, which would flatter the conversion rate and skew the AUC.

- Conversion rate: all final leads of the cohort, whichever model scored them, against the
  positive rate the model in use was trained on.
- Realised AUC, Brier, reliability and conversion per tier: the leads the model in use scored
  itself (their recorded probability and tier), against what its training promised. Scores
  recorded by an earlier version say nothing about this one; re-scoring them with it would not
  be honest either, since a retrained model may have learnt from those very leads.
- Shadow challenger: champion and challenger on the same leads.

The alarms compare a realised figure with a training one; on a small cohort chance alone moves
it past their thresholds (`make bench` measures how often, with no real change). So the figures
an alarm reads are emitted
only when the alarm's change is at least `ALARM_SIGMAS` standard errors of the cohort's own
estimate — binomial for the conversion rate, Hanley & McNeil (1982) for the AUC — and the
report says how many more outcomes it needs otherwise.

Pure Python: the monitor function imports no numpy outside the model.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel

from leadscore.monitoring.snapshots import Snapshot

TIERS = ("hot", "warm", "cold", "disqualified")
ALARM_SIGMAS = 3.0
RELIABILITY_BINS = 10
MIN_TIER_LEADS = 30  # a tier's conversion on fewer leads is shown, not emitted


def auc(labels: Sequence[bool], scores: Sequence[float]) -> float | None:
    """Mann-Whitney AUC (ties count half); None without both outcomes."""
    positives = sum(labels)
    negatives = len(labels) - positives
    if not positives or not negatives:
        return None
    order = sorted(range(len(scores)), key=scores.__getitem__)
    rank_sum, i = 0.0, 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        average_rank = (i + j) / 2 + 1
        rank_sum += average_rank * sum(1 for k in order[i:j + 1] if labels[k])
        i = j + 1
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def conversion_change_error(training_rate: float, leads: int) -> float:
    """Standard error of (rate / training_rate − 1) for `leads` converting at training_rate."""
    return math.sqrt((1 - training_rate) / (training_rate * leads))


def auc_error(auc_value: float, positives: int, negatives: int) -> float:
    """Standard error of an AUC on these many positives and negatives (Hanley & McNeil)."""
    q1, q2 = auc_value / (2 - auc_value), 2 * auc_value ** 2 / (1 + auc_value)
    variance = (auc_value * (1 - auc_value) + (positives - 1) * (q1 - auc_value ** 2)
                + (negatives - 1) * (q2 - auc_value ** 2)) / (positives * negatives)
    return math.sqrt(max(variance, 0.0))


def brier(labels: Sequence[bool], probabilities: Sequence[float]) -> float | None:
    if not labels:
        return None
    return sum((p - y) ** 2 for y, p in zip(labels, probabilities, strict=True)) / len(labels)


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


class TierOutcome(BaseModel):
    tier: str
    leads: int
    conversions: int
    conversion_rate: float | None
    promised_rate: float | None  # the tier's conversion among the training's held-back leads


class ReliabilityBin(BaseModel):
    leads: int
    mean_predicted: float
    observed_rate: float


class Accuracy(BaseModel):
    cohort_from: datetime
    cohort_to: datetime
    status: Literal["measured", "too_few_outcomes", "no_outcomes"]
    note: str = ""
    leads: int  # first scored in the cohort
    final: int  # ... with a final outcome
    pending: int  # ... whose outcome was never settled (outcome capture has not seen them)
    prior: int  # ... that had converted before their first score (excluded)
    conversions: int
    conversion_rate: float | None
    training_conversion_rate: float | None
    conversion_change: float | None  # relative: rate / training rate − 1
    conversion_change_error: float | None  # its standard error on this many leads
    conversion_judged: bool  # the alarm's change is ≥ ALARM_SIGMAS errors: emitted
    model_version: str
    model_leads: int  # final leads the model in use scored itself
    realized_auc: float | None
    training_auc: float | None
    realized_auc_error: float | None
    auc_judged: bool  # the alarm's drop is ≥ ALARM_SIGMAS errors: emitted
    brier: float | None
    tiers: list[TierOutcome]
    reliability: list[ReliabilityBin]


def _reliability(labels: Sequence[bool], probabilities: Sequence[float]) -> list[ReliabilityBin]:
    order = sorted(range(len(labels)), key=probabilities.__getitem__)
    size = len(order)
    bins = []
    for b in range(RELIABILITY_BINS):
        members = order[b * size // RELIABILITY_BINS:(b + 1) * size // RELIABILITY_BINS]
        if members:
            bins.append(ReliabilityBin(
                leads=len(members),
                mean_predicted=round(sum(probabilities[i] for i in members) / len(members), 4),
                observed_rate=round(sum(labels[i] for i in members) / len(members), 4)))
    return bins


def promised_rates(metadata: Mapping) -> dict[str, float]:
    """Each tier's conversion rate among the training's held-back leads."""
    rows = (metadata.get("tiers") or {}).get("validation") or []
    return {row["tier"]: float(row["conversion_rate"]) for row in rows if "tier" in row}


def realised_accuracy(leads: Sequence[Snapshot], *, model_version: str, metadata: Mapping,
                      cohort_from: datetime, cohort_to: datetime, min_outcomes: int,
                      conversion_shift: float = 0.10, auc_drop: float = 0.05) -> Accuracy:
    """`conversion_shift` and `auc_drop`: the changes the alarms look for (relative, absolute),
    which decide whether the cohort is large enough to emit its figures."""
    final = [lead for lead in leads if lead.converted is not None]
    prior = sum(1 for lead in leads if lead.outcome == "prior")
    conversions = sum(1 for lead in final if lead.converted)
    metrics = metadata.get("metrics") or {}
    training_rate = metrics.get("positive_rate")
    rate = _rate(conversions, len(final))
    own = [lead for lead in final if lead.model_version == model_version]
    labels = [bool(lead.converted) for lead in own]
    probabilities = [lead.probability for lead in own]
    promised = promised_rates(metadata)
    tiers = []
    for tier in TIERS:
        members = [lead for lead in own if lead.tier == tier]
        won = sum(1 for lead in members if lead.converted)
        tiers.append(TierOutcome(tier=tier, leads=len(members), conversions=won,
                                 conversion_rate=_round(_rate(won, len(members))),
                                 promised_rate=promised.get(tier)))
    notes = []
    if not final:
        status, notes = "no_outcomes", ["no lead of the cohort has a final outcome yet"]
    elif len(final) < min_outcomes:
        status, notes = "too_few_outcomes", [
            f"{len(final)} leads with a final outcome, fewer than the {min_outcomes} needed: "
            "shown, not emitted"]
    else:
        status = "measured"
    conversion_error = (conversion_change_error(training_rate, len(final))
                        if final and training_rate and 0 < training_rate < 1 else None)
    conversion_judged = (status == "measured" and conversion_error is not None
                         and ALARM_SIGMAS * conversion_error <= conversion_shift)
    if status == "measured" and conversion_error is not None and not conversion_judged:
        needed = math.ceil(ALARM_SIGMAS ** 2 * (1 - training_rate)
                           / (training_rate * conversion_shift ** 2))
        notes.append(f"conversion rate not emitted: on {len(final):,} leads chance alone moves "
                     f"it by ±{100 * conversion_error:.0f} % (relative); telling a "
                     f"{100 * conversion_shift:.0f} % change from chance needs {needed:,}")
    realized = auc(labels, probabilities)
    training_auc = metrics.get("auc")
    positives = sum(labels)
    auc_err = (auc_error(training_auc, positives, len(labels) - positives)
               if realized is not None and training_auc else None)
    auc_judged = (len(own) >= min_outcomes and auc_err is not None
                  and ALARM_SIGMAS * auc_err <= auc_drop)
    if len(own) >= min_outcomes and auc_err is not None and not auc_judged:
        notes.append(f"realised AUC not emitted: on {positives:,} conversions among "
                     f"{len(own):,} leads its standard error is {auc_err:.3f}, too large to "
                     f"tell a drop of {auc_drop:g} from chance")
    return Accuracy(
        cohort_from=cohort_from, cohort_to=cohort_to, status=status, note="; ".join(notes),
        leads=len(leads), final=len(final), pending=len(leads) - len(final) - prior, prior=prior,
        conversions=conversions, conversion_rate=_round(rate),
        training_conversion_rate=training_rate,
        conversion_change=_round(rate / training_rate - 1)
        if rate is not None and training_rate else None,
        conversion_change_error=_round(conversion_error), conversion_judged=conversion_judged,
        model_version=model_version, model_leads=len(own),
        realized_auc=_round(realized), training_auc=training_auc,
        realized_auc_error=_round(auc_err), auc_judged=auc_judged,
        brier=_round(brier(labels, probabilities)), tiers=tiers,
        reliability=_reliability(labels, probabilities))


class TrendPoint(BaseModel):
    """One week of first scores (Monday to Sunday, UTC)."""

    week: str  # ISO date of the Monday
    leads: int
    final: int
    window_closed: bool  # every lead of the week is past its outcome window
    conversion_rate: float | None  # only once the window closed
    realized_auc: float | None  # recorded probabilities, whichever model recorded them
    versions: list[str]  # the models that scored the week's leads


def weekly_trend(leads: Iterable[Snapshot], *, now: datetime,
                 outcome_window_days: int) -> list[TrendPoint]:
    weeks: dict[datetime, list[Snapshot]] = defaultdict(list)
    for lead in leads:
        day = lead.scored_at.replace(hour=0, minute=0, second=0, microsecond=0)
        weeks[day - timedelta(days=day.weekday())].append(lead)
    points = []
    for monday in sorted(weeks):
        members = weeks[monday]
        final = [lead for lead in members if lead.converted is not None]
        closed = monday + timedelta(days=7 + outcome_window_days) <= now
        labels = [bool(lead.converted) for lead in final]
        points.append(TrendPoint(
            week=monday.date().isoformat(), leads=len(members), final=len(final),
            window_closed=closed,
            conversion_rate=_round(_rate(sum(labels), len(final))) if closed else None,
            realized_auc=_round(auc(labels, [lead.probability for lead in final]))
            if closed else None,
            versions=sorted({lead.model_version for lead in members})))
    return points


class ShadowComparison(BaseModel):
    challenger_version: str
    champion_versions: list[str]
    leads: int  # scored by both
    mean_abs_score_difference: float
    tier_agreement: float  # share of leads both put in the same tier
    champion_tiers: dict[str, int]
    challenger_tiers: dict[str, int]
    final: int  # ... whose outcome is final (both judged on these same leads)
    champion_auc: float | None
    challenger_auc: float | None
    champion_brier: float | None
    challenger_brier: float | None


def shadow_comparisons(leads: Iterable[Snapshot]) -> list[ShadowComparison]:
    """Champion vs each shadow challenger on the leads both scored. Every final outcome
    counts here, windows closed or not: both models are judged on the same leads."""
    by_version: dict[str, list[Snapshot]] = defaultdict(list)
    for lead in leads:
        if lead.shadow_version and lead.shadow_score is not None:
            by_version[lead.shadow_version].append(lead)
    out = []
    for version, members in sorted(by_version.items()):
        final = [lead for lead in members
                 if lead.converted is not None and lead.shadow_probability is not None]
        labels = [bool(lead.converted) for lead in final]
        champion = [lead.probability for lead in final]
        challenger = [float(lead.shadow_probability or 0.0) for lead in final]
        out.append(ShadowComparison(
            challenger_version=version,
            champion_versions=sorted({lead.model_version for lead in members}),
            leads=len(members),
            mean_abs_score_difference=round(
                sum(abs(lead.score - (lead.shadow_score or 0)) for lead in members)
                / len(members), 2),
            tier_agreement=round(sum(lead.tier == lead.shadow_tier for lead in members)
                                 / len(members), 4),
            champion_tiers=dict(Counter(lead.tier for lead in members)),
            challenger_tiers=dict(Counter(str(lead.shadow_tier) for lead in members)),
            final=len(final),
            champion_auc=_round(auc(labels, champion)),
            challenger_auc=_round(auc(labels, challenger)),
            champion_brier=_round(brier(labels, champion)),
            challenger_brier=_round(brier(labels, challenger))))
    return out
