"""How the ingest, score and score_api Lambdas are assembled from their environment.

Each `...Function` is made once per container by its `functions/<name>/app.py`, builds its parts
(settings, clients, the model) on first use and keeps them for the container's life; a new
instance is a new container. The attributes named as seams are what tests and the local stack
replace: how the HubSpot client, the model and the eraser are made.

The model is loaded from the model layer (`MODEL_DIR`) through `load_model`, so importing this
module does not import numpy/lightgbm: the ingest function, which has no model layer, uses it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, lru_cache, partial
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from leadscore.dpdp.erasure import ContactEraser
from leadscore.dpdp.wiring import eraser_from_env
from leadscore.hubspot.client import HubSpotClient, shared_budget
from leadscore.messaging import DeadLetters
from leadscore.model.contract import ScoringModel
from leadscore.observability import count, hubspot_usage, logger
from leadscore.scoring.ingest import handle_webhook
from leadscore.scoring.ledger import DynamoDBLedger
from leadscore.scoring.pipeline import ScorePipeline
from leadscore.scoring.queues import (
    DedupingScoreQueue,
    EnrichmentQueue,
    HotLeadAlerts,
    ScoreQueue,
)
from leadscore.scoring.score_api import answer_score_request
from leadscore.scoring.settings import IngestSettings, ScoreApiSettings, ScoreSettings
from leadscore.settings import get_secret


def load_model(model_dir: str) -> ScoringModel:
    from leadscore.model import load  # numpy/lightgbm come from the model layer

    return load(model_dir)


class IngestFunction:
    """IngestFunction (`POST /webhooks/hubspot`): settings and the ScoreQueue, once per
    container; the app's client secret from Secrets Manager per request (cached)."""

    def __init__(self) -> None:
        self.settings = cache(IngestSettings.from_env)
        self.queue = cache(self._queue)

    def _queue(self) -> ScoreQueue | DedupingScoreQueue:
        settings = self.settings()
        queue = ScoreQueue(settings.score_queue_url)
        if settings.idempotency_table:
            return DedupingScoreQueue(queue, settings.idempotency_table)
        return queue

    def handle(self, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        queue = self.queue()
        if isinstance(queue, DedupingScoreQueue):
            queue.config.register_lambda_context(context)  # in-progress records expire with us
        settings = self.settings()
        response = handle_webhook(
            event, client_secret=lambda: get_secret(settings.hubspot_client_secret_secret),
            public_url=settings.webhook_public_url, queue=queue, watched=settings.watched)
        return response.to_http_api()


class ContactNotScored(Exception):
    """Marks a record whose contact must be retried (see the pipeline's logs for why)."""


def _raise_if_failed(record: SQSRecord, failed: frozenset[str]) -> None:
    if record.message_id in failed:
        raise ContactNotScored(record.message_id)


@dataclass(frozen=True)
class _ScoreOutputs:
    ledger: DynamoDBLedger
    hot_leads: HotLeadAlerts | None
    enrichment: EnrichmentQueue | None
    dead_letters: DeadLetters | None
    requeue: ScoreQueue | None


class ScoreFunction:
    """ScoreFunction (ScoreQueue batches): the pipeline with its HubSpot client (new when the
    token rotates), model (once per container), ledger, queues, topic and eraser."""

    def __init__(self) -> None:
        # Seams: how the HubSpot client, the model and the eraser are made.
        self.hubspot_client_factory: Callable[..., Any] = HubSpotClient
        self.load_model: Callable[[str], ScoringModel] = load_model
        self.eraser_factory: Callable[[Any, DynamoDBLedger], ContactEraser] = (
            lambda hubspot, ledger: eraser_from_env(hubspot=hubspot, stores=[ledger]))
        self.settings = cache(ScoreSettings.from_env)
        self.model = cache(self._model)
        self.outputs = cache(self._outputs)
        self._hubspot = lru_cache(maxsize=1)(self._hubspot_client)
        # Once per HubSpot client (i.e. per token): it builds a DynamoDB resource, reads a secret.
        self._eraser = lru_cache(maxsize=1)(self._eraser_for)
        self.processor = BatchProcessor(event_type=EventType.SQS)

    def _model(self) -> ScoringModel:
        settings = self.settings()
        model = self.load_model(settings.model_dir)
        unwatched = sorted(set(model.properties) - settings.watched_properties)
        if settings.watched_properties and unwatched:
            # Changes to these properties will not re-score: the ingest function ignores them.
            count("UnwatchedModelProperties", len(unwatched))
            logger.warning("Model reads properties missing from WATCHED_PROPERTIES",
                           extra={"unwatched": unwatched})
        return model

    def _outputs(self) -> _ScoreOutputs:
        settings = self.settings()
        return _ScoreOutputs(
            ledger=DynamoDBLedger(settings.ledger_table),
            hot_leads=HotLeadAlerts(settings.hot_leads_topic_arn)
            if settings.hot_leads_topic_arn else None,
            enrichment=EnrichmentQueue(settings.enrich_queue_url)
            if settings.enrich_queue_url else None,
            dead_letters=DeadLetters(settings.score_dlq_url,
                                     settings.score_queue_max_receive_count)
            if settings.score_dlq_url else None,
            requeue=ScoreQueue(settings.score_queue_url) if settings.score_queue_url else None,
        )

    def _hubspot_client(self, token: str) -> Any:
        settings = self.settings()
        return self.hubspot_client_factory(
            token, settings.hubspot_base_url,
            budget=shared_budget(settings.hubspot_requests_per_second))

    def _eraser_for(self, hubspot: Any) -> ContactEraser:
        return self.eraser_factory(hubspot, self.outputs().ledger)

    def pipeline(self) -> ScorePipeline:
        settings, outputs = self.settings(), self.outputs()
        hubspot = self._hubspot(get_secret(settings.hubspot_token_secret))
        return ScorePipeline(
            hubspot=hubspot, model=self.model(), ledger=outputs.ledger,
            eraser=self._eraser(hubspot), purposes_property=settings.consent_purposes_property,
            retention_days=settings.retention_days, enrich_tiers=settings.enrich_tiers,
            hot_leads=outputs.hot_leads, enrichment=outputs.enrichment,
            requeue=outputs.requeue,
        )

    def handle(self, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        # Scoring is batch-shaped (one HubSpot read and one update per 100 contacts), so the
        # pipeline runs once over all records; BatchProcessor then turns its verdicts into the
        # partial batch response (and raises when every record failed, so SQS retries them
        # all). Records on their last allowed receive go to the DLQ with the reason and are
        # acknowledged.
        pipeline = self.pipeline()
        with hubspot_usage(pipeline.hubspot):
            outcome = pipeline.run_sqs_batch([SQSRecord(raw) for raw in event["Records"]])
        failed = outcome.failed_message_ids
        dead_letters = self.outputs().dead_letters
        if failed and dead_letters:
            failed = dead_letters.route(event["Records"], failed, outcome.reasons)
        return process_partial_response(
            event=event, record_handler=partial(_raise_if_failed, failed=failed),
            processor=self.processor, context=context,
        )


class ScoreApiFunction:
    """ScoreApiFunction (`POST /score`): the model once per container; the app's client
    secret and the API key from Secrets Manager per request (cached)."""

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
