"""The data principal's rights and the breach duty from an operator's machine: `leadscore dpdp
access` (right of access), `leadscore dpdp affected` (who to notify of a breach) and the notice
facts `leadscore hubspot setup --stack-name` prints, against a "deployed" stack — a
CloudFormation stack in moto with the template's logical ids — and the HubSpot emulator over
real HTTP, read with the official SDK."""

from __future__ import annotations

import itertools
import json
import os
import urllib.request
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from hubspot import HubSpot
from moto.server import ThreadedMotoServer

from leadscore.cli import main
from leadscore.dpdp.disclosures import Disclosure, DynamoDBDisclosures
from leadscore.dpdp.erasure import DynamoDBReceipts, Eraser, ErasureReason
from leadscore.hubspot.client import HubSpotClient
from leadscore.hubspot.setup import ensure_properties
from leadscore.learning.snapshots import Snapshot, SnapshotStore
from leadscore.scoring.ledger import DynamoDBLedger, LedgerEntry
from leadscore.timestamps import iso_millis
from leadscore_local.hubspot_emulator import HubSpotEmulator

TOKEN = "pat-rights-test"
REGION = "ap-south-1"
RECEIPT_KEY = "r" * 64
KEY_SECRET = "leadscore/receipt-key"
# A window of the last fortnight: CloudWatch (and moto) refuse log events older than 14 days.
WINDOW_START = (datetime.now(UTC) - timedelta(days=10)).replace(hour=0, minute=0, second=0,
                                                                 microsecond=0)
IN_WINDOW = WINDOW_START + timedelta(days=2)
WINDOW_END = WINDOW_START + timedelta(days=7)
AFTER_WINDOW = WINDOW_START + timedelta(days=9)


def _table(key: str) -> dict:
    return {"Type": "AWS::DynamoDB::Table", "Properties": {
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": key, "AttributeType": "S"}]
        + ([{"AttributeName": "receipt", "AttributeType": "S"}] if key == "subject" else []),
        "KeySchema": [{"AttributeName": key, "KeyType": "HASH"}]
        + ([{"AttributeName": "receipt", "KeyType": "RANGE"}] if key == "subject" else [])}}


# The stack's stores and log groups under the template's logical ids. (moto's CloudFormation
# does not create AWS::SecretsManager::Secret: the receipt key is created beside the stack and
# named with --key-secret, as for a stack deleted with its retained key.)
STACK_TEMPLATE = {
    "Parameters": {name: {"Type": "String", "Default": ""} for name in (
        "GrievanceOfficerName", "GrievanceOfficerEmail", "GrievanceOfficerPhone",
        "LlmProvider", "BedrockRegion", "HubSpotBaseUrl")},
    "Resources": {
        "LedgerTable": _table("contact_id"),
        "DisclosuresTable": _table("contact_id"),
        "FeatureSnapshotTable": _table("contact_id"),
        "ErasureReceiptsTable": _table("subject"),
        "ScoreLogGroup": {"Type": "AWS::Logs::LogGroup",
                          "Properties": {"LogGroupName": "/aws/lambda/leadscore/score"}},
        "EnrichLogGroup": {"Type": "AWS::Logs::LogGroup",
                           "Properties": {"LogGroupName": "/aws/lambda/leadscore/enrich"}},
    },
}


@pytest.fixture
def portal():
    with HubSpotEmulator(tokens={TOKEN: "operator"}) as emulator:
        ensure_properties(HubSpot(access_token=TOKEN, host=emulator.url))
        yield emulator


