"""Webhook ingest through the real handler, against moto's SQS, Secrets Manager and DynamoDB."""

from __future__ import annotations

import json

import boto3
import pytest
from fakes import create_table
from moto import mock_aws
from pydantic import ValidationError

from leadscore.scoring.ingest import handle_webhook
from leadscore.scoring.queues import (
    ENQUEUE_ATTEMPTS,
    DedupingScoreQueue,
    ScoreMessage,
    ScoreQueue,
    score_messages,
)

SECRET_NAME = "leadscore/hubspot-client-secret"


@pytest.fixture
def aws(aws_env, kit, monkeypatch):
    with mock_aws():
        sqs = boto3.client("sqs")
        queue_url = sqs.create_queue(QueueName="ScoreQueue")["QueueUrl"]
        boto3.client("secretsmanager").create_secret(Name=SECRET_NAME,
                                                     SecretString=kit.CLIENT_SECRET)
        monkeypatch.setenv("HUBSPOT_CLIENT_SECRET_SECRET", SECRET_NAME)
        monkeypatch.setenv("SCORE_QUEUE_URL", queue_url)
        yield sqs, queue_url


def _drain_bodies(sqs, queue_url):
    bodies = []
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10,
                                       WaitTimeSeconds=0).get("Messages", [])
        if not messages:
            return bodies
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def _drain(sqs, queue_url):
    """The queued events, unpacked from their ScoreBatch bodies."""
    return [event for body in _drain_bodies(sqs, queue_url) for event in body["events"]]


def _invoke(kit, lambda_context, event, module=None):
    module = module or kit.load_function("ingest")
    response = module.lambda_handler(event, lambda_context)
    return response["statusCode"], json.loads(response["body"])


def test_valid_delivery_queues_every_event(aws, kit, lambda_context):
    sqs, queue_url = aws
    events = [kit.webhook_event(100 + i, 1000 + i) for i in range(3)]
    status, body = _invoke(kit, lambda_context, kit.http_api_event(kit.webhook_body(events)))

    assert status == 200
    assert body == {"queued": 3, "ignored": 0, "duplicates": 0, "skipped": 0}
    messages = sorted(_drain(sqs, queue_url), key=lambda m: m["event_id"])
    assert messages[0] == {"contact_id": "1000", "event_id": 100,
                           "subscription_type": "contact.creation",
                           "occurred_at": 1_700_000_000_100, "portal_id": 62515,
                           "subscription_id": 1}
    assert [m["contact_id"] for m in messages] == ["1000", "1001", "1002"]


def test_events_are_packed_ten_per_message(aws, kit, lambda_context):
    sqs, queue_url = aws
    events = [kit.webhook_event(i, i) for i in range(1, 26)]
    status, body = _invoke(kit, lambda_context, kit.http_api_event(kit.webhook_body(events)))
    assert (status, body["queued"]) == (200, 25)
    bodies = _drain_bodies(sqs, queue_url)
    assert sorted(len(b["events"]) for b in bodies) == [5, 10, 10]
    assert sorted(e["event_id"] for b in bodies for e in b["events"]) == list(range(1, 26))


def test_large_sends_use_parallel_batches_of_ten_messages(kit):
    sqs = FlakySqs([])
    queue = ScoreQueue("https://sqs/queue", sqs, sleep=lambda _s: None)
    messages = [ScoreMessage(contact_id=str(i), event_id=i, subscription_type="contact.creation",
                             occurred_at=i, portal_id=1) for i in range(250)]
    assert queue.send(messages) == 250
    assert sorted(len(call) for call in sqs.calls) == [5, 10, 10]  # 25 bodies of 10 events
    events = [e for body in sqs.delivered for e in json.loads(body)["events"]]
    assert sorted(int(e["contact_id"]) for e in events) == list(range(250))


def test_score_messages_reads_packed_and_bare_bodies():
    message = ScoreMessage(contact_id="7", event_id=1, subscription_type="contact.creation",
                           occurred_at=1, portal_id=1)
    assert score_messages(message.model_dump_json()) == [message]
    assert score_messages(json.dumps({"events": [message.model_dump()] * 2})) == [message] * 2
    with pytest.raises(ValidationError):
        score_messages(json.dumps({"events": []}))


def test_base64_encoded_delivery(aws, kit, lambda_context):
    sqs, queue_url = aws
    event = kit.http_api_event(kit.webhook_body([kit.webhook_event(1, 7)]), base64_body=True)
    assert _invoke(kit, lambda_context, event)[0] == 200
    assert [m["contact_id"] for m in _drain(sqs, queue_url)] == ["7"]


