"""The Lambda handlers in-process against moto (real boto3), with a fake HubSpot and model
injected through each function's seams (`hubspot_client_factory`, `load_model`)."""

from __future__ import annotations

import json
import time

import boto3
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from fakes import create_table
from moto import mock_aws

from leadscore.hubspot.client import HubSpotBatchError, HubSpotError, HubSpotUnavailable

PROP = "dpdp_consent_purposes"
TOKEN = "pat-ap1-test-token"
API_KEY = "score-api-key-0123456789"


@pytest.fixture
def stack(aws_env, kit, monkeypatch):
    """Queues, topic, ledger table and secrets as template.yaml wires them."""
    with mock_aws():
        sqs = boto3.client("sqs")
        urls = {name: sqs.create_queue(QueueName=name)["QueueUrl"]
                for name in ("ScoreQueue", "ScoreDLQ", "EnrichQueue", "HotLeadsInbox")}
        sns = boto3.client("sns")
        topic = sns.create_topic(Name="HotLeadsTopic")["TopicArn"]
        inbox_arn = sqs.get_queue_attributes(QueueUrl=urls["HotLeadsInbox"],
                                             AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=inbox_arn,
                      Attributes={"RawMessageDelivery": "true"})
        create_table("LedgerTable")
        create_table("ErasureReceiptsTable")
        secrets = boto3.client("secretsmanager")
        secrets.create_secret(Name="hubspot-client-secret", SecretString=kit.CLIENT_SECRET)
        secrets.create_secret(Name="hubspot-token", SecretString=TOKEN)
        secrets.create_secret(Name="receipt-key", SecretString="receipt-key-0000")
        secrets.create_secret(Name="score-api-key", SecretString=API_KEY)
        for name, value in {
            "HUBSPOT_CLIENT_SECRET_SECRET": "hubspot-client-secret",
            "HUBSPOT_TOKEN_SECRET": "hubspot-token",
            "HUBSPOT_BASE_URL": "http://hubspot.invalid",
            "SCORE_QUEUE_URL": urls["ScoreQueue"],
            "ENRICH_QUEUE_URL": urls["EnrichQueue"],
            "HOT_LEADS_TOPIC_ARN": topic,
            "LEDGER_TABLE": "LedgerTable",
            "RETENTION_DAYS": "180",
            "MODEL_DIR": "/nonexistent/model",
            "ENRICH_TIERS": "hot,warm",
            "SCORE_DLQ_URL": urls["ScoreDLQ"],
            "SCORE_QUEUE_MAX_RECEIVE_COUNT": "3",
            "ERASURE_RECEIPTS_TABLE": "ErasureReceiptsTable",
            "ERASURE_RECEIPT_KEY_SECRET": "receipt-key",
            "SCORE_API_KEY_SECRET": "score-api-key",
        }.items():
            monkeypatch.setenv(name, value)
        yield sqs, urls


def receive(sqs, url):
    found = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        found.extend(batch)
        for message in batch:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return found


def sqs_event(messages, receive_count=1):
    """What the SQS event source mapping hands the score function."""
    return {"Records": [{
        "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
        "attributes": {"ApproximateReceiveCount": str(receive_count),
                       "SentTimestamp": "1700000000000",
                       "SenderId": "AIDA", "ApproximateFirstReceiveTimestamp": "1700000000000"},
        "messageAttributes": {}, "md5OfBody": m["MD5OfBody"], "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:ap-south-1:123456789012:ScoreQueue",
        "awsRegion": "ap-south-1",
    } for m in messages]}


def contact(visits, consent="lead_scoring;ai_enrichment"):
    return {"hs_analytics_num_visits": str(visits), "jobtitle": "CTO", PROP: consent,
            "email": "lead@example.in", "firstname": "Asha"}


def score_module(kit, hubspot, model):
    module = kit.load_function("score")
    made = []

    def factory(token, base_url, budget=None):
        made.append((token, base_url))
        return hubspot

    module.function.hubspot_client_factory = factory
    module.function.load_model = lambda model_dir: model
    module.made = made
    return module


def ledger_items():
    return {item["contact_id"]: item
            for item in boto3.resource("dynamodb").Table("LedgerTable").scan()["Items"]}


# --- ingest -> score ----------------------------------------------------------------------


