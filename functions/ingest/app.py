"""IngestFunction — `POST /webhooks/hubspot`: verify HubSpot's signature, queue, answer fast.

Env: HUBSPOT_CLIENT_SECRET_SECRET, SCORE_QUEUE_URL, WEBHOOK_PUBLIC_URL (optional),
IDEMPOTENCY_TABLE (optional: eventId dedupe), WATCHED_PROPERTIES (the model's input properties:
their changes re-score), CONSENT_PURPOSES_PROPERTY, CONSENT_UPDATED_AT_PROPERTY, plus the
Powertools variables.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.typing import LambdaContext

from leadscore.observability import logger, metrics, tracer
from leadscore.scoring.ingest import DedupingScoreQueue, ScoreQueue, handle_webhook
from leadscore.settings import IngestSettings

SECRET_MAX_AGE_SECONDS = 300


@cache
def _settings() -> IngestSettings:
    return IngestSettings.from_env()


@cache
def _queue() -> ScoreQueue | DedupingScoreQueue:
    settings = _settings()
    queue = ScoreQueue(settings.score_queue_url)
    if settings.idempotency_table:
        return DedupingScoreQueue(queue, settings.idempotency_table)
    return queue


def _client_secret() -> str:
    return parameters.get_secret(_settings().hubspot_client_secret_secret,
                                 max_age=SECRET_MAX_AGE_SECONDS)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP,
                              clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    queue = _queue()
    if isinstance(queue, DedupingScoreQueue):
        queue.config.register_lambda_context(context)  # in-progress records expire with us
    settings = _settings()
    response = handle_webhook(event, client_secret=_client_secret,
                              public_url=settings.webhook_public_url, queue=queue,
                              watched=settings.watched)
    return response.to_http_api()
