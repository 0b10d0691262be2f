"""The consent gate fails closed, and the sweep erases what consent no longer covers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from dpdp_fakes import MemoryLedger, MemoryReceipts, SearchableHubSpot

from leadscore.dpdp.consent import ConsentDecision, Purpose, consent_for, parse_purposes
from leadscore.dpdp.erasure import Eraser, ErasureReason
from leadscore.dpdp.sweep import sweep_withdrawn_consent
from leadscore.hubspot.client import (
    BATCH_LIMIT,
    HubSpotBatchError,
    HubSpotUnavailable,
    SearchOrderError,
)
from leadscore.hubspot.properties import AI_PROPERTIES, ENRICHMENT_PROPERTIES, SCORE_PROPERTIES

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
    from leadscore.hubspot.properties import AI_PROPERTY_SPECS

    AI_PROPERTY_NAMES = [spec.name for spec in AI_PROPERTY_SPECS]  # what setup creates
    assert set(AI_PROPERTIES) == set(AI_PROPERTY_NAMES)
    assert set(SCORE_PROPERTIES) | set(ENRICHMENT_PROPERTIES) == set(AI_PROPERTIES)


# --- sweep --------------------------------------------------------------------------------


def _scored(consent, **extra):
    props = dict.fromkeys(AI_PROPERTIES, "")
    props.update({"ai_lead_score": "87", "ai_lead_tier": "hot", "ai_lead_summary": "Fits ICP",
                  "ai_lead_scored_at": "2025-01-10T00:00:00Z", "ai_lead_next_action": "Call",
                  PROP: consent, "email": "x@y.in"})
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


def _sweep(hubspot, ledger, seconds_left=None):
    receipts = MemoryReceipts()
    eraser = Eraser(hubspot=hubspot, stores=[ledger], receipts=receipts, receipt_key=b"k" * 32)
    result = sweep_withdrawn_consent(hubspot=hubspot, ledger=ledger, eraser=eraser,
                                     purposes_property=PROP, now=NOW, seconds_left=seconds_left)
    return result, receipts, eraser


def _ledger(ids):
    return MemoryLedger(dict.fromkeys(ids, NOW - timedelta(days=5)))


def test_sweep_erases_withdrawn_and_malformed_consent():
    hubspot = SearchableHubSpot(_contacts())
    ledger = _ledger(["1", "2", "3", "4", "6"])
    result, receipts, eraser = _sweep(hubspot, ledger)

    assert result.examined == 5
    assert (result.erased, result.enrichment_cleared, result.failed) == (2, 1, 0)
    assert result.malformed == 1
    assert result.complete
    assert sorted(ledger.deleted) == ["1", "4"]
    for cid in ("1", "4"):
        assert all(hubspot.contacts[cid][p] == "" for p in AI_PROPERTIES)
        assert hubspot.contacts[cid]["email"] == "x@y.in"  # only what we derived is erased
        [receipt] = receipts.by_subject(eraser, cid)
        assert (receipt.reason, receipt.scope, receipt.records) == (
            ErasureReason.CONSENT_SWEEP, "all", ("ledger",))
    assert all(hubspot.contacts["2"][p] == "" for p in ENRICHMENT_PROPERTIES)
    assert hubspot.contacts["2"]["ai_lead_score"] == "87"  # score consent still holds
    [receipt] = receipts.by_subject(eraser, "2")
    assert receipt.scope == "enrichment"
    assert set(receipt.hubspot_properties) == {"ai_lead_summary", "ai_lead_next_action"}
    assert hubspot.contacts["3"]["ai_lead_summary"] == "Fits ICP"
    updated = {cid for batch in hubspot.updates for cid in batch}
    assert updated == {"1", "2", "4"}
    assert len(receipts.receipts) == 3


def test_sweep_pages_by_id_so_clearing_does_not_skip_contacts():
    contacts = {str(i): _scored("" if i % 2 else "lead_scoring;ai_enrichment")
                for i in range(1, 451)}
    hubspot = SearchableHubSpot(contacts)
    result, _, _ = _sweep(hubspot, _ledger(contacts))
    # Pages of 200 erased as read: cursor paging would now skip the contacts that moved up.
    assert result.examined == 450
    assert result.erased == 225
    assert not [cid for cid, props in hubspot.contacts.items()
                if props["ai_lead_score"] and int(cid) % 2]
    after_ids = [group[0]["filters"][1]["value"] for group in hubspot.searches]
    assert after_ids == ["0", "200", "400", "450"]


def test_sweep_stops_when_the_search_ignores_its_sort():
    # Paging on from a page's last id is only safe in id order: out of order, contacts
    # between would never be swept. A clear error (the sweep's alarm) instead.
    contacts = {str(i): _scored("") for i in range(1, 6)}
    hubspot = SearchableHubSpot(contacts)
    hubspot.ignores_sorts = True
    with pytest.raises(SearchOrderError, match="contact 4 after 5"):
        _sweep(hubspot, _ledger(contacts))
    assert hubspot.sorts[0] == ["hs_object_id"]


def test_sweep_erases_ledger_items_the_search_cannot_see():
    hubspot = SearchableHubSpot({
        "7": {PROP: "", "email": "a@b.in"},  # withdrew; someone cleared ai_* by hand
        "8": {PROP: "lead_scoring", "email": "c@d.in"},  # consented, properties lost: keep
    })
    ledger = _ledger(["7", "8", "9"])  # "9" was deleted in HubSpot
    result, receipts, eraser = _sweep(hubspot, ledger)
    assert (result.examined, result.ledger_checked) == (0, 3)
    assert (result.erased, result.deleted_contacts) == (1, 1)
    assert set(ledger.scored) == {"8"}
    assert receipts.by_subject(eraser, "9")[0].reason == ErasureReason.CONTACT_DELETED
    assert receipts.by_subject(eraser, "7")[0].reason == ErasureReason.CONSENT_SWEEP
    assert not hubspot.updates  # nothing held in HubSpot: no writes


def test_sweep_reports_contacts_hubspot_did_not_clear():
    hubspot = SearchableHubSpot(_contacts())
    hubspot.update_error = HubSpotBatchError("batch update", ["4"])
    ledger = _ledger(["1", "4"])
    result, receipts, eraser = _sweep(hubspot, ledger)
    assert result.failed == 1
    assert result.erased == 1  # "1"; "4" still matches the search and is retried next run
    assert "4" in ledger.scored  # kept until HubSpot is cleared
    assert not receipts.by_subject(eraser, "4")


def test_sweep_fails_loudly_when_hubspot_is_down():
    hubspot = SearchableHubSpot(_contacts())
    hubspot.update_error = HubSpotUnavailable("batch update", 503)
    with pytest.raises(HubSpotUnavailable):
        _sweep(hubspot, _ledger([]))


def test_sweep_stops_before_the_lambda_timeout():
    hubspot = SearchableHubSpot(_contacts())
    left = iter([600.0, 30.0])
    result, _, _ = _sweep(hubspot, _ledger(["1", "9"]), seconds_left=lambda: next(left))
    assert not result.complete
    assert result.examined == 5  # one page read, then out of time
    assert result.ledger_checked == 0  # the ledger pass is left for the next run


class MemoryCursor:
    def __init__(self, after_id=0):
        self.after_id, self.saved = after_id, []

    def load(self):
        return self.after_id

    def save(self, after_id):
        self.after_id = after_id
        self.saved.append(after_id)


def test_a_portal_too_large_for_one_run_is_swept_over_several():
    contacts = {str(i): _scored("" if i % 2 else "lead_scoring;ai_enrichment")
                for i in range(2, 452)}
    hubspot = SearchableHubSpot(contacts)
    # Ledger items of contacts since deleted in HubSpot ("1", "1300"): one in each run's range.
    ledger = _ledger([*contacts, "1", "1300"])
    cursor = MemoryCursor()
    receipts = MemoryReceipts()
    eraser = Eraser(hubspot=hubspot, stores=[ledger], receipts=receipts, receipt_key=b"k" * 32)

    def run(seconds_left):
        return sweep_withdrawn_consent(hubspot=hubspot, ledger=ledger, eraser=eraser,
                                       purposes_property=PROP, now=NOW,
                                       seconds_left=seconds_left, cursor=cursor)

    left = iter([600.0])
    first = run(lambda: next(left, 100.0))  # one page, then only the ledger pass fits
    assert (first.examined, first.complete, first.next_start) == (200, False, 201)
    assert cursor.saved == [201]
    assert first.deleted_contacts == 1  # "1"; "1300" lies beyond this run's range

    second = run(None)
    assert (second.resumed_after, second.examined, second.complete) == (201, 250, True)
    assert cursor.saved == [201, 0]  # the end reached: the next run starts from the first
    assert second.deleted_contacts == 1
    assert [group[0]["filters"][1]["value"] for group in hubspot.searches][1] == "201"
    assert first.erased + second.erased == 225  # every withdrawn contact, across both runs
    assert not [cid for cid, props in hubspot.contacts.items()
                if props["ai_lead_score"] and int(cid) % 2]


def _sweep_with(hubspot, ledger, cursor, seconds_left=None):
    eraser = Eraser(hubspot=hubspot, stores=[ledger], receipts=MemoryReceipts(),
                    receipt_key=b"k" * 32)
    return sweep_withdrawn_consent(hubspot=hubspot, ledger=ledger, eraser=eraser,
                                   purposes_property=PROP, now=NOW, cursor=cursor,
                                   seconds_left=seconds_left)


def test_a_ledger_pass_cut_short_saves_how_far_it_got_in_id_order():
    hubspot = SearchableHubSpot({str(i): _scored("lead_scoring") for i in range(1, 11)})
    deleted = [str(i) for i in range(2001, 2001 + 2 * BATCH_LIMIT)]  # gone from HubSpot
    ledger = _ledger(list(reversed(deleted)))  # the scan's order is not the id order
    cursor = MemoryCursor()
    left = iter([600.0, 600.0])  # two searches (one page, then the end), one ledger chunk
    first = _sweep_with(hubspot, ledger, cursor, seconds_left=lambda: next(left, 10.0))
    assert (first.ledger_checked, first.deleted_contacts) == (BATCH_LIMIT, BATCH_LIMIT)
    assert (first.complete, first.next_start) == (False, 2100)  # 2001..2100 are done
    assert cursor.saved == [2000]  # rounded down: a position, not a contact's id

    second = _sweep_with(hubspot, ledger, cursor)
    assert second.complete and cursor.saved == [2000, 0]
    assert not ledger.scored


def test_a_contact_hubspot_refused_to_clear_holds_the_cursor_back():
    hubspot = SearchableHubSpot({str(i): _scored("" if i == 1500 else "lead_scoring")
                                 for i in range(1001, 2001)})
    hubspot.update_error = HubSpotBatchError("batch update", ["1500"])
    cursor = MemoryCursor()
    first = _sweep_with(hubspot, _ledger([]), cursor)
    assert (first.failed, first.complete, first.next_start) == (1, False, 1499)
    assert cursor.saved == [1000]
    hubspot.update_error = None
    second = _sweep_with(hubspot, _ledger([]), cursor)  # the retry comes the next run
    assert (second.erased, second.complete, cursor.saved) == (1, True, [1000, 0])


def test_ledger_ids_that_are_not_hubspot_numbers_are_checked_not_fatal():
    hubspot = SearchableHubSpot({"5": _scored("lead_scoring")})
    ledger = _ledger(["5", "legacy-import-7"])  # not a HubSpot record id: gone from HubSpot
    result = _sweep_with(hubspot, ledger, MemoryCursor(after_id=3))
    assert (result.complete, result.deleted_contacts) == (True, 1)
    assert set(ledger.scored) == {"5"}


def test_an_unreadable_cursor_means_sweeping_everything():
    class Broken(MemoryCursor):
        def load(self):
            raise RuntimeError("AccessDenied")

    hubspot = SearchableHubSpot(_contacts())
    result = _sweep_with(hubspot, _ledger([]), Broken())
    assert (result.resumed_after, result.examined, result.complete) == (0, 5, True)