def test_webhook_to_scored_contact(stack, kit, fake_model, lambda_context, capsys):
    sqs, urls = stack
    hubspot = kit.FakeHubSpot({"101": contact(9), "102": contact(6, consent="lead_scoring"),
                               "103": contact(9, consent="")})
    events = [kit.webhook_event(1, 101), kit.webhook_event(2, 102), kit.webhook_event(3, 103),
              kit.webhook_event(4, 404)]
    ingest = kit.load_function("ingest").lambda_handler(
        kit.http_api_event(kit.webhook_body(events)), lambda_context)
    assert ingest["statusCode"] == 200

    queued = receive(sqs, urls["ScoreQueue"])
    assert len(json.loads(queued[0]["Body"])["events"]) == 4  # one message, four events
    module = score_module(kit, hubspot, fake_model)
    response = module.lambda_handler(sqs_event(queued), lambda_context)

    assert response == {"batchItemFailures": []}
    assert module.made == [(TOKEN, "http://hubspot.invalid")]
    assert hubspot.contacts["101"]["ai_lead_tier"] == "hot"
    assert hubspot.contacts["102"]["ai_lead_score"] == "60"
    assert "ai_lead_score" not in hubspot.contacts["103"]  # no consent: untouched
    items = ledger_items()
    assert set(items) == {"101", "102"}
    assert items["101"]["score"] == 90 and items["101"]["tier"] == "hot"
    assert set(items["101"]) == {"contact_id", "score", "probability", "tier", "model_version",
                                 "scored_at", "expires_at", "first_scored_at", "feature_hash",
                                 "last_event_at", "recent_event_ids", "hot_alerted_at"}
    # (portalId, subscriptionId, eventId, objectId, propertyName, occurredAt): eventId alone is
    # not unique.
    assert items["101"]["recent_event_ids"] == ["62515:1:1:101::1700000000001"]
    [alert] = receive(sqs, urls["HotLeadsInbox"])
    assert json.loads(alert["Body"])["contact_id"] == "101"
    enrich = [json.loads(m["Body"]) for m in receive(sqs, urls["EnrichQueue"])]
    assert [m["contact_id"] for m in enrich] == ["101"]  # 102 has no ai_enrichment consent

    logs = capsys.readouterr().out
    assert "lead@example.in" not in logs and "Asha" not in logs


def test_score_reports_only_failed_records(stack, kit, fake_model, lambda_context):
    sqs, urls = stack
    hubspot = kit.FakeHubSpot({"1": contact(9), "2": contact(9)})
    hubspot.update_error = HubSpotBatchError("batch update", ["2"])
    for i in (1, 2):
        sqs.send_message(QueueUrl=urls["ScoreQueue"],
                         MessageBody=json.dumps({"contact_id": str(i), "event_id": i,
                                                 "subscription_type": "contact.creation",
                                                 "occurred_at": 1, "portal_id": 62515}))
    queued = receive(sqs, urls["ScoreQueue"])
    failed_id = next(m["MessageId"] for m in queued
                     if json.loads(m["Body"])["contact_id"] == "2")
    response = score_module(kit, hubspot, fake_model).lambda_handler(sqs_event(queued),
                                                                    lambda_context)
    assert response == {"batchItemFailures": [{"itemIdentifier": failed_id}]}
    assert set(ledger_items()) == {"1"}


def test_score_raises_when_every_record_failed(stack, kit, fake_model, lambda_context):
    sqs, urls = stack
    hubspot = kit.FakeHubSpot({"1": contact(9)})
    hubspot.read_error = HubSpotError("batch read", 403, "MISSING_SCOPES")
    sqs.send_message(QueueUrl=urls["ScoreQueue"], MessageBody=json.dumps({
        "contact_id": "1", "event_id": 1, "subscription_type": "contact.creation",
        "occurred_at": 1, "portal_id": 1}))
    with pytest.raises(BatchProcessingError):
        score_module(kit, hubspot, fake_model).lambda_handler(
            sqs_event(receive(sqs, urls["ScoreQueue"])), lambda_context)
    assert ledger_items() == {}


def creation(contact_id: str, event_id: int = 1) -> str:
    return json.dumps({"contact_id": contact_id, "event_id": event_id,
                       "subscription_type": "contact.creation", "occurred_at": 1,
                       "portal_id": 1})


