"""Whether a re-scored lead needs a new enrichment: only when what the LLM would be told changed
materially, or the last enrichment is older than the cooldown.

Every score of a hot or warm lead queues an enrichment, and a page view re-scores the lead; an
answer bought for each page view would cost money and say the same thing. So each enrichment
records its *basis* next to the text it wrote (`ai_lead_enrichment_basis`, with
`ai_lead_enriched_at`), and a new one is made only when the basis differs:

- the tier, who writes (`llm` or `rules`: a lead summarised by rules while no LLM was
  configured gets the LLM's summary once one is), the allow-listed fields and the lead's
  message — case and surrounding spaces aside;
- visit and page-view counts by powers of two (1, 2–3, 4–7, 8–15, ...): a lead going from 14
  to 15 visits is the same lead, one going from 14 to 16 is twice as engaged as at 8;
- not the score, its reasons or the model version: they follow from the fields and the tier.

An unchanged lead is enriched again once the last enrichment is `cooldown` old (a changed
prompt or criteria reach it then); a cooldown of zero re-enriches on every score. The basis is
a hash, cleared with the enrichment by every erasure, so a lead that consents again is enriched
afresh.

No numpy/lightgbm here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Literal

from leadscore.enrichment.lead_data import ALLOWED_PROPERTIES, MESSAGE_PROPERTY
from leadscore.timestamps import parse_hubspot_datetime

BASIS_PROPERTY = "ai_lead_enrichment_basis"
ENRICHED_AT_PROPERTY = "ai_lead_enriched_at"
BASIS_VERSION = "b1"  # change when what the hash covers changes: every lead is enriched again
COUNT_PROPERTIES = frozenset({"hs_analytics_num_visits", "hs_analytics_num_page_views"})

Writer = Literal["llm", "rules"]


def count_bucket(value: str | None) -> str:
    """`14` → `8-15`: counts by powers of two; anything not a count stays as it is."""
    text = (value or "").strip()
    try:
        count = int(float(text))
    except (ValueError, OverflowError):
        return text.casefold()
    if count <= 0:
        return "0"
    low = 1 << (count.bit_length() - 1)
    return f"{low}-{2 * low - 1}"


def enrichment_basis(properties: Mapping[str, str | None], tier: str, writer: Writer) -> str:
    """`b1:llm:<16 hex>`: what an enrichment of this lead would be based on."""
    fields = {name: (count_bucket(properties.get(name)) if name in COUNT_PROPERTIES
                     else " ".join((properties.get(name) or "").split()).casefold())
              for name in (*ALLOWED_PROPERTIES, MESSAGE_PROPERTY)}
    canonical = json.dumps({"tier": tier, "fields": fields}, sort_keys=True,
                           separators=(",", ":"))
    return f"{BASIS_VERSION}:{writer}:{hashlib.sha256(canonical.encode()).hexdigest()[:16]}"


def still_current(properties: Mapping[str, str | None], basis: str, now: datetime,
                  cooldown: timedelta) -> bool:
    """True when the contact's last enrichment has this basis and is younger than `cooldown`."""
    if not cooldown or (properties.get(BASIS_PROPERTY) or "") != basis:
        return False
    enriched_at = parse_hubspot_datetime(properties.get(ENRICHED_AT_PROPERTY))
    return enriched_at is not None and now - enriched_at < cooldown
