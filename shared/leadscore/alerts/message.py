"""The Slack message a sales team reads for a hot lead (Block Kit).

What it says: the score and tier, the conversion probability, the top reasons, the LLM fit
summary when there is one (or why there is none), whether the LLM flagged the lead for review,
and a link to the contact record in HubSpot. What it never says: the person's name, e-mail
address or phone number — the link leads to them for whoever may see them in HubSpot. E-mail
addresses and phone numbers inside free text (the summary) are redacted too, and every text is
escaped for Slack's mrkdwn, so nothing in a lead's data can mention a channel or forge a link.

Slack's limits respected here: a header's plain text ≤ 150 characters, a section's text ≤ 3,000,
a context element's ≤ 2,000, at most 50 blocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from leadscore.personal_data import EMAIL, PHONE

HEADER_CHARS = 150
SECTION_CHARS = 3000
MAX_REASONS = 5
CONTACT_OBJECT_TYPE = "0-1"  # HubSpot's objectTypeId of contacts


class Summary(StrEnum):
    """Where the LLM fit summary stands when the message is posted."""

    READY = "ready"  # written for this score: shown
    NOT_REQUESTED = "not_requested"  # no ai_enrichment consent, LLM off, or tier not enriched
    NOT_READY = "not_ready"  # expected, but not written within the wait


_SUMMARY_NOTES = {
    Summary.NOT_REQUESTED: "No AI fit summary for this lead (not enriched by an LLM).",
    Summary.NOT_READY: "The AI fit summary is not ready yet; it will appear on the contact "
                       "in HubSpot.",
}


@dataclass(frozen=True)
class HotLead:
    """What the message shows, read from the contact's `ai_*` properties."""

    contact_id: str
    score: str
    tier: str
    probability: str | None
    reasons: list[str]
    summary: str | None
    needs_review: bool
    review_reason: str | None
    model_version: str | None


def record_url(app_url: str, portal_id: int | None, contact_id: str) -> str | None:
    """The contact's record in HubSpot:
    `https://app.hubspot.com/contacts/<portalId>/record/0-1/<contactId>` (`app_url` differs
    for portals in other data centres, e.g. https://app-eu1.hubspot.com)."""
    if not portal_id:
        return None
    return f"{app_url.rstrip('/')}/contacts/{portal_id}/record/{CONTACT_OBJECT_TYPE}/{contact_id}"


def safe_text(text: str, limit: int) -> str:
    """Free text made safe for a Slack mrkdwn field: e-mail addresses and phone numbers
    redacted, `&`, `<`, `>` escaped (Slack's control characters), cut to `limit`."""
    text = PHONE.sub("[phone removed]", EMAIL.sub("[e-mail removed]", text))
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def _percent(probability: str | None) -> str:
    try:
        return f"{100 * float(probability or ''):.0f} %"
    except ValueError:
        return "unknown"


def hot_lead_message(lead: HotLead, *, link: str | None, summary: Summary) -> dict[str, Any]:
    """The Block Kit payload for one hot lead."""
    header = f"Hot lead: score {lead.score}/100"
    where = (f"<{link}|Open contact {lead.contact_id} in HubSpot>" if link
             else f"Contact {lead.contact_id} in HubSpot (set HubSpotPortalId for a link)")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header[:HEADER_CHARS]}},
        {"type": "section", "fields": [
            {"type": "mrkdwn", "text": f"*Tier*\n{safe_text(lead.tier.capitalize(), 100)}"},
            {"type": "mrkdwn", "text": f"*Conversion probability*\n{_percent(lead.probability)}"},
        ]},
    ]
    if lead.reasons:
        bullets = "\n".join(f"• {safe_text(reason, 200)}" for reason in lead.reasons[:MAX_REASONS])
        blocks.append({"type": "section", "text": {
            "type": "mrkdwn", "text": f"*Why this score*\n{bullets}"}})
    if summary is Summary.READY and lead.summary:
        blocks.append({"type": "section", "text": {
            "type": "mrkdwn",
            "text": "*AI fit summary*\n" + safe_text(lead.summary, SECTION_CHARS - 20)}})
    else:
        note = _SUMMARY_NOTES.get(summary, _SUMMARY_NOTES[Summary.NOT_READY])
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
    if lead.needs_review:
        why = safe_text(lead.review_reason or "see the contact", 300)
        blocks.append({"type": "context", "elements": [
            {"type": "mrkdwn", "text": f":warning: Flagged for review: {why}"}]})
    blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": where}})
    if lead.model_version:
        model = safe_text(lead.model_version, 80)
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": (
            f"Scored by leadscore, model {model}. The AI summary never changes the score.")}]})
    fallback = f"{header}: {link}" if link else f"{header} (contact {lead.contact_id})"
    return {"text": fallback, "blocks": blocks}
