"""`leadscore monitor report`: the CLI against a snapshot table in moto (a table name, a deployed
stack's monitor function, a local stack's JSON line), the JSON's figures and the HTML's
sections; the HTML in a real browser is tests/integration/test_monitor_report_html.py."""

from __future__ import annotations

import json
import random
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from fakes import create_table
from moto import mock_aws

from leadscore.cli import main
from leadscore.cli.monitor_report import REPORT_HTML, REPORT_JSON, from_deployed_stack
from leadscore.cli.synthetic import generate_contacts
from leadscore.model import load
from leadscore_local.snapshot_seed import as_of, never_seen, put_items, snapshot_items, spread

ROOT = Path(__file__).resolve().parents[2]
MODEL_DIR = ROOT / "layers/model/model"
NOW = datetime(2026, 3, 1, 6, 0, tzinfo=UTC)
CHARTS = ["chart-feature-drift", "chart-score-distribution", "chart-tier-conversion",
          "chart-auc-trend", "chart-conversion-trend", "chart-shadow"]


def seeded_items(*, shifted: bool = True) -> list[dict]:
    """A portal's stored leads: the last week from a channel and country the model never saw
    (or like training), and 150 days of older leads with outcomes, half of them shadowed."""
    model = load(MODEL_DIR)
    pool = generate_contacts(6000, seed=31, now=NOW)
    items = []
    for n, start, end, seed, shift in ((400, NOW - timedelta(days=7), NOW, 1, shifted),
                                       (2400, NOW - timedelta(days=150),
                                        NOW - timedelta(days=7), 2, False)):
        contacts = random.Random(seed).sample(pool, n)
        contacts = never_seen(contacts, seed) if shift else contacts
        times = spread(n, start, end, seed)
        contacts = [dict(c, hs_object_id=f"{seed}-{i}")
                    for i, c in enumerate(as_of(model, contacts, NOW, times))]
        items += snapshot_items(model, contacts, times, portal_id=7, now=NOW, seed=seed)
    for item in items[::2]:
        item |= {"shadow_version": "challenger-1", "shadow_score": max(0, item["score"] - 3),
                 "shadow_probability": item["probability"], "shadow_tier": item["tier"]}
    return items


@pytest.fixture
def table(aws_env):
    with mock_aws():
        create_table("FeatureSnapshotTable", "snapshots")
        yield boto3.resource("dynamodb").Table("snapshots")


def run(*args: str) -> int:
    return main(["monitor", "report", "--model", str(MODEL_DIR), "--at", NOW.isoformat(),
                 *args])


def test_report_from_a_table_has_every_section(table, tmp_path, capsys):
    put_items(table, seeded_items())
    assert run("--table", "snapshots", "--out", str(tmp_path)) == 0
    printed = capsys.readouterr().out
    assert "last 7 days: 400 leads, measured" in printed

    figures = json.loads((tmp_path / REPORT_JSON).read_text())
    week = figures["drift"][0]
    assert (week["days"], week["leads"], week["status"]) == (7, 400, "measured")
    assert week["max_psi"] >= 0.25 and week["max_feature"] in {"hs_analytics_source",
                                                                "country"}
    assert {f["name"] for f in week["features"]} >= {"country", "jobtitle", "email_free_mail"}
    assert len(week["score"]["bins"]) == 10
    assert figures["accuracy"]["status"] == "measured"
    assert figures["accuracy"]["realized_auc"] > 0.6
    assert [t["tier"] for t in figures["accuracy"]["tiers"]] == ["hot", "warm", "cold",
                                                                 "disqualified"]
    closed = [p for p in figures["trend"] if p["window_closed"]]
    assert closed and all(p["realized_auc"] for p in closed)
    [shadow] = figures["shadow"]
    assert shadow["challenger_version"] == "challenger-1" and shadow["leads"] == 1400
    assert shadow["champion_auc"] == shadow["challenger_auc"]  # same probabilities

    page = (tmp_path / REPORT_HTML).read_text()
    assert re.findall(r'<svg id="([^"]+)"', page) == CHARTS
    assert "<script" not in page and "http://" not in page.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")
    for heading in ("Drift per feature", "Realised accuracy", "By week",
                    "Champion vs shadow challenger"):
        assert f"<h2>{heading}</h2>" in page


def test_empty_table_still_writes_a_report_that_says_why(table, tmp_path, capsys):
    assert run("--table", "snapshots", "--out", str(tmp_path)) == 0
    figures = json.loads((tmp_path / REPORT_JSON).read_text())
    assert [w["status"] for w in figures["drift"]] == ["no_leads", "no_leads"]
    assert figures["accuracy"]["status"] == "no_outcomes"
    page = (tmp_path / REPORT_HTML).read_text()
    assert re.findall(r'<svg id="([^"]+)"', page) == CHARTS
    assert "no lead was first scored in this window" in page


def test_recent_leads_of_another_model_are_pointed_out(table, tmp_path, capsys):
    items = seeded_items(shifted=False)
    for item in items:
        item["model_version"] = "some-other-model"
    put_items(table, items)
    assert run("--table", "snapshots", "--out", str(tmp_path)) == 0
    assert "scored by some-other-model" in capsys.readouterr().err


def test_settings_and_table_come_from_the_deployed_monitor(aws_env):
    with mock_aws():
        role = boto3.client("iam").create_role(
            RoleName="monitor", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        template = {"Resources": {"ModelMonitorFunction": {
            "Type": "AWS::Lambda::Function",
            "Properties": {"Runtime": "python3.12", "Handler": "app.lambda_handler",
                           "Role": role, "Code": {"ZipFile": "def lambda_handler(e, c): pass"},
                           "Environment": {"Variables": {
                               "FEATURE_SNAPSHOT_TABLE": "prod-snapshots",
                               "OUTCOME_WINDOW_DAYS": "45", "MONITOR_MIN_LEADS": "500",
                               "MONITOR_AUC_DROP": "0.03"}}}}}}
        boto3.client("cloudformation").create_stack(StackName="leadscore",
                                                    TemplateBody=json.dumps(template))
        target = from_deployed_stack("leadscore", "ap-south-1")
    assert target.table == "prod-snapshots"
    assert target.settings == {"outcome_window_days": 45, "min_leads": 500, "auc_drop": 0.03}


def test_local_stack_line_and_clear_errors(table, tmp_path, capsys):
    put_items(table, seeded_items()[:50])
    line = tmp_path / "stack.json"
    line.write_text(json.dumps({"aws_endpoint_url": None, "resources": {
        "FeatureSnapshotTable": {"Ref": "snapshots"}}}) + "\n")
    assert run("--local-stack", str(line), "--out", str(tmp_path / "r")) == 0
    assert json.loads((tmp_path / "r" / REPORT_JSON).read_text())["snapshots_read"] > 0

    line.write_text('{"webhook_url": "x"}\n')
    assert run("--local-stack", str(line), "--out", str(tmp_path / "r2")) == 2
    assert "not the JSON line of `leadscore local up`" in capsys.readouterr().err
    assert main(["monitor", "report", "--table", "snapshots", "--model", str(tmp_path),
                 "--out", str(tmp_path / "r3")]) == 2
    assert "is not a model directory" in capsys.readouterr().err
