"""LLM enrichment of a scored lead: a fit summary, a next action and a review flag for the rep.

The flow for one contact: `triage`, then (when it says the LLM must be asked) `assess`;
`enrich_contact` runs both for a caller without a batch.

1. `triage`, on the freshly read contact: without `ai_enrichment` consent (or with a value we
   cannot parse) nothing is sent anywhere and nothing is written (fail closed). A message older
   than the contact's latest score (`ai_lead_scored_at`) is skipped: the newer score queued its
   own enrichment, which will read the fresh data. A lead whose last enrichment has the same
   basis and is younger than the cooldown is skipped (`leadscore.enrichment.basis`). Provider
   `off`, or no API key: a deterministic summary built from the model's reasons, labelled as not
   written by an LLM.
2. `assess`: only the allow-listed, redacted lead data is sent (`leadscore.enrichment.
   lead_data`); the answer is requested through a tool call whose `input_schema` is
   `LeadAssessment`'s JSON schema, validated with pydantic, the request shaped per model
   (`MODEL_CAPABILITIES`). Routing (`LlmSettings.escalate_on`, default invalid and refusal):
   every tier starts on the fast model; an answer still invalid after one retry that quotes
   the validation error, or a refusal, goes to the escalation model in a fresh conversation;
   a low-confidence answer is kept and flagged for review (`ai_lead_needs_review`) instead of
   buying a second answer. At most three calls per contact. No valid answer from any model:
   a final `EnrichmentError` (dead-lettered with the reason); refused by every model asked:
   the rule-based summary, flagged for review with the reason (status `declined`).
3. What the LLM wrote is cleaned (markup, links, control characters and personal data
   removed, lengths capped) before it becomes HubSpot properties; the LLM can only ever set
   the enrichment properties, never the score.

The SQS side (batches, budget counter, deferral, dead-lettering, once-per-score) is in
`leadscore.enrichment.worker`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from leadscore.dpdp.consent import DEFAULT_PURPOSES_PROPERTY, consent_for
from leadscore.enrichment.assessment import (
    NEXT_ACTION_CHARS,
    LeadAssessment,
    auto_summary,
    enrichment_properties,
    review_reasons,
    summary_text,
)
from leadscore.enrichment.basis import (
    BASIS_PROPERTY,
    ENRICHED_AT_PROPERTY,
    Writer,
    enrichment_basis,
    still_current,
)
from leadscore.enrichment.conversation import Answer, Conversation, EnrichmentError
from leadscore.enrichment.lead_data import (
    ALLOWED_PROPERTIES,
    MESSAGE_PROPERTY,
    REASONS_PROPERTY,
    lead_data_block,
)
from leadscore.enrichment.llm import (
    MODEL_PRICES,
    ClientFactory,
    LlmCall,
    LlmSettings,
    ModelPrice,
    TokenUsage,
    build_client,
)
from leadscore.enrichment.prompt import EnrichmentPrompt, default_prompt
from leadscore.enrichment.redaction import clean_output
from leadscore.timestamps import iso_millis, parse_hubspot_datetime

Tier = Literal["hot", "warm", "cold", "disqualified"]
Status = Literal["enriched", "declined", "auto_summary", "skipped_no_consent", "skipped_stale",
                 "skipped_unchanged"]

SCORED_AT_PROPERTY = "ai_lead_scored_at"  # written by the score function, with each score
DEFAULT_COOLDOWN = timedelta(days=30)
DECLINED_REASON = "the LLM declined to assess this lead (safety refusal)"


class EnrichRequest(BaseModel):
    """An EnrichQueue message body (docs/CONTRACTS.md, "Messages")."""

    contact_id: str = Field(min_length=1)
    score: int = Field(ge=0, le=100)
    tier: Tier
    model_version: str
    scored_at: str
    event_ids: list[str] = []  # HubSpot events behind the score: the logs' correlation

    @field_validator("contact_id", mode="before")
    @classmethod
    def _id_as_string(cls, value: object) -> object:
        return str(value) if isinstance(value, int) else value


def read_properties(purposes_property: str = DEFAULT_PURPOSES_PROPERTY) -> list[str]:
    """The HubSpot properties `triage` and `assess` need on the contact."""
    return [purposes_property, *ALLOWED_PROPERTIES, MESSAGE_PROPERTY, REASONS_PROPERTY,
            SCORED_AT_PROPERTY, BASIS_PROPERTY, ENRICHED_AT_PROPERTY]


def shared_fields(properties: Mapping[str, str | None]) -> tuple[str, ...]:
    """What `lead_data_block` sends about this contact, by name (for the disclosure record)."""
    sent = ["score", "tier", "model_version"]
    sent += [name for name in (REASONS_PROPERTY, *ALLOWED_PROPERTIES, MESSAGE_PROPERTY)
             if (properties.get(name) or "").strip()]
    return tuple(sent)


def is_stale(properties: Mapping[str, str | None], scored: EnrichRequest) -> bool:
    """The contact was scored again after this message was queued: the newer score queued its
    own enrichment (or, in a tier not enriched, none), so this one must not run."""
    current = parse_hubspot_datetime(properties.get(SCORED_AT_PROPERTY))
    queued = parse_hubspot_datetime(scored.scored_at)
    return current is not None and queued is not None and current > queued


class EnrichmentResult(BaseModel):
    contact_id: str
    status: Status
    properties: dict[str, str]  # the HubSpot properties to write; empty when skipped
    prompt_version: str | None = None
    assessment: LeadAssessment | None = None
    answered_by: str | None = None  # the model whose answer was used
    escalated: bool = False  # another model was asked after the first one
    needs_review: bool = False
    review_reason: str | None = None
    calls: list[LlmCall] = []

    @property
    def usage(self) -> TokenUsage:
        return sum((call.usage for call in self.calls), TokenUsage())

    @property
    def estimated_cost_usd(self) -> float | None:
        costs = [call.cost_usd for call in self.calls]
        return None if any(cost is None for cost in costs) else round(sum(costs), 6)

    @property
    def refusals(self) -> int:
        return sum(call.outcome == "refused" for call in self.calls)


class BudgetExhausted(Exception):
    """Today's LLM budget is spent: the message must wait for the next day, not fail."""


