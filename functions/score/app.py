"""ScoreFunction — ScoreQueue batches: HubSpot read → consent → model → HubSpot write → ledger.

Env: HUBSPOT_TOKEN_SECRET, HUBSPOT_BASE_URL, LEDGER_TABLE, RETENTION_DAYS, MODEL_DIR,
CONSENT_PURPOSES_PROPERTY, ENRICH_QUEUE_URL, HOT_LEADS_TOPIC_ARN, ENRICH_TIERS, plus Powertools.
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

from leadscore.hubspot_client import HubSpotClient
from leadscore.ledger import DynamoDBLedger
from leadscore.observability import logger, metrics, tracer
from leadscore.scoring_service import EnrichmentQueue, HotLeadAlerts, ScorePipeline
from leadscore.settings import ScoreSettings

SECRET_MAX_AGE_SECONDS = 300
processor = BatchProcessor(event_type=EventType.SQS)
# Seams for tests and the local stack: how the HubSpot client and the model are made.
hubspot_client_factory = HubSpotClient


def load_model(model_dir: str) -> Any:
    from leadscore.model import load  # numpy/lightgbm come from the model layer

    return load(model_dir)


class ContactNotScored(Exception):
    """Marks a record whose contact must be retried (see the pipeline's logs for why)."""


@cache
def _settings() -> ScoreSettings:
    return ScoreSettings.from_env()


@cache
def _model() -> Any:
    return load_model(_settings().model_dir)  # once per container


@lru_cache(maxsize=1)
def _hubspot(token: str) -> HubSpotClient:
    return hubspot_client_factory(token, _settings().hubspot_base_url)  # new on rotation


@cache
def _outputs() -> tuple[DynamoDBLedger, HotLeadAlerts | None, EnrichmentQueue | None]:
    settings = _settings()
    return (
        DynamoDBLedger(settings.ledger_table),
        HotLeadAlerts(settings.hot_leads_topic_arn) if settings.hot_leads_topic_arn else None,
        EnrichmentQueue(settings.enrich_queue_url) if settings.enrich_queue_url else None,
    )


def _pipeline() -> ScorePipeline:
    settings = _settings()
    ledger, hot_leads, enrichment = _outputs()
    token = parameters.get_secret(settings.hubspot_token_secret, max_age=SECRET_MAX_AGE_SECONDS)
    return ScorePipeline(
        hubspot=_hubspot(token), model=_model(), ledger=ledger,
        purposes_property=settings.consent_purposes_property,
        retention_days=settings.retention_days, enrich_tiers=settings.enrich_tiers,
        hot_leads=hot_leads, enrichment=enrichment,
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
    records = [SQSRecord(raw) for raw in event["Records"]]
    outcome = _pipeline().run_sqs_batch(records)
    return process_partial_response(
        event=event, record_handler=partial(_raise_if_failed, failed=outcome.failed_message_ids),
        processor=processor, context=context,
    )
