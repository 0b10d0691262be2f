"""ScoreApiFunction — `POST /score`: synchronous score for one lead (HubSpot workflow webhook).
Logic and wiring: leadscore.scoring.score_api (ScoreApiFunction).

Authenticated by HubSpot's v3 signature (workflow "send a webhook" actions sign requests like
app webhooks) or by an `x-api-key` header holding the key in Secrets Manager (other callers).

Env: HUBSPOT_CLIENT_SECRET_SECRET, SCORE_API_KEY_SECRET (optional), SCORE_API_PUBLIC_URL
(optional), MODEL_DIR, CONSENT_PURPOSES_PROPERTY, plus the Powertools variables.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from leadscore.observability import logger, metrics, tracer
from leadscore.scoring.score_api import ScoreApiFunction

function = ScoreApiFunction()  # once per container; `load_model` is the seam tests replace


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP,
                              clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return function.handle(event, context)
