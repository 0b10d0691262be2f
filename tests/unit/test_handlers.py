"""The Lambda handlers in-process against moto (real boto3), with a fake HubSpot and model
injected through each module's seams (`hubspot_client_factory`, `load_model`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from moto import mock_aws

from leadscore.hubspot_client import AI_PROPERTIES, HubSpotBatchError, HubSpotUnavailable
from leadscore.ledger import DynamoDBLedger, LedgerEntry

PROP = "dpdp_consent_purposes"
TOKEN = "pat-ap1-test-token"


@pytest.fixture
def stack(aws_env, kit, monkeypatch):
    """Queues, topic, ledger table and secrets as template.yaml wires them."""
    with mock_aws():
        sqs = boto3.client("sqs")
        urls = {name: sqs.create_queue(QueueName=name)["QueueUrl"]
                for name in ("ScoreQueue", "EnrichQueue", "HotLeadsInbox")}
        sns = boto3.client("sns")
        topic = sns.create_topic(Name="HotLeadsTopic")["TopicArn"]
        inbox_arn = sqs.get_queue_attributes(QueueUrl=urls["HotLeadsInbox"],
                                             AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=inbox_arn,
                      Attributes={"RawMessageDelivery": "true"})
        boto3.client("dynamodb").create_table(
            TableName="LedgerTable", BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "contact_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "contact_id", "AttributeType": "S"}],
        )
        secrets = boto3.client("secretsmanager")
        secrets.create_secret(Name="hubspot-client-secret", SecretString=kit.CLIENT_SECRET)
        secrets.create_secret(Name="hubspot-token", SecretString=TOKEN)
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


def sqs_event(messages):
    """What the SQS event source mapping hands the score function."""
    return {"Records": [{
        "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1700000000000",
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

    def factory(token, base_url):
        made.append((token, base_url))
        return hubspot

    module.hubspot_client_factory = factory
    module.load_model = lambda model_dir: model
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
    assert len(queued) == 4
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
                                 "scored_at", "expires_at"}
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
    hubspot.read_error = HubSpotUnavailable("batch read", 429, "RATE_LIMITS")
    sqs.send_message(QueueUrl=urls["ScoreQueue"], MessageBody=json.dumps({
        "contact_id": "1", "event_id": 1, "subscription_type": "contact.creation",
        "occurred_at": 1, "portal_id": 1}))
    with pytest.raises(BatchProcessingError):
        score_module(kit, hubspot, fake_model).lambda_handler(
            sqs_event(receive(sqs, urls["ScoreQueue"])), lambda_context)
    assert ledger_items() == {}


def test_score_loads_model_once_per_container(stack, kit, fake_model, lambda_context):
    sqs, urls = stack
    module = score_module(kit, kit.FakeHubSpot({"1": contact(5)}), fake_model)
    loads = []
    module.load_model = lambda model_dir: loads.append(model_dir) or fake_model
    for _ in range(2):
        sqs.send_message(QueueUrl=urls["ScoreQueue"], MessageBody=json.dumps({
            "contact_id": "1", "event_id": 1, "subscription_type": "contact.creation",
            "occurred_at": 1, "portal_id": 1}))
        module.lambda_handler(sqs_event(receive(sqs, urls["ScoreQueue"])), lambda_context)
    assert loads == ["/nonexistent/model"]


# --- score_api ----------------------------------------------------------------------------


def _score_api(kit, fake_model, event, lambda_context):
    module = kit.load_function("score_api")
    module.load_model = lambda model_dir: fake_model
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
    assert _score_api(kit, fake_model, kit.http_api_event(body, path="/score", secret="nope"),
                      lambda_context) == (401, {"message": "Unauthorized"})
    status, answer = _score_api(
        kit, fake_model,
        kit.http_api_event(json.dumps({"hs_analytics_num_visits": {"n": 1}}), path="/score"),
        lambda_context)
    assert status == 400
    assert "hs_analytics_num_visits" in answer["message"]


def test_score_api_signature_uses_public_url(stack, kit, fake_model, lambda_context,
                                             monkeypatch):
    public = "https://api.example.in/score"
    monkeypatch.setenv("SCORE_API_PUBLIC_URL", public)
    body = json.dumps({PROP: "lead_scoring", "hs_analytics_num_visits": "1"})
    event = kit.http_api_event(body, path="/score", signed_uri=public)
    assert _score_api(kit, fake_model, event, lambda_context)[0] == 200


# --- consent sweep and retention purge ----------------------------------------------------


def _seed_ledger(entries):
    DynamoDBLedger("LedgerTable").put_many(LedgerEntry.for_score(
        contact_id=cid, score=50, probability=0.5, tier="warm", model_version="m",
        scored_at=scored_at, retention_days=180) for cid, scored_at in entries.items())


def _scored(consent, scored_at):
    props = dict.fromkeys(AI_PROPERTIES, "")
    props.update(ai_lead_score="50", ai_lead_tier="warm", ai_lead_summary="Fits",
                 ai_lead_scored_at=scored_at.strftime("%Y-%m-%dT%H:%M:%S.000Z"))
    props[PROP] = consent
    return props


def test_consent_sweep_handler(stack, kit, lambda_context):
    now = datetime.now(UTC)
    hubspot = kit.FakeHubSpot({"1": _scored("", now), "2": _scored("lead_scoring", now),
                               "3": _scored("lead_scoring;ai_enrichment", now)})
    _seed_ledger(dict.fromkeys(("1", "2", "3"), now))
    module = kit.load_function("consent_sweep")
    module.hubspot_client_factory = lambda token, base_url: hubspot
    result = module.lambda_handler({}, lambda_context)
    assert result == {"examined": 3, "erased": 1, "enrichment_cleared": 1, "failed": 0,
                      "truncated": False}
    assert set(ledger_items()) == {"2", "3"}
    assert hubspot.contacts["1"]["ai_lead_score"] == ""
    assert hubspot.contacts["2"]["ai_lead_summary"] == ""
    assert hubspot.contacts["3"]["ai_lead_summary"] == "Fits"


def test_retention_purge_handler(stack, kit, lambda_context):
    now = datetime.now(UTC)
    old, recent = now - timedelta(days=200), now - timedelta(days=10)
    hubspot = kit.FakeHubSpot({
        "1": _scored("lead_scoring", old),  # expired: cleared and forgotten
        "2": _scored("lead_scoring", recent),  # within retention
        # "3" was deleted from HubSpot: only the ledger item remains to erase
        "4": _scored("lead_scoring", recent),  # re-scored since the ledger item was written
    })
    _seed_ledger({"1": old, "2": recent, "3": old, "4": old})
    module = kit.load_function("retention_purge")
    module.hubspot_client_factory = lambda token, base_url: hubspot
    result = module.lambda_handler({}, lambda_context)

    assert result == {"expired": 3, "cleared": 1, "deleted": 2, "failed": 0}
    assert set(ledger_items()) == {"2", "4"}
    assert all(hubspot.contacts["1"][p] == "" for p in AI_PROPERTIES)
    assert hubspot.contacts["2"]["ai_lead_score"] == "50"
    assert hubspot.contacts["4"]["ai_lead_score"] == "50"
    assert [set(batch) for batch in hubspot.updates] == [{"1"}]


def test_retention_purge_keeps_ledger_when_hubspot_refuses(stack, kit, lambda_context):
    old = datetime.now(UTC) - timedelta(days=365)
    hubspot = kit.FakeHubSpot({"1": _scored("lead_scoring", old)})
    hubspot.update_error = HubSpotBatchError("batch update", ["1"])
    _seed_ledger({"1": old})
    module = kit.load_function("retention_purge")
    module.hubspot_client_factory = lambda token, base_url: hubspot
    assert module.lambda_handler({}, lambda_context)["failed"] == 1
    assert set(ledger_items()) == {"1"}  # the next purge retries


# --- environment models -------------------------------------------------------------------


def test_settings_name_the_missing_variable_and_treat_empty_as_unset():
    from pydantic import ValidationError

    from leadscore.settings import IngestSettings, ScoreSettings

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