def test_public_url_is_what_the_signature_covers(aws, kit, lambda_context, monkeypatch):
    sqs, queue_url = aws
    public = "https://hooks.example.in/hubspot/webhooks"
    monkeypatch.setenv("WEBHOOK_PUBLIC_URL", public)
    body = kit.webhook_body([kit.webhook_event(1, 7)])
    assert _invoke(kit, lambda_context, kit.http_api_event(body, signed_uri=public))[0] == 200
    assert _invoke(kit, lambda_context, kit.http_api_event(body))[0] == 401  # signed for the API
    assert len(_drain(sqs, queue_url)) == 1


@pytest.mark.parametrize("tamper", ["wrong_secret", "stale", "no_signature", "body_changed",
                                    "other_path"])
def test_unauthenticated_deliveries_get_401_and_queue_nothing(aws, kit, lambda_context, tamper):
    sqs, queue_url = aws
    body = kit.webhook_body([kit.webhook_event(1, 7)])
    event = {
        "wrong_secret": lambda: kit.http_api_event(body, secret="not-the-secret"),
        "stale": lambda: kit.http_api_event(body, timestamp=1_600_000_000_000),
        "no_signature": lambda: kit.http_api_event(body, secret=None),
        "body_changed": lambda: {**kit.http_api_event(body),
                                 "body": body.decode().replace('"objectId":7', '"objectId":8')},
        "other_path": lambda: kit.http_api_event(body, path="/webhooks/other",
                                                 signed_uri="https://abc123.execute-api."
                                                 "ap-south-1.amazonaws.com/webhooks/hubspot"),
    }[tamper]()
    status, response = _invoke(kit, lambda_context, event)
    assert (status, response) == (401, {"message": "Unauthorized"})  # no hint why
    assert _drain(sqs, queue_url) == []


@pytest.mark.parametrize("payload, message", [
    (b"[{not json", "not valid JSON"),
    (b'{"eventId": 1}', "JSON array"),
    (b'"x"', "JSON array"),
])
def test_malformed_payloads_get_400_and_queue_nothing(aws, kit, lambda_context, payload, message):
    sqs, queue_url = aws
    status, body = _invoke(kit, lambda_context, kit.http_api_event(payload))
    assert status == 400
    assert message in body["message"]
    assert _drain(sqs, queue_url) == []


def test_more_than_100_events_get_400(aws, kit, lambda_context):
    sqs, queue_url = aws
    events = [kit.webhook_event(i, i) for i in range(101)]
    status, body = _invoke(kit, lambda_context, kit.http_api_event(kit.webhook_body(events)))
    assert status == 400
    assert "at most 100" in body["message"]
    assert _drain(sqs, queue_url) == []


def test_oversize_body_gets_413_before_any_secret_lookup(aws, kit, lambda_context, monkeypatch):
    sqs, queue_url = aws
    monkeypatch.setenv("HUBSPOT_CLIENT_SECRET_SECRET", "no-such-secret")  # would raise if read
    body = kit.webhook_body([kit.webhook_event(1, 7, propertyValue="x" * 1_100_000)])
    status, _ = _invoke(kit, lambda_context, kit.http_api_event(body))
    assert status == 413
    assert _drain(sqs, queue_url) == []


def test_event_types_and_what_they_queue(aws, kit, lambda_context, monkeypatch):
    sqs, queue_url = aws
    monkeypatch.setenv("WATCHED_PROPERTIES", "jobtitle,hs_analytics_num_visits")
    change = "contact.propertyChange"
    events = [kit.webhook_event(1, 7),
              kit.webhook_event(2, 8, change, propertyName="jobtitle", propertyValue="CTO"),
              kit.webhook_event(3, 9, change, propertyName="dpdp_consent_purposes",
                                propertyValue=""),
              kit.webhook_event(4, 10, "contact.deletion"),
              kit.webhook_event(5, 11, "contact.privacyDeletion"),
              kit.webhook_event(6, 12, "contact.merge", primaryObjectId=12,
                                mergedObjectIds=[13]),
              # Ignored: a property the model does not read, our own write, an unknown type.
              kit.webhook_event(7, 14, change, propertyName="phone", propertyValue="1"),
              kit.webhook_event(8, 15, change, propertyName="ai_lead_score", propertyValue="9"),
              # Skipped: a contact event leadscore does not handle.
              kit.webhook_event(9, 16, "contact.associationChange")]
    status, body = _invoke(kit, lambda_context, kit.http_api_event(kit.webhook_body(events)))
    assert (status, body) == (200, {"queued": 7, "ignored": 2, "duplicates": 0, "skipped": 1})
    queued = {(m["contact_id"], m["subscription_type"], m.get("merged_into"))
              for m in _drain(sqs, queue_url)}
    assert queued == {("7", "contact.creation", None), ("8", change, None), ("9", change, None),
                      ("10", "contact.deletion", None), ("11", "contact.privacyDeletion", None),
                      ("12", "contact.merge", None), ("13", "contact.merge", "12")}


