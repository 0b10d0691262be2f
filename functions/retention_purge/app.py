"""RetentionPurgeFunction — daily: erase scores older than RETENTION_DAYS.

Env: HUBSPOT_TOKEN_SECRET, HUBSPOT_BASE_URL, LEDGER_TABLE, RETENTION_DAYS,
plus the Powertools variables.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.typing import LambdaContext

from leadscore.hubspot_client import HubSpotClient
from leadscore.ledger import DynamoDBLedger, purge_expired_scores
from leadscore.observability import logger, metrics, tracer
from leadscore.settings import RetentionPurgeSettings

hubspot_client_factory = HubSpotClient  # seam for tests


@logger.inject_lambda_context(correlation_id_path=correlation_paths.EVENT_BRIDGE,
                              clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = RetentionPurgeSettings.from_env()
    token = parameters.get_secret(settings.hubspot_token_secret)
    result = purge_expired_scores(
        ledger=DynamoDBLedger(settings.ledger_table),
        hubspot=hubspot_client_factory(token, settings.hubspot_base_url),
        retention_days=settings.retention_days,
        now=datetime.now(UTC),
    )
    logger.info("Retention purge done", extra=result.model_dump())
    return result.model_dump()
