"""The monitor job: one read of the stored leads, then drift, realised accuracy, the weekly
trend and the shadow comparison, as one `MonitorResult` (what ModelMonitorFunction emits as
metrics and `leadscore monitor report` renders).

Windows, relative to "now" (the run's scheduled time):

- drift: leads first scored in the last `drift_days` (7: the alarmed figures) and
  `report_drift_days` (30, in the report only);
- accuracy cohort: leads first scored `accuracy_days` (30) before their outcome windows could
  all have closed, i.e. in [now − outcome_window − accuracy_days, now − outcome_window);
- trend: the last `trend_days` (182, the default retention), by week.

Each part is computed on its own: one that fails is reported in `problems` and the others are
still emitted (the function then fails the invocation, so its error alarm fires too).
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel, PositiveFloat, PositiveInt

from leadscore.model.reference import Reference
from leadscore.monitoring.accuracy import (
    MIN_TIER_LEADS,
    Accuracy,
    ShadowComparison,
    TrendPoint,
    realised_accuracy,
    shadow_comparisons,
    weekly_trend,
)
from leadscore.monitoring.drift import WindowDrift, window_drift
from leadscore.monitoring.metrics import Gauge, gauge
from leadscore.monitoring.snapshots import Snapshot, SnapshotSource
from leadscore.observability import logger

if TYPE_CHECKING:
    from leadscore.model.scoring import LeadModel


class MonitorConfig(BaseModel):
    drift_days: PositiveInt = 7
    report_drift_days: PositiveInt = 30
    outcome_window_days: PositiveInt = 60
    accuracy_days: PositiveInt = 30
    trend_days: PositiveInt = 182
    min_leads: PositiveInt = 200  # per drift window
    min_outcomes: PositiveInt = 300  # final outcomes in the accuracy cohort
    # The changes the conversion and accuracy alarms look for (their thresholds).
    conversion_shift: PositiveFloat = 0.10
    auc_drop: PositiveFloat = 0.05


class ModelInfo(BaseModel):
    version: str
    training_auc: float | None
    training_conversion_rate: float | None
    tiers: dict[str, int]
    reference: bool
    reference_problem: str = ""


class MonitorResult(BaseModel):
    now: datetime
    config: MonitorConfig
    model: ModelInfo
    snapshots_read: int
    unreadable_snapshots: int
    drift: list[WindowDrift] = []
    accuracy: Accuracy | None = None
    trend: list[TrendPoint] = []
    shadow: list[ShadowComparison] = []
    problems: list[str] = []  # parts that could not be computed, and why
    # What ModelMonitorFunction emits: "Name" or "Name[dimension=value]" -> value.
    metrics: dict[str, float] = {}


def _read_from(now: datetime, config: MonitorConfig) -> datetime:
    days = max(config.drift_days, config.report_drift_days, config.trend_days,
               config.outcome_window_days + config.accuracy_days)
    return now - timedelta(days=days)


def _between(leads: list[Snapshot], start: datetime, end: datetime) -> list[Snapshot]:
    return [lead for lead in leads if start <= lead.scored_at < end]


def measure(model: LeadModel, source: SnapshotSource, now: datetime,
            config: MonitorConfig | None = None) -> MonitorResult:
    config = config or MonitorConfig()
    metadata = model.metadata
    metrics = metadata.get("metrics") or {}
    problems: list[str] = []
    try:
        reference = Reference.from_metadata(metadata)
        reference_problem = "" if reference else "no reference in the model metadata"
    except ValueError as exc:
        reference, reference_problem = None, str(exc)
    read = source.snapshots(_read_from(now, config), now)
    leads = read.snapshots
    result = MonitorResult(
        now=now, config=config, snapshots_read=len(leads), unreadable_snapshots=read.unreadable,
        model=ModelInfo(version=model.version, training_auc=metrics.get("auc"),
                        training_conversion_rate=metrics.get("positive_rate"),
                        tiers=model.tiers.model_dump(), reference=reference is not None,
                        reference_problem=reference_problem))

    def attempt(part: str, compute: Callable[[], Any]) -> Any:
        try:
            return compute()
        except Exception as exc:  # one part must not cost the others their figures
            logger.error("Monitor part failed", extra={"part": part,
                                                       "error": type(exc).__name__})
            problems.append(f"{part}: {type(exc).__name__}: {exc}")
            traceback.print_exc()
            return None

    for days in dict.fromkeys((config.drift_days, config.report_drift_days)):
        start = now - timedelta(days=days)
        drift = attempt(f"drift ({days} days)", lambda start=start, days=days: window_drift(
            model, reference, _between(leads, start, now), days=days, scored_from=start,
            scored_to=now, min_leads=config.min_leads))
        if drift is not None:
            result.drift.append(drift)
    cohort_to = now - timedelta(days=config.outcome_window_days)
    cohort_from = cohort_to - timedelta(days=config.accuracy_days)
    result.accuracy = attempt("accuracy", lambda: realised_accuracy(
        _between(leads, cohort_from, cohort_to), model_version=model.version,
        metadata=metadata, cohort_from=cohort_from, cohort_to=cohort_to,
        min_outcomes=config.min_outcomes, conversion_shift=config.conversion_shift,
        auc_drop=config.auc_drop))
    result.trend = attempt("trend", lambda: weekly_trend(
        leads, now=now, outcome_window_days=config.outcome_window_days)) or []
    result.shadow = attempt("shadow", lambda: shadow_comparisons(leads)) or []
    result.problems = problems
    result.metrics = {item.key: item.value for item in monitor_gauges(result)}
    return result


def monitor_gauges(result: MonitorResult) -> list[Gauge]:
    """The figures the monitor function emits (docs/CONTRACTS.md, "Monitoring"): only those
    measured on enough leads, so an alarm never fires on sampling noise. The training
    figures beside the realised ones are what the alarms' metric math compares with."""
    out: list[Gauge] = []
    if not result.model.reference:
        out.append(gauge("ModelWithoutReference", 1, unit=MetricUnit.Count))
    alarmed = next((d for d in result.drift if d.days == result.config.drift_days), None)
    if alarmed is not None:
        out.append(gauge("MonitorLeads", alarmed.leads, unit=MetricUnit.Count))
        if alarmed.status == "measured" and alarmed.score is not None:
            out.append(gauge("FeatureDriftMaxPSI", alarmed.max_psi or 0.0))
            out.append(gauge("ScoreDriftPSI", alarmed.score.psi))
            out += [gauge("FeaturePSI", feature.psi, dimension=("feature", feature.name))
                    for feature in alarmed.features]
    accuracy = result.accuracy
    if accuracy is not None:
        out.append(gauge("MonitorFinalOutcomes", accuracy.final, unit=MetricUnit.Count))
        if (accuracy.conversion_judged and accuracy.conversion_rate is not None
                and accuracy.training_conversion_rate):
            out.append(gauge("ConversionRate", accuracy.conversion_rate))
            out.append(gauge("TrainingConversionRate", accuracy.training_conversion_rate))
        if accuracy.auc_judged and accuracy.realized_auc is not None and accuracy.training_auc:
            out.append(gauge("RealizedAUC", accuracy.realized_auc))
            out.append(gauge("TrainingAUC", accuracy.training_auc))
        if accuracy.model_leads >= result.config.min_outcomes:
            out += [gauge("TierConversion", tier.conversion_rate, dimension=("tier", tier.tier))
                    for tier in accuracy.tiers
                    if tier.leads >= MIN_TIER_LEADS and tier.conversion_rate is not None]
    if result.unreadable_snapshots:
        out.append(gauge("MonitorUnreadableSnapshots", result.unreadable_snapshots,
                         unit=MetricUnit.Count))
    if result.problems:
        out.append(gauge("MonitorFailures", len(result.problems), unit=MetricUnit.Count))
    return out
