"""LLM enrichment of a scored lead: a fit summary, a next action and a review flag for the rep.

The flow for one contact (`enrich_contact`):

1. Consent, re-checked on the freshly read contact: without `ai_enrichment` (or with a value
   we cannot parse) nothing is sent anywhere and nothing is written (fail closed). A message
   older than the contact's latest score (`ai_lead_scored_at`) is skipped: the newer score
   queued its own enrichment, which will read the fresh data.
2. Provider `off`, or no API key: a deterministic summary from the model's reasons, labelled
   as not written by an LLM.
3. The daily budget is asked (`reserve_budget`); refused → `BudgetExhausted` (wait, not fail).
   Otherwise only allow-listed, non-identifying properties are sent, with e-mail addresses,
   phone and ID numbers redacted from every value, inside a delimited `<lead_data>` block the
   system prompt declares to be data. The system prompt (a template plus the qualification
   criteria, each versioned, from SSM Parameter Store or `defaults/`: `load_prompt`) carries
   `cache_control`; the cached prefix is the tool definition plus the system prompt.
4. The answer is requested through a tool call whose `input_schema` is `LeadAssessment`'s
   JSON schema, validated with pydantic; the request is shaped per model
   (`MODEL_CAPABILITIES`): thinking off, the tool call forced where the model accepts it
   ("auto" plus an instruction where not), no sampling parameters. Warm leads go to the fast
   model, hot leads straight to the escalation model. Invalid output gets one retry that
   quotes the validation error, then (fast model only) the escalation model; after that a
   final `EnrichmentError` (dead-lettered at once with the reason; API errors that outlast
   the SDK's retries are not final: SQS redelivers first). A valid but low-confidence answer
   from the fast model is also escalated.
5. What the LLM wrote is cleaned (markup, links, control characters and personal data
   removed, lengths capped) before it becomes HubSpot properties; the LLM can only ever set
   the four `ai_lead_*` enrichment properties, never the score.

Company name is not sent: for small companies it identifies the person as surely as a name.
The pieces: `llm` (models, prices, the client), `prompt`, `redaction`, `conversation`,
`assessment` (the answer and the properties it becomes). The SQS side (budget counter,
deferral, dead-lettering, once-per-score) is in `leadscore.enrichment.worker`.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from leadscore.dpdp.consent import DEFAULT_PURPOSES_PROPERTY, consent_for
from leadscore.enrichment.assessment import (
    FIELD_CHARS,
    NEXT_ACTION_CHARS,
    LeadAssessment,
    auto_summary,
    enrichment_properties,
    review_reasons,
    summary_text,
)
from leadscore.enrichment.conversation import Conversation, EnrichmentError
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
from leadscore.enrichment.redaction import clean_output, prompt_value
from leadscore.timestamps import parse_hubspot_datetime

Tier = Literal["hot", "warm", "cold", "disqualified"]

# Properties sent to the LLM (HubSpot internal name → label in the prompt). Nothing else leaves.
ALLOWED_PROPERTIES: dict[str, str] = {
    "jobtitle": "Job title",
    "numemployees": "Company size (employees)",
    "industry": "Industry",
    "country": "Country",
    "hs_analytics_source": "Original traffic source",
    "hs_analytics_num_visits": "Website visits",
    "hs_analytics_num_page_views": "Page views",
}
MESSAGE_PROPERTY = "message"  # free text from the lead's form submission
REASONS_PROPERTY = "ai_lead_reasons"  # written by the score function
SCORED_AT_PROPERTY = "ai_lead_scored_at"  # written by the score function, with each score

# Length caps: what a value may occupy in the prompt (a field: FIELD_CHARS).
MESSAGE_CHARS = 2000
REASONS_CHARS = 1000


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
    """The HubSpot properties `enrich_contact` needs on the contact."""
    return [purposes_property, *ALLOWED_PROPERTIES, MESSAGE_PROPERTY, REASONS_PROPERTY,
            SCORED_AT_PROPERTY]


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


def lead_data_block(properties: Mapping[str, str | None], scored: EnrichRequest) -> str:
    """The `<lead_data>` block: allow-listed fields only, every value redacted and escaped."""
    lines = ["<lead_data>",
             f'<model_score score="{scored.score}" tier="{scored.tier}" '
             f'model_version="{html.escape(scored.model_version[:80], quote=True)}"/>']
    reasons = properties.get(REASONS_PROPERTY)
    if reasons and reasons.strip():
        lines.append(f"<model_reasons>{prompt_value(reasons, REASONS_CHARS)}</model_reasons>")
    for name, label in ALLOWED_PROPERTIES.items():
        value = properties.get(name)
        if value and value.strip():
            lines.append(f'<field name="{label}">{prompt_value(value, FIELD_CHARS)}</field>')
    message = properties.get(MESSAGE_PROPERTY)
    if message and message.strip():
        lines.append(f"<lead_message>{prompt_value(message, MESSAGE_CHARS)}</lead_message>")
    else:
        lines.append("<lead_message/>")
    lines.append("</lead_data>")
    return "\n".join(lines)


class EnrichmentResult(BaseModel):
    contact_id: str
    status: Literal["enriched", "auto_summary", "skipped_no_consent", "skipped_stale"]
    properties: dict[str, str]  # the HubSpot properties to write; empty when skipped
    prompt_version: str | None = None
    assessment: LeadAssessment | None = None
    answered_by: str | None = None  # the model whose answer was used
    escalated: bool = False  # the fast model's answer was invalid or unsure: asked again
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


class BudgetExhausted(Exception):
    """Today's LLM budget is spent: the message must wait for the next day, not fail."""


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
    disclose: Callable[[str], None] | None = None,
) -> EnrichmentResult:
    """Enrich one scored contact; `properties` must be freshly read (see `read_properties`).

    `reserve_budget` is asked right before the first LLM call; False raises `BudgetExhausted`.
    `disclose(model)` runs before each request that carries the lead's data (it records which
    processor receives it; if it raises, nothing is sent).
    Raises `EnrichmentError` when no model produced a valid answer or the API kept failing.
    """
    if not consent_for(properties, purposes_property).may_enrich:
        return EnrichmentResult(contact_id=scored.contact_id, status="skipped_no_consent",
                                properties={})
    if is_stale(properties, scored):
        return EnrichmentResult(contact_id=scored.contact_id, status="skipped_stale",
                                properties={})
    if not llm.enabled:
        return EnrichmentResult(contact_id=scored.contact_id, status="auto_summary",
                                properties=auto_summary(properties.get(REASONS_PROPERTY),
                                                        scored.score, scored.tier))

    if reserve_budget is not None and not reserve_budget():
        raise BudgetExhausted()
    prompt = prompt or default_prompt()
    conversation = Conversation(client_factory(llm), llm, prompt,
                                 lead_data_block(properties, scored), prices)

    def ask(model: str, retries: int) -> LeadAssessment | None:
        if disclose is not None:
            disclose(model)
        return conversation.ask(model, retries=retries)

    primary, escalation = llm.primary_model, llm.escalation_model_id
    if scored.tier == "hot":
        # A hot lead gets the stronger model's judgement anyway: no fast call to pay for first.
        assessment = ask(escalation, retries=1)
        answered_by, escalated = escalation, False
    else:
        assessment, escalated = ask(primary, retries=1), False
        answered_by = primary
        if (assessment is None or assessment.confidence == "low") and escalation != primary:
            try:
                better = ask(escalation, retries=0)
            except EnrichmentError:
                if assessment is None:
                    raise
                better = None  # the fast model's valid answer stands; the failed call is recorded
            if better is not None:
                assessment, answered_by, escalated = better, escalation, True
    if assessment is None:
        raise EnrichmentError(f"invalid_output: {conversation.last_problem}", conversation.calls,
                              final=True)

    reasons = review_reasons(assessment, scored.tier)
    return EnrichmentResult(
        contact_id=scored.contact_id, status="enriched",
        properties=enrichment_properties(
            summary_text(assessment), clean_output(assessment.next_action, NEXT_ACTION_CHARS),
            reasons),
        prompt_version=prompt.version, assessment=assessment, answered_by=answered_by,
        escalated=escalated, needs_review=bool(reasons),
        review_reason="; ".join(reasons) or None, calls=conversation.calls,
    )
