"""The retention purge against a simulated clock: exactly what is past the period goes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from dpdp_fakes import MemoryLedger, MemoryReceipts, SearchableHubSpot

from leadscore.dpdp.erasure import Eraser, ErasureReason
from leadscore.dpdp.retention import HUBSPOT_CONTACT, RetentionPurge, still_expired
from leadscore.hubspot.client import HubSpotBatchError, SearchOrderError
from leadscore.hubspot.properties import AI_PROPERTIES
from leadscore.timestamps import SIMULATED_CLOCK_SETTING, parse_hubspot_datetime, scheduled_time

PROP = "dpdp_consent_purposes"
NOW = datetime(2026, 6, 1, 21, 30, tzinfo=UTC)
OLD = NOW - timedelta(days=181)
RECENT = NOW - timedelta(days=179)


def _iso(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _scored(at, consent="lead_scoring", **extra):
    props = dict.fromkeys(AI_PROPERTIES, "")
    props.update(ai_lead_score="64", ai_lead_tier="warm", ai_lead_summary="Fits",
                 ai_lead_scored_at=_iso(at), email="p@q.in", lastmodifieddate=_iso(at))
    props[PROP] = consent
    props.update(extra)
    return props


def _purge(hubspot, ledger, **kwargs):
    receipts = MemoryReceipts()
    eraser = Eraser(hubspot=hubspot, stores=[ledger], receipts=receipts, receipt_key=b"k" * 32)
    purge = RetentionPurge(ledger=ledger, hubspot=hubspot, eraser=eraser, retention_days=180,
                           purposes_property=PROP, **kwargs)
    return purge, receipts, eraser


def test_purge_removes_exactly_what_is_past_the_period():
    hubspot = SearchableHubSpot({
        "1": _scored(OLD),  # expired: cleared and forgotten
        "2": _scored(RECENT),  # within the period
        # "3" was deleted from HubSpot: only the ledger item remains to erase
        "4": _scored(RECENT),  # re-scored since the (old) ledger item was written
        "5": _scored(OLD),  # no ledger item (lost): HubSpot's properties still expire
    })
    ledger = MemoryLedger({"1": OLD, "2": RECENT, "3": OLD, "4": OLD})
    purge, receipts, eraser = _purge(hubspot, ledger)
    result = purge.run(NOW)

    assert (result.expired, result.erased, result.ledger_only, result.kept_rescored,
            result.hubspot_only, result.failed) == (3, 1, 1, 1, 1, 0)
    assert result.complete
    assert set(ledger.scored) == {"2", "4"}
    for cid in ("1", "5"):
        assert all(hubspot.contacts[cid][p] == "" for p in AI_PROPERTIES)
        assert hubspot.contacts[cid]["email"] == "p@q.in"
    for cid in ("2", "4"):
        assert hubspot.contacts[cid]["ai_lead_score"] == "64"
    assert {cid for batch in hubspot.updates for cid in batch} == {"1", "5"}
    for cid in ("1", "3", "5"):
        [receipt] = receipts.by_subject(eraser, cid)
        assert receipt.reason is ErasureReason.RETENTION_EXPIRED
    assert len(receipts.receipts) == 3


def test_purge_stops_when_the_search_ignores_its_sort():
    hubspot = SearchableHubSpot({str(i): _scored(OLD) for i in range(1, 4)})
    hubspot.ignores_sorts = True
    purge, _, _ = _purge(hubspot, MemoryLedger({}))
    with pytest.raises(SearchOrderError, match="ascending hs_object_id"):
        purge.run(NOW)
    assert hubspot.updates == []  # nothing erased from a page it could not trust


def test_the_inactive_contact_search_stops_when_it_ignores_its_sort():
    never_scored = {PROP: "", "lastmodifieddate": _iso(OLD), "email": "p@q.in"}
    hubspot = SearchableHubSpot({str(i): dict(never_scored) for i in range(1, 4)})
    purge, _, _ = _purge(hubspot, MemoryLedger({}), inactive_mode="report")
    assert purge.run(NOW).inactive_found == 3
    hubspot.ignores_sorts = True
    with pytest.raises(SearchOrderError, match="contact 2 after 3"):
        purge.run(NOW)


def test_the_cutoff_follows_the_simulated_clock():
    hubspot = SearchableHubSpot({"1": _scored(OLD)})
    ledger = MemoryLedger({"1": OLD})
    purge, _, _ = _purge(hubspot, ledger)
    assert purge.run(NOW - timedelta(days=2)).erased == 0  # not yet past the period
    assert "1" in ledger.scored
    assert purge.run(NOW).erased == 1


def test_purge_keeps_ledger_when_hubspot_refuses():
    hubspot = SearchableHubSpot({"1": _scored(OLD)})
    hubspot.update_error = HubSpotBatchError("batch update", ["1"])
    ledger = MemoryLedger({"1": OLD})
    purge, receipts, _ = _purge(hubspot, ledger)
    result = purge.run(NOW)
    assert (result.failed, result.erased, result.hubspot_only) == (1, 0, 0)
    assert "1" in ledger.scored  # the next purge retries
    assert not receipts.receipts


def _inactive(at, consent=""):
    return {PROP: consent, "email": "old@lead.in", "lastmodifieddate": _iso(at)}


def test_inactive_contacts_are_reported_not_deleted_in_dry_run():
    hubspot = SearchableHubSpot({
        "20": _inactive(OLD),  # never consented, untouched for the period
        "21": _inactive(RECENT),  # active recently
        "22": _inactive(OLD, consent="lead_scoring"),  # consented: not a candidate
        "23": _inactive(OLD, consent="bogus"),  # malformed: needs a human, never deleted
    })
    purge, receipts, _ = _purge(hubspot, MemoryLedger(), inactive_mode="report")
    result = purge.run(NOW)
    assert (result.inactive_found, result.inactive_deleted, result.inactive_ids) == (1, 0, ["20"])
    assert set(hubspot.contacts) == {"20", "21", "22", "23"}
    assert not receipts.receipts


def test_inactive_contacts_are_gdpr_deleted_with_a_receipt_when_enabled():
    hubspot = SearchableHubSpot({"20": _inactive(OLD), "21": _inactive(RECENT)})
    purge, receipts, eraser = _purge(hubspot, MemoryLedger(), inactive_mode="delete",
                                     deleter=None)
    purge.deleter = hubspot
    result = purge.run(NOW)
    assert (result.inactive_found, result.inactive_deleted) == (1, 1)
    assert hubspot.gdpr_deleted == ["20"] and "21" in hubspot.contacts
    [receipt] = receipts.by_subject(eraser, "20")
    assert HUBSPOT_CONTACT in receipt.records


def test_inactive_mode_off_never_searches_for_them():
    hubspot = SearchableHubSpot({"20": _inactive(OLD)})
    purge, _, _ = _purge(hubspot, MemoryLedger())
    result = purge.run(NOW)
    assert result.inactive_found == 0
    assert not any(f["propertyName"] == "lastmodifieddate"
                   for groups in hubspot.searches for g in groups for f in g["filters"])


def test_purge_stops_before_the_lambda_timeout():
    hubspot = SearchableHubSpot({"1": _scored(OLD)})
    purge, _, _ = _purge(hubspot, MemoryLedger({"1": OLD}), seconds_left=lambda: 10.0)
    result = purge.run(NOW)
    assert not result.complete and result.erased == 0


@pytest.mark.parametrize("value, expired", [
    (None, True), ("", True), ("garbage", True),
    (_iso(OLD), True), (_iso(RECENT), False),
    (str(int(RECENT.timestamp() * 1000)), False),
])
def test_still_expired(value, expired):
    assert still_expired(value, NOW - timedelta(days=180)) is expired


def test_parse_hubspot_datetime():
    assert parse_hubspot_datetime("2026-01-01T00:00:00Z") == datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_hubspot_datetime("1767225600000") == datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_hubspot_datetime("soon") is None


def test_scheduled_time_is_the_real_clock_unless_the_local_stack_allows_a_simulated_one():
    local = {SIMULATED_CLOCK_SETTING: "1"}
    assert scheduled_time({"time": "2026-06-01T21:30:00Z"}, local) == NOW
    before = datetime.now(UTC)
    assert scheduled_time({}, local) >= before
    assert scheduled_time({"time": "not a time"}, local) >= before
    # Deployed: a caller's `time` (say, years ahead, to purge everything) is ignored.
    assert scheduled_time({"time": "2099-01-01T00:00:00Z"}, {}) < datetime(2099, 1, 1, tzinfo=UTC)
    assert scheduled_time({"time": "2099-01-01T00:00:00Z"},
                          {SIMULATED_CLOCK_SETTING: "true"}) >= before
