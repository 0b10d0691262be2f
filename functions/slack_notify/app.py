"""SlackNotifyFunction — SlackAlertQueue batches (hot-lead alerts from HotLeadsTopic): re-read
each contact, check consent and tier, wait for its LLM summary when one is coming, and post it
once to the sales team's Slack channel (partial batch failures are redelivered; final ones go
to SlackAlertDLQ with a reason). Logic: leadscore.alerts.notifier; wiring:
leadscore.alerts.wiring.SlackNotifyFunction.

Env: HUBSPOT_TOKEN_SECRET, HUBSPOT_BASE_URL, CONSENT_PURPOSES_PROPERTY,
SLACK_WEBHOOK_URL_SECRET, SLACK_ALERT_QUEUE_URL, SLACK_ALERT_DLQ_URL,
SLACK_ALERT_QUEUE_MAX_RECEIVE_COUNT, IDEMPOTENCY_TABLE, ENRICH_TIERS, LLM_PROVIDER,
SLACK_SUMMARY_WAIT_SECONDS, HUBSPOT_APP_URL, HUBSPOT_PORTAL_ID (see
leadscore.alerts.settings), plus Powertools.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from leadscore.alerts.wiring import SlackNotifyFunction
from leadscore.observability import logger, metrics, tracer

function = SlackNotifyFunction()  # once per container


@logger.inject_lambda_context(correlation_id_path="Records[*].messageId", clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return function.handle(event, context)