def _stamped(properties: dict[str, str], basis: str, now: datetime) -> dict[str, str]:
    return {**properties, BASIS_PROPERTY: basis, ENRICHED_AT_PROPERTY: iso_millis(now)}


def triage(properties: Mapping[str, str | None], scored: EnrichRequest, llm: LlmSettings, *,
           purposes_property: str = DEFAULT_PURPOSES_PROPERTY, now: datetime | None = None,
           cooldown: timedelta = DEFAULT_COOLDOWN) -> EnrichmentResult | None:
    """The outcome that needs no LLM (a skip, or the rule-based summary), or None when the LLM
    must be asked. `properties` must be freshly read (see `read_properties`)."""
    now = now or datetime.now(UTC)
    if not consent_for(properties, purposes_property).may_enrich:
        return EnrichmentResult(contact_id=scored.contact_id, status="skipped_no_consent",
                                properties={})
    if is_stale(properties, scored):
        return EnrichmentResult(contact_id=scored.contact_id, status="skipped_stale",
                                properties={})
    writer: Writer = "llm" if llm.enabled else "rules"
    basis = enrichment_basis(properties, scored.tier, writer)
    if still_current(properties, basis, now, cooldown):
        return EnrichmentResult(contact_id=scored.contact_id, status="skipped_unchanged",
                                properties={})
    if not llm.enabled:
        summary = auto_summary(properties.get(REASONS_PROPERTY), scored.score, scored.tier)
        return EnrichmentResult(contact_id=scored.contact_id, status="auto_summary",
                                properties=_stamped(summary, basis, now))
    return None


