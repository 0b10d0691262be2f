"""Writes events/: one sample event per function and case, for `sam local invoke -e` and
`leadscore local invoke -e`. Deterministic, so a test can check the files are current:
`python -m leadscore_local.sample_events --out events` regenerates them.

Contact ids are those a fresh HubSpot emulator gives the sample contacts (`leadscore local
invoke` creates them; `python -m leadscore_local.sam_invoke seed` does for a running stack), so
the functions find them: 101 has no consent, 102-105 have (104 and 105 also for enrichment).

Webhook events are signed with SAMPLE_CLIENT_SECRET for the URL
https://<domainName>/webhooks/hubspot at a fixed time, so their signatures are stale;
`leadscore local invoke` re-signs events whose signature is valid under the sample secret
(and leaves forged ones forged).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from leadscore_local.event_sources import http_api_event, scheduled_event
from leadscore_local.hubspot_emulator import FIRST_CONTACT_ID
from leadscore_local.webhook_sender import encode_events, signed_headers

SAMPLE_CLIENT_SECRET = "sample-client-secret-not-a-real-one"
DOMAIN = "abc123example.execute-api.ap-south-1.amazonaws.com"
RECORDED_AT_MS = 1767225600000  # 2026-01-01T00:00:00Z
SCORE_QUEUE_ARN = "arn:aws:sqs:ap-south-1:123456789012:leadscore-ScoreQueue"
ENRICH_QUEUE_ARN = "arn:aws:sqs:ap-south-1:123456789012:leadscore-EnrichQueue"
SLACK_QUEUE_ARN = "arn:aws:sqs:ap-south-1:123456789012:leadscore-SlackAlertQueue"


def _webhook(event_id: int, contact_id: int, kind: str = "contact.creation",
             **extra: Any) -> dict[str, Any]:
    event = {
        "eventId": event_id, "subscriptionId": 1, "portalId": 62515, "appId": 54321,
        "occurredAt": RECORDED_AT_MS - 1000, "subscriptionType": kind, "attemptNumber": 0,
        "objectId": contact_id, "changeSource": "CRM", **extra,
    }
    if kind == "contact.creation":
        event["changeFlag"] = "CREATED"
    return event


def _http(path: str, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    event = http_api_event("POST", path, {"host": DOMAIN, **headers}, body)
    # Fixed identifiers and times keep the files stable between runs.
    event["requestContext"].update(requestId="sample-request", timeEpoch=RECORDED_AT_MS,
                                   time="01/Jan/2026:00:00:00 +0000")
    return event


def _signed(path: str, body: bytes, secret: str = SAMPLE_CLIENT_SECRET) -> dict[str, Any]:
    headers = signed_headers(f"https://{DOMAIN}{path}", body, secret, RECORDED_AT_MS)
    return _http(path, body, headers)


def _sqs(bodies: list[dict[str, Any] | str], arn: str) -> dict[str, Any]:
    return {"Records": [
        {
            "messageId": f"00000000-0000-4000-8000-{i:012d}",
            "receiptHandle": f"sample-receipt-{i}",
            "body": body if isinstance(body, str) else json.dumps(body),
            "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": str(RECORDED_AT_MS),
                           "SenderId": "123456789012",
                           "ApproximateFirstReceiveTimestamp": str(RECORDED_AT_MS)},
            "messageAttributes": {},
            "md5OfBody": "",
            "eventSource": "aws:sqs",
            "eventSourceARN": arn,
            "awsRegion": "ap-south-1",
        }
        for i, body in enumerate(bodies, start=1)
    ]}


def _contact(n: int) -> int:
    """The id of the n-th sample contact (1-based)."""
    return FIRST_CONTACT_ID + n - 1


def build_events() -> dict[str, dict[str, Any]]:
    creations = encode_events([_webhook(1000 + i, _contact(i)) for i in range(1, 4)])
    mixed = encode_events([
        _webhook(2001, _contact(4)),
        _webhook(2002, _contact(5), "contact.propertyChange", propertyName="jobtitle",
                 propertyValue="CTO"),
    ])
    forged = _signed("/webhooks/hubspot", creations, secret="not-the-client-secret")
    score_request = json.dumps({"properties": {
        "hs_analytics_source": "ORGANIC_SEARCH", "hs_analytics_num_visits": "23",
        "hs_analytics_num_page_views": "61", "jobtitle": "VP Sales", "numemployees": "201-500",
        "country": "India", "email": "someone@example.in",
        "dpdp_consent_purposes": "lead_scoring;ai_enrichment",
    }}).encode()
    score_messages = [
        {"contact_id": str(_contact(i)), "event_id": 1000 + i,
         "subscription_type": "contact.creation", "occurred_at": RECORDED_AT_MS - 1000,
         "portal_id": 62515}
        for i in range(1, 7)
    ]
    enrich_messages = [
        {"contact_id": str(_contact(4)), "score": 91, "tier": "hot", "model_version": "sample",
         "scored_at": "2026-01-01T00:00:00.000Z"},
    ]
    # What HotLeadsTopic delivers to SlackAlertQueue (raw message delivery).
    hot_lead_alerts = [
        {"contact_id": str(_contact(5)), "portal_id": 62515, "score": 93, "tier": "hot",
         "model_version": "sample", "scored_at": "2026-01-01T00:00:00.000Z"},
    ]
    return {
        "ingest_contact_creation.json": _signed("/webhooks/hubspot", creations),
        "ingest_mixed_subscriptions.json": _signed("/webhooks/hubspot", mixed),
        "ingest_forged_signature.json": forged,
        "ingest_malformed_json.json": _signed("/webhooks/hubspot", b'[{"eventId": 1,'),
        "score_batch.json": _sqs(score_messages[:5], SCORE_QUEUE_ARN),
        # A partial batch failure: the unreadable body is reported back to SQS, the other scored.
        "score_batch_unreadable_message.json": _sqs(
            [score_messages[5], "not a ScoreQueue message"], SCORE_QUEUE_ARN),
        "score_api_request.json": _signed("/score", score_request),
        "enrich_batch.json": _sqs(enrich_messages, ENRICH_QUEUE_ARN),
        "slack_notify_batch.json": _sqs(hot_lead_alerts, SLACK_QUEUE_ARN),
        "consent_sweep_schedule.json": _fixed_schedule("ConsentSweepSchedule"),
        "retention_purge_schedule.json": _fixed_schedule("RetentionPurgeSchedule"),
        "model_monitor_schedule.json": _fixed_schedule("ModelMonitorSchedule"),
        "model_retrain_schedule.json": _fixed_schedule("ModelRetrainSchedule"),
    }


def _fixed_schedule(rule: str) -> dict[str, Any]:
    event = scheduled_event(rule)
    event.update(id="00000000-0000-4000-8000-000000000000", time="2026-01-01T03:00:00Z")
    return event


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("events"))
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    for name, event in build_events().items():
        (out / name).write_text(json.dumps(event, indent=2) + "\n")
        print(f"wrote {out / name}")


if __name__ == "__main__":
    main()