def test_a_record_hubspot_throttled_waits_on_the_queue_instead_of_failing(
        stack, kit, fake_model, lambda_context, monkeypatch):
    sqs, urls = stack
    hubspot = kit.FakeHubSpot({"1": contact(9), "2": contact(3)})
    hubspot.read_error = HubSpotUnavailable("batch read", 429, "RATE_LIMITS", retry_after=7)
    sqs.send_message(QueueUrl=urls["ScoreQueue"],
                     MessageBody=json.dumps({"events": [json.loads(creation("1")),
                                                        json.loads(creation("2", 2))]}))
    sent = []
    monkeypatch.setattr("botocore.client.BaseClient._make_api_call", _recording(sent))
    response = score_module(kit, hubspot, fake_model).lambda_handler(
        sqs_event(receive(sqs, urls["ScoreQueue"]), receive_count=1), lambda_context)
    assert response == {"batchItemFailures": []}  # acknowledged: it waits, SQS keeps no count
    [entry] = [e for call in sent if call["QueueUrl"] == urls["ScoreQueue"]
               for e in call["Entries"]]
    assert 8 <= entry["DelaySeconds"] <= 9  # Retry-After 7 s plus up to a second of jitter
    body = json.loads(entry["MessageBody"])
    assert [e["contact_id"] for e in body["events"]] == ["1", "2"]
    assert body["deferral"]["times"] == 1
    assert ledger_items() == {} and not receive(sqs, urls["ScoreDLQ"])


def test_a_record_that_waited_its_whole_allowance_goes_to_the_dlq_with_the_reason(
        stack, kit, fake_model, lambda_context, monkeypatch):
    sqs, urls = stack
    monkeypatch.setenv("SCORE_MAX_WAIT_MINUTES", "60")
    hubspot = kit.FakeHubSpot({"1": contact(9)})
    hubspot.read_error = HubSpotUnavailable("batch read", 503, "SERVICE_UNAVAILABLE")
    two_hours_ago = int(time.time() * 1000) - 2 * 3600 * 1000
    sqs.send_message(QueueUrl=urls["ScoreQueue"], MessageBody=json.dumps({
        "events": [json.loads(creation("1"))],
        "deferral": {"since": two_hours_ago, "times": 9}}))
    response = score_module(kit, hubspot, fake_model).lambda_handler(
        sqs_event(receive(sqs, urls["ScoreQueue"]), receive_count=1), lambda_context)
    assert response == {"batchItemFailures": []}  # in the DLQ now, on its first receive
    [dead] = receive_with_attributes(sqs, urls["ScoreDLQ"])
    reason = dead["MessageAttributes"]["reason"]["StringValue"]
    assert reason.startswith("HubSpot unavailable for 120 min (9 waits); gave up")
    assert "status=503" in reason
    assert not receive(sqs, urls["ScoreQueue"])


def test_a_record_failing_for_another_reason_still_takes_sqs_retries(
        stack, kit, fake_model, lambda_context):
    sqs, urls = stack
    hubspot = kit.FakeHubSpot({"1": contact(9), "2": contact(4)})
    hubspot.update_error = HubSpotBatchError("batch update", ["2"])  # a 207: not "unavailable"
    for i in ("1", "2"):
        sqs.send_message(QueueUrl=urls["ScoreQueue"], MessageBody=creation(i, int(i)))
    response = score_module(kit, hubspot, fake_model).lambda_handler(
        sqs_event(receive(sqs, urls["ScoreQueue"])), lambda_context)
    assert len(response["batchItemFailures"]) == 1
    assert not receive(sqs, urls["ScoreQueue"])  # nothing sent back to wait


def _recording(sent):
    from botocore.client import BaseClient
    original = BaseClient._make_api_call

    def call(client, operation, params):
        if operation == "SendMessageBatch":
            sent.append(params)
        return original(client, operation, params)
    return call


def receive_with_attributes(sqs, url):
    found = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                       MessageAttributeNames=["All"]).get("Messages"):
        found.extend(batch)
        for message in batch:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return found


