"""The environments of ModelMonitorFunction and of the score function's shadow challenger
(docs/CONTRACTS.md, "Environment variables").

No numpy/lightgbm here: the score function imports the shadow challenger's settings at cold
start, before it loads the model.
"""

from __future__ import annotations

from pydantic import PositiveFloat, PositiveInt

from leadscore.settings import CommonSettings, EnvModel, NonEmpty


class MonitorSettings(CommonSettings):
    feature_snapshot_table: NonEmpty
    model_dir: NonEmpty = "/opt/model"
    outcome_window_days: PositiveInt = 60  # the learning loop's OutcomeWindowDays
    monitor_drift_days: PositiveInt = 7
    monitor_accuracy_days: PositiveInt = 30
    monitor_trend_days: PositiveInt = 182
    monitor_min_leads: PositiveInt = 200
    monitor_min_outcomes: PositiveInt = 300
    # The conversion and accuracy alarms' thresholds (the template passes the same parameters).
    monitor_conversion_shift: PositiveFloat = 0.10
    monitor_auc_drop: PositiveFloat = 0.05


class ShadowSettings(EnvModel):
    """The score function's shadow challenger; without `shadow_challenger_parameter` there is
    none."""

    shadow_challenger_parameter: str | None = None  # SSM name: {"version", "prefix"} or "none"
    model_artifacts_bucket: str | None = None  # where candidates/<version>/ lives
    feature_snapshot_table: str | None = None  # where shadow scores are recorded
    # Shadow work (scoring + recording) of one batch above this pauses it SHADOW_PAUSE_SECONDS.
    shadow_max_milliseconds: PositiveFloat = 250.0
    shadow_pause_seconds: PositiveInt = 600
