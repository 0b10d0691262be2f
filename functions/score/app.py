"""ScoreFunction — ScoreQueue batches: ledger order check → HubSpot read → consent → model →
HubSpot write → ledger → hot alert → enrichment; erasure for deletions, merges and withdrawals.

Env: HUBSPOT_TOKEN_SECRET, HUBSPOT_BASE_URL, HUBSPOT_REQUESTS_PER_SECOND, LEDGER_TABLE,
RETENTION_DAYS, MODEL_DIR, CONSENT_PURPOSES_PROPERTY, ENRICH_QUEUE_URL, HOT_LEADS_TOPIC_ARN,
ENRICH_TIERS, SCORE_QUEUE_URL, SCORE_DLQ_URL, SCORE_QUEUE_MAX_RECEIVE_COUNT, WATCHED_PROPERTIES,
the erasure variables (see leadscore.dpdp.erasure), plus Powertools.
"""

from __future__ import annotations

from functools import cache, lru_cache, partial
from typing import Any

from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from leadscore.hubspot.client import HubSpotClient, shared_budget
from leadscore.observability import count, hubspot_usage, logger, metrics, tracer
from leadscore.scoring.ingest import ScoreQueue
from leadscore.scoring.ledger import DynamoDBLedger
from leadscore.scoring.pipeline import (
    DeadLetters,
    EnrichmentQueue,
    HotLeadAlerts,
    ScorePipeline,
)
from leadscore.settings import ScoreSettings

SECRET_MAX_AGE_SECONDS = 300
processor = BatchProcessor(event_type=EventType.SQS)
# Seams for tests and the local stack: how the HubSpot client, the model and the eraser are made.
hubspot_client_factory = HubSpotClient


def load_model(model_dir: str) -> Any:
    from leadscore.model import load  # numpy/lightgbm come from the model layer

    return load(model_dir)


def eraser_factory(hubspot: Any, ledger: DynamoDBLedger) -> Any:
    from leadscore.dpdp.erasure import eraser_from_env

    return eraser_from_env(hubspot=hubspot, ledger=ledger)


class ContactNotScored(Exception):
    """Marks a record whose contact must be retried (see the pipeline's logs for why)."""


@cache
def _settings() -> ScoreSettings:
    return ScoreSettings.from_env()


@cache
def _model() -> Any:
    model = load_model(_settings().model_dir)  # once per container
    watched = _settings().watched_properties
    unwatched = sorted(set(model.properties) - watched)
    if watched and unwatched:
        # Changes to these properties will not re-score: the ingest function ignores them.
        count("UnwatchedModelProperties", len(unwatched))
        logger.warning("Model reads properties missing from WATCHED_PROPERTIES",
                       extra={"unwatched": unwatched})
    return model


@lru_cache(maxsize=1)
def _hubspot(token: str) -> HubSpotClient:
    settings = _settings()
    return hubspot_client_factory(  # new on rotation
        token, settings.hubspot_base_url,
        budget=shared_budget(settings.hubspot_requests_per_second))


@cache
def _outputs() -> tuple[DynamoDBLedger, HotLeadAlerts | None, EnrichmentQueue | None,
                        DeadLetters | None, ScoreQueue | None]:
    settings = _settings()
    return (
        DynamoDBLedger(settings.ledger_table),
        HotLeadAlerts(settings.hot_leads_topic_arn) if settings.hot_leads_topic_arn else None,
        EnrichmentQueue(settings.enrich_queue_url) if settings.enrich_queue_url else None,
        DeadLetters(settings.score_dlq_url, settings.score_queue_max_receive_count)
        if settings.score_dlq_url else None,
        ScoreQueue(settings.score_queue_url) if settings.score_queue_url else None,
    )


@lru_cache(maxsize=1)
def _eraser(hubspot: HubSpotClient) -> Any:
    # Once per HubSpot client (i.e. per token): it builds a DynamoDB resource and reads a secret.
    return eraser_factory(hubspot, _outputs()[0])


def _pipeline() -> ScorePipeline:
    settings = _settings()
    ledger, hot_leads, enrichment, _, requeue = _outputs()
    token = parameters.get_secret(settings.hubspot_token_secret, max_age=SECRET_MAX_AGE_SECONDS)
    hubspot = _hubspot(token)
    return ScorePipeline(
        hubspot=hubspot, model=_model(), ledger=ledger, eraser=_eraser(hubspot),
        purposes_property=settings.consent_purposes_property,
        retention_days=settings.retention_days, enrich_tiers=settings.enrich_tiers,
        hot_leads=hot_leads, enrichment=enrichment, requeue=requeue,
    )


def _raise_if_failed(record: SQSRecord, failed: frozenset[str]) -> None:
    if record.message_id in failed:
        raise ContactNotScored(record.message_id)


# Correlation id: the batch's SQS message ids.
@logger.inject_lambda_context(correlation_id_path="Records[*].messageId", clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # Scoring is batch-shaped (one HubSpot read and one update per 100 contacts), so the
    # pipeline runs once over all records; BatchProcessor then turns its verdicts into the
    # partial batch response (and raises when every record failed, so SQS retries them all).
    # Records on their last allowed receive go to the DLQ with the reason and are acknowledged.
    pipeline = _pipeline()
    with hubspot_usage(pipeline.hubspot):
        outcome = pipeline.run_sqs_batch([SQSRecord(raw) for raw in event["Records"]])
    failed = outcome.failed_message_ids
    dead_letters = _outputs()[3]
    if failed and dead_letters:
        failed = dead_letters.route(event["Records"], failed, outcome.reasons)
    return process_partial_response(
        event=event, record_handler=partial(_raise_if_failed, failed=failed),
        processor=processor, context=context,
    )
