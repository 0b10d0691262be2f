"""The score pipeline's learning-loop step with the shipped model, against moto (ledger, feature
snapshots, receipts): a point-in-time snapshot at the first score only, consent-gated, outcomes
from the webhook path, erasure with the ledger."""

from __future__ import annotations

from datetime import timedelta

import boto3
import pytest
from fakes import FakeHubSpot
from learning_fakes import NOW, SHIPPED_MODEL, learning_tables, ms
from moto import mock_aws

from leadscore.dpdp.erasure import DynamoDBReceipts, Eraser
from leadscore.learning.capture import SnapshotStep
from leadscore.learning.snapshots import Outcome, SnapshotStore, SnapshotWrites
from leadscore.model import load
from leadscore.scoring.ledger import DynamoDBLedger
from leadscore.scoring.pipeline import ScorePipeline
from leadscore.scoring.queues import ScoreMessage

PROP = "dpdp_consent_purposes"
MODEL = load(SHIPPED_MODEL)


@pytest.fixture
def aws(aws_env, monkeypatch):
    with mock_aws():
        learning_tables(monkeypatch)
        yield


def lead(consent="lead_scoring", **extra):
    return {"email": "Asha.Rao@example.in", "firstname": "Asha", "jobtitle": "VP Sales",
            "country": "India", "hs_analytics_num_visits": "12", "lifecyclestage": "lead",
            PROP: consent, **extra}


def message(contact_id, at, kind="contact.creation", event_id=1):
    return ScoreMessage(contact_id=contact_id, event_id=event_id, subscription_type=kind,
                        occurred_at=ms(at), portal_id=1)


class Stack:
    def __init__(self, hubspot, training_purpose=None):
        self.hubspot = hubspot
        self.store = SnapshotStore("FeatureSnapshotTable")
        self.ledger = DynamoDBLedger("LedgerTable")
        receipts = DynamoDBReceipts("ErasureReceiptsTable")
        self.step = SnapshotStep.for_model(
            MODEL, self.store, retention_days=180, window_days=60, purposes_property=PROP,
            training_purpose=training_purpose,
            eraser=Eraser(hubspot=hubspot, stores=[self.store], receipts=receipts,
                          receipt_key=b"key"))
        self.eraser = Eraser(hubspot=hubspot, stores=[self.ledger, self.store],
                             receipts=receipts, receipt_key=b"key")

    def score(self, *messages, at=NOW):
        return ScorePipeline(hubspot=self.hubspot, model=MODEL, ledger=self.ledger,
                             purposes_property=PROP, retention_days=180, eraser=self.eraser,
                             snapshots=self.step, clock=lambda: at).run(list(messages))

    def snapshot(self, contact_id):
        found = [s for s in self.store.snapshots() if s.contact_id == contact_id]
        return found[0] if found else None

    def receipts(self):
        return boto3.resource("dynamodb").Table("ErasureReceiptsTable").scan()["Items"]


def test_the_first_score_takes_a_point_in_time_snapshot_and_later_scores_keep_it(aws):
    stack = Stack(FakeHubSpot({"1": lead()}))
    assert stack.score(message("1", NOW)).scored == ["1"]
    snapshot = stack.snapshot("1")
    assert snapshot.features["email"] == "@example.in"  # the domain, never the address
    assert snapshot.features["hs_analytics_num_visits"] == "12"
    assert set(snapshot.features) == set(MODEL.properties)  # the model's inputs only
    assert "Asha" not in snapshot.model_dump_json()
    assert (snapshot.model_version, snapshot.schema_hash) == (
        MODEL.version, MODEL.metadata["schema_hash"])
    first = snapshot.scored_at

    # The lead engages after a sales call: re-scored, but the snapshot is what it was.
    stack.hubspot.contacts["1"]["hs_analytics_num_visits"] = "80"
    later = NOW + timedelta(days=1)
    assert stack.score(message("1", later, "contact.propertyChange", 2), at=later).scored == ["1"]
    snapshot = stack.snapshot("1")
    assert snapshot.features["hs_analytics_num_visits"] == "12" and snapshot.scored_at == first


def test_no_consent_no_snapshot_and_withdrawal_erases_it_with_the_ledger(aws):
    stack = Stack(FakeHubSpot({"1": lead(consent=""), "2": lead()}))
    stack.score(message("1", NOW), message("2", NOW))
    assert stack.snapshot("1") is None and stack.snapshot("2") is not None

    stack.hubspot.contacts["2"][PROP] = ""
    later = NOW + timedelta(hours=1)
    assert stack.score(message("2", later, "contact.propertyChange", 2), at=later).erased == ["2"]
    assert stack.snapshot("2") is None
    [receipt] = stack.receipts()
    assert receipt["reason"] == "consent_withdrawn"
    assert set(receipt["records"]) == {"ledger", "feature_snapshot"}


