"""ConsentSweepFunction and RetentionPurgeFunction in-process against moto (real boto3: ledger,
receipts table, Secrets Manager), with an in-memory HubSpot injected through the module seams."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from dpdp_fakes import SearchableHubSpot
from fakes import create_table
from moto import mock_aws

from leadscore.dpdp.erasure import subject_hash
from leadscore.dpdp.sweep import SsmSweepCursor
from leadscore.hubspot.properties import AI_PROPERTIES
from leadscore.scoring.ledger import DynamoDBLedger, LedgerEntry
from leadscore.timestamps import SIMULATED_CLOCK_SETTING
from leadscore_local.cfn_yaml import load_template

PROP = "dpdp_consent_purposes"
RECEIPT_KEY = "handler-test-receipt-key"
NOW = datetime(2026, 6, 1, 21, 30, tzinfo=UTC)


@pytest.fixture
def context(lambda_context):
    """A scheduled invocation with the template's 900 s timeout ahead of it (the shared fake
    context has 30 s left, less than the jobs' safety margin)."""
    lambda_context.get_remaining_time_in_millis = lambda: 900_000
    return lambda_context


@pytest.fixture
def aws(aws_env, monkeypatch):
    """The ledger, the receipts table and the two secrets as template.yaml wires them."""
    with mock_aws():
        create_table("LedgerTable")
        create_table("ErasureReceiptsTable")
        secrets = boto3.client("secretsmanager")
        secrets.create_secret(Name="hubspot-token", SecretString="pat-test")
        secrets.create_secret(Name="receipt-key", SecretString=RECEIPT_KEY)
        for name, value in {
            "HUBSPOT_TOKEN_SECRET": "hubspot-token", "HUBSPOT_BASE_URL": "http://hubspot.invalid",
            "LEDGER_TABLE": "LedgerTable", "RETENTION_DAYS": "180",
            "ERASURE_RECEIPTS_TABLE": "ErasureReceiptsTable",
            "ERASURE_RECEIPT_KEY_SECRET": "receipt-key", "AUDIT_RETENTION_DAYS": "1095",
        }.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("PURGE_INACTIVE_CONTACTS", raising=False)
        yield


def _seed_ledger(scored_at: dict[str, datetime]):
    DynamoDBLedger("LedgerTable").put_many(
        LedgerEntry.for_score(contact_id=cid, score=50, probability=0.5, tier="warm",
                              model_version="m1", scored_at=at, retention_days=180)
        for cid, at in scored_at.items())


def _ledger_ids():
    return {item["contact_id"]
            for item in boto3.resource("dynamodb").Table("LedgerTable").scan()["Items"]}


def _receipts():
    return boto3.resource("dynamodb").Table("ErasureReceiptsTable").scan()["Items"]


def _scored(consent, scored_at):
    props = dict.fromkeys(AI_PROPERTIES, "")
    props.update(ai_lead_score="50", ai_lead_tier="warm", ai_lead_summary="Fits",
                 ai_lead_scored_at=scored_at.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                 email="lead@example.in", firstname="Asha")
    props[PROP] = consent
    return props


def _module(kit, name, hubspot):
    module = kit.load_function(name)
    made = []

    def factory(token, base_url, budget=None):
        made.append((token, base_url))
        return hubspot

    module.function.hubspot_client_factory = factory
    module.made = made
    return module


def test_consent_sweep_handler(aws, kit, context, monkeypatch):
    monkeypatch.setenv(SIMULATED_CLOCK_SETTING, "1")  # as in the local stack
    hubspot = SearchableHubSpot({"1": _scored("", NOW), "2": _scored("lead_scoring", NOW),
                                 "3": _scored("lead_scoring;ai_enrichment", NOW)})
    _seed_ledger(dict.fromkeys(("1", "2", "3"), NOW - timedelta(days=1)))
    module = _module(kit, "consent_sweep", hubspot)

    result = module.lambda_handler({"time": "2026-06-01T21:30:00Z"}, context)

    assert module.made == [("pat-test", "http://hubspot.invalid")]
    assert (result["examined"], result["erased"], result["enrichment_cleared"],
            result["failed"], result["complete"]) == (3, 1, 1, 0, True)
    assert _ledger_ids() == {"2", "3"}
    assert hubspot.contacts["1"]["ai_lead_score"] == ""
    assert hubspot.contacts["2"]["ai_lead_summary"] == ""
    assert hubspot.contacts["3"]["ai_lead_summary"] == "Fits"
    receipts = {item["subject"]: item for item in _receipts()}
    assert set(receipts) == {subject_hash(RECEIPT_KEY.encode(), cid) for cid in ("1", "2")}
    one = receipts[subject_hash(RECEIPT_KEY.encode(), "1")]
    assert (one["reason"], one["scope"], one["records"]) == ("consent_sweep", "all", ["ledger"])
    assert one["erased_at"] == "2026-06-01T21:30:00.000Z"  # the schedule event's time


