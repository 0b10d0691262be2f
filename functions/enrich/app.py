"""EnrichQueue consumer: re-read each scored contact, re-check consent, enrich it with an LLM
and write the `ai_lead_*` enrichment properties back to HubSpot
(`leadscore.enrichment.worker.EnrichmentWorker`; partial batch failures are redelivered).

Env: HUBSPOT_TOKEN_SECRET, HUBSPOT_BASE_URL, CONSENT_PURPOSES_PROPERTY, the LLM_* variables,
ANTHROPIC_BASE_URL, BEDROCK_REGION, ENRICHMENT_PROMPT_PARAMETER,
QUALIFICATION_CRITERIA_PARAMETER, ENRICHMENT_CONFIG_MAX_AGE_SECONDS, ENRICH_BUDGET_TABLE,
LLM_DAILY_BUDGET_USD, LLM_COST_RESERVATION_USD, ENRICH_QUEUE_URL, ENRICH_DLQ_URL,
ENRICH_QUEUE_MAX_RECEIVE_COUNT, IDEMPOTENCY_TABLE (see leadscore.enrichment.enrich.EnrichSettings),
plus Powertools.
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

from leadscore.enrichment.enrich import (
    EnrichmentPrompt,
    EnrichSettings,
    ModelPrice,
    PromptConfigError,
    default_prompt,
    load_prompt,
    parse_prices,
)
from leadscore.enrichment.worker import (
    DailyBudget,
    DeadLetters,
    DeferredEnrichments,
    EnrichmentWorker,
    EnrichOnce,
)
from leadscore.hubspot.client import HubSpotClient
from leadscore.observability import count, hubspot_usage, logger, metrics, tracer

SECRET_MAX_AGE_SECONDS = 300  # rotated secrets are picked up within five minutes

processor = BatchProcessor(event_type=EventType.SQS)


@cache
def settings() -> EnrichSettings:
    return EnrichSettings.from_env()


@cache
def prices() -> dict[str, ModelPrice]:
    return parse_prices(settings().llm_prices)


@cache
def outputs() -> tuple[DailyBudget | None, DeferredEnrichments | None, DeadLetters | None,
                       EnrichOnce | None]:
    config = settings()
    return (
        DailyBudget(config.enrich_budget_table, config.llm_daily_budget_usd)
        if config.enrich_budget_table and config.llm_daily_budget_usd > 0 else None,
        DeferredEnrichments(config.enrich_queue_url) if config.enrich_queue_url else None,
        DeadLetters(config.enrich_dlq_url, config.enrich_queue_max_receive_count)
        if config.enrich_dlq_url else None,
        EnrichOnce(config.idempotency_table) if config.idempotency_table else None,
    )


@lru_cache(maxsize=1)
def hubspot_client(token: str, base_url: str) -> HubSpotClient:
    return HubSpotClient(token, base_url)


def _secret(name: str | None) -> str | None:
    return parameters.get_secret(name, max_age=SECRET_MAX_AGE_SECONDS) if name else None


def prompt() -> EnrichmentPrompt:
    """The prompt from SSM (Powertools caches each parameter for the configured TTL)."""
    config = settings()
    try:
        return load_prompt(
            config.enrichment_prompt_parameter, config.qualification_criteria_parameter,
            partial(parameters.get_parameter, max_age=config.enrichment_config_max_age_seconds))
    except PromptConfigError as error:
        # A broken edit must not stop enrichment: the shipped default stands in, loudly.
        count("EnrichmentPromptInvalid")
        logger.error("Enrichment prompt in SSM is not usable; using the default",
                     extra={"problem": str(error)})
        return default_prompt()


def worker() -> EnrichmentWorker:
    config = settings()
    budget, deferrals, dead_letters, once = outputs()
    api_key = _secret(config.llm_api_key_secret) if config.llm_provider == "anthropic" else None
    return EnrichmentWorker(
        hubspot=hubspot_client(_secret(config.hubspot_token_secret), config.hubspot_base_url),
        llm=config.llm(api_key), prompt=prompt(), prices=prices(),
        purposes_property=config.consent_purposes_property,
        reservation_usd=config.llm_cost_reservation_usd, budget=budget, deferrals=deferrals,
        dead_letters=dead_letters, once=once,
    )


@tracer.capture_method
def record_handler(record: SQSRecord, enrichment: EnrichmentWorker) -> None:
    enrichment.handle(record.body, record.message_id,
                      int(record.attributes.approximate_receive_count or 1))


@logger.inject_lambda_context(correlation_id_path="Records[*].messageId", clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    once = outputs()[3]
    if once:
        once.config.register_lambda_context(context)
    enrichment = worker()
    with hubspot_usage(enrichment.hubspot):
        return process_partial_response(
            event=event, record_handler=partial(record_handler, enrichment=enrichment),
            processor=processor, context=context)