def test_own_writes_are_ignored_even_when_listed_as_watched(aws, kit, lambda_context,
                                                           monkeypatch):
    sqs, queue_url = aws
    monkeypatch.setenv("WATCHED_PROPERTIES", "ai_lead_score,jobtitle")
    event = kit.webhook_event(1, 7, "contact.propertyChange", propertyName="ai_lead_score",
                              propertyValue="80")
    status, body = _invoke(kit, lambda_context, kit.http_api_event(kit.webhook_body([event])))
    assert (status, body["queued"], body["ignored"]) == (200, 0, 1)
    assert _drain(sqs, queue_url) == []


def test_repeated_event_in_one_delivery_is_queued_once(aws, kit, lambda_context):
    sqs, queue_url = aws
    events = [kit.webhook_event(1, 7), kit.webhook_event(1, 7)]
    status, body = _invoke(kit, lambda_context, kit.http_api_event(kit.webhook_body(events)))
    assert (status, body["queued"]) == (200, 1)
    assert len(_drain(sqs, queue_url)) == 1


# --- never acknowledge what was not queued ------------------------------------------------


class FlakySqs:
    """send_message_batch that reports the first `failures` entries of each call as failed."""

    def __init__(self, failures_per_call, sender_fault=False):
        self.failures = list(failures_per_call)
        self.sender_fault = sender_fault
        self.calls: list[list[str]] = []
        self.delivered: list[str] = []

    def send_message_batch(self, QueueUrl, Entries):
        self.calls.append([e["Id"] for e in Entries])
        failing = self.failures.pop(0) if self.failures else 0
        failed = [{"Id": e["Id"], "Code": "InternalError", "SenderFault": self.sender_fault}
                  for e in Entries[:failing]]
        self.delivered.extend(e["MessageBody"] for e in Entries[failing:])
        return {"Successful": [], "Failed": failed}


def _handle(kit, sqs_client, events):
    queue = ScoreQueue("https://sqs/queue", sqs_client, sleep=lambda _s: None)
    return handle_webhook(kit.http_api_event(kit.webhook_body(events)),
                          client_secret=lambda: kit.CLIENT_SECRET, public_url=None, queue=queue)


def test_failed_entries_are_retried_until_queued(kit):
    sqs = FlakySqs([2, 1])
    response = _handle(kit, sqs, [kit.webhook_event(i, i) for i in range(1, 31)])  # 3 bodies
    assert response.status_code == 200
    assert [len(call) for call in sqs.calls] == [3, 2, 1]
    assert sorted(int(e["contact_id"]) for b in sqs.delivered
                  for e in json.loads(b)["events"]) == list(range(1, 31))


def test_persistent_sqs_failure_answers_500_so_hubspot_retries(kit):
    sqs = FlakySqs([1] * ENQUEUE_ATTEMPTS)
    response = _handle(kit, sqs, [kit.webhook_event(1, 1), kit.webhook_event(2, 2)])
    assert response.status_code == 500
    assert len(sqs.calls) == ENQUEUE_ATTEMPTS


def test_sender_fault_is_not_retried(kit):
    sqs = FlakySqs([1], sender_fault=True)
    assert _handle(kit, sqs, [kit.webhook_event(1, 1)]).status_code == 500
    assert len(sqs.calls) == 1


def test_sqs_outage_answers_500(aws, kit):
    sqs, _ = aws
    queue = ScoreQueue("https://sqs.ap-south-1.amazonaws.com/123456789012/missing", sqs)
    response = handle_webhook(kit.http_api_event(kit.webhook_body([kit.webhook_event(1, 1)])),
                              client_secret=lambda: kit.CLIENT_SECRET, public_url=None,
                              queue=queue)
    assert response.status_code == 500


# --- eventId dedupe (Powertools idempotency) ----------------------------------------------


@pytest.fixture
def idempotency_table(aws, monkeypatch):
    create_table("IdempotencyTable")
    monkeypatch.setenv("IDEMPOTENCY_TABLE", "IdempotencyTable")
    return "IdempotencyTable"


