"""DPDP end to end, black-box: `leadscore local up` as a subprocess, driven over HTTP only.

Contacts are created and changed through the HubSpot API (the emulator delivers the signed
webhooks); what the stack stored is read from every DynamoDB table and S3 bucket at its
`aws_endpoint_url`; the daily jobs run through `POST {admin_url}/schedules/<id>/run`, the
retention purge with a simulated clock. Erasure receipts are found the way an auditor would:
hash the contact id with the receipt key from Secrets Manager.

The last test reads everything the stack logged during the module and fails if any personal
value of the test contacts (e-mail, names, phone) appears in it.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta

import pytest
from hubspot.crm.contacts import (
    PublicGdprDeleteInput,
    SimplePublicObjectInput,
    SimplePublicObjectInputForCreate,
)
from support import settle, wait_for

from leadscore.dpdp.erasure import subject_hash
from leadscore.hubspot.properties import AI_PROPERTIES
from leadscore_local.webhook_sender import signed_headers

pytestmark = pytest.mark.e2e
PROP = "dpdp_consent_purposes"
HOT_LEAD = {
    "jobtitle": "VP Sales", "numemployees": "100-500", "country": "India",
    "hs_analytics_source": "ORGANIC_SEARCH", "hs_analytics_num_visits": "25",
    "hs_analytics_num_page_views": "60", "lifecyclestage": "lead",
}
# Every personal value written to HubSpot in this module; none may ever appear in a log line.
PERSONAL_VALUES: list[str] = []
_people = iter(range(1000))


# ------------------------------------------------------------------------------- helpers


def create(hubspot, consent: str | None) -> str:
    """A contact with unmistakable personal values (recorded for the log check)."""
    n = next(_people)
    person = {"email": f"zubeida.okonkwo{n}@dpdp-e2e.example.in",
              "firstname": f"Zubeida{n:03d}x", "lastname": f"Okonkwo-Rao{n:03d}",
              "phone": f"+91 98450 {12000 + n:05d}"}
    PERSONAL_VALUES.extend(person.values())
    properties = {**HOT_LEAD, **person}
    if consent is not None:
        properties[PROP] = consent
    return hubspot.crm.contacts.basic_api.create(
        SimplePublicObjectInputForCreate(properties=properties)).id


def set_consent(hubspot, contact_id: str, consent: str) -> None:
    hubspot.crm.contacts.basic_api.update(
        contact_id, SimplePublicObjectInput(properties={PROP: consent}))


def emulator_admin(stack, method: str, action: str, payload: dict) -> dict:
    request = urllib.request.Request(
        f"{stack.info['hubspot_url']}/_emulator/{action}", method=method,
        data=json.dumps(payload).encode(), headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def ai_values(hubspot, contact_id: str) -> dict[str, str]:
    """The ai_* properties that hold a value."""
    props = hubspot.crm.contacts.basic_api.get_by_id(
        contact_id, properties=list(AI_PROPERTIES)).properties
    return {name: value for name, value in props.items() if name in AI_PROPERTIES and value}


def stored_strings(aws) -> set[str]:
    """Every string value in every item of every DynamoDB table, and every S3 object's key
    and words. (Contact ids are strings everywhere; numbers are left out so that a score or a
    token count can never pass for a contact id.)"""
    found: set[str] = set()

    def walk(value):
        if isinstance(value, dict):
            for key, inner in value.items():
                if key == "S":
                    found.add(inner)
                else:
                    walk(inner)
        elif isinstance(value, list):
            for inner in value:
                if isinstance(inner, str):
                    found.add(inner)
                else:
                    walk(inner)

    dynamodb = aws("dynamodb")
    for table in dynamodb.list_tables()["TableNames"]:
        for page in dynamodb.get_paginator("scan").paginate(TableName=table):
            walk(page["Items"])
    s3 = aws("s3")
    for bucket in s3.list_buckets().get("Buckets", []):
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket["Name"]):
            for obj in page.get("Contents", []):
                found.add(obj["Key"])
                body = s3.get_object(Bucket=bucket["Name"], Key=obj["Key"])["Body"].read()
                found.update(re.findall(r"[\w@.+-]+", body.decode(errors="replace")))
    return found


def names_contact(aws, contact_id: str) -> bool:
    return contact_id in stored_strings(aws)


def receipts_of(aws, contact_id: str) -> list[dict]:
    """The contact's erasure receipts, found as an auditor would: by the keyed hash."""
    secrets = aws("secretsmanager")
    [arn] = [s["ARN"] for s in secrets.list_secrets()["SecretList"]
             if "ErasureReceiptKey" in s["Name"]]
    key = secrets.get_secret_value(SecretId=arn)["SecretString"].encode()
    dynamodb = aws("dynamodb")
    [table] = [t for t in dynamodb.list_tables()["TableNames"] if "ErasureReceipts" in t]
    items = dynamodb.query(
        TableName=table, KeyConditionExpression="subject = :s",
        ExpressionAttributeValues={":s": {"S": subject_hash(key, contact_id)}})["Items"]
    return [{k: [e["S"] for e in v["L"]] if "L" in v else v.get("S", v.get("N"))
             for k, v in item.items()} for item in items]


