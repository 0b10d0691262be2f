"""What `leadscore hubspot setup` prints for the privacy notice: the two purposes leadscore
serves, where the AI purpose sends data, the grievance officer (template parameters
GrievanceOfficerName/Email/Phone) and the route to the Data Protection Board. Facts from the
deployed stack's parameters; the wording of the notice itself is the Data Fiduciary's.
"""

from __future__ import annotations

from collections.abc import Mapping

LLM_DESTINATIONS = {
    "off": "nothing is sent to an AI provider (ai_enrichment writes a rule-based summary)",
    "anthropic": "sent to Anthropic's API, outside India (principally the United States)",
    "bedrock": "sent to Claude on Amazon Bedrock from {region}; cross-Region inference may "
               "process it in another Asia-Pacific region",
}


def notice_text(parameters: Mapping[str, str]) -> str:
    provider = parameters.get("LlmProvider") or "off"
    destination = LLM_DESTINATIONS.get(provider, provider).format(
        region=parameters.get("BedrockRegion") or "ap-south-1")
    email = parameters.get("GrievanceOfficerEmail", "")
    officer = " ".join(part for part in (
        parameters.get("GrievanceOfficerName", ""), f"<{email}>" if email else "",
        parameters.get("GrievanceOfficerPhone", "")) if part)
    lines = [
        "For your privacy notice (DPDP Act s. 5, Rules r. 3; have counsel review the wording):",
        "  purposes (options of the consent property):",
        "    lead_scoring   rank and route your enquiry: an automated score from your enquiry "
        "and website activity",
        f"    ai_enrichment  have an AI summarise your enquiry for our sales team: {destination}",
        "  withdraw consent: untick a purpose (in your preference centre); what it covered is "
        "erased within a day",
    ]
    if officer:
        lines.append(f"  grievance officer (s. 8(10), s. 13; Rules r. 9): {officer}")
    else:
        lines.append("  grievance officer: NOT SET - deploy with GrievanceOfficerName and "
                     "GrievanceOfficerEmail (the notice must name whom to contact)")
    lines.append("  if a grievance is not resolved: a complaint to the Data Protection Board of "
                 "India, after using the grievance process above (s. 13(3))")
    return "\n".join(lines)
