"""The DPDP consent gate, and the daily sweep that erases what consent no longer covers.

Consent lives on the contact in a HubSpot multi-checkbox property (default
`dpdp_consent_purposes`) whose value is the checked option values joined by `;`, e.g.
`lead_scoring;ai_enrichment`. Anything we cannot read with certainty is treated as no consent
(fail closed) and flagged as malformed so it can be counted and fixed in the portal.

No numpy/lightgbm here: the ingest and sweep functions import this module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from pydantic import BaseModel

from leadscore.hubspot_client import (
    AI_PROPERTIES,
    ENRICHMENT_PROPERTIES,
    Contact,
    HubSpotBatchError,
)
from leadscore.ledger import iso_millis
from leadscore.observability import count, logger

DEFAULT_PURPOSES_PROPERTY = "dpdp_consent_purposes"
SEPARATOR = ";"
# HubSpot's search refuses to page past 10,000 results of one query.
SEARCH_WINDOW = 10_000


class Purpose(StrEnum):
    LEAD_SCORING = "lead_scoring"
    AI_ENRICHMENT = "ai_enrichment"


KNOWN_PURPOSES = frozenset(Purpose)


@dataclass(frozen=True)
class ConsentDecision:
    may_score: bool
    may_enrich: bool
    malformed: bool
    purposes: frozenset[Purpose] = frozenset()


NO_CONSENT = ConsentDecision(may_score=False, may_enrich=False, malformed=False)
MALFORMED = ConsentDecision(may_score=False, may_enrich=False, malformed=True)


def parse_purposes(raw: object) -> frozenset[Purpose] | None:
    """The purposes in a multi-checkbox value; None if the value is malformed.

    Missing or blank means no purposes. Surrounding whitespace around an option is tolerated;
    empty options (`a;;b`, `a;`), other separators (`a,b`), unknown or differently-cased
    options make the whole value malformed, even if it also contains a known purpose.
    """
    if raw is None:
        return frozenset()
    if not isinstance(raw, str):
        return None
    if not raw.strip():
        return frozenset()
    tokens = [token.strip() for token in raw.split(SEPARATOR)]
    if any(token not in KNOWN_PURPOSES for token in tokens):
        return None
    return frozenset(Purpose(token) for token in tokens)


def consent_for(
    properties: Mapping[str, Any], purposes_property: str = DEFAULT_PURPOSES_PROPERTY
) -> ConsentDecision:
    """What this contact's consent allows. Enrichment needs both purposes: without
    `lead_scoring` nothing about the person is processed at all."""
    purposes = parse_purposes(properties.get(purposes_property))
    if purposes is None:
        return MALFORMED
    may_score = Purpose.LEAD_SCORING in purposes
    return ConsentDecision(
        may_score=may_score,
        may_enrich=may_score and Purpose.AI_ENRICHMENT in purposes,
        malformed=False,
        purposes=purposes,
    )


# --- the sweep -----------------------------------------------------------------------------


class ContactSearch(Protocol):
    def search(self, filter_groups: Sequence[Mapping[str, Any]], properties: Sequence[str],
               after: str | None = None, limit: int = 100) -> tuple[list[Contact], str | None]: ...

    def batch_update(self, updates: Mapping[str, Mapping[str, str]]) -> None: ...


class LedgerEraser(Protocol):
    def delete_many(self, contact_ids: Sequence[str]) -> None: ...


class SweepResult(BaseModel):
    examined: int = 0
    erased: int = 0  # consent for lead_scoring gone: every ai_* property and the ledger item
    enrichment_cleared: int = 0  # ai_enrichment gone: LLM-derived properties only
    failed: int = 0  # HubSpot refused the clear; retried by the next sweep
    truncated: bool = False  # more than SEARCH_WINDOW scored contacts: the rest next run


SCORED_CONTACTS = ({"filters": [{"propertyName": "ai_lead_score", "operator": "HAS_PROPERTY"}]},)


def _clear(hubspot: ContactSearch, contact_ids: Sequence[str],
           properties: Sequence[str]) -> set[str]:
    """Sets `properties` to "" (HubSpot's way to clear); returns the ids that failed."""
    if not contact_ids:
        return set()
    try:
        hubspot.batch_update({cid: dict.fromkeys(properties, "") for cid in contact_ids})
    except HubSpotBatchError as error:
        return set(error.failed_ids)
    return set()


def sweep_withdrawn_consent(
    *,
    hubspot: ContactSearch,
    ledger: LedgerEraser,
    purposes_property: str,
    now: datetime,
) -> SweepResult:
    """Finds scored contacts (those with `ai_lead_score`) whose consent no longer covers what
    we hold, and erases it. Malformed consent counts as withdrawn (fail closed).

    The whole result set is read before anything is cleared, because clearing `ai_lead_score`
    removes contacts from the search and would shift the pages still to be read. Ledger items
    are deleted before the HubSpot clear: if the clear fails, the contact still matches the
    search and the next sweep retries both.
    """
    result = SweepResult()
    erase: list[str] = []
    clear_enrichment: list[str] = []
    after: str | None = None
    while True:
        contacts, after = hubspot.search(
            SCORED_CONTACTS, [purposes_property, *ENRICHMENT_PROPERTIES], after=after
        )
        for contact in contacts:
            decision = consent_for(contact.properties, purposes_property)
            if not decision.may_score:
                erase.append(contact.id)
            elif not decision.may_enrich and any(
                contact.properties.get(name) for name in ENRICHMENT_PROPERTIES
            ):
                clear_enrichment.append(contact.id)
        result.examined += len(contacts)
        if after is None:
            break
        if result.examined >= SEARCH_WINDOW:
            result.truncated = True
            logger.warning("Consent sweep stopped at HubSpot's search window",
                           extra={"examined": result.examined})
            break

    ledger.delete_many(erase)
    failed = _clear(hubspot, erase, AI_PROPERTIES)
    failed |= _clear(hubspot, clear_enrichment, ENRICHMENT_PROPERTIES)

    erased_at = iso_millis(now)
    for contact_id in erase:
        if contact_id not in failed:
            # The erasure receipt: ids and what was erased, never the data itself.
            logger.info("Erasure receipt", extra={
                "contact_id": contact_id, "reason": "consent_withdrawn", "erased_at": erased_at,
                "erased": ["hubspot:" + ",".join(AI_PROPERTIES), "ledger"],
            })
    for contact_id in clear_enrichment:
        if contact_id not in failed:
            logger.info("Erasure receipt", extra={
                "contact_id": contact_id, "reason": "enrichment_consent_withdrawn",
                "erased_at": erased_at, "erased": ["hubspot:" + ",".join(ENRICHMENT_PROPERTIES)],
            })
    result.erased = len([c for c in erase if c not in failed])
    result.enrichment_cleared = len([c for c in clear_enrichment if c not in failed])
    result.failed = len(failed)
    count("ConsentErasures", result.erased)
    count("EnrichmentErasures", result.enrichment_cleared)
    count("ErasureFailures", result.failed)
    if result.truncated:
        count("ConsentSweepTruncated")
    return result