def test_score_loads_model_once_per_container(stack, kit, fake_model, lambda_context):
    sqs, urls = stack
    module = score_module(kit, kit.FakeHubSpot({"1": contact(5)}), fake_model)
    loads = []
    module.function.load_model = lambda model_dir: loads.append(model_dir) or fake_model
    for _ in range(2):
        sqs.send_message(QueueUrl=urls["ScoreQueue"], MessageBody=json.dumps({
            "contact_id": "1", "event_id": 1, "subscription_type": "contact.creation",
            "occurred_at": 1, "portal_id": 1}))
        module.lambda_handler(sqs_event(receive(sqs, urls["ScoreQueue"])), lambda_context)
    assert loads == ["/nonexistent/model"]


@pytest.mark.parametrize("keep", ["true", ""])
def test_score_refreshes_property_descriptions_once_per_model_load(
        stack, kit, fake_model, lambda_context, monkeypatch, keep):
    sqs, urls = stack
    monkeypatch.setenv("KEEP_PROPERTY_DESCRIPTIONS_CURRENT", keep)
    module = score_module(kit, kit.FakeHubSpot({"1": contact(5)}), fake_model)
    refreshed = []
    module.function.refresh_descriptions = lambda *args: refreshed.append(args)
    for _ in range(2):
        sqs.send_message(QueueUrl=urls["ScoreQueue"], MessageBody=json.dumps({
            "contact_id": "1", "event_id": 1, "subscription_type": "contact.creation",
            "occurred_at": 1, "portal_id": 1}))
        module.lambda_handler(sqs_event(receive(sqs, urls["ScoreQueue"])), lambda_context)
    assert refreshed == ([(fake_model, TOKEN, "http://hubspot.invalid")] if keep else [])


# --- score_api ----------------------------------------------------------------------------


def _score_api(kit, fake_model, event, lambda_context):
    module = kit.load_function("score_api")
    module.function.load_model = lambda model_dir: fake_model
    response = module.lambda_handler(event, lambda_context)
    return response["statusCode"], json.loads(response["body"])


def test_score_api_scores_a_consented_lead(stack, kit, fake_model, lambda_context):
    body = json.dumps({"object": {"objectId": 5, "properties": {
        "hs_analytics_num_visits": "8", "jobtitle": "CTO", PROP: "lead_scoring"}}})
    status, answer = _score_api(kit, fake_model, kit.http_api_event(body, path="/score"),
                                lambda_context)
    assert status == 200
    assert answer == {"scored": True, "score": 80, "probability": 0.8, "tier": "hot",
                      "reasons": ["8 website visits", "Job title"],
                      "model_version": "test-model-1"}


def test_score_api_without_consent_answers_not_scored(stack, kit, fake_model, lambda_context):
    body = json.dumps({"properties": {"hs_analytics_num_visits": "8"}})
    status, answer = _score_api(kit, fake_model, kit.http_api_event(body, path="/score"),
                                lambda_context)
    assert (status, answer) == (200, {"scored": False, "reason": "no consent for lead_scoring"})


def test_score_api_rejects_unsigned_and_malformed(stack, kit, fake_model, lambda_context):
    body = json.dumps({"hs_analytics_num_visits": "8", PROP: "lead_scoring"})
    status, answer = _score_api(kit, fake_model,
                                kit.http_api_event(body, path="/score", secret="nope"),
                                lambda_context)
    assert status == 401
    assert "X-HubSpot-Signature-v3" in answer["message"] and "x-api-key" in answer["message"]
    status, answer = _score_api(
        kit, fake_model,
        kit.http_api_event(json.dumps({"hs_analytics_num_visits": {"n": 1}}), path="/score"),
        lambda_context)
    assert status == 400
    assert "hs_analytics_num_visits" in answer["message"]


def test_score_api_accepts_the_api_key_instead_of_a_signature(stack, kit, fake_model,
                                                              lambda_context):
    body = json.dumps({PROP: "lead_scoring", "hs_analytics_num_visits": "6"})
    event = kit.http_api_event(body, path="/score", secret=None)
    event["headers"]["x-api-key"] = API_KEY
    assert _score_api(kit, fake_model, event, lambda_context)[1]["tier"] == "warm"
    event["headers"]["x-api-key"] = API_KEY + "x"
    assert _score_api(kit, fake_model, event, lambda_context)[0] == 401


