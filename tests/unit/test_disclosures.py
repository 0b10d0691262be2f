"""Which processors received a contact's data: recorded by the enrich function before each LLM
request that carries it, erased with the contact's other derived data, named (by what it
cannot reach) in the erasure receipt. Against moto; the LLM is the Anthropic emulator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from dpdp_fakes import MemoryLedger, SearchableHubSpot
from fakes import create_table
from moto import mock_aws
from test_enrichment import CONFIDENT, LongLambdaContext, contact, queue_body, sqs_event

from leadscore.dpdp.disclosures import Disclosure, DynamoDBDisclosures
from leadscore.dpdp.erasure import ErasureReason, eraser_from_env
from leadscore.dpdp.stores import ContactKeyedTable
from leadscore.enrichment.llm import LlmSettings
from leadscore.enrichment.processors import disclosure_for
from leadscore_local.anthropic_emulator import AnthropicEmulator

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def haiku(**overrides) -> Disclosure:
    return Disclosure(**{"processor": "Anthropic PBC (Anthropic API)", "provider": "anthropic",
                         "model": "claude-haiku-5-5", "endpoint": "api.anthropic.com",
                         "routing": "outside India", "fields": ("score", "jobtitle"),
                         **overrides})


@pytest.fixture
def tables(aws_env, monkeypatch):
    with mock_aws():
        create_table("DisclosuresTable")
        create_table("LedgerTable")
        create_table("ErasureReceiptsTable")
        boto3.client("secretsmanager").create_secret(Name="receipt-key", SecretString="k" * 64)
        for name, value in {"DISCLOSURES_TABLE": "DisclosuresTable",
                            "ERASURE_RECEIPTS_TABLE": "ErasureReceiptsTable",
                            "ERASURE_RECEIPT_KEY_SECRET": "receipt-key"}.items():
            monkeypatch.setenv(name, value)
        yield


def test_one_entry_per_provider_and_model_however_often(tables):
    store = DynamoDBDisclosures("DisclosuresTable")
    store.add("7", haiku(), now=NOW, retention_days=180)
    store.add("7", haiku(model="claude-sonnet-5-5"), now=NOW + timedelta(hours=1),
              retention_days=180)
    store.add("7", haiku(fields=("score",)), now=NOW + timedelta(days=2), retention_days=180)

    first, second = store.for_contact("7")
    assert (first["model"], first["count"], first["first_at"], first["last_at"]) == (
        "claude-haiku-5-5", 2, "2026-06-01T12:00:00.000Z", "2026-06-03T12:00:00.000Z")
    assert first["fields"] == ["score"]  # what the latest request carried
    assert (second["model"], second["count"]) == ("claude-sonnet-5-5", 1)
    item = boto3.resource("dynamodb").Table("DisclosuresTable").get_item(
        Key={"contact_id": "7"})["Item"]
    assert int(item["expires_at"]) == int((NOW + timedelta(days=2 + 180 + 7)).timestamp())
    assert store.for_contact("8") == []


def test_contact_keyed_tables_delete_only_what_they_hold(tables):
    DynamoDBDisclosures("DisclosuresTable").add("1", haiku(), now=NOW, retention_days=180)
    DynamoDBDisclosures("DisclosuresTable").add("2", haiku(), now=NOW, retention_days=180)
    table = ContactKeyedTable("DisclosuresTable", "disclosures")
    assert table.delete_many(["1", "3"]) == {"1"}
    remaining = boto3.resource("dynamodb").Table("DisclosuresTable").scan()["Items"]
    assert [item["contact_id"] for item in remaining] == ["2"]


def test_full_erasure_deletes_disclosures_and_the_receipt_names_what_it_cannot_reach(tables):
    DynamoDBDisclosures("DisclosuresTable").add("1", haiku(), now=NOW, retention_days=180)
    hubspot = SearchableHubSpot({"1": {"ai_lead_score": "80", "ai_lead_summary": "Fits"},
                                 "2": {"ai_lead_score": "40"}})
    eraser = eraser_from_env(hubspot=hubspot, stores=[MemoryLedger({"1": NOW, "2": NOW})])
    eraser.erase(["1", "2"], ErasureReason.CONSENT_WITHDRAWN, now=NOW)

    assert boto3.resource("dynamodb").Table("DisclosuresTable").scan()["Items"] == []
    receipts = boto3.resource("dynamodb").Table("ErasureReceiptsTable").scan()["Items"]
    by_records = sorted((sorted(r["records"]), r["outside_scope"]) for r in receipts)
    assert by_records == [
        (["disclosures", "ledger"], ["hubspot_property_history", "llm_provider_copies"]),
        (["ledger"], ["hubspot_property_history"])]


def test_withdrawing_only_enrichment_keeps_the_record_of_past_disclosures(tables):
    DynamoDBDisclosures("DisclosuresTable").add("1", haiku(), now=NOW, retention_days=180)
    hubspot = SearchableHubSpot({"1": {"ai_lead_score": "80", "ai_lead_summary": "Fits"}})
    eraser = eraser_from_env(hubspot=hubspot, stores=[MemoryLedger({"1": NOW})])
    eraser.erase(["1"], ErasureReason.ENRICHMENT_CONSENT_WITHDRAWN, scope="enrichment", now=NOW)
    assert len(DynamoDBDisclosures("DisclosuresTable").for_contact("1")) == 1


@pytest.mark.parametrize(("model", "expected"), [
    ("apac.anthropic.claude-haiku-5-5", "APAC cross-Region inference profile may process it "
                                         "in another Asia-Pacific region"),
    ("global.anthropic.claude-haiku-5-5", "any commercial AWS region"),
    ("anthropic.claude-3-haiku-20240307-v1:0", "processed in ap-south-1"),
])
def test_bedrock_disclosures_say_where_the_request_may_be_processed(model, expected):
    found = disclosure_for(LlmSettings(provider="bedrock", bedrock_region="ap-south-1"), model,
                           ["score"])
    assert found.endpoint == "bedrock-runtime.ap-south-1.amazonaws.com"
    assert found.region == "ap-south-1" and expected in found.routing


@pytest.fixture
def lambda_context() -> LongLambdaContext:
    return LongLambdaContext()  # time for the batch's LLM calls


@pytest.fixture
def enrich_with_disclosures(tables, monkeypatch, kit):
    with AnthropicEmulator() as emulator:
        for name, value in {
            "HUBSPOT_TOKEN_SECRET": "hubspot-token", "LLM_PROVIDER": "anthropic",
            "LLM_API_KEY_SECRET": "llm-key", "ANTHROPIC_BASE_URL": emulator.url,
            "LLM_MAX_RETRIES": "0", "LLM_ESCALATE_ON": "invalid,refusal,hot",
        }.items():
            monkeypatch.setenv(name, value)
        app = kit.load_function("enrich")
        hubspot = kit.FakeHubSpot({"1": contact(), "2": contact(message=None)})
        monkeypatch.setattr(app.function, "secret", lambda name: f"key-{name}" if name else None)
        monkeypatch.setattr(app.function, "hubspot_client", lambda token, base_url: hubspot)
        yield app, hubspot, emulator


def test_the_enrich_function_records_each_processor_before_sending(enrich_with_disclosures,
                                                                     lambda_context):
    app, hubspot, emulator = enrich_with_disclosures
    emulator.override_tool_input(CONFIDENT)
    assert app.lambda_handler(sqs_event(queue_body("1"), queue_body("2", tier="hot")),
                              lambda_context) == {"batchItemFailures": []}
    assert [sorted(update) for update in hubspot.updates] == [["1", "2"]]  # one batch write

    [warm] = DynamoDBDisclosures("DisclosuresTable").for_contact("1")
    assert (warm["provider"], warm["model"], warm["endpoint"]) == (
        "anthropic", "claude-haiku-5-5", emulator.url.split("//")[1])
    assert warm["purpose"] == "ai_enrichment" and warm["region"] is None
    assert "message" in warm["fields"] and "email" not in warm["fields"]
    [hot] = DynamoDBDisclosures("DisclosuresTable").for_contact("2")
    assert hot["model"] == "claude-sonnet-5-5" and "message" not in hot["fields"]
    # Names of fields and where they went, never their values.
    stored = str(boto3.resource("dynamodb").Table("DisclosuresTable").scan()["Items"])
    for value in ("VP Sales", "50 seats", "Priya", "acme-widgets"):
        assert value not in stored


def test_nothing_is_sent_when_the_disclosure_cannot_be_recorded(enrich_with_disclosures,
                                                                lambda_context):
    app, hubspot, emulator = enrich_with_disclosures
    boto3.client("dynamodb").delete_table(TableName="DisclosuresTable")
    with pytest.raises(BatchProcessingError):  # every record failed: SQS delivers it again
        app.lambda_handler(sqs_event(queue_body("1")), lambda_context)
    assert emulator.requests == [] and hubspot.updates == []
