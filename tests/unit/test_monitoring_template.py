"""template.yaml's model monitoring (issue 13): the monitor function, the shadow challenger's
permissions, the artifacts bucket and snapshot table it reads, the alarms' thresholds and the
alarm-started retrain, each shaped as docs/CONTRACTS.md says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_template import as_list, statements

from leadscore_local.cfn_yaml import load_template

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(ROOT / "template.yaml")


@pytest.fixture(scope="module")
def resources(template) -> dict[str, Any]:
    return template["Resources"]


def sids(resource: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for _, s in statements(resource) if "Sid" in s}


def test_monitor_runs_alone_and_only_reads_the_snapshots(resources):
    monitor = resources["ModelMonitorFunction"]["Properties"]
    assert monitor["ReservedConcurrentExecutions"] == 1  # two runs would emit twice
    assert monitor["Timeout"] == 900
    found = list(statements(resources["ModelMonitorFunction"]))
    assert [(as_list(s["Action"]), s["Resource"]) for _, s in found] == [
        (["dynamodb:Scan"], {"Fn::GetAtt": ["FeatureSnapshotTable", "Arn"]})]
    env = monitor["Environment"]["Variables"]
    assert env["FEATURE_SNAPSHOT_TABLE"] == {"Ref": "FeatureSnapshotTable"}
    assert env["OUTCOME_WINDOW_DAYS"] == {"Ref": "OutcomeWindowDays"}


def test_score_function_may_read_the_challenger_and_record_its_scores_only(resources):
    score = resources["ScoreFunction"]["Properties"]
    env = score["Environment"]["Variables"]
    assert env["SHADOW_CHALLENGER_PARAMETER"] == {"Ref": "ShadowChallengerParameter"}
    assert env["MODEL_ARTIFACTS_BUCKET"] == {"Ref": "ModelArtifactsBucket"}
    found = sids(resources["ScoreFunction"])
    assert as_list(found["FindShadowChallenger"]["Action"]) == ["ssm:GetParameter"]
    assert "${ShadowChallengerParameter}" in found["FindShadowChallenger"]["Resource"]["Fn::Sub"]
    assert as_list(found["ReadShadowChallengerFiles"]["Action"]) == ["s3:GetObject"]
    assert found["ReadShadowChallengerFiles"]["Resource"] == {
        "Fn::Sub": "${ModelArtifactsBucket.Arn}/candidates/*"}
    # Its scores go onto the snapshot with the UpdateItem the learning loop's writes use.
    assert "dynamodb:UpdateItem" in as_list(found["FeatureSnapshots"]["Action"])
    assert resources["ShadowChallengerParameter"]["Properties"]["Value"] == "none"


def test_artifacts_bucket_is_private_encrypted_versioned_and_tls_only(resources):
    bucket = resources["ModelArtifactsBucket"]["Properties"]
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    policy = resources["ModelArtifactsBucketTlsOnlyPolicy"]["Properties"]["PolicyDocument"]
    [deny] = policy["Statement"]
    assert deny["Effect"] == "Deny"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


@pytest.mark.parametrize(("alarm", "parameter", "default"), [
    ("ModelFeatureDriftAlarm", "ModelDriftAlarmPsi", 0.25),
    ("ModelAccuracyAlarm", "ModelAccuracyAlarmAucDrop", 0.05),
    ("ModelConversionShiftAlarm", "ModelConversionAlarmShift", 0.1)])
def test_model_alarm_thresholds_are_the_issues_and_configurable(template, alarm, parameter,
                                                               default):
    properties = template["Resources"][alarm]["Properties"]
    assert properties["Threshold"] == {"Ref": parameter}
    assert template["Parameters"][parameter]["Default"] == default
    assert properties["ComparisonOperator"] == "GreaterThanThreshold"


def test_drift_alarm_needs_two_consecutive_days(resources):
    drift = resources["ModelFeatureDriftAlarm"]["Properties"]
    assert (drift["Period"], drift["EvaluationPeriods"], drift["DatapointsToAlarm"]) == (
        86400, 2, 2)


def test_alarms_start_the_retrain_unless_turned_off(template, resources):
    assert template["Parameters"]["RetrainOnModelAlarm"]["Default"] == "true"
    assert template["Conditions"]["RetrainOnModelAlarms"] == {
        "Fn::Equals": [{"Ref": "RetrainOnModelAlarm"}, "true"]}
    rule = resources["ModelAlarmRetrainRule"]
    permission = resources["ModelAlarmRetrainPermission"]
    assert rule["Condition"] == permission["Condition"] == "RetrainOnModelAlarms"
    pattern = rule["Properties"]["EventPattern"]
    assert pattern["source"] == ["aws.cloudwatch"]
    assert pattern["detail-type"] == ["CloudWatch Alarm State Change"]
    assert pattern["detail"] == {"state": {"value": ["ALARM"]}}
    assert {r["Fn::GetAtt"][0] for r in pattern["resources"]} == {
        "ModelFeatureDriftAlarm", "ModelAccuracyAlarm", "ModelConversionShiftAlarm"}
    [target] = rule["Properties"]["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["ModelRetrainFunction", "Arn"]}
    assert permission["Properties"]["FunctionName"] == {"Ref": "ModelRetrainFunction"}
    assert permission["Properties"]["Principal"] == "events.amazonaws.com"
    assert permission["Properties"]["SourceArn"] == {"Fn::GetAtt": ["ModelAlarmRetrainRule",
                                                                    "Arn"]}


def test_the_retrain_sets_the_shadow_challenger_parameter_only(resources):
    retrain = resources["ModelRetrainFunction"]["Properties"]
    env = retrain["Environment"]["Variables"]
    assert env["SHADOW_CHALLENGER_PARAMETER"] == {"Ref": "ShadowChallengerParameter"}
    found = sids(resources["ModelRetrainFunction"])
    assert as_list(found["SetShadowChallenger"]["Action"]) == ["ssm:PutParameter"]
    # The same ARN the score function reads.
    assert found["SetShadowChallenger"]["Resource"] == sids(
        resources["ScoreFunction"])["FindShadowChallenger"]["Resource"]
