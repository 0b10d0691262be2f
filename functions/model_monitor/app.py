"""ModelMonitorFunction — daily: drift of the leads scored in the last days against the model's
training reference, realised accuracy once outcomes are known, as CloudWatch metrics
(FeatureDriftMaxPSI, ScoreDriftPSI, FeaturePSI, RealizedAUC, ConversionRate, TierConversion...).
Logic: leadscore.monitoring.monitor; wiring: leadscore.monitoring.wiring.ModelMonitorFunction.

Env: FEATURE_SNAPSHOT_TABLE, MODEL_DIR, OUTCOME_WINDOW_DAYS, MONITOR_DRIFT_DAYS,
MONITOR_ACCURACY_DAYS, MONITOR_TREND_DAYS, MONITOR_MIN_LEADS, MONITOR_MIN_OUTCOMES, plus
Powertools.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from leadscore.monitoring.wiring import ModelMonitorFunction
from leadscore.observability import logger, metrics, tracer

function = ModelMonitorFunction()  # once per container; the model loads on first use


@logger.inject_lambda_context(correlation_id_path=correlation_paths.EVENT_BRIDGE,
                              clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return function.handle(event, context)