@pytest.fixture
def moto_server(monkeypatch):
    """moto's server over HTTP; every boto3 client of the test and the CLI goes there."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    for name, value in {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
                        "AWS_DEFAULT_REGION": REGION, "AWS_ENDPOINT_URL": url}.items():
        monkeypatch.setenv(name, value)
    yield url
    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"))
    server.stop()


@pytest.fixture
def deployed(moto_server, monkeypatch, portal):
    """A stack named leadscore: its tables, secret and log groups, and its parameters."""
    cloudformation = boto3.client("cloudformation")
    cloudformation.create_stack(
        StackName="leadscore", TemplateBody=json.dumps(STACK_TEMPLATE), Parameters=[
            {"ParameterKey": "GrievanceOfficerName", "ParameterValue": "Meera Iyer"},
            {"ParameterKey": "GrievanceOfficerEmail", "ParameterValue": "dpo@acme.example"},
            {"ParameterKey": "LlmProvider", "ParameterValue": "bedrock"},
            {"ParameterKey": "BedrockRegion", "ParameterValue": "ap-south-1"},
            {"ParameterKey": "HubSpotBaseUrl", "ParameterValue": portal.url}])
    resources = {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in
                 cloudformation.list_stack_resources(
                     StackName="leadscore")["StackResourceSummaries"]}
    boto3.client("secretsmanager").create_secret(Name=KEY_SECRET, SecretString=RECEIPT_KEY)
    monkeypatch.setenv("HUBSPOT_TOKEN", TOKEN)
    return resources, portal


_people = itertools.count(1)


def _contact(portal: HubSpotEmulator, **properties: str) -> str:
    [contact_id] = portal.create_contacts([{"email": f"meena.k{next(_people)}@acme.example",
                                            "firstname": "Meena", **properties}],
                                          announce=False)
    return contact_id


def _scored_and_enriched(resources, portal, contact_id: str, at: datetime) -> None:
    """What the score and enrich functions leave: ai_* properties, a ledger item, a
    disclosure."""
    hubspot = HubSpotClient(TOKEN, portal.url)
    hubspot.batch_update({contact_id: {
        "ai_lead_score": "87", "ai_lead_tier": "hot", "ai_lead_reasons": "Visited 25 times (+)",
        "ai_lead_model_version": "lgbm-1", "ai_lead_scored_at": iso_millis(at),
        "ai_lead_summary": "Strong fit: VP Sales at a 200-person manufacturer"}})
    DynamoDBLedger(resources["LedgerTable"]).put_many([LedgerEntry.for_score(
        contact_id=contact_id, score=87, probability=0.81, tier="hot", model_version="lgbm-1",
        scored_at=at, retention_days=180)])
    DynamoDBDisclosures(resources["DisclosuresTable"]).add(contact_id, Disclosure(
        processor="Amazon Web Services (Amazon Bedrock)", provider="bedrock",
        model="apac.anthropic.claude-sonnet-5-5",
        endpoint="bedrock-runtime.ap-south-1.amazonaws.com", region="ap-south-1",
        routing="called in ap-south-1; the APAC profile may process it elsewhere in APAC",
        fields=("score", "tier", "jobtitle")), now=at, retention_days=180)
    SnapshotStore(resources["FeatureSnapshotTable"]).put_first([Snapshot.take(
        contact_id=contact_id, portal_id=1, scored_at=at, model_version="lgbm-1", score=87,
        probability=0.81, tier="hot", properties={"email": "meena.k@acme.example",
                                                  "jobtitle": "VP Sales"},
        columns=["email", "jobtitle"], email_column="email", schema_hash="test",
        retention_days=180)])


def test_access_lists_what_is_held_history_included_and_who_received_it(deployed, capsys):
    resources, portal = deployed
    contact_id = _contact(portal, dpdp_consent_purposes="lead_scoring;ai_enrichment")
    _scored_and_enriched(resources, portal, contact_id, IN_WINDOW)
    # The person withdrew ai_enrichment: the summary is cleared, a receipt written.
    Eraser(hubspot=HubSpotClient(TOKEN, portal.url), stores=[],
           receipts=DynamoDBReceipts(resources["ErasureReceiptsTable"]),
           receipt_key=RECEIPT_KEY.encode()).erase(
        [contact_id], ErasureReason.ENRICHMENT_CONSENT_WITHDRAWN, scope="enrichment",
        now=IN_WINDOW + timedelta(hours=1))

    assert main(["dpdp", "access", "--stack-name", "leadscore", "--region", REGION,
                 "--contact-id", contact_id, "--key-secret", KEY_SECRET]) == 0
    report = json.loads(capsys.readouterr().out)

    derived = report["hubspot"]["derived_properties"]
    assert derived["ai_lead_score"]["value"] == "87"
    assert derived["ai_lead_score"]["history"][0]["set_at"]  # when it was made
    # Cleared by the erasure, still in HubSpot's property history: the answer shows it.
    assert derived["ai_lead_summary"]["value"] in (None, "")
    assert "Strong fit" in [v["value"] for v in derived["ai_lead_summary"]["history"]][1]
    assert report["hubspot"]["consent"]["dpdp_consent_purposes"] == "lead_scoring;ai_enrichment"
    ledger = report["stores"]["score_ledger"]
    assert (ledger["score"], ledger["tier"], ledger["model_version"]) == (87, "hot", "lgbm-1")
    # The learning loop's snapshot: the inputs as they were at the score (e-mail as its domain).
    snapshot = report["stores"]["feature_snapshot"]
    assert snapshot["score"] == 87 and "VP Sales" in str(snapshot)
    assert "meena.k" not in str(snapshot) and "acme.example" in str(snapshot)
    [erasure] = report["erasures"]
    assert erasure["reason"] == "enrichment_consent_withdrawn"
    assert erasure["hubspot_properties"] == ["ai_lead_summary"]
    assert "property history" in erasure["not_reached"][0]
    names = [p["processor"] for p in report["processors"]]
    assert names == ["HubSpot, Inc.", "Amazon Web Services",
                     "Amazon Web Services (Amazon Bedrock)"]
    bedrock = report["processors"][2]
    assert bedrock["model"] == "apac.anthropic.claude-sonnet-5-5"
    assert bedrock["region"] == "ap-south-1" and bedrock["count"] == 1
    assert bedrock["first_at"] == iso_millis(IN_WINDOW)
    assert report["grievance_officer"] == {"name": "Meera Iyer", "email": "dpo@acme.example",
                                           "phone": ""}


def test_access_to_an_unknown_contact_says_so(deployed, capsys):
    assert main(["dpdp", "access", "--stack-name", "leadscore", "--region", REGION,
                 "--contact-id", "999999", "--key-secret", KEY_SECRET]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["hubspot"]["found"] is False
    assert report["stores"] == {"score_ledger": None, "disclosures": None,
                                "feature_snapshot": None}
    assert report["erasures"] == []
    # Without the key the receipts cannot be searched, and the answer says so.
    assert main(["dpdp", "access", "--stack-name", "leadscore", "--region", REGION,
                 "--contact-id", "999999"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["erasures"] is None
    assert any("receipt key" in note for note in report["notes"])


def test_access_with_a_refused_token_says_so(deployed, capsys, monkeypatch):
    monkeypatch.setenv("HUBSPOT_TOKEN", "pat-revoked")
    assert main(["dpdp", "access", "--stack-name", "leadscore", "--region", REGION,
                 "--contact-id", "1", "--key-secret", KEY_SECRET]) == 2
    assert "HubSpot refused the request (401" in capsys.readouterr().err


def test_access_needs_a_readable_stack(moto_server, capsys):
    assert main(["dpdp", "access", "--stack-name", "nope", "--contact-id", "1",
                 "--endpoint-url", moto_server]) == 2
    assert "cannot read stack 'nope'" in capsys.readouterr().err


def _log(group: str, at: datetime, entry: dict) -> None:
    logs = boto3.client("logs")
    stream = f"s{int(at.timestamp())}"
    logs.create_log_stream(logGroupName=group, logStreamName=stream)
    logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=[
        {"timestamp": int(at.timestamp() * 1000), "message": json.dumps(entry)}])


def test_affected_names_everyone_processed_or_held_in_the_window(deployed, capsys, tmp_path):
    resources, portal = deployed
    enriched = _contact(portal, dpdp_consent_purposes="lead_scoring;ai_enrichment")
    _scored_and_enriched(resources, portal, enriched, IN_WINDOW)
    later = _contact(portal, dpdp_consent_purposes="lead_scoring")
    DynamoDBLedger(resources["LedgerTable"]).put_many([LedgerEntry.for_score(
        contact_id=later, score=20, probability=0.1, tier="cold", model_version="lgbm-1",
        scored_at=AFTER_WINDOW, retention_days=180)])
    _log(resources["ScoreLogGroup"], IN_WINDOW, {
        "level": "INFO", "message": "Score batch done", "scored_contact_ids": ["501"],
        "skipped_contact_ids": ["502"], "failed": []})
    _log(resources["ScoreLogGroup"], AFTER_WINDOW, {
        "level": "INFO", "message": "Score batch done", "scored_contact_ids": ["503"]})
    _log(resources["EnrichLogGroup"], IN_WINDOW + timedelta(hours=3), {
        "level": "INFO", "message": "Contact enrichment done", "contact_id": "504"})
    local_log = tmp_path / "stack.log"
    local_log.write_text("starting\n" + json.dumps({
        "timestamp": (IN_WINDOW + timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S,000+0000"),
        "message": "Erasure done", "failed_contact_ids": ["505"]})
        + "\n{\"_aws\": {}, \"ContactsScored\": 1}\n")
    DynamoDBReceipts(resources["ErasureReceiptsTable"]).put_many([])  # nothing erased

    assert main(["dpdp", "affected", "--stack-name", "leadscore", "--region", REGION,
                 "--since", WINDOW_START.isoformat(), "--until", WINDOW_END.isoformat(),
                 "--log-file", str(local_log)]) == 0
    report = json.loads(capsys.readouterr().out)
    evidence = {c["contact_id"]: c["evidence"] for c in report["contacts"]}

    assert set(evidence) == {"501", "502", "504", "505", enriched}
    assert evidence["501"] == ["logged by Score"] and evidence["504"] == ["logged by Enrich"]
    assert evidence["505"] == ["logged by stack.log"]
    assert "scored in the window (score ledger)" in evidence[enriched]
    assert any("Amazon Bedrock" in e for e in evidence[enriched])
    assert report["log_entries_read"] == {"/aws/lambda/leadscore/enrich": 1,
                                          "/aws/lambda/leadscore/score": 1, str(local_log): 1}

    assert main(["dpdp", "affected", "--stack-name", "leadscore", "--region", REGION,
                 "--since", WINDOW_START.isoformat(), "--until", WINDOW_END.isoformat(),
                 "--ids-only"]) == 0
    ids = capsys.readouterr().out.split()  # numeric order, for an import by Record ID
    assert ids == sorted(["501", "502", "504", enriched], key=lambda i: (len(i), i))


def test_affected_refuses_an_empty_window(deployed, capsys):
    assert main(["dpdp", "affected", "--stack-name", "leadscore", "--region", REGION,
                 "--since", "2026-05-02", "--until", "2026-05-01"]) == 2
    assert "--until must be after --since" in capsys.readouterr().err


def test_setup_prints_the_notice_with_the_grievance_officer(deployed, capsys):
    _, portal = deployed
    assert main(["hubspot", "setup", "--base-url", portal.url, "--stack-name", "leadscore",
                 "--region", REGION]) == 0
    out = capsys.readouterr().out
    assert "grievance officer (s. 8(10), s. 13; Rules r. 9): Meera Iyer <dpo@acme.example>" in out
    assert "Data Protection Board of India" in out
    assert "Amazon Bedrock from ap-south-1" in out


def test_access_reads_the_local_stack_from_its_json_line(deployed, capsys, tmp_path, monkeypatch):
    """`--local-stack FILE`: resources, AWS endpoint, HubSpot URL and token from the line
    `leadscore local up` printed (its shape: {logical id: {"Ref": ...}}), not from the
    environment."""
    resources, portal = deployed
    contact_id = _contact(portal, dpdp_consent_purposes="lead_scoring;ai_enrichment")
    _scored_and_enriched(resources, portal, contact_id, IN_WINDOW)
    monkeypatch.delenv("HUBSPOT_TOKEN")
    line = tmp_path / "local.json"
    line.write_text(json.dumps({
        "resources": {**{name: {"Ref": ref} for name, ref in resources.items()},
                      "ErasureReceiptKeySecret": {"Ref": KEY_SECRET}},
        "aws_endpoint_url": os.environ["AWS_ENDPOINT_URL"], "hubspot_url": portal.url,
        "hubspot_token": TOKEN}) + "\n")

    assert main(["dpdp", "access", "--local-stack", str(line), "--contact-id", contact_id]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["stack"] == "leadscore-local"
    assert report["hubspot"]["derived_properties"]["ai_lead_tier"]["value"] == "hot"
    assert report["stores"]["score_ledger"]["score"] == 87
    assert report["erasures"] == []  # searched with the stack's own receipt key
    assert report["processors"][2]["model"] == "apac.anthropic.claude-sonnet-5-5"

    line.write_text("not json\n")
    assert main(["dpdp", "access", "--local-stack", str(line), "--contact-id", "1"]) == 2
    assert "not the JSON line of `leadscore local up`" in capsys.readouterr().err
