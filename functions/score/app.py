"""ScoreFunction — ScoreQueue batches: ledger order check → HubSpot read → consent → model →
HubSpot write → ledger → hot alert → enrichment; erasure for deletions, merges and withdrawals.
Logic: leadscore.scoring.pipeline; wiring: leadscore.scoring.wiring.ScoreFunction.

Env: HUBSPOT_TOKEN_SECRET, HUBSPOT_BASE_URL, HUBSPOT_REQUESTS_PER_SECOND, LEDGER_TABLE,
RETENTION_DAYS, MODEL_DIR, CONSENT_PURPOSES_PROPERTY, ENRICH_QUEUE_URL, HOT_LEADS_TOPIC_ARN,
ENRICH_TIERS, SCORE_QUEUE_URL, SCORE_DLQ_URL, SCORE_QUEUE_MAX_RECEIVE_COUNT, WATCHED_PROPERTIES,
the erasure variables (see leadscore.dpdp.settings.ErasureSettings), the shadow challenger's
SHADOW_CHALLENGER_PARAMETER, MODEL_ARTIFACTS_BUCKET, FEATURE_SNAPSHOT_TABLE (see
leadscore.monitoring.settings.ShadowSettings), plus Powertools.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from leadscore.monitoring.shadow import shadow_challenger_from_env
from leadscore.observability import logger, metrics, tracer
from leadscore.scoring.wiring import ScoreFunction

# Once per container; its factories are the seams tests replace. The shadow challenger (model
# monitoring) scores first-time leads beside the model when the stack names one.
function = ScoreFunction(shadow_factory=shadow_challenger_from_env)


# Correlation id: the batch's SQS message ids.
@logger.inject_lambda_context(correlation_id_path="Records[*].messageId", clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return function.handle(event, context)
