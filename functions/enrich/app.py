"""EnrichQueue consumer: re-read each scored contact, re-check consent, enrich it with an LLM
and write the `ai_lead_*` enrichment properties back to HubSpot.

A record that fails (HubSpot or LLM unavailable, no valid LLM answer) is reported as a partial
batch failure; SQS retries it and finally moves it to EnrichDLQ.
"""

from __future__ import annotations

from functools import cache, lru_cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from leadscore.enrichment import (
    EnrichmentError,
    EnrichRequest,
    EnrichSettings,
    LlmCall,
    enrich_contact,
    read_properties,
)
from leadscore.hubspot_client import HubSpotClient
from leadscore.observability import count, logger, metrics, tracer

SECRET_MAX_AGE_SECONDS = 300  # rotated secrets are picked up within five minutes

processor = BatchProcessor(event_type=EventType.SQS)


@cache
def settings() -> EnrichSettings:
    return EnrichSettings.from_env()


@lru_cache(maxsize=1)
def hubspot_client(token: str, base_url: str) -> HubSpotClient:
    return HubSpotClient(token, base_url)


def _secret(name: str | None) -> str | None:
    return parameters.get_secret(name, max_age=SECRET_MAX_AGE_SECONDS) if name else None


def _record_usage(calls: list[LlmCall]) -> None:
    for call in calls:
        count("LlmCalls")
        if call.outcome == "invalid":
            count("LlmInvalidAnswers")
        count("LlmInputTokens", call.usage.input_tokens)
        count("LlmOutputTokens", call.usage.output_tokens)
        count("LlmCacheReadTokens", call.usage.cache_read_input_tokens)
        count("LlmCacheCreationTokens", call.usage.cache_creation_input_tokens)
        if call.cost_usd:
            metrics.add_metric(name="LlmCostUSD", unit=MetricUnit.NoUnit, value=call.cost_usd)


@tracer.capture_method
def record_handler(record: SQSRecord) -> None:
    config = settings()
    request = EnrichRequest.model_validate_json(record.body)
    hubspot = hubspot_client(_secret(config.hubspot_token_secret), config.hubspot_base_url)
    contact = hubspot.batch_read([request.contact_id],
                                 read_properties(config.consent_purposes_property))
    properties = contact.get(request.contact_id)
    if properties is None:  # deleted since it was scored
        logger.info("Contact not found; nothing to enrich",
                    extra={"contact_id": request.contact_id})
        count("EnrichmentContactMissing")
        return
    api_key = _secret(config.llm_api_key_secret) if config.llm_provider == "anthropic" else None
    try:
        result = enrich_contact(properties, request, config.llm(api_key),
                                purposes_property=config.consent_purposes_property)
    except EnrichmentError as error:
        _record_usage(error.calls)
        count("EnrichmentFailures")
        logger.warning("Enrichment failed", extra={"contact_id": request.contact_id,
                                                   "reason": error.reason})
        raise
    _record_usage(result.calls)
    if result.properties:
        hubspot.batch_update({request.contact_id: result.properties})
    count({"enriched": "ContactsEnriched", "auto_summary": "EnrichmentAutoSummaries",
           "skipped_no_consent": "EnrichmentSkippedNoConsent"}[result.status])
    count("EnrichmentEscalations", int(result.escalated))
    count("EnrichmentNeedsReview", int(result.needs_review))
    usage = result.usage
    logger.info("Contact enrichment done", extra={
        "contact_id": request.contact_id, "status": result.status,
        "answered_by": result.answered_by, "prompt_version": result.prompt_version,
        "escalated": result.escalated, "needs_review": result.needs_review,
        "llm_calls": len(result.calls), "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_input_tokens": usage.cache_read_input_tokens,
        "cache_creation_input_tokens": usage.cache_creation_input_tokens,
        "estimated_cost_usd": result.estimated_cost_usd,
    })


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=record_handler,
                                    processor=processor, context=context)
