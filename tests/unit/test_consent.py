"""The consent gate fails closed, and the sweep erases what consent no longer covers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from leadscore.consent import (
    ConsentDecision,
    Purpose,
    consent_for,
    parse_purposes,
    sweep_withdrawn_consent,
)
from leadscore.hubspot_client import (
    AI_PROPERTIES,
    ENRICHMENT_PROPERTIES,
    SCORE_PROPERTIES,
    HubSpotBatchError,
    HubSpotUnavailable,
)

PROP = "dpdp_consent_purposes"
NOW = datetime(2025, 1, 15, 3, 0, tzinfo=UTC)


@pytest.mark.parametrize("value, may_score, may_enrich", [
    ("lead_scoring", True, False),
    ("lead_scoring;ai_enrichment", True, True),
    ("ai_enrichment;lead_scoring", True, True),
    (" lead_scoring ; ai_enrichment ", True, True),
    ("lead_scoring;lead_scoring", True, False),
    ("ai_enrichment", False, False),  # enrichment alone never lets anything be processed
])
def test_well_formed_consent(value, may_score, may_enrich):
    decision = consent_for({PROP: value}, PROP)
    assert (decision.may_score, decision.may_enrich, decision.malformed) == (
        may_score, may_enrich, False)


@pytest.mark.parametrize("properties", [{}, {PROP: None}, {PROP: ""}, {PROP: "   "}])
def test_missing_or_empty_consent_is_no_consent_not_malformed(properties):
    assert consent_for(properties, PROP) == ConsentDecision(False, False, False)


@pytest.mark.parametrize("value", [
    "lead_scoring,ai_enrichment",  # wrong separator
    "lead_scoring|ai_enrichment",
    "lead_scoring ai_enrichment",
    "lead_scoring;",  # empty option
    ";lead_scoring",
    "lead_scoring;;ai_enrichment",
    "Lead_Scoring",  # option values are case-sensitive
    "LEAD_SCORING",
    "lead_scoring;marketing_emails",  # unknown purpose poisons the whole value
    "leadscoring",
    "true",
    "yes",
    "[\"lead_scoring\"]",
    17,
    ["lead_scoring"],
    {"value": "lead_scoring"},
])
def test_malformed_consent_fails_closed(value):
    decision = consent_for({PROP: value}, PROP)
    assert decision.malformed
    assert not decision.may_score
    assert not decision.may_enrich


def test_property_name_is_configurable():
    assert consent_for({"custom_consent": "lead_scoring"}, "custom_consent").may_score
    assert not consent_for({PROP: "lead_scoring"}, "custom_consent").may_score


def test_parse_purposes():
    assert parse_purposes("ai_enrichment;lead_scoring") == {Purpose.LEAD_SCORING,
                                                            Purpose.AI_ENRICHMENT}
    assert parse_purposes(None) == frozenset()
    assert parse_purposes("nope") is None


def test_ai_properties_match_what_setup_creates():
    from leadscore.hubspot_setup import AI_PROPERTY_NAMES

    assert set(AI_PROPERTIES) == set(AI_PROPERTY_NAMES)
    assert set(SCORE_PROPERTIES) | set(ENRICHMENT_PROPERTIES) == set(AI_PROPERTIES)


# --- sweep --------------------------------------------------------------------------------


class RecordingLedger:
    def __init__(self, contact_ids):
        self.items = set(contact_ids)
        self.deleted: list[str] = []

    def delete_many(self, contact_ids):
        contact_ids = list(contact_ids)
        self.deleted.extend(contact_ids)
        self.items.difference_update(contact_ids)


def _scored(consent, **extra):
    props = dict.fromkeys(AI_PROPERTIES, "")
    props.update({"ai_lead_score": "87", "ai_lead_tier": "hot", "ai_lead_summary": "Fits ICP",
                  "ai_lead_next_action": "Call", PROP: consent, "email": "x@y.in"})
    props.update(extra)
    return props


def _contacts():
    return {
        "1": _scored(""),  # consent withdrawn entirely
        "2": _scored("lead_scoring"),  # enrichment withdrawn, LLM output still there
        "3": _scored("lead_scoring;ai_enrichment"),  # all fine
        "4": _scored("lead_scoring;typo"),  # malformed: fail closed
        "5": {PROP: "", "email": "never@scored.in"},  # never scored: not ours to touch
        "6": _scored("lead_scoring", ai_lead_summary="", ai_lead_next_action=""),  # nothing to do
    }


def test_sweep_erases_withdrawn_and_malformed_consent(kit):
    hubspot = kit.FakeHubSpot(_contacts())
    ledger = RecordingLedger(["1", "2", "3", "4", "6"])
    result = sweep_withdrawn_consent(hubspot=hubspot, ledger=ledger, purposes_property=PROP,
                                     now=NOW)

    assert result.examined == 5
    assert (result.erased, result.enrichment_cleared, result.failed) == (2, 1, 0)
    assert sorted(ledger.deleted) == ["1", "4"]
    for cid in ("1", "4"):
        assert all(hubspot.contacts[cid][p] == "" for p in AI_PROPERTIES)
        assert hubspot.contacts[cid]["email"] == "x@y.in"  # only what we derived is erased
    assert all(hubspot.contacts["2"][p] == "" for p in ENRICHMENT_PROPERTIES)
    assert hubspot.contacts["2"]["ai_lead_score"] == "87"  # score consent still holds
    assert hubspot.contacts["3"]["ai_lead_summary"] == "Fits ICP"
    updated = {cid for batch in hubspot.updates for cid in batch}
    assert updated == {"1", "2", "4"}


def test_sweep_reads_every_page_before_clearing(kit):
    contacts = {str(i): _scored("" if i % 2 else "lead_scoring;ai_enrichment")
                for i in range(1, 251)}
    hubspot = kit.FakeHubSpot(contacts)
    ledger = RecordingLedger(contacts)
    result = sweep_withdrawn_consent(hubspot=hubspot, ledger=ledger, purposes_property=PROP,
                                     now=NOW)
    # Clearing during paging would shift the pages and skip contacts; all 125 must go.
    assert hubspot.searches == 3
    assert result.examined == 250
    assert result.erased == 125
    assert not [cid for cid, props in hubspot.contacts.items()
                if props["ai_lead_score"] and int(cid) % 2]


def test_sweep_reports_contacts_hubspot_did_not_clear(kit):
    hubspot = kit.FakeHubSpot(_contacts())
    hubspot.update_error = HubSpotBatchError("batch update", ["4"])
    result = sweep_withdrawn_consent(hubspot=hubspot, ledger=RecordingLedger([]),
                                     purposes_property=PROP, now=NOW)
    assert result.failed == 1
    assert result.erased == 1  # "1"; "4" still matches the search and is retried next run


def test_sweep_fails_loudly_when_hubspot_is_down(kit):
    hubspot = kit.FakeHubSpot(_contacts())
    hubspot.update_error = HubSpotUnavailable("batch update", 503)
    with pytest.raises(HubSpotUnavailable):
        sweep_withdrawn_consent(hubspot=hubspot, ledger=RecordingLedger([]),
                                purposes_property=PROP, now=NOW)
