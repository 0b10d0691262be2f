"""`POST /score` (ScoreApiFunction): the synchronous score of one lead, for a HubSpot workflow
webhook action or any caller with the API key.

Authenticated by HubSpot's v3 signature (workflow "send a webhook" actions sign requests like
app webhooks) or by an `x-api-key` header. Nothing is written or stored: the caller owns what it
does with the score.

The model is passed in (`ScoreApiFunction` loads it from the model layer on first use), so
this module does not import numpy/lightgbm itself.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from leadscore.dpdp.consent import consent_for
from leadscore.hubspot.webhooks import (
    HttpRequest,
    MalformedRequest,
    RequestTooLarge,
    is_valid_signature,
    request_from_http_api_event,
)
from leadscore.model.contract import ScoringModel, load_model
from leadscore.observability import count
from leadscore.scoring.settings import ScoreApiSettings
from leadscore.settings import get_secret


class InvalidScoreRequest(ValueError):
    """The request body cannot be scored; the message names the field and is safe to return."""


class ScoreApiResponse(BaseModel):
    status_code: int
    body: dict[str, Any]


def _property_source(payload: Any) -> tuple[Mapping[str, Any], str]:
    """Where the properties are, for the shapes HubSpot and people send:
    custom workflow action `{"object": {"properties": {...}}}`, workflow "send a webhook" /
    CRM object `{"properties": {...}}` (values plain or legacy `{"value": ...}`), or a flat
    `{"property": "value"}` object."""
    if not isinstance(payload, dict):
        raise InvalidScoreRequest("body must be a JSON object")
    obj = payload.get("object")
    if isinstance(obj, dict) and "properties" in obj:
        source, where = obj["properties"], "object.properties"
    elif "properties" in payload:
        source, where = payload["properties"], "properties"
    else:
        return payload, ""
    if not isinstance(source, dict):
        raise InvalidScoreRequest(f"'{where}' must be a JSON object")
    return source, where + "."


def request_properties(payload: Any, wanted: Iterable[str]) -> dict[str, str | None]:
    """The `wanted` properties as HubSpot strings; other fields are ignored, whatever they are."""
    source, prefix = _property_source(payload)
    properties: dict[str, str | None] = {}
    for name in wanted:
        if name not in source:
            continue
        value = source[name]
        if isinstance(value, dict) and "value" in value:  # legacy {"value": ..., "versions": []}
            value = value["value"]
        if value is None or isinstance(value, str):
            properties[name] = value
        elif isinstance(value, bool):
            properties[name] = "true" if value else "false"
        elif isinstance(value, int | float):
            properties[name] = str(value)
        else:
            raise InvalidScoreRequest(
                f"'{prefix}{name}' must be a string, number, boolean or null"
            )
    return properties


def score_one(properties: Mapping[str, str | None], model: ScoringModel,
              purposes_property: str) -> dict[str, Any]:
    """Scores one lead if consent allows. No consent is an answer, not an error: a workflow
    branches on `scored` instead of logging a failed action."""
    decision = consent_for(properties, purposes_property)
    if not decision.may_score:
        count("SkippedNoConsent")
        if decision.malformed:
            count("MalformedConsent")
        reason = ("consent property is malformed" if decision.malformed
                  else "no consent for lead_scoring")
        return {"scored": False, "reason": reason}
    result = model.score(properties)
    count("ContactsScored")
    return {"scored": True, "score": int(result.score), "probability": float(result.probability),
            "tier": result.tier, "reasons": list(result.reasons), "model_version": model.version}


API_KEY_HEADER = "x-api-key"
UNAUTHORIZED_MESSAGE = ("Unauthorized: sign the request as HubSpot does (X-HubSpot-Signature-v3) "
                        f"or send a valid {API_KEY_HEADER} header")


def is_authorized(request: HttpRequest, *, client_secret: Callable[[], str],
                  api_key: Callable[[], str | None], now_ms: int | None = None) -> bool:
    """An `x-api-key` header is checked against the key (constant time) and nothing else;
    without one, the request must carry a valid HubSpot v3 signature."""
    presented = request.headers.get(API_KEY_HEADER)
    if presented is not None:
        expected = api_key()
        return bool(expected) and hmac.compare_digest(
            presented.encode("utf-8", "replace"), expected.encode())
    return is_valid_signature(request, client_secret(), now_ms=now_ms)


def answer_score_request(
    event: Mapping[str, Any],
    *,
    client_secret: Callable[[], str],
    public_url: str | None,
    model: ScoringModel,
    purposes_property: str,
    api_key: Callable[[], str | None] = lambda: None,
    now_ms: int | None = None,
) -> ScoreApiResponse:
    """`POST /score`: size (413) → authentication (401) → JSON and field types (400) → consent
    → score (200). Nothing is written or stored: the caller owns what it does with the score."""
    try:
        request = request_from_http_api_event(event, public_url)
    except RequestTooLarge as error:
        count("ScoreApiBadRequest")
        return ScoreApiResponse(status_code=413, body={"message": str(error)})
    except MalformedRequest as error:
        count("ScoreApiBadRequest")
        return ScoreApiResponse(status_code=400, body={"message": str(error)})
    if not is_authorized(request, client_secret=client_secret, api_key=api_key, now_ms=now_ms):
        count("ScoreApiUnauthorized")
        return ScoreApiResponse(status_code=401, body={"message": UNAUTHORIZED_MESSAGE})
    try:
        properties = request_properties(json.loads(request.body),
                                        [*model.properties, purposes_property])
    except (UnicodeDecodeError, json.JSONDecodeError):
        count("ScoreApiBadRequest")
        return ScoreApiResponse(status_code=400, body={"message": "body is not valid JSON"})
    except InvalidScoreRequest as error:
        count("ScoreApiBadRequest")
        return ScoreApiResponse(status_code=400, body={"message": str(error)})
    return ScoreApiResponse(status_code=200, body=score_one(properties, model, purposes_property))


# --- the Lambda ---------------------------------------------------------------------------


class ScoreApiFunction:
    """ScoreApiFunction (`POST /score`) as `functions/score_api/app.py` runs it: the model once
    per container (a new instance is a new container), the app's client secret and the API key
    from Secrets Manager per request (cached)."""

    def __init__(self) -> None:
        self.load_model: Callable[[str], ScoringModel] = load_model  # seam
        self.settings = cache(ScoreApiSettings.from_env)
        self.model = cache(lambda: self.load_model(self.settings().model_dir))
        self.resolver = APIGatewayHttpResolver()
        self.resolver.post("/score")(self._score)

    def _api_key(self) -> str | None:
        secret_id = self.settings().score_api_key_secret
        return get_secret(secret_id) if secret_id else None

    def _score(self) -> Response:
        settings = self.settings()
        answer = answer_score_request(
            self.resolver.current_event.raw_event,
            client_secret=lambda: get_secret(settings.hubspot_client_secret_secret),
            public_url=settings.score_api_public_url, model=self.model(),
            purposes_property=settings.consent_purposes_property, api_key=self._api_key,
        )
        return Response(status_code=answer.status_code,
                        content_type=content_types.APPLICATION_JSON, body=answer.body)

    def handle(self, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        return self.resolver.resolve(event, context)
