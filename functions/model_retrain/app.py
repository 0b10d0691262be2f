"""ModelRetrainFunction — monthly, and on demand (`leadscore model retrain`): close outcome
windows, train a challenger on the feature snapshots of leads with outcomes, judge it against
the model in use on the newest of them, record the decision, promote it when it passed.
Logic: leadscore.learning.retrain; wiring: leadscore.learning.wiring.ModelRetrainFunction.

Env: HUBSPOT_TOKEN_SECRET, HUBSPOT_BASE_URL, FEATURE_SNAPSHOT_TABLE, MODEL_ARTIFACTS_BUCKET,
MODEL_DIR, MODEL_LAYER_NAME, STACK_NAME, OUTCOME_WINDOW_DAYS, TRAINING_CONSENT_PURPOSE,
RETRAIN_MIN_POSITIVES, RETRAIN_MIN_NEGATIVES, PROMOTION_AUC_TOLERANCE,
PROMOTION_BRIER_TOLERANCE, MODEL_PROMOTION, the erasure variables (a snapshot whose consent is
gone is erased with a receipt), plus Powertools.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from leadscore.learning.wiring import ModelRetrainFunction
from leadscore.observability import logger, metrics, tracer

function = ModelRetrainFunction()  # once per container; its factories are the seams tests replace


@logger.inject_lambda_context(correlation_id_path=correlation_paths.EVENT_BRIDGE,
                              clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return function.handle(event, context)
