"""What the LLM must answer and what becomes of it: the `LeadAssessment` it returns through a
tool call (its JSON schema is the tool's `input_schema`), the review flags, and the four
`ai_lead_*` enrichment properties written to HubSpot — from the LLM's answer, cleaned, or from
the model's own reasons when no LLM is used (`auto_summary`). The LLM can only ever set these
four properties, never the score.

No numpy/lightgbm here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from leadscore.enrichment.redaction import clean_output, truncate

Level = Literal["low", "medium", "high", "unknown"]
Confidence = Literal["low", "medium", "high"]

TOOL_NAME = "record_lead_assessment"
AUTO_SUMMARY_LABEL = "[Auto-summary, not AI-written]"
AUTO_ACTION_LABEL = "[Rule-based]"

SUMMARY_PROPERTY = "ai_lead_summary"
NEXT_ACTION_PROPERTY = "ai_lead_next_action"
NEEDS_REVIEW_PROPERTY = "ai_lead_needs_review"
REVIEW_REASON_PROPERTY = "ai_lead_review_reason"

# Length caps: what a value may occupy in the prompt (a lead's field, the LLM's evidence), and
# in HubSpot.
FIELD_CHARS = 200
SUMMARY_CHARS = 400
NEXT_ACTION_CHARS = 200
SUMMARY_PROPERTY_CHARS = 1000  # fit summary plus the signal and red-flag lines
REVIEW_REASON_CHARS = 250


# ---------------------------------------------------------------- the LLM's answer


class BantItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    level: Level
    evidence: str | None = Field(default=None, max_length=FIELD_CHARS,
                                 description="A few words quoting or paraphrasing the lead data.")


class Bant(BaseModel):
    model_config = ConfigDict(extra="forbid")

    budget: BantItem
    authority: BantItem
    need: BantItem
    timeline: BantItem


ShortPhrase = Annotated[str, Field(max_length=120)]


class LeadAssessment(BaseModel):
    """The qualification assessment of one lead."""  # sent to the LLM in the tool schema

    model_config = ConfigDict(extra="forbid")

    fit_summary: str = Field(min_length=1, max_length=SUMMARY_CHARS,
                             description="Why the lead fits or not; plain text, no personal data.")
    next_action: str = Field(min_length=1, max_length=NEXT_ACTION_CHARS,
                             description="One concrete next step for the sales rep.")
    bant: Bant
    buying_signals: list[ShortPhrase] = Field(max_length=5)
    red_flags: list[ShortPhrase] = Field(max_length=5)
    confidence: Confidence


def assessment_tool() -> dict[str, Any]:
    return {
        "name": TOOL_NAME,
        "description": "Record the qualification assessment of the lead in <lead_data>.",
        "input_schema": LeadAssessment.model_json_schema(),
    }


def review_reasons(assessment: LeadAssessment, tier: str) -> list[str]:
    """Why a rep should look twice: low confidence, or the score and the LLM disagree."""
    reasons = []
    if assessment.confidence == "low":
        reasons.append("LLM confidence is low")
    if tier == "hot":
        if assessment.red_flags:
            reasons.append("scored hot but the LLM found red flags")
        if assessment.bant.need.level == "low":
            reasons.append("scored hot but the LLM sees low need")
    if (tier in ("cold", "disqualified") and assessment.bant.need.level == "high"
            and assessment.bant.timeline.level == "high"):
        reasons.append(f"scored {tier} but the LLM sees high need and a near timeline")
    return reasons


def summary_text(assessment: LeadAssessment) -> str:
    lines = [clean_output(assessment.fit_summary, SUMMARY_CHARS)]
    signals = [clean_output(s, 120) for s in assessment.buying_signals if s.strip()]
    flags = [clean_output(f, 120) for f in assessment.red_flags if f.strip()]
    if signals:
        lines.append("Buying signals: " + "; ".join(signals))
    if flags:
        lines.append("Red flags: " + "; ".join(flags))
    return truncate("\n".join(lines), SUMMARY_PROPERTY_CHARS)


def enrichment_properties(summary: str, next_action: str,
                          reasons: Sequence[str]) -> dict[str, str]:
    return {
        SUMMARY_PROPERTY: summary,
        NEXT_ACTION_PROPERTY: next_action,
        NEEDS_REVIEW_PROPERTY: "true" if reasons else "false",
        # "" clears a reason left by an earlier enrichment of the same contact.
        REVIEW_REASON_PROPERTY: truncate("; ".join(reasons), REVIEW_REASON_CHARS),
    }


AUTO_NEXT_ACTIONS: dict[str, str] = {
    "hot": "Contact within one business day and confirm need and timeline.",
    "warm": "Send relevant material and offer a discovery call this week.",
    "cold": "Keep in nurture; revisit if engagement increases.",
    "disqualified": "No sales action; check the disqualifying factors if this looks wrong.",
}


def auto_summary(model_reasons: str | None, score: int, tier: str) -> dict[str, str]:
    """The no-LLM fallback: the model's own reasons (`ai_lead_reasons`), clearly labelled as not
    AI-written."""
    raw = model_reasons or ""
    reasons = [clean_output(part.strip(" -•*"), 120) for part in re.split(r"[\n;]+", raw)]
    reasons = [reason for reason in reasons if reason][:3]
    summary = f"{AUTO_SUMMARY_LABEL} Score {score}/100 ({tier})."
    if reasons:
        summary += " Top factors: " + "; ".join(reasons) + "."
    action = f"{AUTO_ACTION_LABEL} {AUTO_NEXT_ACTIONS[tier]}"
    return enrichment_properties(truncate(summary, SUMMARY_PROPERTY_CHARS), action, ())