def test_redelivered_events_are_queued_once(aws, kit, lambda_context, idempotency_table):
    sqs, queue_url = aws
    module = kit.load_function("ingest")
    first = [kit.webhook_event(i, 1000 + i) for i in range(1, 31)]
    assert _invoke(kit, lambda_context, kit.http_api_event(kit.webhook_body(first)),
                   module)[1] == {"queued": 30, "ignored": 0, "duplicates": 0, "skipped": 0}
    # HubSpot's retry of the same events (attemptNumber differs, order may too).
    retry = [dict(e, attemptNumber=1) for e in reversed(first)]
    for _ in range(3):
        assert _invoke(kit, lambda_context, kit.http_api_event(kit.webhook_body(retry)),
                       module)[1] == {"queued": 0, "ignored": 0, "duplicates": 30,
                                      "skipped": 0}
    assert sorted(m["event_id"] for m in _drain(sqs, queue_url)) == list(range(1, 31))


def test_regrouped_retry_is_queued_again_for_the_score_function_to_skip(
        aws, kit, lambda_context, idempotency_table):
    # The key is the delivery's set of events (two DynamoDB calls per delivery, not per
    # event); a retry grouped differently is new to ingest. The score function recognises
    # the event ids it already applied (test_scoring_service: redelivered events).
    sqs, queue_url = aws
    module = kit.load_function("ingest")
    first = [kit.webhook_event(i, 1000 + i) for i in range(1, 4)]
    _invoke(kit, lambda_context, kit.http_api_event(kit.webhook_body(first)), module)
    regrouped = [*first[:2], kit.webhook_event(4, 1004)]
    assert _invoke(kit, lambda_context, kit.http_api_event(kit.webhook_body(regrouped)),
                   module)[1] == {"queued": 3, "ignored": 0, "duplicates": 0, "skipped": 0}
    assert sorted(m["event_id"] for m in _drain(sqs, queue_url)) == [1, 1, 2, 2, 3, 4]


def test_event_that_failed_to_queue_is_queued_on_retry(aws, kit, idempotency_table,
                                                      lambda_context):
    sqs, queue_url = aws
    events = [kit.webhook_event(1, 7)]
    broken = DedupingScoreQueue(ScoreQueue("https://sqs/none", FlakySqs([1] * 9),
                                           sleep=lambda _s: None), idempotency_table)
    broken.config.register_lambda_context(lambda_context)
    assert handle_webhook(kit.http_api_event(kit.webhook_body(events)),
                          client_secret=lambda: kit.CLIENT_SECRET, public_url=None,
                          queue=broken).status_code == 500
    healthy = DedupingScoreQueue(ScoreQueue(queue_url, sqs), idempotency_table)
    healthy.config.register_lambda_context(lambda_context)
    response = handle_webhook(kit.http_api_event(kit.webhook_body(events)),
                              client_secret=lambda: kit.CLIENT_SECRET, public_url=None,
                              queue=healthy)
    assert (response.status_code, response.body["queued"]) == (200, 1)
    assert [m["contact_id"] for m in _drain(sqs, queue_url)] == ["7"]


def test_same_event_id_in_another_portal_is_not_a_duplicate(aws, idempotency_table,
                                                           lambda_context):
    sqs, queue_url = aws
    queue = DedupingScoreQueue(ScoreQueue(queue_url, sqs), idempotency_table)
    queue.config.register_lambda_context(lambda_context)
    message = ScoreMessage(contact_id="7", event_id=1, subscription_type="contact.creation",
                           occurred_at=1, portal_id=1)
    assert queue.send([message]) == 1
    assert queue.send([message.model_copy(update={"portal_id": 2})]) == 1
    assert queue.send([message]) == 0
    assert len(_drain(sqs, queue_url)) == 2


def test_same_event_id_for_another_object_property_or_moment_is_not_a_duplicate(
        aws, idempotency_table, lambda_context):
    # HubSpot documents eventId as not unique: an event is (portalId, subscriptionId, eventId,
    # objectId, propertyName, occurredAt).
    sqs, queue_url = aws
    queue = DedupingScoreQueue(ScoreQueue(queue_url, sqs), idempotency_table)
    queue.config.register_lambda_context(lambda_context)
    message = ScoreMessage(contact_id="7", event_id=1, subscription_type="contact.propertyChange",
                           occurred_at=1, portal_id=1, subscription_id=3, property_name="jobtitle")
    assert queue.send([message]) == 1
    for change in ({"contact_id": "8"}, {"property_name": "country"}, {"occurred_at": 2},
                   {"subscription_id": 4}):
        assert queue.send([message.model_copy(update=change)]) == 1, change
    assert queue.send([message]) == 0
    assert len(_drain(sqs, queue_url)) == 5


