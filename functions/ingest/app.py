"""IngestFunction — `POST /webhooks/hubspot`: verify HubSpot's signature, queue, answer fast.
Logic and wiring: leadscore.scoring.ingest (IngestFunction).

Env: HUBSPOT_CLIENT_SECRET_SECRET, SCORE_QUEUE_URL, WEBHOOK_PUBLIC_URL (optional),
IDEMPOTENCY_TABLE (optional: eventId dedupe), WATCHED_PROPERTIES (the model's input properties:
their changes re-score), CONSENT_PURPOSES_PROPERTY, CONSENT_UPDATED_AT_PROPERTY, plus the
Powertools variables.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from leadscore.observability import logger, metrics, tracer
from leadscore.scoring.ingest import IngestFunction

function = IngestFunction()  # once per container


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP,
                              clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return function.handle(event, context)
