"""The contact properties leadscore writes (DESIGN.md, "HubSpot contact properties"): their names,
read by the score, enrich and erasure code, and their definitions, created by
`leadscore hubspot setup` (`leadscore.hubspot.setup`).

No numpy/lightgbm here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

GROUP_NAME = "ai_lead_scoring"
GROUP_LABEL = "AI lead scoring"
AI_PROPERTY_PREFIX = "ai_lead_"
TIERS = ("hot", "warm", "cold", "disqualified")


@dataclass(frozen=True)
class PropertySpec:
    name: str
    label: str
    type: str
    field_type: str
    description: str
    options: tuple[str, ...] = field(default_factory=tuple)


# Written with every score.
SCORE_PROPERTY_SPECS: tuple[PropertySpec, ...] = (
    PropertySpec("ai_lead_score", "AI lead score", "number", "number",
                 "0-100: how this lead ranks against historical leads; "
                 "higher converts more often."),
    PropertySpec("ai_lead_probability", "AI conversion probability", "number", "number",
                 "Calibrated probability (0-1) that this lead converts."),
    PropertySpec("ai_lead_tier", "AI lead tier", "enumeration", "select",
                 "Tier from configurable score thresholds.", TIERS),
    PropertySpec("ai_lead_reasons", "AI score reasons", "string", "textarea",
                 "The top factors behind the score."),
    PropertySpec("ai_lead_model_version", "AI model version", "string", "text",
                 "Which model produced the score."),
    PropertySpec("ai_lead_scored_at", "AI scored at", "datetime", "date",
                 "When the score was written."),
)
# Written by enrichment (LLM or rule-based), and cleared alone when `ai_enrichment` is withdrawn.
ENRICHMENT_PROPERTY_SPECS: tuple[PropertySpec, ...] = (
    PropertySpec("ai_lead_summary", "AI fit summary", "string", "textarea",
                 "LLM-written fit summary."),
    PropertySpec("ai_lead_next_action", "AI next action", "string", "text",
                 "LLM-recommended next step."),
    PropertySpec("ai_lead_needs_review", "AI needs review", "bool", "booleancheckbox",
                 "Low confidence, or the model and the LLM disagree."),
    PropertySpec("ai_lead_review_reason", "AI review reason", "string", "text",
                 "Why the lead needs review."),
    PropertySpec("ai_lead_enriched_at", "AI summary written at", "datetime", "date",
                 "When the fit summary was written."),
    PropertySpec("ai_lead_enrichment_basis", "AI summary basis", "string", "text",
                 "Fingerprint of the lead data the summary was written from (internal): a "
                 "material change writes a new summary."),
)
AI_PROPERTY_SPECS = SCORE_PROPERTY_SPECS + ENRICHMENT_PROPERTY_SPECS

SCORE_PROPERTIES: tuple[str, ...] = tuple(spec.name for spec in SCORE_PROPERTY_SPECS)
ENRICHMENT_PROPERTIES: tuple[str, ...] = tuple(spec.name for spec in ENRICHMENT_PROPERTY_SPECS)
AI_PROPERTIES: tuple[str, ...] = SCORE_PROPERTIES + ENRICHMENT_PROPERTIES
