"""RetentionPurgeFunction — daily: erase derived data older than RETENTION_DAYS (real clock;
a simulated one only in the local stack); optionally report or GDPR-delete contacts with no
consent and no activity for the period (PURGE_INACTIVE_CONTACTS=off|report|delete). Logic:
leadscore.dpdp.retention; wiring: leadscore.dpdp.wiring.RetentionPurgeFunction.

Env: HUBSPOT_TOKEN_SECRET, HUBSPOT_BASE_URL, LEDGER_TABLE, RETENTION_DAYS,
CONSENT_PURPOSES_PROPERTY, PURGE_INACTIVE_CONTACTS, ERASURE_RECEIPTS_TABLE,
ERASURE_RECEIPT_KEY_SECRET, AUDIT_RETENTION_DAYS, FEATURE_SNAPSHOT_TABLE, plus Powertools.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from leadscore.dpdp.wiring import RetentionPurgeFunction
from leadscore.learning.snapshots import snapshot_store_from_env
from leadscore.observability import logger, metrics, tracer
from leadscore.scoring.ledger import DynamoDBLedger

# The purge scans and erases from the score ledger and the learning loop's feature snapshots;
# once per container.
function = RetentionPurgeFunction(ledger_factory=DynamoDBLedger,
                                  snapshots_factory=snapshot_store_from_env)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.EVENT_BRIDGE,
                              clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return function.handle(event, context)
