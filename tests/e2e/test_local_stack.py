"""End to end: `leadscore local up` as a subprocess, driven only over HTTP, as HubSpot would.

Contacts are created through the HubSpot API (the emulator then delivers signed webhooks);
scores are read back through the API; the stack's state through its admin API and moto.
"""

import json
import time
import urllib.error

import pytest
from hubspot.crm.contacts import SimplePublicObjectInputForCreate
from support import post, settle, wait_for

from leadscore_local.webhook_sender import deliver, encode_events, signed_headers

pytestmark = pytest.mark.e2e
LEAD = {
    "jobtitle": "VP Sales", "numemployees": "100-500", "country": "India",
    "hs_analytics_source": "ORGANIC_SEARCH", "hs_analytics_num_visits": "18",
    "hs_analytics_num_page_views": "40", "lifecyclestage": "lead",
}


def create(hubspot, email: str, consent: str) -> str:
    properties = {**LEAD, "email": email, "dpdp_consent_purposes": consent}
    return hubspot.crm.contacts.basic_api.create(
        SimplePublicObjectInputForCreate(properties=properties)
    ).id


def contact(hubspot, contact_id: str) -> dict:
    return hubspot.crm.contacts.basic_api.get_by_id(contact_id, properties=[
        "ai_lead_score", "ai_lead_tier", "ai_lead_reasons", "ai_lead_model_version",
        "ai_lead_scored_at",
    ]).properties


def ledger_items(aws) -> list[dict]:
    dynamodb = aws("dynamodb")
    items = []
    for table in dynamodb.list_tables()["TableNames"]:
        items += dynamodb.scan(TableName=table)["Items"]
    return items


def test_json_line_lists_loopback_urls(stack):
    for key in ("webhook_url", "score_api_url", "hubspot_url", "aws_endpoint_url",
                "anthropic_url", "admin_url"):
        assert stack.info[key].startswith("http://127.0.0.1:"), key


def test_signed_webhook_scores_consented_contact_and_skips_unconsented(stack, hubspot, aws):
    consented = create(hubspot, "asha@acme-e2e.in", "lead_scoring")
    unconsented = create(hubspot, "ravi@acme-e2e.in", "")
    scored = wait_for(lambda: contact(hubspot, consented).get("ai_lead_score") and
                      contact(hubspot, consented))
    assert 0 <= int(scored["ai_lead_score"]) <= 100
    assert scored["ai_lead_tier"] in {"hot", "warm", "cold", "disqualified"}
    assert scored["ai_lead_reasons"] and "hs_analytics" not in scored["ai_lead_reasons"]
    assert scored["ai_lead_model_version"]

    settle(stack)
    assert not contact(hubspot, unconsented).get("ai_lead_score")
    stored = json.dumps(ledger_items(aws))
    assert f'"{consented}"' in stored
    assert f'"{unconsented}"' not in stored  # nothing about it stored anywhere in DynamoDB
    # The functions' logs reach the stack's stderr: on its stdout (a pipe nobody reads after
    # the JSON line) they would fill the pipe and stall the stack.
    assert '"message":"Webhook accepted"' in stack.log_path.read_text()


def test_forged_or_stale_webhook_changes_nothing_and_a_signed_one_rescores(stack, hubspot):
    contact_id = create(hubspot, "meera@acme-e2e.in", "lead_scoring")
    first = wait_for(lambda: contact(hubspot, contact_id).get("ai_lead_scored_at"))
    before = settle(stack)

    url = stack.info["webhook_url"]
    event = {"eventId": 990001, "subscriptionId": 1, "portalId": 62515, "appId": 54321,
             "occurredAt": int(time.time() * 1000), "subscriptionType": "contact.creation",
             "attemptNumber": 0, "objectId": int(contact_id), "changeFlag": "CREATED",
             "changeSource": "CRM"}
    body = encode_events([event])
    now_ms = int(time.time() * 1000)
    forged = signed_headers(url, body, "not-the-client-secret", now_ms)
    stale = signed_headers(url, body, stack.info["hubspot_client_secret"], now_ms - 6 * 60_000)
    tampered = signed_headers(url, body, stack.info["hubspot_client_secret"], now_ms)
    assert post(url, body, forged) == 401
    assert post(url, body, stale) == 401
    assert post(url, body.replace(b"990001", b"990002"), tampered) == 401

    after = settle(stack)
    assert after["invocations"].get("ScoreFunction") == before["invocations"].get("ScoreFunction")
    assert contact(hubspot, contact_id)["ai_lead_scored_at"] == first

    status, _ = deliver(url, [event], stack.info["hubspot_client_secret"])
    assert status == 200
    rescored = wait_for(lambda: (contact(hubspot, contact_id)["ai_lead_scored_at"] != first
                                 and contact(hubspot, contact_id)["ai_lead_scored_at"]))
    assert rescored > first


def test_ingest_rejects_malformed_and_oversized_bodies_without_enqueuing(stack):
    url = stack.info["webhook_url"]
    secret = stack.info["hubspot_client_secret"]
    settle(stack)
    before = stack.stats()["invocations"].get("ScoreFunction", 0)
    now_ms = int(time.time() * 1000)
    malformed = b'[{"eventId": 1,'
    assert post(url, malformed, signed_headers(url, malformed, secret, now_ms)) == 400
    oversized = b"[" + b" " * (2 * 1024 * 1024) + b"]"
    assert post(url, oversized, signed_headers(url, oversized, secret, now_ms)) == 413
    settle(stack)
    assert stack.stats()["invocations"].get("ScoreFunction", 0) == before


def test_hubspot_faults_slow_the_work_but_lose_nothing(stack, hubspot):
    stack.admin("POST", "/faults", {"target": "hubspot", "status": 500, "count": 2})
    contact_id = create(hubspot, "kiran@acme-e2e.in", "lead_scoring;ai_enrichment")
    assert wait_for(lambda: contact(hubspot, contact_id).get("ai_lead_score"), timeout=45)
    stats = settle(stack)
    assert not any(stats["dlqs"].values())


def test_admin_runs_schedules_and_rejects_unknown_ones(stack):
    result = stack.admin("POST", "/schedules/RetentionPurgeFunction/run")
    assert "result" in result
    with pytest.raises(urllib.error.HTTPError) as missing:
        stack.admin("POST", "/schedules/NoSuchFunction/run")
    assert missing.value.code == 404
    stats = stack.stats()
    assert stats["invocations"]["RetentionPurgeFunction"] >= 1
    assert {"hubspot_requests", "queues", "dlqs", "invocations", "errors"} <= stats.keys()


def test_schedule_run_accepts_a_simulated_time(stack):
    result = stack.admin("POST", "/schedules/ConsentSweepFunction/run",
                         {"time": "2030-01-01T03:00:00+00:00"})
    assert "result" in result
    with pytest.raises(urllib.error.HTTPError) as bad:
        stack.admin("POST", "/schedules/ConsentSweepFunction/run", {"time": "not a time"})
    assert bad.value.code == 400