def run_schedule(stack, logical_id: str, at: datetime | None = None) -> dict:
    return stack.admin("POST", f"/schedules/{logical_id}/run",
                       {"time": at.isoformat()} if at else {})["result"]


def scored(hubspot, contact_id: str) -> dict[str, str]:
    return wait_for(lambda: (values := ai_values(hubspot, contact_id)).get("ai_lead_score")
                    and values)


# ------------------------------------------------------------------------------- tests


def test_unconsented_contact_is_never_scored_or_stored(stack, hubspot, aws):
    withheld = create(hubspot, "")  # no purpose ticked
    absent = create(hubspot, None)  # property never set
    enrichment_only = create(hubspot, "ai_enrichment")  # enrichment without scoring: nothing
    consented = create(hubspot, "lead_scoring")  # proves the pipeline ran meanwhile
    scored(hubspot, consented)
    settle(stack)

    stored = stored_strings(aws)
    assert consented in stored
    for contact_id in (withheld, absent, enrichment_only):
        assert not ai_values(hubspot, contact_id), contact_id
        assert contact_id not in stored, f"{contact_id} is named in a table or bucket"

    # The synchronous API answers "not scored" and keeps nothing either. (HubSpot refuses
    # values outside the checkbox's options, so malformed consent is tried here only.)
    url = stack.info["score_api_url"]
    for consent, reason in (("", "no consent"), ("lead_scoring;sometimes", "malformed")):
        body = json.dumps({"properties": {**HOT_LEAD, PROP: consent,
                                          "email": PERSONAL_VALUES[0]}}).encode()
        headers = signed_headers(url, body, stack.info["hubspot_client_secret"],
                                 int(time.time() * 1000))
        request = urllib.request.Request(url, data=body, method="POST", headers=headers)
        with urllib.request.urlopen(request, timeout=20) as response:
            answer = json.loads(response.read())
        assert answer["scored"] is False and reason in answer["reason"]
    assert stored_strings(aws) == stored


def test_withdrawal_by_webhook_erases_and_leaves_receipts(stack, hubspot, aws):
    full = create(hubspot, "lead_scoring;ai_enrichment")
    partial = create(hubspot, "lead_scoring;ai_enrichment")
    for contact_id in (full, partial):
        wait_for(lambda cid=contact_id: ai_values(hubspot, cid).get("ai_lead_summary"), 60)
    settle(stack)
    assert names_contact(aws, full)

    set_consent(hubspot, full, "")  # withdraws everything
    set_consent(hubspot, partial, "lead_scoring")  # withdraws AI enrichment only
    wait_for(lambda: not ai_values(hubspot, full))
    wait_for(lambda: not ai_values(hubspot, partial).get("ai_lead_summary"))
    settle(stack)

    assert not ai_values(hubspot, full)
    assert not names_contact(aws, full)
    [receipt] = receipts_of(aws, full)
    assert receipt["reason"] == "consent_withdrawn" and "ledger" in receipt["records"]

    kept = ai_values(hubspot, partial)
    assert kept.get("ai_lead_score") and not kept.get("ai_lead_next_action")
    [receipt] = receipts_of(aws, partial)
    assert receipt["reason"] == "enrichment_consent_withdrawn"


