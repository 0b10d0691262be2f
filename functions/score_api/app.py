"""ScoreApiFunction — `POST /score`: synchronous score for one lead (HubSpot workflow webhook).

Authenticated by HubSpot's v3 signature (workflow "send a webhook" actions sign requests like
app webhooks) or by an `x-api-key` header holding the key in Secrets Manager (other callers).

Env: HUBSPOT_CLIENT_SECRET_SECRET, SCORE_API_KEY_SECRET (optional), SCORE_API_PUBLIC_URL
(optional), MODEL_DIR, CONSENT_PURPOSES_PROPERTY, plus the Powertools variables.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.typing import LambdaContext

from leadscore.observability import logger, metrics, tracer
from leadscore.scoring.pipeline import answer_score_request
from leadscore.settings import ScoreApiSettings

SECRET_MAX_AGE_SECONDS = 300
app = APIGatewayHttpResolver()


def load_model(model_dir: str) -> Any:
    from leadscore.model import load  # numpy/lightgbm come from the model layer

    return load(model_dir)


@cache
def _settings() -> ScoreApiSettings:
    return ScoreApiSettings.from_env()


@cache
def _model() -> Any:
    return load_model(_settings().model_dir)  # once per container


def _client_secret() -> str:
    return parameters.get_secret(_settings().hubspot_client_secret_secret,
                                 max_age=SECRET_MAX_AGE_SECONDS)


def _api_key() -> str | None:
    secret_id = _settings().score_api_key_secret
    if not secret_id:
        return None
    return parameters.get_secret(secret_id, max_age=SECRET_MAX_AGE_SECONDS)


@app.post("/score")
def score() -> Response:
    settings = _settings()
    answer = answer_score_request(
        app.current_event.raw_event, client_secret=_client_secret,
        public_url=settings.score_api_public_url, model=_model(),
        purposes_property=settings.consent_purposes_property, api_key=_api_key,
    )
    return Response(status_code=answer.status_code, content_type=content_types.APPLICATION_JSON,
                    body=answer.body)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP,
                              clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