def assess(properties: Mapping[str, str | None], scored: EnrichRequest, llm: LlmSettings,
           client: object, *, prompt: EnrichmentPrompt | None = None,
           prices: Mapping[str, ModelPrice] = MODEL_PRICES, now: datetime | None = None,
           before_call: Callable[[str], None] | None = None) -> EnrichmentResult:
    """Asks the LLM (routing in the module docstring). Raises `EnrichmentError` when no model
    produced a valid answer or the API kept failing. `before_call(model)` runs before each
    request and may raise to stop it."""
    now = now or datetime.now(UTC)
    prompt = prompt or default_prompt()
    data = lead_data_block(properties, scored.score, scored.tier, scored.model_version)
    conversation = Conversation(client, llm, prompt, data, prices, before_call)
    primary, escalation = llm.primary_model, llm.escalation_model_id
    triggers = llm.escalate_on
    first = escalation if scored.tier == "hot" and "hot" in triggers else primary
    answer, answered_by = conversation.ask(first, retries=1), first
    if escalation != first:
        escalate = (("refusal" in triggers and answer.refused)
                    or ("invalid" in triggers and answer.assessment is None
                        and not answer.refused)
                    or ("low_confidence" in triggers and answer.assessment is not None
                        and answer.assessment.confidence == "low"))
        if escalate:
            # Three calls at most: a retry is left for the escalation model only when the
            # first model used one call.
            better = _ask_again(conversation, escalation, answer,
                                retries=1 if len(conversation.calls) == 1 else 0)
            if better is not answer:
                answer, answered_by = better, escalation

    basis = enrichment_basis(properties, scored.tier, "llm")
    common = {"contact_id": scored.contact_id, "prompt_version": prompt.version,
              "calls": conversation.calls, "escalated": len({c.model for c in
                                                              conversation.calls}) > 1}
    if answer.assessment is None and answer.refused:
        fallback = auto_summary(properties.get(REASONS_PROPERTY), scored.score, scored.tier)
        fallback = enrichment_properties(fallback["ai_lead_summary"],
                                         fallback["ai_lead_next_action"], [DECLINED_REASON])
        return EnrichmentResult(status="declined", properties=_stamped(fallback, basis, now),
                                needs_review=True, review_reason=DECLINED_REASON, **common)
    if answer.assessment is None:
        raise EnrichmentError(f"invalid_output: {conversation.last_problem}", conversation.calls,
                              final=True)
    assessment = answer.assessment
    reasons = review_reasons(assessment, scored.tier)
    return EnrichmentResult(
        status="enriched",
        properties=_stamped(enrichment_properties(
            summary_text(assessment), clean_output(assessment.next_action, NEXT_ACTION_CHARS),
            reasons), basis, now),
        assessment=assessment, answered_by=answered_by, needs_review=bool(reasons),
        review_reason="; ".join(reasons) or None, **common,
    )


def _ask_again(conversation: Conversation, model: str, first: Answer, *, retries: int) -> Answer:
    """The escalation model's answer, or the first one when it is no better: a failed call
    keeps the first model's valid answer, and its own refusal or invalid answer replaces only
    an answer that was not valid either."""
    try:
        better = conversation.ask(model, retries=retries)
    except EnrichmentError:
        if first.assessment is None:
            raise
        return first  # the fast model's valid answer stands; the failed call is recorded
    if better.assessment is None and first.assessment is not None:
        return first
    return better


def enrich_contact(
    properties: Mapping[str, str | None],
    scored: EnrichRequest,
    llm: LlmSettings,
    client_factory: ClientFactory = build_client,
    *,
    purposes_property: str = DEFAULT_PURPOSES_PROPERTY,
    prompt: EnrichmentPrompt | None = None,
    prices: Mapping[str, ModelPrice] = MODEL_PRICES,
    reserve_budget: Callable[[], bool] | None = None,
    now: datetime | None = None,
    cooldown: timedelta = DEFAULT_COOLDOWN,
) -> EnrichmentResult:
    """`triage`, then `assess` when the LLM must be asked; `reserve_budget` is asked right
    before the first LLM call, and False raises `BudgetExhausted`."""
    now = now or datetime.now(UTC)
    decided = triage(properties, scored, llm, purposes_property=purposes_property, now=now,
                     cooldown=cooldown)
    if decided is not None:
        return decided
    if reserve_budget is not None and not reserve_budget():
        raise BudgetExhausted()
    return assess(properties, scored, llm, client_factory(llm), prompt=prompt, prices=prices,
                  now=now)
