"""EnrichFunction — EnrichQueue batches: re-read each scored contact, re-check consent, enrich it
with an LLM and write the `ai_lead_*` enrichment properties back to HubSpot (partial batch
failures are redelivered). Logic: leadscore.enrichment.worker; wiring:
leadscore.enrichment.wiring.EnrichFunction.

Env: HUBSPOT_TOKEN_SECRET, HUBSPOT_BASE_URL, CONSENT_PURPOSES_PROPERTY, the LLM_* variables,
ANTHROPIC_BASE_URL, BEDROCK_REGION, ENRICHMENT_PROMPT_PARAMETER,
QUALIFICATION_CRITERIA_PARAMETER, ENRICHMENT_CONFIG_MAX_AGE_SECONDS, ENRICH_BUDGET_TABLE,
LLM_DAILY_BUDGET_USD, LLM_COST_RESERVATION_USD, ENRICH_QUEUE_URL, ENRICH_DLQ_URL,
ENRICH_QUEUE_MAX_RECEIVE_COUNT, IDEMPOTENCY_TABLE (see leadscore.enrichment.settings), plus
Powertools.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from leadscore.enrichment.wiring import EnrichFunction
from leadscore.observability import logger, metrics, tracer

function = EnrichFunction()  # once per container


@logger.inject_lambda_context(correlation_id_path="Records[*].messageId", clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return function.handle(event, context)