def test_consent_sweep_handler_resumes_from_its_ssm_cursor(aws, kit, context, monkeypatch):
    ssm = boto3.client("ssm")
    ssm.put_parameter(Name="/leadscore/test/consent-sweep/next-start", Value="0", Type="String")
    monkeypatch.setenv("CONSENT_SWEEP_CURSOR_PARAMETER", "/leadscore/test/consent-sweep/next-start")
    hubspot = SearchableHubSpot({str(i): _scored("", NOW) for i in range(1, 251)})  # withdrawn
    module = _module(kit, "consent_sweep", hubspot)
    remaining = iter([900_000])  # one search page, then only time for the ledger pass
    context.get_remaining_time_in_millis = lambda: next(remaining, 150_000)

    first = module.lambda_handler({"time": "2026-06-01T21:30:00Z"}, context)
    cursor = ssm.get_parameter(Name="/leadscore/test/consent-sweep/next-start")["Parameter"]
    assert (first["examined"], first["complete"], cursor["Value"]) == (200, False, "200")

    context.get_remaining_time_in_millis = lambda: 900_000
    second = module.lambda_handler({"time": "2026-06-02T21:30:00Z"}, context)
    cursor = ssm.get_parameter(Name="/leadscore/test/consent-sweep/next-start")["Parameter"]
    assert (second["resumed_after"], second["examined"], second["complete"]) == (200, 50, True)
    assert cursor["Value"] == "0"
    assert first["erased"] + second["erased"] == 250


def test_retention_purge_handler_uses_the_schedule_time_only_where_simulated(
        aws, kit, context, monkeypatch):
    monkeypatch.setenv(SIMULATED_CLOCK_SETTING, "1")  # as in the local stack
    old, recent = NOW - timedelta(days=200), NOW - timedelta(days=10)
    hubspot = SearchableHubSpot({
        "1": _scored("lead_scoring", old),  # expired
        "2": _scored("lead_scoring", recent),  # within retention
        "4": _scored("lead_scoring", recent),  # re-scored after its ledger item was written
    })  # "3" no longer exists in HubSpot
    _seed_ledger({"1": old, "2": recent, "3": old, "4": old})
    module = _module(kit, "retention_purge", hubspot)

    result = module.lambda_handler({"time": NOW.isoformat()}, context)

    assert (result["expired"], result["erased"], result["ledger_only"],
            result["kept_rescored"], result["failed"]) == (3, 1, 1, 1, 0)
    assert _ledger_ids() == {"2", "4"}
    assert all(hubspot.contacts["1"][p] == "" for p in AI_PROPERTIES)
    assert hubspot.contacts["2"]["ai_lead_score"] == "50"
    assert {item["reason"] for item in _receipts()} == {"retention_expired"}
    assert len(_receipts()) == 2


def test_retention_purge_handler_ignores_a_callers_time_when_deployed(aws, kit, context):
    """A forged schedule event with a far-future `time` must not make the purge erase scores
    that are only days old: deployed functions use the real clock."""
    recent = datetime.now(UTC) - timedelta(days=10)
    hubspot = SearchableHubSpot({"1": _scored("lead_scoring", recent)})
    _seed_ledger({"1": recent})
    module = _module(kit, "retention_purge", hubspot)

    result = module.lambda_handler({"time": "2099-01-01T00:00:00Z"}, context)

    assert (result["expired"], result["erased"]) == (0, 0)
    assert _ledger_ids() == {"1"}
    assert _receipts() == []