def test_silent_withdrawal_is_caught_by_the_sweep(stack, hubspot, aws):
    contact_id = create(hubspot, "lead_scoring")
    scored(hubspot, contact_id)
    settle(stack)
    dead_letters = sum(stack.stats()["dlqs"].values())

    # The withdrawal's webhook is lost: the consent property's subscription is paused while
    # the person withdraws (a HubSpot outage would dead-letter nothing now: a message waits
    # out 5xx episodes on ScoreQueue instead).
    emulator_admin(stack, "PATCH", "subscriptions", {"active": False, "property_name": PROP})
    set_consent(hubspot, contact_id, "")
    emulator_admin(stack, "PATCH", "subscriptions", {"active": True, "property_name": PROP})
    settle(stack)
    assert sum(stack.stats()["dlqs"].values()) == dead_letters
    assert ai_values(hubspot, contact_id), "the webhook was honoured; nothing left to sweep"
    assert names_contact(aws, contact_id)

    # The daily sweep finds it.
    result = run_schedule(stack, "ConsentSweepFunction")
    assert result["erased"] >= 1 and result["complete"]
    assert not ai_values(hubspot, contact_id)
    assert not names_contact(aws, contact_id)
    assert [r["reason"] for r in receipts_of(aws, contact_id)] == ["consent_sweep"]


def test_privacy_deletion_and_deletion_erase_every_record(stack, hubspot, aws):
    contact_id = create(hubspot, "lead_scoring;ai_enrichment")
    deleted_id = create(hubspot, "lead_scoring")
    for cid in (contact_id, deleted_id):
        scored(hubspot, cid)
    settle(stack)
    assert names_contact(aws, contact_id) and names_contact(aws, deleted_id)

    hubspot.crm.contacts.basic_api.purge(PublicGdprDeleteInput(object_id=contact_id))
    hubspot.crm.contacts.basic_api.archive(deleted_id)  # an ordinary delete (recycle bin)
    wait_for(lambda: not names_contact(aws, contact_id) and not names_contact(aws, deleted_id))
    settle(stack)

    assert not names_contact(aws, deleted_id)
    assert [r["reason"] for r in receipts_of(aws, deleted_id)] == ["contact_deleted"]

    assert not names_contact(aws, contact_id)
    with urllib.request.urlopen(stack.info["hubspot_url"] + "/_emulator/contacts") as response:
        portal = json.loads(response.read())["results"]  # archived contacts included
    assert all(str(c.get("id")) != contact_id for c in portal)
    [receipt] = receipts_of(aws, contact_id)
    assert receipt["reason"] == "privacy_deletion"


def test_retention_purge_removes_exactly_what_is_past_the_period(stack, hubspot, aws):
    older = create(hubspot, "lead_scoring")
    older_at = datetime.fromisoformat(scored(hubspot, older)["ai_lead_scored_at"])
    time.sleep(1.5)  # the newer one is scored measurably later
    newer = create(hubspot, "lead_scoring")
    newer_at = datetime.fromisoformat(scored(hubspot, newer)["ai_lead_scored_at"])
    settle(stack)
    assert newer_at - older_at >= timedelta(seconds=1)

    # A clock 180 days (RETENTION_DAYS) after a moment between the two scores.
    between = older_at + (newer_at - older_at) / 2
    too_early = run_schedule(stack, "RetentionPurgeFunction", older_at + timedelta(days=179))
    assert ai_values(hubspot, older) and names_contact(aws, older)
    assert too_early["complete"]

    result = run_schedule(stack, "RetentionPurgeFunction", between + timedelta(days=180))
    assert result["complete"] and result["failed"] == 0
    assert not ai_values(hubspot, older)
    assert not names_contact(aws, older)
    assert [r["reason"] for r in receipts_of(aws, older)] == ["retention_expired"]
    # Inside the period: untouched, no receipt.
    assert ai_values(hubspot, newer).get("ai_lead_score")
    assert names_contact(aws, newer)
    assert receipts_of(aws, newer) == []


def test_no_personal_value_of_the_test_contacts_in_any_log(stack):
    settle(stack)
    log = stack.log_path.read_text(errors="replace")
    assert "Erasure done" in log and "Consent sweep done" in log  # the run's logs are here
    leaked = [value for value in PERSONAL_VALUES if value.lower() in log.lower()]
    # Phone numbers may be logged with other spacing: their digits, any separators between.
    for value in PERSONAL_VALUES:
        if value.lstrip("+")[:1].isdigit():
            digits = re.sub(r"\D", "", value)[-10:]
            country = r"(?:\+?\d{1,3}[\s().-]*)?"
            if re.search(r"(?<!\d)" + country + r"[\s().-]*".join(digits) + r"(?!\d)", log):
                leaked.append(value)
    assert not leaked, f"personal data in the logs: {sorted(set(leaked))}"
