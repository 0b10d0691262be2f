"""The contact properties leadscore writes (DESIGN.md, "HubSpot contact properties"): their names,
read by the score, enrich and erasure code, and their definitions, created by
`leadscore hubspot setup` (`leadscore.hubspot.setup`). Their descriptions are the tooltips a rep
reads in HubSpot; those of the score, probability, tier and reasons depend on the model in use
(`ScoreGuide`: tier thresholds, what converting means), so setup and the score function keep
them current (`leadscore.scoring.descriptions`).

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
    description: str  # HubSpot shows it as the property's help text (tooltip)
    options: tuple[str, ...] = field(default_factory=tuple)
    option_descriptions: tuple[str, ...] = field(default_factory=tuple)  # one per option


@dataclass(frozen=True)
class ScoreGuide:
    """What the scores of the model in use mean, for the descriptions a rep reads: its tier
    thresholds (0-100 score), what counts as converting, the conversion rate of past leads
    and the score below which reasons lead with what speaks against a lead. Built from the
    model (`leadscore.scoring.descriptions.score_guide`); the defaults are the shipped
    model's."""

    hot: int = 90
    warm: int = 70
    cold: int = 20
    converted: str = "lifecyclestage reaches opportunity or customer"
    base_rate: float | None = None  # share of past leads that converted
    typical_score: int = 50

    def tier_ranges(self) -> dict[str, str]:
        def span(low: int, high: int) -> str:
            return f"{low}-{high}" if high > low else f"{low}"

        return {"hot": span(self.hot, 100), "warm": span(self.warm, self.hot - 1),
                "cold": span(self.cold, self.warm - 1), "disqualified": f"below {self.cold}"}

    def tier_shares(self) -> dict[str, int]:
        """Percent of past leads in each tier: the score is their percentile."""
        return {"hot": 100 - self.hot, "warm": self.hot - self.warm,
                "cold": self.warm - self.cold, "disqualified": self.cold}


TIER_ADVICE = {"hot": "contact first", "warm": "follow up this week", "cold": "nurture",
               "disqualified": "no sales action"}


def _tier_texts(guide: ScoreGuide) -> tuple[str, tuple[str, ...]]:
    ranges, shares = guide.tier_ranges(), guide.tier_shares()
    where = {"hot": "top", "warm": "next", "cold": "next", "disqualified": "bottom"}
    options = tuple(f"Score {ranges[t]}: the {where[t]} {shares[t]} % of past leads; "
                    f"{TIER_ADVICE[t]}." for t in TIERS)
    description = ("From the AI lead score, with the thresholds of the model in use: " + " ".join(
        f"{t.capitalize()} = {ranges[t]} ({where[t]} {shares[t]} % of past leads, "
        f"{TIER_ADVICE[t]})." for t in TIERS))
    return description, options


def score_property_specs(guide: ScoreGuide = ScoreGuide()) -> tuple[PropertySpec, ...]:
    """The properties written with every score; their descriptions follow `guide`."""
    tier_description, tier_options = _tier_texts(guide)
    base_rate = (f" {100 * guide.base_rate:.1f} % of past leads did."
                 if guide.base_rate is not None else "")
    return (
        PropertySpec(
            "ai_lead_score", "AI lead score", "number", "number",
            "How this lead ranks against past leads, 0-100: the percentage of the leads held "
            f"back when the model was trained that scored lower ({guide.hot} = better than "
            f"{guide.hot} % of them). Hot from {guide.hot}, warm from {guide.warm}, cold from "
            f"{guide.cold}. Computed by the lead-scoring model from the contact's properties and "
            "updated when they change; the AI fit summary never changes it."),
        PropertySpec(
            "ai_lead_probability", "AI conversion probability", "number", "number",
            f"Calibrated chance, 0-1, that this lead converts ({guide.converted}): of past leads "
            "given 0.30, about 30 % converted, checked on leads the model was not trained "
            f"on.{base_rate} The score ranks leads; this says how likely one is to convert."),
        PropertySpec("ai_lead_tier", "AI lead tier", "enumeration", "select", tier_description,
                     TIERS, tier_options),
        PropertySpec(
            "ai_lead_reasons", "AI score reasons", "string", "textarea",
            "Why the score is what it is, strongest first: the model's own measure of how much "
            "each property moved this lead's score (not the AI summary's view). (+) raised it, "
            f"(−) lowered it. Below {guide.typical_score}, what speaks against the lead comes "
            f"first; from {guide.typical_score} up, what speaks for it. Small effects are left "
            "out; a missing value is listed only where its absence mattered for past leads."),
        PropertySpec(
            "ai_lead_model_version", "AI model version", "string", "text",
            "The model that produced the score: the date of its training data and a "
            "fingerprint. It changes when a retrained model is put in use."),
        PropertySpec(
            "ai_lead_scored_at", "AI scored at", "datetime", "date",
            "When the score, tier and reasons were last written. A contact is scored again "
            "when a property the model reads changes."),
    )


SCORE_PROPERTY_SPECS: tuple[PropertySpec, ...] = score_property_specs()
# Written by enrichment (LLM or rule-based), and cleared alone when `ai_enrichment` is withdrawn.
ENRICHMENT_PROPERTY_SPECS: tuple[PropertySpec, ...] = (
    PropertySpec(
        "ai_lead_summary", "AI fit summary", "string", "textarea",
        "Fit summary written by an AI model (Claude) from the job title, company size, "
        "industry, country, traffic source, visits, the form message, the score and its "
        "reasons; without an AI provider, the reasons summarised and marked as not written by "
        "AI. Advice for the rep: it never changes the score, tier or reasons."),
    PropertySpec(
        "ai_lead_next_action", "AI next action", "string", "text",
        "Next step suggested with the AI fit summary (by tier when no AI is used). Advice "
        "only: it never changes the score."),
    PropertySpec(
        "ai_lead_needs_review", "AI needs review", "bool", "booleancheckbox",
        "Checked when the AI is unsure or disagrees with the score (e.g. a hot score with red "
        "flags). The score stays the model's; review the lead before acting."),
    PropertySpec(
        "ai_lead_review_reason", "AI review reason", "string", "text",
        "Why the lead needs review (see AI needs review)."),
    PropertySpec("ai_lead_enriched_at", "AI summary written at", "datetime", "date",
                 "When the AI fit summary was written. A new one is written when the lead's "
                 "data changes materially, or after the cooldown."),
    PropertySpec("ai_lead_enrichment_basis", "AI summary basis", "string", "text",
                 "Fingerprint of the lead data the summary was written from (internal): a "
                 "material change writes a new summary."),
)


def ai_property_specs(guide: ScoreGuide = ScoreGuide()) -> tuple[PropertySpec, ...]:
    """Every property leadscore writes, described for the model in use."""
    return score_property_specs(guide) + ENRICHMENT_PROPERTY_SPECS


AI_PROPERTY_SPECS = SCORE_PROPERTY_SPECS + ENRICHMENT_PROPERTY_SPECS

SCORE_PROPERTIES: tuple[str, ...] = tuple(spec.name for spec in SCORE_PROPERTY_SPECS)
ENRICHMENT_PROPERTIES: tuple[str, ...] = tuple(spec.name for spec in ENRICHMENT_PROPERTY_SPECS)
AI_PROPERTIES: tuple[str, ...] = SCORE_PROPERTIES + ENRICHMENT_PROPERTIES
