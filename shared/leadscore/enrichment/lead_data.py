"""What leaves for the LLM about a lead: the allow-listed properties, redacted and escaped, in
a delimited `<lead_data>` block the system prompt declares to be data (`lead_data_block`).

Company name is not sent: for small companies it identifies the person as surely as a name.
Nothing but what is named here leaves.

No numpy/lightgbm here.
"""

from __future__ import annotations

import html
from collections.abc import Mapping

from leadscore.enrichment.assessment import FIELD_CHARS
from leadscore.enrichment.redaction import prompt_value

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

# Length caps: what a value may occupy in the prompt (a field: FIELD_CHARS).
MESSAGE_CHARS = 2000
REASONS_CHARS = 1000


def lead_data_block(properties: Mapping[str, str | None], score: int, tier: str,
                    model_version: str) -> str:
    """The `<lead_data>` block: allow-listed fields only, every value redacted and escaped."""
    lines = ["<lead_data>",
             f'<model_score score="{score}" tier="{tier}" '
             f'model_version="{html.escape(model_version[:80], quote=True)}"/>']
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
