"""How the score Lambda is assembled from its environment: `ScoreFunction`.

It is made once per container by `functions/score/app.py`, builds its parts (settings, clients,
queues, the model) on first use and keeps them for the container's life; a new instance is a
new container. The attributes named as seams are what tests replace: how the HubSpot client,
the model and the eraser are made. The model is loaded from the model layer (`MODEL_DIR`)
through `load_model`, so importing this module does not import numpy/lightgbm.

The ingest and score_api functions need a few lines only: their wiring closes their modules
(`leadscore.scoring.ingest.IngestFunction`, `leadscore.scoring.score_api.ScoreApiFunction`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, lru_cache, partial
from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from leadscore.dpdp.erasure import ContactEraser, eraser_from_env
from leadscore.hubspot.client import HubSpotClient, shared_budget
from leadscore.learning.capture import SnapshotStep
from leadscore.learning.snapshots import SnapshotStore
from leadscore.messaging import DeadLetters
from leadscore.model.contract import ScoringModel, load_model
from leadscore.observability import count, hubspot_usage, logger
from leadscore.scoring.deferral import Deferrals
from leadscore.scoring.descriptions import refresh_property_descriptions
from leadscore.scoring.ledger import DynamoDBLedger
from leadscore.scoring.pipeline import ScorePipeline, ShadowScoring
from leadscore.scoring.queues import EnrichmentQueue, HotLeadAlerts, ScoreQueue
from leadscore.scoring.settings import ScoreSettings
from leadscore.settings import get_secret


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
    deferrals: Deferrals | None
    snapshots: SnapshotStore | None


class ScoreFunction:
    """ScoreFunction (ScoreQueue batches): the pipeline with its HubSpot client (new when the
    token rotates), model (once per container), ledger, queues, topic and eraser."""

    def __init__(self, *, shadow_factory: Callable[[], ShadowScoring | None] | None = None
                 ) -> None:
        # The shadow challenger comes from the handler (leadscore.monitoring.shadow), which
        # scoring does not import; made once per container, None when the stack names none.
        self.shadow = cache(shadow_factory or (lambda: None))
        # Seams: how the HubSpot client, the model and the eraser are made.
        self.hubspot_client_factory: Callable[..., Any] = HubSpotClient
        self.load_model: Callable[[str], ScoringModel] = load_model
        # Keeps the ai_* property descriptions in line with the model (token, base URL).
        self.refresh_descriptions: Callable[[ScoringModel, str, str], object] = (
            refresh_property_descriptions)
        self.eraser_factory: Callable[..., ContactEraser] = (
            lambda hubspot, *stores: eraser_from_env(hubspot=hubspot, stores=stores))
        self.settings = cache(ScoreSettings.from_env)
        self.model = cache(self._model)
        self.outputs = cache(self._outputs)
        self._hubspot = lru_cache(maxsize=1)(self._hubspot_client)
        # Once per HubSpot client (i.e. per token): it builds a DynamoDB resource, reads a secret.
        self._eraser = lru_cache(maxsize=1)(self._eraser_for)
        self._snapshot_step = lru_cache(maxsize=1)(self._snapshot_step_for)
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
        if settings.keep_property_descriptions_current:
            self.refresh_descriptions(model, get_secret(settings.hubspot_token_secret),
                                      settings.hubspot_base_url)
        return model

    def _outputs(self) -> _ScoreOutputs:
        settings = self.settings()
        requeue = ScoreQueue(settings.score_queue_url) if settings.score_queue_url else None
        return _ScoreOutputs(
            ledger=DynamoDBLedger(settings.ledger_table),
            hot_leads=HotLeadAlerts(settings.hot_leads_topic_arn)
            if settings.hot_leads_topic_arn else None,
            enrichment=EnrichmentQueue(settings.enrich_queue_url)
            if settings.enrich_queue_url else None,
            dead_letters=DeadLetters(settings.score_dlq_url,
                                     settings.score_queue_max_receive_count)
            if settings.score_dlq_url else None,
            requeue=requeue,
            deferrals=Deferrals(requeue, settings.score_max_wait_minutes * 60)
            if requeue else None,
            snapshots=SnapshotStore(settings.feature_snapshot_table)
            if settings.feature_snapshot_table else None,
        )

    def _hubspot_client(self, token: str) -> Any:
        settings = self.settings()
        return self.hubspot_client_factory(
            token, settings.hubspot_base_url,
            budget=shared_budget(settings.hubspot_requests_per_second))

    def _eraser_for(self, hubspot: Any) -> ContactEraser:
        outputs = self.outputs()
        return self.eraser_factory(hubspot, outputs.ledger,
                                   *([outputs.snapshots] if outputs.snapshots else []))

    def _snapshot_step_for(self, hubspot: Any) -> SnapshotStep | None:
        settings, store = self.settings(), self.outputs().snapshots
        if store is None:
            return None
        return SnapshotStep.for_model(
            self.model(), store, retention_days=settings.retention_days,
            window_days=settings.outcome_window_days,
            purposes_property=settings.consent_purposes_property,
            training_purpose=settings.training_consent_purpose,
            eraser=self.eraser_factory(hubspot, store))

    def pipeline(self) -> ScorePipeline:
        settings, outputs = self.settings(), self.outputs()
        hubspot = self._hubspot(get_secret(settings.hubspot_token_secret))
        return ScorePipeline(
            hubspot=hubspot, model=self.model(), ledger=outputs.ledger,
            eraser=self._eraser(hubspot), purposes_property=settings.consent_purposes_property,
            retention_days=settings.retention_days, enrich_tiers=settings.enrich_tiers,
            hot_leads=outputs.hot_leads, enrichment=outputs.enrichment,
            requeue=outputs.requeue, deferrals=outputs.deferrals,
            snapshots=self._snapshot_step(hubspot), shadow=self.shadow(),
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
            failed = dead_letters.route(event["Records"], failed, outcome.reasons,
                                        outcome.final)
        return process_partial_response(
            event=event, record_handler=partial(_raise_if_failed, failed=failed),
            processor=self.processor, context=context,
        )
