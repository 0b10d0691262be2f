"""The DPDP consent gate: what a contact's consent allows (scoring, enrichment), read from HubSpot.

Consent lives on the contact in a HubSpot multi-checkbox property (default
`dpdp_consent_purposes`) whose value is the checked option values joined by `;`, e.g.
`lead_scoring;ai_enrichment`. Anything we cannot read with certainty is treated as no consent
(fail closed) and flagged as malformed so it can be counted and fixed in the portal.

No numpy/lightgbm here: every function but ingest imports this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

DEFAULT_PURPOSES_PROPERTY = "dpdp_consent_purposes"
SEPARATOR = ";"


class Purpose(StrEnum):
    LEAD_SCORING = "lead_scoring"
    AI_ENRICHMENT = "ai_enrichment"
    # Optional: required for the learning loop only where `TrainingConsentPurpose` says so.
    MODEL_TRAINING = "model_training"


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
