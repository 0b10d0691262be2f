"""RetentionPurgeFunction — daily: erase derived data older than RETENTION_DAYS, taking "now"
from the schedule event's `time`; optionally report or GDPR-delete contacts with no consent and
no activity for the period (PURGE_INACTIVE_CONTACTS=off|report|delete). Logic:
leadscore.dpdp.retention; wiring: leadscore.dpdp.wiring.

Env: HUBSPOT_TOKEN_SECRET, HUBSPOT_BASE_URL, LEDGER_TABLE, RETENTION_DAYS,
CONSENT_PURPOSES_PROPERTY, PURGE_INACTIVE_CONTACTS, ERASURE_RECEIPTS_TABLE,
ERASURE_RECEIPT_KEY_SECRET, AUDIT_RETENTION_DAYS, plus Powertools.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from leadscore.dpdp.retention import GdprDeleter
from leadscore.dpdp.wiring import run_retention_purge
from leadscore.hubspot.client import HubSpotClient
from leadscore.observability import logger, metrics, tracer

# Seams for tests.
hubspot_client_factory = HubSpotClient
gdpr_deleter_factory = GdprDeleter


@logger.inject_lambda_context(correlation_id_path=correlation_paths.EVENT_BRIDGE,
                              clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return run_retention_purge(
        event, lambda: context.get_remaining_time_in_millis() / 1000,
        hubspot_client_factory=hubspot_client_factory, gdpr_deleter_factory=gdpr_deleter_factory,
    ).model_dump()