def test_deletion_erases_the_snapshot(aws):
    stack = Stack(FakeHubSpot({"1": lead()}))
    stack.score(message("1", NOW))
    later = NOW + timedelta(hours=1)
    stack.score(message("1", later, "contact.deletion", 2), at=later)
    assert stack.snapshot("1") is None
    assert stack.receipts()[0]["records"] == ["ledger", "feature_snapshot"]


def test_a_lead_converted_before_its_first_score_is_prior(aws):
    stack = Stack(FakeHubSpot({"1": lead(lifecyclestage="customer")}))
    stack.score(message("1", NOW))
    assert stack.snapshot("1").outcome is Outcome.PRIOR


def test_the_webhook_path_records_a_conversion_within_the_window(aws):
    stack = Stack(FakeHubSpot({"1": lead(), "2": lead()}))
    stack.score(message("1", NOW), message("2", NOW))
    # Contact 1 converts 20 days later; contact 2 only after its 60-day window.
    stack.hubspot.contacts["1"]["lifecyclestage"] = "opportunity"
    stack.hubspot.contacts["2"]["lifecyclestage"] = "customer"
    soon, late = NOW + timedelta(days=20), NOW + timedelta(days=61)
    stack.score(message("1", soon, "contact.propertyChange", 2), at=soon)
    stack.score(message("2", late, "contact.propertyChange", 3), at=late)
    converted = stack.snapshot("1")
    assert (converted.outcome, converted.outcome_source) == (Outcome.POSITIVE, "webhook")
    assert converted.outcome_at == soon.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert stack.snapshot("2").outcome is None  # the history path settles it (negative)


def test_an_outcome_never_overwrites_one_or_the_shadow_scores(aws):
    stack = Stack(FakeHubSpot({"1": lead()}))
    stack.score(message("1", NOW))
    # Issue 13's shadow challenger wrote its score into the snapshot.
    boto3.resource("dynamodb").Table("FeatureSnapshotTable").update_item(
        Key={"contact_id": "1"}, UpdateExpression="SET shadow_version = :v, shadow_score = :s",
        ExpressionAttributeValues={":v": "challenger-1", ":s": 77})
    stack.hubspot.contacts["1"]["lifecyclestage"] = "customer"
    at = NOW + timedelta(days=2)
    stack.score(message("1", at, "contact.propertyChange", 2), at=at)
    stack.hubspot.contacts["1"]["lifecyclestage"] = "lead"  # a rep's mistake, corrected
    stack.hubspot.contacts["1"]["hs_analytics_num_visits"] = "13"
    later = NOW + timedelta(days=3)
    stack.score(message("1", later, "contact.propertyChange", 3), at=later)
    snapshot = stack.snapshot("1")
    assert snapshot.outcome is Outcome.POSITIVE
    assert (snapshot.shadow_version, snapshot.shadow_score) == ("challenger-1", 77)


def test_training_consent_purpose(aws):
    stack = Stack(FakeHubSpot({"1": lead(), "2": lead(consent="lead_scoring;model_training")}),
                  training_purpose="model_training")
    assert sorted(stack.score(message("1", NOW), message("2", NOW)).scored) == ["1", "2"]
    assert stack.snapshot("1") is None and stack.snapshot("2") is not None

    # The purpose is withdrawn, scoring is not: only the snapshot goes, with its receipt.
    stack.hubspot.contacts["2"][PROP] = "lead_scoring"
    later = NOW + timedelta(days=1)
    assert stack.score(message("2", later, "contact.propertyChange", 2), at=later).scored == ["2"]
    assert stack.snapshot("2") is None
    [receipt] = stack.receipts()
    assert (receipt["reason"], receipt["records"]) == ("training_consent_withdrawn",
                                                       ["feature_snapshot"])


def test_a_snapshot_that_cannot_be_written_is_retried_with_its_contact(aws):
    stack = Stack(FakeHubSpot({"1": lead(), "2": lead()}))
    real = stack.store.put_first

    def throttled(snapshots):
        writes = real([s for s in snapshots if s.contact_id != "1"])
        return SnapshotWrites(taken=writes.taken, existed=writes.existed,
                              failed={"1": "ProvisionedThroughputExceededException"})

    stack.store.put_first = throttled
    result = stack.score(message("1", NOW), message("2", NOW))
    assert result.scored == ["2"] and result.failed == ["1"]
    assert "Feature snapshot not written" in result.failure_reasons["1"]
    assert stack.ledger.states(["1"]) == {}  # not recorded: the retry is a first score again

    stack.store.put_first = real
    assert stack.score(message("1", NOW)).scored == ["1"]
    assert stack.snapshot("1") is not None
