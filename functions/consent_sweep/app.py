"""ConsentSweepFunction — daily: erase what consent no longer covers (withdrawals whose webhook
never arrived), writing an erasure receipt per contact. Logic: leadscore.dpdp.sweep; wiring:
leadscore.dpdp.wiring.ConsentSweepFunction.

Env: HUBSPOT_TOKEN_SECRET, HUBSPOT_BASE_URL, LEDGER_TABLE, CONSENT_PURPOSES_PROPERTY,
ERASURE_RECEIPTS_TABLE, ERASURE_RECEIPT_KEY_SECRET, AUDIT_RETENTION_DAYS,
CONSENT_SWEEP_CURSOR_PARAMETER (where the next run starts), FEATURE_SNAPSHOT_TABLE, plus
Powertools.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from leadscore.dpdp.wiring import ConsentSweepFunction
from leadscore.learning.snapshots import snapshot_store_from_env
from leadscore.observability import logger, metrics, tracer
from leadscore.scoring.ledger import DynamoDBLedger

# The sweep scans and erases from the score ledger, and erases the learning loop's feature
# snapshots with it; once per container.
function = ConsentSweepFunction(ledger_factory=DynamoDBLedger,
                                snapshots_factory=snapshot_store_from_env)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.EVENT_BRIDGE,
                              clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return function.handle(event, context)
