"""Eraser: clears what leadscore wrote, deletes the ledger item, leaves a receipt that names
the contact only by a keyed hash; receipts in DynamoDB (moto)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from dpdp_fakes import MemoryLedger, MemoryReceipts, SearchableHubSpot
from fakes import create_table
from moto import mock_aws

from leadscore.dpdp.erasure import (
    DynamoDBReceipts,
    Eraser,
    ErasureReason,
    eraser_from_env,
    subject_hash,
)
from leadscore.hubspot.client import HubSpotBatchError, HubSpotUnavailable
from leadscore.hubspot.properties import AI_PROPERTIES, ENRICHMENT_PROPERTIES

KEY = b"receipt-key-0123456789abcdef0123"
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def _contact(**extra):
    props = dict.fromkeys(AI_PROPERTIES, "")
    props.update(ai_lead_score="91", ai_lead_tier="hot", ai_lead_summary="Strong fit",
                 email="asha@acme.in", firstname="Asha", dpdp_consent_purposes="")
    props.update(extra)
    return props


def _eraser(hubspot, ledger, receipts=None):
    return Eraser(hubspot=hubspot, stores=[ledger], receipts=receipts or MemoryReceipts(),
                  receipt_key=KEY, audit_retention_days=30)


def test_erase_all_clears_ai_properties_deletes_ledger_and_writes_receipt():
    hubspot = SearchableHubSpot({"11": _contact(), "12": _contact(ai_lead_summary="")})
    ledger = MemoryLedger({"11": NOW, "12": NOW, "99": NOW})
    receipts = MemoryReceipts()
    eraser = _eraser(hubspot, ledger, receipts)

    result = eraser.erase(["11", "12", "11"], ErasureReason.CONSENT_WITHDRAWN, now=NOW)

    assert result.erased == ["11", "12"] and result.failed == []
    assert (result.hubspot_cleared, result.records_deleted) == (2, {"ledger": 2})
    assert all(hubspot.contacts[cid][p] == "" for cid in ("11", "12") for p in AI_PROPERTIES)
    assert hubspot.contacts["11"]["email"] == "asha@acme.in"  # not ours: untouched
    assert set(ledger.scored) == {"99"}
    # Only properties that held a value are written (no needless property-change events).
    assert hubspot.updates == [{"11": {"ai_lead_score": "", "ai_lead_tier": "",
                                       "ai_lead_summary": ""},
                                "12": {"ai_lead_score": "", "ai_lead_tier": ""}}]
    first = receipts.by_subject(eraser, "11")[0]
    assert first.reason is ErasureReason.CONSENT_WITHDRAWN
    assert set(first.hubspot_properties) == {"ai_lead_score", "ai_lead_tier", "ai_lead_summary"}
    assert first.records == ("ledger",)
    assert first.erased_at == "2025-03-01T12:00:00.000Z"
    assert first.expires_at == int((NOW + timedelta(days=30)).timestamp())


def test_receipt_holds_no_personal_data_and_a_keyed_hash():
    hubspot = SearchableHubSpot({"4242": _contact()})
    receipts = MemoryReceipts()
    eraser = _eraser(hubspot, MemoryLedger({"4242": NOW}), receipts)
    eraser.erase(["4242"], ErasureReason.PRIVACY_DELETION, now=NOW)

    [receipt] = receipts.receipts
    stored = json.dumps(receipt.item())
    for personal in ("4242", "asha", "Asha", "acme"):
        assert personal not in stored
    assert receipt.subject == subject_hash(KEY, "4242")
    assert receipt.subject != subject_hash(b"another key", "4242")  # needs the key to link
    assert receipt.key_id and receipt.key_id not in KEY.decode()


def test_enrichment_scope_clears_only_llm_properties_and_keeps_the_ledger():
    hubspot = SearchableHubSpot({"5": _contact(ai_lead_next_action="Call Monday")})
    ledger = MemoryLedger({"5": NOW})
    receipts = MemoryReceipts()
    eraser = _eraser(hubspot, ledger, receipts)
    eraser.erase(["5"], ErasureReason.ENRICHMENT_CONSENT_WITHDRAWN, scope="enrichment", now=NOW)
    assert all(hubspot.contacts["5"][p] == "" for p in ENRICHMENT_PROPERTIES)
    assert hubspot.contacts["5"]["ai_lead_score"] == "91"
    assert "5" in ledger.scored
    [receipt] = receipts.receipts
    assert receipt.scope == "enrichment" and receipt.records == ()
    assert set(receipt.hubspot_properties) == {"ai_lead_summary", "ai_lead_next_action"}


def test_deleted_contact_skips_hubspot_but_erases_the_ledger():
    hubspot = SearchableHubSpot({})
    ledger = MemoryLedger({"8": NOW})
    receipts = MemoryReceipts()
    eraser = _eraser(hubspot, ledger, receipts)
    result = eraser.erase(["8"], ErasureReason.CONTACT_DELETED, clear_hubspot=False, now=NOW)
    assert result.erased == ["8"] and not hubspot.reads and not hubspot.updates
    assert ledger.scored == {}
    assert receipts.receipts[0].records == ("ledger",)


def test_contact_hubspot_refused_keeps_its_ledger_item_and_gets_no_receipt():
    hubspot = SearchableHubSpot({"1": _contact(), "2": _contact()})
    hubspot.update_error = HubSpotBatchError("batch update", ["2"])
    ledger = MemoryLedger({"1": NOW, "2": NOW})
    receipts = MemoryReceipts()
    eraser = _eraser(hubspot, ledger, receipts)
    result = eraser.erase(["1", "2"], ErasureReason.CONSENT_SWEEP, now=NOW)
    assert (result.erased, result.failed) == (["1"], ["2"])
    assert set(ledger.scored) == {"2"}
    assert [r.subject for r in receipts.receipts] == [eraser.subject("1")]


def test_hubspot_down_raises_before_anything_is_erased():
    hubspot = SearchableHubSpot({"1": _contact()})
    hubspot.update_error = HubSpotUnavailable("batch update", 503)
    ledger = MemoryLedger({"1": NOW})
    receipts = MemoryReceipts()
    with pytest.raises(HubSpotUnavailable):
        _eraser(hubspot, ledger, receipts).erase(["1"], ErasureReason.CONSENT_SWEEP, now=NOW)
    assert "1" in ledger.scored and not receipts.receipts


def test_empty_key_is_refused():
    with pytest.raises(ValueError):
        Eraser(hubspot=SearchableHubSpot(), stores=[MemoryLedger()], receipts=MemoryReceipts(),
               receipt_key=b"")


def _receipts_table():
    create_table("ErasureReceiptsTable", "Receipts")


def test_dynamodb_receipts_round_trip_and_filter_by_period(aws_env):
    with mock_aws():
        _receipts_table()
        store = DynamoDBReceipts("Receipts")
        hubspot = SearchableHubSpot({"1": _contact(), "2": _contact()})
        eraser = _eraser(hubspot, MemoryLedger({"1": NOW}), store)
        eraser.erase(["1"], ErasureReason.CONSENT_WITHDRAWN, now=NOW)
        eraser.erase(["1", "2"], ErasureReason.RETENTION_EXPIRED, now=NOW + timedelta(days=2))

        assert len(list(store.scan())) == 3
        assert len(list(store.scan(since=NOW + timedelta(days=1)))) == 2
        assert len(list(store.scan(until=NOW + timedelta(days=1)))) == 1
        history = store.for_subject(eraser.subject("1"))
        assert [item["reason"] for item in history] == ["consent_withdrawn", "retention_expired"]


def test_eraser_from_env_reads_key_from_secrets_manager(aws_env):
    with mock_aws():
        _receipts_table()
        boto3.client("secretsmanager").create_secret(Name="receipt-key", SecretString="s3cret")
        eraser = eraser_from_env(hubspot=SearchableHubSpot(), stores=[MemoryLedger()], environ={
            "ERASURE_RECEIPTS_TABLE": "Receipts", "ERASURE_RECEIPT_KEY_SECRET": "receipt-key",
            "AUDIT_RETENTION_DAYS": "400"})
        assert eraser.subject("1") == subject_hash(b"s3cret", "1")
        assert eraser.audit_retention_days == 400
