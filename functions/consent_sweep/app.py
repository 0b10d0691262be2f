"""ConsentSweepFunction — daily: erase what withdrawn consent no longer covers.

Env: HUBSPOT_TOKEN_SECRET, HUBSPOT_BASE_URL, LEDGER_TABLE, CONSENT_PURPOSES_PROPERTY,
plus the Powertools variables.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.typing import LambdaContext

from leadscore.consent import sweep_withdrawn_consent
from leadscore.hubspot_client import HubSpotClient
from leadscore.ledger import DynamoDBLedger
from leadscore.observability import logger, metrics, tracer
from leadscore.settings import ConsentSweepSettings

hubspot_client_factory = HubSpotClient  # seam for tests


@logger.inject_lambda_context(correlation_id_path=correlation_paths.EVENT_BRIDGE,
                              clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = ConsentSweepSettings.from_env()
    token = parameters.get_secret(settings.hubspot_token_secret)
    result = sweep_withdrawn_consent(
        hubspot=hubspot_client_factory(token, settings.hubspot_base_url),
        ledger=DynamoDBLedger(settings.ledger_table),
        purposes_property=settings.consent_purposes_property,
        now=datetime.now(UTC),
    )
    logger.info("Consent sweep done", extra=result.model_dump())
    return result.model_dump()
