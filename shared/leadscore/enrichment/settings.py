"""The enrich function's environment (docs/CONTRACTS.md, "Environment variables").

No numpy/lightgbm here.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt, SecretStr, field_validator

from leadscore.enrichment.llm import DEFAULT_ESCALATE_ON, EscalationTrigger, LlmSettings, Provider
from leadscore.settings import CommonSettings, NonEmpty, comma_separated


class EnrichSettings(CommonSettings):
    """The enrich function's environment (docs/CONTRACTS.md, "Environment variables")."""

    hubspot_token_secret: NonEmpty
    llm_provider: Provider = "off"
    llm_api_key_secret: str | None = None
    anthropic_base_url: str | None = None
    bedrock_region: NonEmpty = "ap-south-1"
    llm_model: str | None = None
    llm_escalation_model: str | None = None
    # When the escalation model is asked (leadscore.enrichment.llm.EscalationTrigger).
    llm_escalate_on: frozenset[EscalationTrigger] = DEFAULT_ESCALATE_ON
    # LLM calls in flight at once per container (a batch's contacts share them).
    llm_concurrency: PositiveInt = 10
    # A contact's consent is read at most this long before its first LLM call; older reads
    # are refreshed (one batch read for every contact still waiting).
    consent_max_age_seconds: PositiveFloat = 30.0
    # An unchanged lead is enriched again after this many days; 0 = on every re-score.
    enrich_cooldown_days: float = Field(default=30.0, ge=0)
    llm_timeout_seconds: PositiveFloat = 20.0
    llm_max_retries: NonNegativeInt = 2
    llm_prices: str | None = None  # JSON laid over MODEL_PRICES (see `parse_prices`)
    # SSM parameters holding the prompt template and the qualification criteria ("default" or
    # unset: the versioned texts in leadscore/enrichment/defaults/), re-read after this many
    # seconds.
    enrichment_prompt_parameter: str | None = None
    qualification_criteria_parameter: str | None = None
    enrichment_config_max_age_seconds: PositiveInt = 300
    # Daily LLM spend limit (UTC days) kept in ENRICH_BUDGET_TABLE; 0 or no table: no limit.
    enrich_budget_table: str | None = None
    llm_daily_budget_usd: float = Field(default=0.0, ge=0)
    # Reserved before a contact's calls and settled to the real cost after them.
    llm_cost_reservation_usd: PositiveFloat = 0.02
    # Messages waiting for the next day's budget are queued again here, with a delay.
    enrich_queue_url: str | None = None
    # Records that finally fail go to this DLQ with a `reason` attribute; keep the count equal
    # to EnrichQueue's maxReceiveCount.
    enrich_dlq_url: str | None = None
    enrich_queue_max_receive_count: PositiveInt = 5
    # Powertools idempotency: one enrichment per (contact, scored_at); unset: no dedupe.
    idempotency_table: str | None = None
    # Which processors received a contact's data (leadscore.dpdp.disclosures); unset: none
    # recorded (tests only: the template always sets it).
    disclosures_table: str | None = None

    _split_triggers = field_validator("llm_escalate_on", mode="before")(comma_separated)

    @property
    def cooldown(self) -> timedelta:
        return timedelta(days=self.enrich_cooldown_days)

    def llm(self, api_key: str | None) -> LlmSettings:
        return LlmSettings(
            provider=self.llm_provider, api_key=SecretStr(api_key) if api_key else None,
            base_url=self.anthropic_base_url, bedrock_region=self.bedrock_region,
            model=self.llm_model, escalation_model=self.llm_escalation_model,
            escalate_on=self.llm_escalate_on,
            timeout_seconds=self.llm_timeout_seconds, max_retries=self.llm_max_retries,
        )
