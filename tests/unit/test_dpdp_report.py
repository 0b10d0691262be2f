"""`leadscore dpdp report` / `lookup` over receipts in DynamoDB (moto)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
from dpdp_fakes import MemoryLedger, SearchableHubSpot
from fakes import create_table
from moto import mock_aws

from leadscore.cli import main
from leadscore.cli.dpdp_report import build_report, period_of
from leadscore.dpdp.erasure import DynamoDBReceipts, Eraser, ErasureReason

KEY = "report-test-key"
JAN = datetime(2026, 1, 30, 10, 0, tzinfo=UTC)
FEB = datetime(2026, 2, 2, 10, 0, tzinfo=UTC)


def test_period_keys():
    assert period_of("2026-01-30T10:00:00.000Z", "day") == "2026-01-30"
    assert period_of("2026-01-30T10:00:00.000Z", "month") == "2026-01"
    assert period_of("2026-01-01T00:00:00.000Z", "week") == "2026-W01"
    assert period_of("2025-12-29T00:00:00.000Z", "week") == "2026-W01"  # ISO week-year


def test_build_report_counts_by_reason_and_period():
    items = [
        {"reason": "consent_withdrawn", "erased_at": "2026-01-30T10:00:00.000Z",
         "scope": "all", "records": ["ledger"]},
        {"reason": "enrichment_consent_withdrawn", "erased_at": "2026-01-31T10:00:00.000Z",
         "scope": "enrichment", "records": []},
        {"reason": "retention_expired", "erased_at": "2026-02-02T10:00:00.000Z",
         "scope": "all", "records": ["ledger", "hubspot_contact"]},
    ]
    report = build_report(items, "month")
    assert report.counts == {"2026-01": {"consent_withdrawn": 1,
                                         "enrichment_consent_withdrawn": 1},
                             "2026-02": {"retention_expired": 1}}
    assert (report.total, report.enrichment_only, report.ledger_records_deleted,
            report.hubspot_contacts_deleted) == (3, 1, 2, 1)
    table = report.table()
    assert "2026-01" in table and "retention_expired" in table
    assert table.splitlines()[-2].split()[-1] == "3"
    assert "No erasure receipts" in build_report([], "day").table()


def _seed(aws_env):
    create_table("ErasureReceiptsTable", "Receipts")
    boto3.client("secretsmanager").create_secret(Name="receipt-key", SecretString=KEY)
    hubspot = SearchableHubSpot({"1": {"ai_lead_score": "80"}, "2": {"ai_lead_score": "20"}})
    eraser = Eraser(hubspot=hubspot, stores=[MemoryLedger({"1": JAN})],
                    receipts=DynamoDBReceipts("Receipts"), receipt_key=KEY.encode())
    eraser.erase(["1"], ErasureReason.CONSENT_WITHDRAWN, now=JAN)
    eraser.erase(["2"], ErasureReason.PRIVACY_DELETION, now=FEB)
    eraser.erase(["1"], ErasureReason.RETENTION_EXPIRED, now=FEB + timedelta(days=1))


def test_cli_report_and_window(aws_env, capsys):
    with mock_aws():
        _seed(aws_env)
        assert main(["dpdp", "report", "--table", "Receipts", "--by", "month", "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["totals"] == {"consent_withdrawn": 1, "privacy_deletion": 1,
                                    "retention_expired": 1}
        assert main(["dpdp", "report", "--table", "Receipts", "--since", "2026-02-01",
                     "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["total"] == 2
        assert main(["dpdp", "report", "--table", "Receipts", "--by", "day"]) == 0
        assert "2026-01-30" in capsys.readouterr().out


def test_cli_lookup_finds_one_contacts_receipts_with_the_key(aws_env, capsys):
    with mock_aws():
        _seed(aws_env)
        assert main(["dpdp", "lookup", "--table", "Receipts", "--contact-id", "1",
                     "--key-secret", "receipt-key"]) == 0
        lines = capsys.readouterr().out.splitlines()
        receipts = [line for line in lines if not line.startswith(" ")]
        assert [line.split()[1] for line in receipts] == ["consent_withdrawn",
                                                          "retention_expired"]
        assert "ai_lead_score" in lines[0] and "ledger record" in lines[0]
        # Clearing HubSpot properties leaves their history: the receipt says so.
        assert "not reached: HubSpot keeps the earlier values" in lines[1]
        assert main(["dpdp", "lookup", "--table", "Receipts", "--contact-id", "3",
                     "--key-secret", "receipt-key"]) == 0
        assert "no erasure receipts" in capsys.readouterr().out
