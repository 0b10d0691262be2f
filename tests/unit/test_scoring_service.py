"""The score pipeline with a fake HubSpot and model, `POST /score` logic, and the HubSpot client's
retry/207 behaviour against a scripted HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import re
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from leadscore.dpdp.erasure import ErasureReason, ErasureResult
from leadscore.hubspot.client import (
    SEARCH_REQUESTS_PER_SECOND,
    Contact,
    HubSpotBatchError,
    HubSpotClient,
    HubSpotError,
    HubSpotUnavailable,
    RequestBudget,
    SearchOrderError,
    last_ascending_id,
)
from leadscore.hubspot.properties import ENRICHMENT_PROPERTIES
from leadscore.messaging import REASON_ATTRIBUTE, DeadLetters
from leadscore.scoring.ledger import LedgerState, RecordOutcome
from leadscore.scoring.pipeline import ScorePipeline, feature_hash
from leadscore.scoring.queues import ScoreMessage
from leadscore.scoring.score_api import (
    InvalidScoreRequest,
    answer_score_request,
    request_properties,
    score_one,
)

PROP = "dpdp_consent_purposes"
NOW = datetime(2025, 1, 15, 3, 4, 5, 678901, tzinfo=UTC)
_server_sleep = time.sleep  # tests patch time.sleep to observe urllib3's back-off


def contact(visits, consent="lead_scoring;ai_enrichment", **extra):
    return {"hs_analytics_num_visits": str(visits), "jobtitle": "CTO", PROP: consent,
            "email": "lead@example.in", **extra}


def message(contact_id, event_id=1, portal_id=62515, kind="contact.creation", occurred_at=None,
            **extra):
    return ScoreMessage(contact_id=str(contact_id), event_id=event_id, subscription_type=kind,
                        occurred_at=event_id if occurred_at is None else occurred_at,
                        portal_id=portal_id, **extra)


class Recorder:
    """Ledger (with DynamoDBLedger's ordering and alert bookkeeping), hot-lead alerts,
    enrichment queue, eraser and re-score queue in one: records what reached them."""

    def __init__(self):
        self.items: dict[str, dict] = {}
        self.entries, self.alerts, self.enrich, self.erasures, self.requeued = [], [], [], [], []
        self.ledger_error = None
        self.undeliverable: set[str] = set()
        self.erase_failures: set[str] = set()
        self.newer_meanwhile: dict[str, int] = {}  # contact -> last_event_at written by a rival

    # ledger
    def states(self, contact_ids):
        return {cid: LedgerState(tier=item["tier"], last_event_at=item["last_event_at"],
                                 hot_alerted="hot_alerted_at" in item,
                                 recent_event_ids=frozenset(item["recent_event_ids"]))
                for cid, item in self.items.items() if cid in contact_ids}

    def record(self, entries):
        if self.ledger_error:
            raise self.ledger_error
        outcome = RecordOutcome()
        for entry in entries:
            if entry.contact_id in self.newer_meanwhile:  # a concurrent batch won the race
                self.items.setdefault(entry.contact_id, {"tier": None, "recent_event_ids": ()})[
                    "last_event_at"] = self.newer_meanwhile.pop(entry.contact_id)
            item = self.items.get(entry.contact_id)
            if item and item["last_event_at"] > entry.last_event_at:
                outcome.superseded.add(entry.contact_id)
                continue
            alerted = item.get("hot_alerted_at") if item and entry.tier == "hot" else None
            self.items[entry.contact_id] = entry.model_dump() | (
                {"hot_alerted_at": alerted} if alerted else {})
            self.entries.append(entry)
            outcome.recorded.add(entry.contact_id)
        return outcome

    def claim_hot_alert(self, contact_id, at):
        item = self.items.get(contact_id)
        if item is None or "hot_alerted_at" in item:
            return False
        item["hot_alerted_at"] = at
        return True

    def release_hot_alert(self, contact_id):
        self.items.get(contact_id, {}).pop("hot_alerted_at", None)

    # outputs
    def publish(self, alerts):
        self.alerts.extend(alerts)
        return {a.contact_id for a in alerts} & self.undeliverable

    def send(self, messages):
        if messages and isinstance(messages[0], ScoreMessage):
            self.requeued.extend(messages)
            return len(messages)
        self.enrich.extend(messages)
        return {m.contact_id for m in messages} & self.undeliverable

    # eraser
    def erase(self, contact_ids, reason, *, scope="all", clear_hubspot=True, now=None):
        self.erasures.append((sorted(contact_ids), reason, scope, clear_hubspot))
        failed = sorted(set(contact_ids) & self.erase_failures)
        if scope == "all":
            for cid in contact_ids:
                if cid not in failed:
                    self.items.pop(cid, None)
        return ErasureResult(erased=[c for c in contact_ids if c not in failed], failed=failed)


def pipeline(hubspot, model, recorder, **overrides):
    options = dict(hubspot=hubspot, model=model, ledger=recorder, purposes_property=PROP,
                   retention_days=180, hot_leads=recorder, enrichment=recorder,
                   eraser=recorder, requeue=recorder, clock=lambda: NOW)
    options.update(overrides)
    return ScorePipeline(**options)


# --- consent gate -------------------------------------------------------------------------


def test_unconsented_contacts_are_never_written_stored_or_sent(kit, fake_model):
    hubspot = kit.FakeHubSpot({
        "1": contact(9, consent=""),
        "2": contact(9, consent="ai_enrichment"),
        "3": contact(9, consent="lead_scoring,ai_enrichment"),  # malformed
        "4": contact(9, consent=None),
    })
    recorder = Recorder()
    result = pipeline(hubspot, fake_model, recorder).run([message(i) for i in range(1, 5)])

    assert result.scored == []
    assert result.skipped_consent == ["1", "2", "3", "4"]
    assert result.malformed_consent == ["3"]
    assert result.failed == []
    assert hubspot.updates == []
    assert (recorder.entries, recorder.alerts, recorder.enrich) == ([], [], [])
    assert recorder.erasures == []  # nothing was held about them: nothing to erase
    assert fake_model.rows_scored == 0  # not even scored in memory


def test_consented_contacts_are_written_ledgered_alerted_and_enriched(kit, fake_model):
    hubspot = kit.FakeHubSpot({
        "1": contact(9),  # hot, enrichment consent
        "2": contact(6, consent="lead_scoring"),  # warm, no enrichment consent
        "3": contact(2),  # cold: not enriched (ENRICH_TIERS = hot, warm)
        "4": contact(9, consent=""),
    })
    recorder = Recorder()
    result = pipeline(hubspot, fake_model, recorder).run(
        [message(1, event_id=11), message(2), message(3), message(4)])

    assert result.scored == ["1", "2", "3"]
    assert result.skipped_consent == ["4"]
    [update] = hubspot.updates
    assert set(update) == {"1", "2", "3"}
    assert update["1"] == {
        "ai_lead_score": "90", "ai_lead_probability": "0.9000", "ai_lead_tier": "hot",
        "ai_lead_reasons": "9 website visits\nJob title",
        "ai_lead_model_version": "test-model-1", "ai_lead_scored_at": "2025-01-15T03:04:05.678Z",
    }
    assert [(e.contact_id, e.score, e.tier) for e in recorder.entries] == [
        ("1", 90, "hot"), ("2", 60, "warm"), ("3", 20, "cold")]
    entry = recorder.entries[0]
    assert entry.scored_at == "2025-01-15T03:04:05.678Z"
    assert entry.model_version == "test-model-1"
    assert entry.expires_at > int(NOW.timestamp()) + 180 * 86400
    assert entry.feature_hash == feature_hash(contact(9), fake_model.properties)
    assert (entry.last_event_at, entry.recent_event_ids) == (11, ("62515:0:11:1::11",))
    [alert] = recorder.alerts
    assert json.loads(alert.model_dump_json()) == {
        "contact_id": "1", "portal_id": 62515, "score": 90, "tier": "hot",
        "model_version": "test-model-1", "scored_at": "2025-01-15T03:04:05.678Z"}
    assert [m.contact_id for m in recorder.enrich] == ["1"]
    assert recorder.enrich[0].model_dump() == {
        "contact_id": "1", "score": 90, "tier": "hot", "model_version": "test-model-1",
        "scored_at": "2025-01-15T03:04:05.678Z", "event_ids": ["62515:0:11:1::11"]}


def test_enrich_tiers_are_configurable(kit, fake_model):
    hubspot = kit.FakeHubSpot({"1": contact(9), "2": contact(6)})
    recorder = Recorder()
    pipeline(hubspot, fake_model, recorder, enrich_tiers=frozenset({"warm"})).run(
        [message(1), message(2)])
    assert [m.contact_id for m in recorder.enrich] == ["2"]


def test_hubspot_reads_model_consent_and_own_properties(kit, fake_model):
    hubspot = kit.FakeHubSpot({"1": contact(5)})
    recorded = []
    original = hubspot.batch_read
    hubspot.batch_read = lambda ids, props: recorded.append(list(props)) or original(ids, props)
    pipeline(hubspot, fake_model, Recorder()).run([message(1)])
    # Our own properties tell whether there is anything to erase on withdrawal.
    assert recorded == [["hs_analytics_num_visits", "jobtitle", PROP, "ai_lead_score",
                         *ENRICHMENT_PROPERTIES]]


# --- hot alert once -----------------------------------------------------------------------


def test_hot_alert_is_sent_once_and_again_after_leaving_the_tier(kit, fake_model):
    hubspot = kit.FakeHubSpot({"1": contact(9)})
    recorder = Recorder()
    scorer = pipeline(hubspot, fake_model, recorder)
    scorer.run([message(1, event_id=1)])
    scorer.run([message(1, event_id=2)])  # still hot: no second alert
    assert len(recorder.alerts) == 1
    hubspot.contacts["1"]["hs_analytics_num_visits"] = "5"
    scorer.run([message(1, event_id=3)])  # warm
    hubspot.contacts["1"]["hs_analytics_num_visits"] = "9"
    scorer.run([message(1, event_id=4)])  # hot again
    assert len(recorder.alerts) == 2


def test_unpublished_alert_is_released_for_the_retry(kit, fake_model):
    hubspot = kit.FakeHubSpot({"1": contact(9)})
    recorder = Recorder()
    recorder.undeliverable = {"1"}
    assert pipeline(hubspot, fake_model, recorder).run([message(1)]).failed == ["1"]
    recorder.undeliverable = set()
    retry = pipeline(hubspot, fake_model, recorder).run([message(1, event_id=2)])
    assert retry.scored == ["1"]
    assert len(recorder.alerts) == 2  # the failed attempt, then the delivered one


# --- ordering and redelivery --------------------------------------------------------------


def test_redelivered_event_is_not_written_again(kit, fake_model):
    hubspot = kit.FakeHubSpot({"1": contact(5)})
    recorder = Recorder()
    scorer = pipeline(hubspot, fake_model, recorder)
    assert scorer.run([message(1, event_id=7)]).scored == ["1"]
    for _ in range(3):  # HubSpot's retries, however they are grouped
        assert scorer.run([message(1, event_id=7)]).stale == ["1"]
    assert len(hubspot.updates) == 1
    assert len(recorder.entries) == 1


def test_event_older_than_the_newest_applied_changes_nothing(kit, fake_model):
    hubspot = kit.FakeHubSpot({"1": contact(5)})
    recorder = Recorder()
    scorer = pipeline(hubspot, fake_model, recorder)
    scorer.run([message(1, event_id=2, occurred_at=2_000)])
    late = scorer.run([message(1, event_id=1, occurred_at=1_000,
                               kind="contact.propertyChange")])
    assert late.stale == ["1"]
    assert len(hubspot.updates) == 1
    assert recorder.items["1"]["last_event_at"] == 2_000


def test_newest_event_of_a_batch_decides_and_all_are_remembered(kit, fake_model):
    hubspot = kit.FakeHubSpot({"1": contact(5)})
    recorder = Recorder()
    result = pipeline(hubspot, fake_model, recorder).run([
        message(1, event_id=3, occurred_at=3_000, kind="contact.deletion"),
        message(1, event_id=4, occurred_at=4_000),  # restored/re-created afterwards: score
        message(1, event_id=2, occurred_at=2_000),
    ])
    assert result.scored == ["1"]
    assert recorder.erasures == []
    assert set(recorder.entries[0].recent_event_ids) == {
        "62515:0:2:1::2000", "62515:0:3:1::3000", "62515:0:4:1::4000"}


def test_an_event_id_hubspot_reuses_for_another_change_is_applied(kit, fake_model):
    # HubSpot documents eventId as not unique: the same id on a later change, another property
    # or another subscription is a new event, not a redelivery.
    hubspot = kit.FakeHubSpot({"1": contact(5)})
    recorder = Recorder()
    scorer = pipeline(hubspot, fake_model, recorder)
    change = dict(kind="contact.propertyChange", subscription_id=3, property_name="jobtitle")
    assert scorer.run([message(1, event_id=7, occurred_at=1_000, **change)]).scored == ["1"]
    assert scorer.run([message(1, event_id=7, occurred_at=2_000, **change)]).scored == ["1"]
    other = dict(change, property_name="hs_analytics_num_visits")
    assert scorer.run([message(1, event_id=7, occurred_at=2_000, **other)]).scored == ["1"]
    assert scorer.run([message(1, event_id=7, occurred_at=2_000,
                               **dict(other, subscription_id=4))]).scored == ["1"]
    assert scorer.run([message(1, event_id=7, occurred_at=2_000, **other)]).stale == ["1"]
    assert len(hubspot.updates) == 4


def test_score_that_lost_a_race_is_queued_again(kit, fake_model):
    hubspot = kit.FakeHubSpot({"1": contact(5)})
    recorder = Recorder()
    recorder.newer_meanwhile = {"1": 5_000}  # another batch applied a newer event meanwhile
    result = pipeline(hubspot, fake_model, recorder).run([message(1, occurred_at=1_000)])
    assert (result.scored, result.stale, result.failed) == ([], ["1"], [])
    [again] = recorder.requeued
    assert (again.contact_id, again.subscription_type) == ("1", "leadscore.rescore")
    assert again.occurred_at > 5_000 or again.occurred_at >= int(NOW.timestamp() * 1000)


# --- erasure ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind, reason", [
    ("contact.deletion", ErasureReason.CONTACT_DELETED),
    ("contact.privacyDeletion", ErasureReason.PRIVACY_DELETION),
])
def test_deletions_erase_without_touching_hubspot(kit, fake_model, kind, reason):
    hubspot = kit.FakeHubSpot({})
    recorder = Recorder()
    result = pipeline(hubspot, fake_model, recorder).run([message(1, kind=kind)])
    assert result.erased == ["1"]
    assert recorder.erasures == [(["1"], reason, "all", False)]
    assert (hubspot.reads, hubspot.updates) == ([], [])


def test_privacy_deletion_erases_even_after_a_newer_event(kit, fake_model):
    hubspot = kit.FakeHubSpot({"1": contact(5)})
    recorder = Recorder()
    scorer = pipeline(hubspot, fake_model, recorder)
    scorer.run([message(1, event_id=9, occurred_at=9_000)])
    scorer.run([message(1, event_id=3, occurred_at=3_000, kind="contact.privacyDeletion")])
    assert recorder.erasures[-1][1] == ErasureReason.PRIVACY_DELETION
    assert "1" not in recorder.items


def test_merge_scores_the_survivor_and_erases_the_merged(kit, fake_model):
    hubspot = kit.FakeHubSpot({"5": contact(9)})
    recorder = Recorder()
    result = pipeline(hubspot, fake_model, recorder).run([
        message(5, kind="contact.merge"),
        message(6, kind="contact.merge", merged_into="5"),
    ])
    assert (result.scored, result.erased) == (["5"], ["6"])
    assert recorder.erasures == [(["6"], ErasureReason.CONTACT_DELETED, "all", False)]


def test_withdrawn_consent_erases_what_was_derived(kit, fake_model):
    hubspot = kit.FakeHubSpot({"1": contact(9), "2": contact(9)})
    recorder = Recorder()
    scorer = pipeline(hubspot, fake_model, recorder)
    scorer.run([message(1, event_id=1), message(2, event_id=2)])
    hubspot.contacts["1"][PROP] = ""  # withdrew lead_scoring
    hubspot.contacts["2"][PROP] = "lead_scoring"  # withdrew ai_enrichment only
    hubspot.contacts["2"]["ai_lead_summary"] = "LLM summary"
    change = "contact.propertyChange"
    result = scorer.run([message(1, event_id=3, kind=change), message(2, event_id=4, kind=change)])
    assert result.erased == ["1"]
    assert result.scored == ["2"]  # still scored, never enriched
    assert sorted(recorder.erasures[-2:]) == sorted([
        (["1"], ErasureReason.CONSENT_WITHDRAWN, "all", True),
        (["2"], ErasureReason.ENRICHMENT_CONSENT_WITHDRAWN, "enrichment", True)])
    assert "1" not in recorder.items
    assert [m.contact_id for m in recorder.enrich] == ["1", "2"]  # from the first run only


def test_failed_erasure_is_retried(kit, fake_model):
    recorder = Recorder()
    recorder.erase_failures = {"1"}
    result = pipeline(kit.FakeHubSpot({}), fake_model, recorder).run(
        [message(1, kind="contact.deletion"), message(2, kind="contact.deletion")])
    assert (result.failed, result.erased) == (["1"], ["2"])
    assert "partly failed" in result.failure_reasons["1"]


def test_known_contact_gone_from_hubspot_is_forgotten(kit, fake_model):
    hubspot = kit.FakeHubSpot({"1": contact(5)})
    recorder = Recorder()
    scorer = pipeline(hubspot, fake_model, recorder)
    scorer.run([message(1, event_id=1)])
    del hubspot.contacts["1"]  # deleted, and the deletion webhook never came
    result = scorer.run([message(1, event_id=2)])
    assert (result.not_found, result.failed) == (["1"], [])
    assert recorder.erasures == [(["1"], ErasureReason.CONTACT_DELETED, "all", False)]


# --- batching -----------------------------------------------------------------------------


def test_one_batch_read_and_update_per_100_contacts(kit, fake_model):
    hubspot = kit.FakeHubSpot({str(i): contact(5) for i in range(1, 251)})
    result = pipeline(hubspot, fake_model, Recorder()).run(
        [message(i) for i in range(1, 251)])
    assert [len(ids) for ids in hubspot.reads] == [100, 100, 50]
    assert [len(batch) for batch in hubspot.updates] == [100, 100, 50]
    assert len(result.scored) == 250


def test_duplicate_messages_for_a_contact_are_coalesced(kit, fake_model):
    hubspot = kit.FakeHubSpot({"1": contact(5), "2": contact(5)})
    result = pipeline(hubspot, fake_model, Recorder()).run(
        [message(1, event_id=1), message(2, event_id=2), message(1, event_id=3)])
    assert hubspot.reads == [["1", "2"]]
    assert result.scored == ["1", "2"]
    assert fake_model.rows_scored == 2


def test_deleted_contacts_are_dropped_not_retried(kit, fake_model):
    hubspot = kit.FakeHubSpot({"1": contact(5)})
    result = pipeline(hubspot, fake_model, Recorder()).run([message(1), message(404)])
    assert result.not_found == ["404"]
    assert result.failed == []
    assert list(hubspot.updates[0]) == ["1"]


# --- failures -----------------------------------------------------------------------------


def test_read_failure_fails_the_whole_chunk(kit, fake_model):
    hubspot = kit.FakeHubSpot({"1": contact(5), "2": contact(5)})
    hubspot.read_error = HubSpotUnavailable("batch read", 429, "RATE_LIMITS")
    recorder = Recorder()
    result = pipeline(hubspot, fake_model, recorder).run([message(1), message(2)])
    assert sorted(result.failed) == ["1", "2"]
    assert result.scored == []
    assert recorder.entries == []
    assert result.failure_reasons["1"] == ("HubSpot batch read failed: HubSpotUnavailable "
                                           "status=429 category=RATE_LIMITS")


def test_update_failure_stores_nothing(kit, fake_model):
    hubspot = kit.FakeHubSpot({"1": contact(9), "2": contact(5)})
    hubspot.update_error = HubSpotError("batch update", 400, "VALIDATION_ERROR")
    recorder = Recorder()
    result = pipeline(hubspot, fake_model, recorder).run([message(1), message(2)])
    assert sorted(result.failed) == ["1", "2"]
    assert (recorder.entries, recorder.alerts, recorder.enrich) == ([], [], [])


def test_partial_update_failure_fails_only_those_contacts(kit, fake_model):
    hubspot = kit.FakeHubSpot({"1": contact(9), "2": contact(5)})
    hubspot.update_error = HubSpotBatchError("batch update", ["2"])
    recorder = Recorder()
    result = pipeline(hubspot, fake_model, recorder).run([message(1), message(2)])
    assert result.failed == ["2"]
    assert result.scored == ["1"]
    assert [e.contact_id for e in recorder.entries] == ["1"]


def test_ledger_failure_means_retry(kit, fake_model):
    hubspot = kit.FakeHubSpot({"1": contact(9)})
    recorder = Recorder()
    recorder.ledger_error = ClientError({"Error": {"Code": "ProvisionedThroughputExceeded"}},
                                        "UpdateItem")
    result = pipeline(hubspot, fake_model, recorder).run([message(1)])
    assert (result.failed, result.scored) == (["1"], [])
    assert recorder.alerts == []


def test_undelivered_alert_or_enrichment_means_retry(kit, fake_model):
    hubspot = kit.FakeHubSpot({"1": contact(9), "2": contact(9)})
    recorder = Recorder()
    recorder.undeliverable = {"2"}
    result = pipeline(hubspot, fake_model, recorder).run([message(1), message(2)])
    assert (result.scored, result.failed) == (["1"], ["2"])


def test_model_error_fails_the_chunk_without_writing(kit, fake_model):
    hubspot = kit.FakeHubSpot({"1": contact(9)})

    def broken(rows, with_reasons=True):
        raise ValueError("could not convert 'lead@example.in'")

    fake_model.score_many = broken
    result = pipeline(hubspot, fake_model, Recorder()).run([message(1)])
    assert result.failed == ["1"]
    assert hubspot.updates == []
    assert "example.in" not in result.failure_reasons["1"]  # no personal data in reasons


# --- SQS batch -> failed records ----------------------------------------------------------


class Record:
    def __init__(self, message_id, body):
        self.message_id, self.body = message_id, body


def test_sqs_batch_reports_records_of_failed_contacts(kit, fake_model):
    hubspot = kit.FakeHubSpot({"1": contact(9), "2": contact(9)})
    hubspot.update_error = HubSpotBatchError("batch update", ["2"])
    records = [Record("m1", message(1).model_dump_json()),
               Record("m2", message(2, event_id=5).model_dump_json()),
               Record("m3", message(2, event_id=6).model_dump_json()),
               Record("m4", message(404).model_dump_json()),
               Record("m5", "not json"),
               Record("m6", json.dumps({"contact_id": "1"}))]
    outcome = pipeline(hubspot, fake_model, Recorder()).run_sqs_batch(records)
    # Both records of contact 2 go back to the queue; poison bodies too (-> DLQ eventually);
    # the deleted contact's record is acknowledged.
    assert outcome.failed_message_ids == {"m2", "m3", "m5", "m6"}
    assert outcome.result.not_found == ["404"]
    assert outcome.reasons["m5"] == "unreadable ScoreQueue message"
    assert outcome.reasons["m2"].startswith("HubSpot batch update partly failed")


def test_dead_letters_carry_the_reason(aws_env):
    with mock_aws():
        sqs = boto3.client("sqs")
        dlq = sqs.create_queue(QueueName="ScoreDLQ")["QueueUrl"]
        records = [{"messageId": f"m{i}", "body": f"body-{i}",
                    "attributes": {"ApproximateReceiveCount": str(receives)}}
                   for i, receives in enumerate([5, 2, 5])]
        still_failed = DeadLetters(dlq, max_receive_count=5, sqs_client=sqs).route(
            records, frozenset({"m0", "m1"}), {"m0": "HubSpot batch read failed: x"})
        # m0 is on its last receive: dead-lettered now and acknowledged; m1 retries; m2 is fine.
        assert still_failed == {"m1"}
        [dead] = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10,
                                     MessageAttributeNames=["All"])["Messages"]
        assert dead["Body"] == "body-0"
        assert dead["MessageAttributes"][REASON_ATTRIBUTE]["StringValue"] == (
            "HubSpot batch read failed: x")
        assert dead["MessageAttributes"]["source_message_id"]["StringValue"] == "m0"


# --- POST /score --------------------------------------------------------------------------


WANTED = ["hs_analytics_num_visits", "jobtitle", PROP]


@pytest.mark.parametrize("payload", [
    {"hs_analytics_num_visits": "7", "jobtitle": "CTO", PROP: "lead_scoring"},
    {"properties": {"hs_analytics_num_visits": 7, "jobtitle": "CTO", PROP: "lead_scoring"}},
    {"object": {"objectId": 1, "objectType": "CONTACT", "properties": {
        "hs_analytics_num_visits": "7", "jobtitle": "CTO", PROP: "lead_scoring"}},
     "callbackId": "ap-1", "inputFields": {}},
    {"vid": 1, "properties": {"hs_analytics_num_visits": {"value": "7", "versions": []},
                              "jobtitle": {"value": "CTO"}, PROP: {"value": "lead_scoring"}}},
])
def test_request_shapes(payload):
    assert request_properties(payload, WANTED) == {
        "hs_analytics_num_visits": "7", "jobtitle": "CTO", PROP: "lead_scoring"}


def test_request_values_are_normalised_and_unknown_fields_ignored():
    payload = {"hs_analytics_num_visits": 3.5, "jobtitle": None, PROP: True,
               "unrelated": {"nested": [1, 2]}, "another": [1]}
    assert request_properties(payload, WANTED) == {
        "hs_analytics_num_visits": "3.5", "jobtitle": None, PROP: "true"}


@pytest.mark.parametrize("payload, message", [
    ([1, 2], "body must be a JSON object"),
    ("x", "body must be a JSON object"),
    ({"properties": ["a"]}, "'properties' must be a JSON object"),
    ({"object": {"properties": 3}}, "'object.properties' must be a JSON object"),
    ({"jobtitle": ["CTO"]}, "'jobtitle' must be a string, number, boolean or null"),
    ({"properties": {"jobtitle": {"x": 1}}}, "'properties.jobtitle' must be"),
])
def test_wrong_types_name_the_field(payload, message):
    with pytest.raises(InvalidScoreRequest, match=re.escape(message)):
        request_properties(payload, WANTED)


def test_score_one_respects_consent(fake_model):
    props = {"hs_analytics_num_visits": "9", PROP: "lead_scoring"}
    assert score_one(props, fake_model, PROP) == {
        "scored": True, "score": 90, "probability": 0.9, "tier": "hot",
        "reasons": ["9 website visits", "Job title"], "model_version": "test-model-1"}
    assert score_one({**props, PROP: ""}, fake_model, PROP) == {
        "scored": False, "reason": "no consent for lead_scoring"}
    assert score_one({**props, PROP: "lead_scoring;x"}, fake_model, PROP) == {
        "scored": False, "reason": "consent property is malformed"}


def _answer(kit, event, model):
    return answer_score_request(event, client_secret=lambda: kit.CLIENT_SECRET, public_url=None,
                                model=model, purposes_property=PROP)


def test_score_request_end_to_end(kit, fake_model):
    body = json.dumps({"properties": {"hs_analytics_num_visits": "6", PROP: "lead_scoring"}})
    answer = _answer(kit, kit.http_api_event(body, path="/score"), fake_model)
    assert (answer.status_code, answer.body["score"], answer.body["tier"]) == (200, 60, "warm")


def test_score_request_rejections(kit, fake_model):
    body = json.dumps({"hs_analytics_num_visits": "6", PROP: "lead_scoring"})
    assert _answer(kit, kit.http_api_event(body, path="/score", secret="x"),
                   fake_model).status_code == 401
    bad = _answer(kit, kit.http_api_event("{oops", path="/score"), fake_model)
    assert (bad.status_code, bad.body) == (400, {"message": "body is not valid JSON"})
    wrong = _answer(kit, kit.http_api_event(json.dumps({"jobtitle": [1]}), path="/score"),
                    fake_model)
    assert wrong.status_code == 400
    assert "'jobtitle'" in wrong.body["message"]


# --- the HubSpot client against scripted HTTP responses -----------------------------------


class ScriptedHubSpot:
    """Answers each request with the next scripted (status, headers, body, delay)."""

    def __init__(self):
        self.script: list[tuple[int, dict, object, float]] = []
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                outer.requests.append({"path": self.path,
                                       "body": json.loads(self.rfile.read(length) or b"null")})
                status, headers, body, delay = (outer.script.pop(0) if outer.script
                                                else (500, {}, {}, 0))
                _server_sleep(delay)
                payload = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def then(self, status, body=None, headers=None, delay=0.0):
        self.script.append((status, headers or {}, {} if body is None else body, delay))
        return self


def _object(cid, **props):
    return {"id": cid, "properties": props, "createdAt": "2024-01-01T00:00:00Z",
            "updatedAt": "2024-01-01T00:00:00Z", "archived": False}


def _batch(results, errors=None):
    body = {"status": "COMPLETE", "results": results, "startedAt": "2024-01-01T00:00:00Z",
            "completedAt": "2024-01-01T00:00:01Z"}
    if errors:
        body.update(errors=errors, numErrors=len(errors))
    return body


@pytest.fixture
def scripted():
    server = ScriptedHubSpot()
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture
def sleeps(monkeypatch):
    recorded: list[float] = []
    monkeypatch.setattr("urllib3.util.retry.time.sleep", recorded.append)
    return recorded


def test_429_retry_after_is_honoured(scripted, sleeps):
    scripted.then(429, {"category": "RATE_LIMITS"}, {"Retry-After": "2"})
    scripted.then(200, _batch([_object("1", jobtitle="CTO")]))
    client = HubSpotClient("token", scripted.url)
    assert client.batch_read(["1"], ["jobtitle"]) == {"1": {"jobtitle": "CTO"}}
    assert sleeps == [2.0]
    assert len(scripted.requests) == 2
    # Every attempt counts, as HubSpot counts them against the rate limit.
    assert (client.request_count, client.throttled_count) == (2, 1)


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(round(seconds, 3))
        self.now += seconds


def test_request_budget_spreads_requests_over_time():
    clock = FakeClock()
    budget = RequestBudget(4, burst=2, clock=clock, sleep=clock.sleep)
    for _ in range(6):
        budget.acquire()
    # Two at once (the burst), then one every quarter second.
    assert clock.slept == [0.25, 0.25, 0.25, 0.25]
    assert clock.now == pytest.approx(1.0)


def test_retry_after_and_low_rate_limit_headers_pause_every_caller():
    clock = FakeClock()
    budget = RequestBudget(100, clock=clock, sleep=clock.sleep)
    budget.pause(3)
    assert budget.acquire() == pytest.approx(3.0)
    budget.observe({"X-HubSpot-RateLimit-Remaining": "1", "X-HubSpot-RateLimit-Max": "100",
                    "X-HubSpot-RateLimit-Interval-Milliseconds": "10000"})
    assert budget.acquire() > 0  # near the end of the window: slow down before the 429
    waited = clock.now
    budget.observe({"X-HubSpot-RateLimit-Remaining": "90", "X-HubSpot-RateLimit-Max": "100",
                    "X-HubSpot-RateLimit-Interval-Milliseconds": "10000"})
    budget.acquire()
    assert clock.now == waited  # plenty left: no pause


def test_client_draws_every_attempt_from_its_budget(scripted, sleeps):
    scripted.then(503, {}).then(200, _batch([]))
    clock = FakeClock()
    budget = RequestBudget(1, burst=1, clock=clock, sleep=clock.sleep)
    client = HubSpotClient("token", scripted.url, budget=budget)
    client.batch_read(["1"], ["jobtitle"])
    assert client.request_count == 2
    assert clock.slept == [1.0]  # the retry waited for its token


def test_a_retry_after_longer_than_the_cap_is_not_retried_in_the_call(scripted, sleeps):
    # A daily limit answers "not for an hour": trying again after 10 s would only count
    # against it. The caller learns how long to wait (the score function re-queues, delayed).
    scripted.then(429, {"category": "RATE_LIMITS"}, {"Retry-After": "3600"})
    scripted.then(200, _batch([]))
    with pytest.raises(HubSpotUnavailable) as error:
        HubSpotClient("token", scripted.url).batch_read(["1"], ["jobtitle"])
    assert (error.value.status, error.value.retry_after) == (429, 3600.0)
    assert sleeps == [] and len(scripted.requests) == 1


def test_unavailable_carries_hubspots_retry_after(scripted, sleeps):
    for _ in range(4):
        scripted.then(429, {"category": "RATE_LIMITS"}, {"Retry-After": "2"})
    with pytest.raises(HubSpotUnavailable) as error:
        HubSpotClient("token", scripted.url).batch_read(["1"], ["jobtitle"])
    assert error.value.retry_after == 2.0
    for _ in range(4):
        scripted.then(503, {"category": "INTERNAL_ERROR"})
    with pytest.raises(HubSpotUnavailable) as error:
        HubSpotClient("token", scripted.url).batch_read(["1"], ["jobtitle"])
    assert error.value.retry_after is None


def test_persistent_5xx_gives_up_after_four_attempts(scripted, sleeps):
    for _ in range(4):
        scripted.then(503, {"category": "INTERNAL_ERROR"})
    with pytest.raises(HubSpotUnavailable) as error:
        HubSpotClient("token", scripted.url).batch_read(["1"], ["jobtitle"])
    assert error.value.status == 503
    assert len(scripted.requests) == 4
    # urllib3's exponential back-off: immediate first retry, then ~1 s and ~2 s plus jitter.
    assert len(sleeps) == 2
    assert 1.0 <= sleeps[0] <= 1.5 and 2.0 <= sleeps[1] <= 2.5


def test_timeouts_become_hubspot_unavailable(scripted, sleeps):
    for _ in range(4):
        scripted.then(200, _batch([]), delay=0.5)
    client = HubSpotClient("token", scripted.url, timeout=(1.0, 0.1))
    with pytest.raises(HubSpotUnavailable):
        client.batch_read(["1"], ["jobtitle"])
    assert len(scripted.requests) == 4


def test_client_errors_are_not_retried_and_never_echo_the_body(scripted, sleeps):
    scripted.then(400, {"category": "VALIDATION_ERROR",
                        "message": "Property values were not valid: lead@example.in"})
    with pytest.raises(HubSpotError) as error:
        HubSpotClient("token", scripted.url).batch_update({"1": {"ai_lead_score": "x"}})
    assert not isinstance(error.value, HubSpotUnavailable)
    assert error.value.category == "VALIDATION_ERROR"
    assert "example.in" not in str(error.value)
    assert error.value.__cause__ is None and error.value.__suppress_context__
    assert len(scripted.requests) == 1


def test_unknown_ids_in_207_are_absent(scripted):
    scripted.then(207, _batch([_object("1", jobtitle="CTO")], errors=[{
        "status": "error", "category": "OBJECT_NOT_FOUND", "message": "gone",
        "context": {"ids": ["2"]}, "errors": [], "links": {}}]))
    found = HubSpotClient("token", scripted.url).batch_read(["1", "2"], ["jobtitle", "email"])
    assert found == {"1": {"jobtitle": "CTO", "email": None}}
    assert scripted.requests[0]["body"]["inputs"] == [{"id": "1"}, {"id": "2"}]
    assert scripted.requests[0]["path"] == "/crm/v3/objects/contacts/batch/read"


def test_batch_read_chunks_at_100(scripted):
    for _ in range(3):
        scripted.then(200, _batch([]))
    client = HubSpotClient("token", scripted.url)
    client.batch_read([str(i) for i in range(250)] + ["1"], ["jobtitle"])
    assert [len(r["body"]["inputs"]) for r in scripted.requests] == [100, 100, 50]
    assert client.request_count == 3


def test_partial_update_names_failed_ids(scripted):
    scripted.then(207, _batch([_object("1")], errors=[{
        "status": "error", "category": "OBJECT_NOT_FOUND", "message": "gone",
        "context": {"ids": ["2"]}, "errors": [], "links": {}}]))
    with pytest.raises(HubSpotBatchError) as error:
        HubSpotClient("token", scripted.url).batch_update({"1": {"a": "1"}, "2": {"a": "1"}})
    assert error.value.failed_ids == {"2"}


def test_search_pages(scripted):
    scripted.then(200, {"total": 3, "results": [_object("1", ai_lead_score="5")],
                        "paging": {"next": {"after": "1"}}})
    scripted.then(200, {"total": 3, "results": [_object("2")]})
    client = HubSpotClient("token", scripted.url)
    groups = [{"filters": [{"propertyName": "ai_lead_score", "operator": "HAS_PROPERTY"}]}]
    page, after = client.search(groups, ["ai_lead_score"])
    assert ([c.id for c in page], after) == (["1"], "1")
    page, after = client.search(groups, ["ai_lead_score"], after=after)
    assert ([c.id for c in page], after) == (["2"], None)
    assert scripted.requests[1]["body"]["after"] == "1"
    assert scripted.requests[0]["body"]["filterGroups"] == groups


def test_search_sorts_go_in_the_documented_object_form(scripted):
    scripted.then(200, {"total": 0, "results": []})
    HubSpotClient("token", scripted.url).search([], ["email"], sorts=["hs_object_id"])
    assert scripted.requests[0]["body"]["sorts"] == [
        {"propertyName": "hs_object_id", "direction": "ASCENDING"}]


def test_last_ascending_id_names_the_first_id_out_of_order():
    def page(*ids):
        return [Contact(id=str(i), properties={}) for i in ids]
    assert last_ascending_id(page(3, 5, 9), 2) == 9
    assert last_ascending_id(page(), 7) == 7
    with pytest.raises(SearchOrderError, match="contact 5 after 5"):
        last_ascending_id(page(3, 5, 5), 0)
    with pytest.raises(SearchOrderError, match="contact 3 after 4"):
        last_ascending_id(page(3), 4)  # the filter asked for ids above 4


def test_searches_stay_under_hubspots_search_limit_whatever_the_general_budget(
        scripted, monkeypatch):
    clock = FakeClock()
    search_budget = RequestBudget(SEARCH_REQUESTS_PER_SECOND, burst=1, clock=clock,
                                  sleep=clock.sleep)
    monkeypatch.setattr("leadscore.hubspot.client._search_budget", search_budget)
    for _ in range(8):
        scripted.then(200, {"total": 0, "results": []})
    client = HubSpotClient("token", scripted.url, budget=RequestBudget(1000))
    for _ in range(8):
        client.search([], ["ai_lead_score"])
    # One every quarter second: 4 per second, below HubSpot's 5.
    assert clock.slept == [0.25] * 7


def test_feature_hash_holds_an_email_address_only_as_its_domain():
    """The ledger's fingerprint of the inputs must not let a guessed address be tested: two
    addresses at one domain hash alike (the model reads only the domain), the domain counts."""
    names = ["email", "hs_analytics_num_visits"]
    asha = feature_hash({"email": "asha.rao@acme-corp.in", "hs_analytics_num_visits": "3"}, names)
    ravi = feature_hash({"email": "Ravi.K@ACME-corp.in ", "hs_analytics_num_visits": "3"}, names)
    other = feature_hash({"email": "asha.rao@gmail.com", "hs_analytics_num_visits": "3"}, names)
    domain_only = feature_hash({"email": "@acme-corp.in", "hs_analytics_num_visits": "3"}, names)
    assert asha == ravi == domain_only
    assert other != asha
    assert feature_hash({"email": "asha.rao@acme-corp.in", "hs_analytics_num_visits": "4"},
                        names) != asha
