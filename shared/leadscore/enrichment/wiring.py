"""How the enrich Lambda is assembled from its environment.

`EnrichFunction` is made once per container by `functions/enrich/app.py`, builds its parts
(settings, prices, the budget counter, queues, the HubSpot client) on first use and keeps them
for the container's life; a new instance is a new container. The prompt is re-read through
Powertools' SSM cache on every invocation. `secret` and `hubspot_client` are the seams tests
replace.

No numpy/lightgbm here.
"""

from __future__ import annotations

from dataclasses import dataclass
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

from leadscore.dpdp.disclosures import DynamoDBDisclosures
from leadscore.enrichment.budget import DailyBudget, Requeue
from leadscore.enrichment.llm import parse_prices
from leadscore.enrichment.prompt import (
    EnrichmentPrompt,
    PromptConfigError,
    default_prompt,
    load_prompt,
)
from leadscore.enrichment.settings import EnrichSettings
from leadscore.enrichment.worker import EnrichmentWorker, EnrichOnce
from leadscore.hubspot.client import HubSpotClient
from leadscore.messaging import DeadLetters
from leadscore.observability import count, hubspot_usage, logger
from leadscore.settings import get_secret


class EnrichmentNotDone(Exception):
    """Marks a record SQS must deliver again (the batch's logs say why)."""


def _raise_if_failed(record: SQSRecord, failed: frozenset[str]) -> None:
    if record.message_id in failed:
        raise EnrichmentNotDone(record.message_id)


@dataclass(frozen=True)
class _Outputs:
    budget: DailyBudget | None
    requeue: Requeue | None
    dead_letters: DeadLetters | None
    once: EnrichOnce | None
    disclosures: DynamoDBDisclosures | None


class EnrichFunction:
    """EnrichFunction (EnrichQueue batches; partial batch failures are redelivered)."""

    def __init__(self) -> None:
        self.settings = cache(EnrichSettings.from_env)
        self.prices = cache(lambda: parse_prices(self.settings().llm_prices))
        self.outputs = cache(self._outputs)
        self.hubspot_client = lru_cache(maxsize=1)(HubSpotClient)  # new on token rotation
        self.processor = BatchProcessor(event_type=EventType.SQS)

    def _outputs(self) -> _Outputs:
        config = self.settings()
        return _Outputs(
            budget=DailyBudget(config.enrich_budget_table, config.llm_daily_budget_usd)
            if config.enrich_budget_table and config.llm_daily_budget_usd > 0 else None,
            requeue=Requeue(config.enrich_queue_url) if config.enrich_queue_url else None,
            dead_letters=DeadLetters(config.enrich_dlq_url, config.enrich_queue_max_receive_count)
            if config.enrich_dlq_url else None,
            once=EnrichOnce(config.idempotency_table) if config.idempotency_table else None,
            disclosures=DynamoDBDisclosures(config.disclosures_table)
            if config.disclosures_table else None,
        )

    def secret(self, secret_id: str | None) -> str | None:
        return get_secret(secret_id) if secret_id else None

    def prompt(self) -> EnrichmentPrompt:
        """The prompt from SSM (Powertools caches each parameter for the configured TTL)."""
        config = self.settings()
        try:
            return load_prompt(
                config.enrichment_prompt_parameter, config.qualification_criteria_parameter,
                partial(parameters.get_parameter,
                        max_age=config.enrichment_config_max_age_seconds))
        except PromptConfigError as error:
            # A broken edit must not stop enrichment: the shipped default stands in, loudly.
            count("EnrichmentPromptInvalid")
            logger.error("Enrichment prompt in SSM is not usable; using the default",
                         extra={"problem": str(error)})
            return default_prompt()

    def worker(self) -> EnrichmentWorker:
        config, outputs = self.settings(), self.outputs()
        api_key = (self.secret(config.llm_api_key_secret)
                   if config.llm_provider == "anthropic" else None)
        return EnrichmentWorker(
            hubspot=self.hubspot_client(self.secret(config.hubspot_token_secret),
                                        config.hubspot_base_url),
            llm=config.llm(api_key), prompt=self.prompt(), prices=self.prices(),
            purposes_property=config.consent_purposes_property,
            reservation_usd=config.llm_cost_reservation_usd, budget=outputs.budget,
            requeue=outputs.requeue, dead_letters=outputs.dead_letters, once=outputs.once,
            llm_concurrency=config.llm_concurrency,
            consent_max_age=config.consent_max_age_seconds, cooldown=config.cooldown,
            disclosures=outputs.disclosures, retention_days=config.retention_days,
        )

    def handle(self, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        # Enrichment is batch-shaped (one HubSpot read and one update for the batch, LLM calls
        # side by side), so the worker runs once over all records; BatchProcessor then turns
        # its verdicts into the partial batch response (and raises when every record failed,
        # so SQS retries them all).
        once = self.outputs().once
        if once:
            once.config.register_lambda_context(context)
        enrichment = self.worker()
        with hubspot_usage(enrichment.hubspot):
            outcome = enrichment.run(event["Records"], context.get_remaining_time_in_millis)
        return process_partial_response(
            event=event,
            record_handler=partial(_raise_if_failed, failed=outcome.failed_message_ids),
            processor=self.processor, context=context)