# --- one odd event never costs a delivery -------------------------------------------------


def test_an_event_that_cannot_be_read_is_skipped_and_the_others_queued(
        aws, kit, lambda_context, capsys):
    sqs, queue_url = aws
    association = kit.webhook_event(3, 0, "contact.associationChange",
                                    associationType="CONTACT_TO_COMPANY", fromObjectId=9,
                                    toObjectId=42, associationRemoved=False)
    del association["objectId"]  # association changes name no single object
    no_object = kit.webhook_event(4, 0)
    del no_object["objectId"]
    events = [kit.webhook_event(1, 7),
              {**kit.webhook_event(2, 8), "objectId": "not-a-number"},
              association, no_object, "not an event", {"eventId": 6},
              kit.webhook_event(7, 43, "company.creation"),
              kit.webhook_event(8, 44, "object.creation", objectTypeId="0-2"),
              kit.webhook_event(9, 45, "object.creation"),  # the generic format without its type
              kit.webhook_event(10, 10)]
    status, body = _invoke(kit, lambda_context, kit.http_api_event(kit.webhook_body(events)))
    assert (status, body) == (200, {"queued": 2, "ignored": 0, "duplicates": 0, "skipped": 8})
    assert sorted(m["contact_id"] for m in _drain(sqs, queue_url)) == ["10", "7"]
    by_reason = skipped_metrics(capsys.readouterr().out)
    assert by_reason == {"malformed": 4, "no_object_id": 1, "unsupported_type": 1,
                         "other_object_type": 2, None: 8}


def test_a_delivery_with_only_odd_events_is_still_answered_200(aws, kit, lambda_context):
    sqs, queue_url = aws
    events = [{"eventId": 1}, kit.webhook_event(2, 5, "deal.propertyChange")]
    status, body = _invoke(kit, lambda_context, kit.http_api_event(kit.webhook_body(events)))
    assert (status, body["queued"], body["skipped"]) == (200, 0, 2)
    assert _drain(sqs, queue_url) == []


def test_the_generic_object_format_for_contacts_works_like_the_contact_format(
        aws, kit, lambda_context, monkeypatch):
    sqs, queue_url = aws
    monkeypatch.setenv("WATCHED_PROPERTIES", "jobtitle")

    def generic(event_id, object_id, action, **extra):
        return kit.webhook_event(event_id, object_id, f"object.{action}", objectTypeId="0-1",
                                 **extra)

    merge = generic(6, 12, "merge", primaryObjectId=12, mergedObjectIds=[13], newObjectId=12)
    events = [generic(1, 7, "creation"),
              generic(2, 8, "propertyChange", propertyName="jobtitle", propertyValue="CTO"),
              generic(3, 9, "propertyChange", propertyName="phone", propertyValue="1"),
              generic(4, 10, "deletion"), generic(5, 11, "privacyDeletion"), merge,
              generic(7, 14, "restore")]
    status, body = _invoke(kit, lambda_context, kit.http_api_event(kit.webhook_body(events)))
    assert (status, body) == (200, {"queued": 7, "ignored": 1, "duplicates": 0, "skipped": 0})
    queued = {(m["contact_id"], m["subscription_type"], m.get("merged_into"),
               m.get("property_name")) for m in _drain(sqs, queue_url)}
    assert queued == {("7", "contact.creation", None, None),
                      ("8", "contact.propertyChange", None, "jobtitle"),
                      ("10", "contact.deletion", None, None),
                      ("11", "contact.privacyDeletion", None, None),
                      ("12", "contact.merge", None, None), ("13", "contact.merge", "12", None),
                      ("14", "contact.restore", None, None)}


def skipped_metrics(stdout: str) -> dict[str | None, float]:
    """WebhookEventsSkipped in the EMF blobs printed: reason -> count (None: the total, under
    the service dimension alone, which the alarm watches)."""
    found: dict[str | None, float] = {}
    for line in stdout.splitlines():
        if '"_aws"' not in line or "WebhookEventsSkipped" not in line:
            continue
        blob = json.loads(line)
        [dimensions] = blob["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
        assert blob["service"] == "leadscore"
        reason = blob.get("reason") if "reason" in dimensions else None
        value = blob["WebhookEventsSkipped"]
        found[reason] = found.get(reason, 0) + (sum(value) if isinstance(value, list) else value)
    return found