def test_retention_purge_report_mode_deletes_nothing(aws, kit, context, monkeypatch, caplog):
    monkeypatch.setenv("PURGE_INACTIVE_CONTACTS", "report")
    stale = (NOW - timedelta(days=400)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    hubspot = SearchableHubSpot({"30": {PROP: "", "email": "gone@old.in",
                                        "lastmodifieddate": stale}})
    module = _module(kit, "retention_purge", hubspot)
    module.function.gdpr_deleter_factory = lambda *args: pytest.fail("report mode must not delete")

    result = module.lambda_handler({"time": NOW.isoformat()}, context)

    assert (result["inactive_found"], result["inactive_ids"]) == (1, ["30"])
    assert "30" in hubspot.contacts and not _receipts()
    # The dry-run report is the log line: ids to review, never the contacts' data.
    [done] = [r for r in caplog.records if r.getMessage() == "Retention purge done"]
    assert done.inactive_ids == ["30"]
    assert "gone@old.in" not in caplog.text


def test_retention_purge_delete_mode_gdpr_deletes_with_the_token(aws, kit, context,
                                                                 monkeypatch):
    monkeypatch.setenv("PURGE_INACTIVE_CONTACTS", "delete")
    stale = (NOW - timedelta(days=400)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    hubspot = SearchableHubSpot({"30": {PROP: "", "lastmodifieddate": stale}})
    module = _module(kit, "retention_purge", hubspot)
    deleters = []

    def deleter(token, base_url):
        deleters.append((token, base_url))
        return hubspot

    module.function.gdpr_deleter_factory = deleter
    result = module.lambda_handler({"time": NOW.isoformat()}, context)
    assert result["inactive_deleted"] == 1 and deleters == [("pat-test", "http://hubspot.invalid")]
    assert "30" not in hubspot.contacts
    [receipt] = _receipts()
    assert receipt["records"] == ["hubspot_contact"]


def test_handlers_refuse_to_run_without_the_receipts_table(aws, kit, context,
                                                           monkeypatch):
    monkeypatch.delenv("ERASURE_RECEIPTS_TABLE")
    module = _module(kit, "consent_sweep", SearchableHubSpot())
    with pytest.raises(ValueError, match="ERASURE_RECEIPTS_TABLE"):
        module.lambda_handler({}, context)


def test_sweep_metrics_are_counts_only(aws, kit, context, capsys):
    hubspot = SearchableHubSpot({"1": _scored("", NOW)})
    _seed_ledger({"1": NOW - timedelta(days=1)})
    _module(kit, "consent_sweep", hubspot).lambda_handler({}, context)
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines()
           if '"_aws"' in line]
    [metrics_blob] = emf
    assert metrics_blob["ConsentSweepErasures"] == [1.0]
    assert metrics_blob["ErasureReceipts"] == [1.0]
    assert "lead@example.in" not in json.dumps(metrics_blob)


@pytest.mark.parametrize("logical_id", ["ConsentSweepFunction", "RetentionPurgeFunction"])
def test_daily_jobs_may_erase_ledger_items_but_never_write_one(logical_id):
    template = load_template(Path(__file__).resolve().parents[2] / "template.yaml")
    policies = template["Resources"][logical_id]["Properties"]["Policies"]
    assert not [p for p in policies if "DynamoDBCrudPolicy" in p]  # no blanket CRUD
    grants: dict[str, set[str]] = {}
    for policy in policies:
        for statement in policy.get("Statement", []):
            if "Fn::GetAtt" in statement["Resource"]:
                table = statement["Resource"]["Fn::GetAtt"][0]
                grants.setdefault(table, set()).update(statement["Action"])
            else:  # only the sweep's resume point, in SSM
                assert logical_id == "ConsentSweepFunction"
                assert statement["Action"] == ["ssm:GetParameter", "ssm:PutParameter"]
                assert "${ConsentSweepCursorParameter}" in statement["Resource"]["Fn::Sub"]
    assert grants["LedgerTable"] == {"dynamodb:Scan", "dynamodb:BatchGetItem",
                                     "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"}
    assert grants["ErasureReceiptsTable"] == {"dynamodb:PutItem", "dynamodb:BatchWriteItem"}


def test_ssm_cursor_reads_a_missing_or_garbled_value_as_the_first_contact(aws):
    cursor = SsmSweepCursor("/leadscore/test/consent-sweep/next-start")
    assert cursor.load() == 0  # no parameter yet
    cursor.save(4000)
    assert cursor.load() == 4000
    boto3.client("ssm").put_parameter(Name=cursor.name, Value="garbled", Type="String",
                                      Overwrite=True)
    assert cursor.load() == 0
