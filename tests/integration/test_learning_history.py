"""The learning loop's reads of HubSpot's property history, against the HubSpot emulator over
real HTTP with the official SDK: HubSpot's limit of 50 contacts per history read (the emulator
refuses more, as HubSpot does), the history path settling outcomes no webhook reported
(snapshots in moto), and `leadscore hubspot export --as-of-days`."""

from __future__ import annotations

import csv
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from hubspot import HubSpot
from hubspot.crm.contacts import BatchReadInputSimplePublicObjectId, SimplePublicObjectInput
from hubspot.crm.contacts.exceptions import ApiException
from moto import mock_aws

from leadscore.cli import main
from leadscore.cli.hubspot_export import export_contacts
from leadscore.cli.synthetic import generate_contacts
from leadscore.hubspot.client import HubSpotClient
from leadscore.learning.outcomes import OutcomeCloser, OutcomeRules
from leadscore.learning.snapshots import Outcome, Snapshot, SnapshotStore
from leadscore.model import load
from leadscore.model.config import load_config
from leadscore_local.hubspot_emulator import HubSpotEmulator

ROOT = Path(__file__).resolve().parents[2]
FEATURES = ROOT / "layers/model/features.toml"
MODEL = load(ROOT / "layers/model/model")
TOKEN = "pat-history-test"


def leads(n: int, seed: int) -> list[dict[str, str]]:
    """Created now (no backdated create date), consented, not converted."""
    return [{k: v for k, v in c.items() if k not in ("hs_object_id", "createdate") and v != ""}
            | {"lifecyclestage": "lead", "dpdp_consent_purposes": "lead_scoring"}
            for c in generate_contacts(n, seed)]


@pytest.fixture
def portal():
    with HubSpotEmulator(tokens={TOKEN: "history"}) as emulator:
        yield emulator, HubSpot(access_token=TOKEN, host=emulator.url)


def update(sdk: HubSpot, contact_id: str, **properties: str) -> None:
    sdk.crm.contacts.basic_api.update(contact_id, SimplePublicObjectInput(properties=properties))


def test_the_emulator_refuses_more_than_50_contacts_per_history_read(portal):
    emulator, sdk = portal
    ids = emulator.create_contacts(leads(51, 1), announce=False)
    with pytest.raises(ApiException) as refused:
        sdk.crm.contacts.batch_api.read(BatchReadInputSimplePublicObjectId(
            inputs=[{"id": cid} for cid in ids], properties=["lifecyclestage"],
            properties_with_history=["lifecyclestage"]))
    assert refused.value.status == 400 and b"property histories is 50" in (
        refused.value.body.encode() if isinstance(refused.value.body, str) else refused.value.body)
    # Without history, 100 per request is fine.
    page = sdk.crm.contacts.batch_api.read(BatchReadInputSimplePublicObjectId(
        inputs=[{"id": cid} for cid in ids], properties=["lifecyclestage"]))
    assert len(page.results) == 51


def test_the_client_reads_history_50_at_a_time_oldest_first(portal):
    emulator, sdk = portal
    ids = emulator.create_contacts(leads(120, 2), announce=False)
    update(sdk, ids[0], lifecyclestage="opportunity")
    update(sdk, ids[0], lifecyclestage="customer")
    client = HubSpotClient(TOKEN, emulator.url)
    found = client.batch_read_history(ids, ["lifecyclestage"], ["lifecyclestage"])
    assert client.request_count == 3 and len(found) == 120
    versions = found[ids[0]].history["lifecyclestage"]
    assert [v.value for v in versions] == ["lead", "opportunity", "customer"]
    assert versions[0].timestamp <= versions[1].timestamp <= versions[2].timestamp
    assert found[ids[0]].created_at is not None