def test_score_api_signature_uses_public_url(stack, kit, fake_model, lambda_context,
                                             monkeypatch):
    public = "https://api.example.in/score"
    monkeypatch.setenv("SCORE_API_PUBLIC_URL", public)
    body = json.dumps({PROP: "lead_scoring", "hs_analytics_num_visits": "1"})
    event = kit.http_api_event(body, path="/score", signed_uri=public)
    assert _score_api(kit, fake_model, event, lambda_context)[0] == 200


# --- score: erasure and dead letters ------------------------------------------------------


def _send(sqs, url, **body):
    message = {"event_id": 1, "subscription_type": "contact.creation", "occurred_at": 1,
               "portal_id": 62515} | body
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(message))


def test_deletion_event_erases_ledger_and_writes_a_receipt(stack, kit, fake_model,
                                                          lambda_context):
    sqs, urls = stack
    hubspot = kit.FakeHubSpot({"1": contact(9)})
    module = score_module(kit, hubspot, fake_model)
    _send(sqs, urls["ScoreQueue"], contact_id="1")
    module.lambda_handler(sqs_event(receive(sqs, urls["ScoreQueue"])), lambda_context)
    assert set(ledger_items()) == {"1"}

    del hubspot.contacts["1"]
    _send(sqs, urls["ScoreQueue"], contact_id="1", event_id=2, occurred_at=2,
          subscription_type="contact.deletion")
    response = module.lambda_handler(sqs_event(receive(sqs, urls["ScoreQueue"])), lambda_context)
    assert response == {"batchItemFailures": []}
    assert ledger_items() == {}
    [receipt] = boto3.resource("dynamodb").Table("ErasureReceiptsTable").scan()["Items"]
    assert (receipt["reason"], receipt["records"]) == ("contact_deleted", ["ledger"])
    assert receipt["subject"] != "1"  # a keyed hash, not the id


def test_record_failing_on_its_last_receive_is_dead_lettered_with_the_reason(
        stack, kit, fake_model, lambda_context):
    sqs, urls = stack
    hubspot = kit.FakeHubSpot({"1": contact(9), "2": contact(9)})
    hubspot.update_error = HubSpotBatchError("batch update", ["2"])
    for cid in ("1", "2"):
        _send(sqs, urls["ScoreQueue"], contact_id=cid)
    queued = receive(sqs, urls["ScoreQueue"])
    response = score_module(kit, hubspot, fake_model).lambda_handler(
        sqs_event(queued, receive_count=3), lambda_context)
    # Dead-lettered by the function, so it is acknowledged: nothing left for SQS to redrive.
    assert response == {"batchItemFailures": []}
    [dead] = sqs.receive_message(QueueUrl=urls["ScoreDLQ"],
                                 MessageAttributeNames=["All"])["Messages"]
    assert json.loads(dead["Body"])["contact_id"] == "2"
    assert dead["MessageAttributes"]["reason"]["StringValue"].startswith(
        "HubSpot batch update partly failed")


# --- environment models -------------------------------------------------------------------


def test_settings_name_the_missing_variable_and_treat_empty_as_unset():
    from pydantic import ValidationError

    from leadscore.scoring.settings import IngestSettings, ScoreSettings

    with pytest.raises(ValidationError, match="HUBSPOT_CLIENT_SECRET_SECRET"):
        IngestSettings.from_env({"SCORE_QUEUE_URL": "https://q"})
    ingest = IngestSettings.from_env({"SCORE_QUEUE_URL": "https://q", "WEBHOOK_PUBLIC_URL": "",
                                      "HUBSPOT_CLIENT_SECRET_SECRET": "s", "RETENTION_DAYS": ""})
    assert (ingest.webhook_public_url, ingest.retention_days) == (None, 180)
    score = ScoreSettings.from_env({"HUBSPOT_TOKEN_SECRET": "t", "LEDGER_TABLE": "l",
                                    "ENRICH_TIERS": "hot, warm,", "RETENTION_DAYS": "30"})
    assert score.enrich_tiers == {"hot", "warm"}
    assert (score.model_dir, score.retention_days) == ("/opt/model", 30)
    with pytest.raises(ValidationError, match="RETENTION_DAYS"):
        ScoreSettings.from_env({"HUBSPOT_TOKEN_SECRET": "t", "LEDGER_TABLE": "l",
                                "RETENTION_DAYS": "0"})
