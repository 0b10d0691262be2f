"""How ModelMonitorFunction is assembled from its environment.

Made once per container by `functions/model_monitor/app.py`: settings, the snapshot table and
the model in use (from the model layer, `MODEL_DIR`, loaded on first use) are kept for the
container's life; "now" is `scheduled_time(event)` (the real clock outside the local stack).
Seams tests replace: `load_model`, `snapshot_source_factory`, and `close_outcome_windows`,
the learning loop's outcome capture (docs/CONTRACTS.md, "Outcomes"), which must run before the
monitor judges realised accuracy: until it is wired, outcomes come only from what the learning
loop recorded by itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from leadscore.model.contract import load_model
from leadscore.monitoring.metrics import publish
from leadscore.monitoring.monitor import MonitorConfig, MonitorResult, measure, monitor_gauges
from leadscore.monitoring.settings import MonitorSettings
from leadscore.monitoring.snapshots import DynamoDBSnapshots, SnapshotSource
from leadscore.observability import logger
from leadscore.timestamps import scheduled_time


class MonitorFailed(Exception):
    """Some part of the monitor could not be computed; the others were emitted."""


def summary(result: MonitorResult) -> dict[str, Any]:
    """What the function returns and logs: figures and statuses, no lead data."""
    return {
        "model_version": result.model.version,
        "reference": result.model.reference,
        "snapshots_read": result.snapshots_read,
        "unreadable_snapshots": result.unreadable_snapshots,
        "drift": {f"{d.days}d": {"status": d.status, "leads": d.leads, "max_psi": d.max_psi,
                                 "max_feature": d.max_feature} for d in result.drift},
        "accuracy": result.accuracy.status if result.accuracy else None,
        "metrics": result.metrics,
        "problems": result.problems,
    }


class ModelMonitorFunction:
    def __init__(self) -> None:
        self.load_model: Callable[[str], Any] = load_model
        self.snapshot_source_factory: Callable[[str], SnapshotSource] = DynamoDBSnapshots
        self.close_outcome_windows: Callable[[datetime], object] | None = None
        self.settings = cache(MonitorSettings.from_env)
        self.model = cache(lambda: self.load_model(self.settings().model_dir))

    def handle(self, event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
        settings = self.settings()
        now = scheduled_time(event)
        if self.close_outcome_windows is not None:
            self.close_outcome_windows(now)
        config = MonitorConfig(
            drift_days=settings.monitor_drift_days, accuracy_days=settings.monitor_accuracy_days,
            outcome_window_days=settings.outcome_window_days,
            trend_days=settings.monitor_trend_days, min_leads=settings.monitor_min_leads,
            min_outcomes=settings.monitor_min_outcomes,
            conversion_shift=settings.monitor_conversion_shift,
            auc_drop=settings.monitor_auc_drop)
        result = measure(self.model(), self.snapshot_source_factory(
            settings.feature_snapshot_table), now, config)
        publish(monitor_gauges(result))
        reply = summary(result)
        logger.info("Model monitor done", extra=reply)
        if result.problems:  # emitted what it could; the invocation still fails, loudly
            raise MonitorFailed("; ".join(result.problems))
        return reply