def test_a_conversion_no_webhook_reported_is_not_lost(portal, aws_moto):
    emulator, sdk = portal
    ids = emulator.create_contacts(leads(60, 3), announce=False)
    store = SnapshotStore("FeatureSnapshotTable")
    first_scored = datetime.now(UTC)
    store.put_first([Snapshot.take(
        contact_id=cid, portal_id=1, scored_at=first_scored, model_version=MODEL.version,
        score=50, probability=0.1, tier="warm", properties={}, columns=MODEL.properties,
        email_column="email", schema_hash="", retention_days=180) for cid in ids])
    time.sleep(0.01)
    for cid in ids[:7]:  # converted; the score function never heard of it
        update(sdk, cid, lifecyclestage="customer")

    closer = OutcomeCloser(store=store, hubspot=HubSpotClient(TOKEN, emulator.url),
                           rules=OutcomeRules.from_config(MODEL.config, 60))
    result = closer.close(first_scored + timedelta(days=61))
    assert (result.checked, result.positive, result.negative) == (60, 7, 53)
    settled = {s.contact_id: s for s in store.snapshots()}
    assert {cid for cid, s in settled.items() if s.outcome is Outcome.POSITIVE} == set(ids[:7])
    assert all(settled[cid].outcome_source == "history" for cid in ids[:7])


@pytest.fixture
def aws_moto(monkeypatch):
    """FeatureSnapshotTable as template.yaml keys it, in moto."""
    from leadscore_local.cfn_yaml import load_template

    for name, value in {"AWS_DEFAULT_REGION": "ap-south-1", "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    table = load_template(ROOT / "template.yaml")["Resources"]["FeatureSnapshotTable"]
    with mock_aws():
        boto3.client("dynamodb").create_table(
            TableName="FeatureSnapshotTable", BillingMode="PAY_PER_REQUEST",
            KeySchema=table["Properties"]["KeySchema"],
            AttributeDefinitions=table["Properties"]["AttributeDefinitions"])
        yield


def test_export_as_of_days_rebuilds_the_features_before_the_outcome(portal, tmp_path,
                                                                   monkeypatch):
    emulator, sdk = portal
    batch = leads(40, 4)
    batch[0] |= {"hs_analytics_num_visits": "3"}
    batch[1] |= {"lifecyclestage": "customer"}  # a customer already when created
    batch[3] |= {"createdate": "2025-01-01T00:00:00.000Z"}  # imported: history starts now
    ids = emulator.create_contacts(batch, announce=False)
    time.sleep(0.01)
    # After creation, lead 0 converts and its activity soars: the leak --as-of-days avoids.
    update(sdk, ids[0], hs_analytics_num_visits="40", lifecyclestage="customer")

    out = tmp_path / "as_of.csv"
    config = load_config(FEATURES)
    result = export_contacts(HubSpotClient(TOKEN, emulator.url), config, out, as_of_days=0)
    with out.open(newline="", encoding="utf-8") as handle:
        rows = {row["hs_object_id"]: row for row in csv.DictReader(handle)}
    assert result.converted_before == 1 and ids[1] not in rows
    assert result.no_history == 1 and ids[3] not in rows and result.written == 38
    assert rows[ids[0]]["hs_analytics_num_visits"] == "3"  # as it was, not 40
    assert rows[ids[0]]["lifecyclestage"] == "opportunity"  # converted after: positive
    assert rows[ids[2]]["lifecyclestage"] == "lead"
    assert all(row["leadscore_as_of"] for row in rows.values())

    # A day after creation has not come yet for any of them.
    later = export_contacts(HubSpotClient(TOKEN, emulator.url), config,
                            tmp_path / "none.csv", as_of_days=1)
    assert (later.written, later.too_recent, later.no_history) == (0, 39, 1)

    # Export, then train on it: datetime ages are measured from each row's own time.
    monkeypatch.setenv("HUBSPOT_TOKEN", TOKEN)
    more = emulator.create_contacts(leads(400, 5), announce=False)
    for cid in more[::8]:  # 50 of them convert after their first day
        update(sdk, cid, lifecyclestage="customer")
    path = tmp_path / "export.csv"
    assert main(["hubspot", "export", "--config", str(FEATURES), "--out", str(path),
                 "--base-url", emulator.url, "--as-of-days", "0"]) == 0
    assert main(["train", "--data", str(path), "--config", str(FEATURES),
                 "--out", str(tmp_path / "model")]) == 0
