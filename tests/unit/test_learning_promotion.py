"""Promotion and rollback (moto: S3, Lambda layers): a missing or corrupt candidate changes
nothing; a good one becomes a new layer version the stack points at; rollback goes back. The
CloudFormation step is checked against botocore's Stubber: exactly ModelLayerArn changes."""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path

import boto3
import pytest
from botocore.stub import ANY, Stubber
from learning_fakes import BUCKET, SHIPPED_MODEL, learning_tables
from moto import mock_aws
from test_retrain import RecordingTarget

from leadscore.learning.promotion import Promoter, PromotionError, StackTarget
from leadscore.learning.registry import ArtifactStore
from leadscore.learning.wiring import check_model
from leadscore.model import load
from leadscore.observability import metrics

SHIPPED = load(SHIPPED_MODEL)


@pytest.fixture
def artifacts(aws_env, monkeypatch) -> ArtifactStore:
    with mock_aws():
        learning_tables(monkeypatch)
        yield ArtifactStore(BUCKET)


def promoter(artifacts, target) -> Promoter:
    return Promoter(artifacts=artifacts, target=target, layer_name="leadscore-model-test",
                    check_model=check_model)


def candidate(artifacts: ArtifactStore, tmp_path: Path, version: str) -> str:
    """The shipped model, saved as candidate `version` (its metadata says so)."""
    import hashlib
    import json

    directory = tmp_path / version
    shutil.copytree(SHIPPED_MODEL, directory)
    metadata = json.loads((directory / "metadata.json").read_text())
    metadata["version"] = version
    (directory / "metadata.json").write_text(json.dumps(metadata))
    assert hashlib.sha256((directory / "model.txt").read_bytes()).hexdigest() == metadata[
        "model_sha256"]
    artifacts.save_candidate(version, directory)
    return version


def layers() -> list[str]:
    return [v["LayerVersionArn"] for v in boto3.client("lambda").list_layer_versions(
        LayerName="leadscore-model-test")["LayerVersions"]]


def test_a_candidate_becomes_a_layer_version_the_stack_points_at(artifacts, tmp_path):
    target = RecordingTarget()
    record = promoter(artifacts, target).promote(candidate(artifacts, tmp_path, "v2"), by="cli")
    assert record.status == "done" and record.version == "v2"
    assert target.calls == [record.layer_version_arn] and layers() == target.calls
    assert record.previous_layer_arn == "" and artifacts.promotions() == [record]


@pytest.mark.parametrize("damage", ["missing", "corrupt", "not a model", "another model"])
def test_a_missing_or_corrupt_candidate_changes_nothing(artifacts, tmp_path, damage):
    key = "candidates/v2/layer.zip"
    if damage != "missing":
        candidate(artifacts, tmp_path, "v2")
    if damage == "corrupt":
        good = artifacts.layer_bytes("v2")
        body = good[:len(good) // 2]  # a truncated upload
    elif damage == "not a model":
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("model/model.txt", "not lightgbm")
        body = buffer.getvalue()
    elif damage == "another model":
        candidate(artifacts, tmp_path, "v3")
        body = artifacts.layer_bytes("v3")
    if damage != "missing":
        boto3.client("s3").put_object(Bucket=BUCKET, Key=key, Body=body)

    target = RecordingTarget()
    record = promoter(artifacts, target).promote("v2", by="cli")
    assert record.status == "failed" and record.reason
    assert target.calls == [] and layers() == []  # nothing published, nothing re-pointed
    expected = {"missing": "no candidate 'v2'", "corrupt": "does not hold a working model",
                "not a model": "does not hold a working model",
                "another model": "holds model v3"}[damage]
    assert expected in record.reason
    assert artifacts.promotions()[0].status == "failed"
    assert metrics.metric_set["PromotionFailures"]["Value"] == [1.0]  # the alarm's metric


def test_rollback_goes_back_one_promotion_or_to_the_built_model(artifacts, tmp_path):
    target = RecordingTarget()
    first = promoter(artifacts, target).promote(candidate(artifacts, tmp_path, "v2"), by="cli")
    second = promoter(artifacts, target).promote(candidate(artifacts, tmp_path, "v3"), by="cli")
    assert second.previous_layer_arn == first.layer_version_arn
    assert second.previous_version == "v2"

    back = promoter(artifacts, target).rollback(by="cli")
    assert back.status == "done" and target.layer_arn == first.layer_version_arn
    assert back.version == "v2"
    built = promoter(artifacts, target).rollback(by="cli", to_built=True)
    assert built.status == "done" and target.layer_arn == "" and built.version is None

    nothing = promoter(artifacts, target).rollback(by="cli")
    assert nothing.status == "failed" and "nothing to roll back to" in nothing.reason


# ----------------------------------------------------------------------------- CloudFormation


STACK = "leadscore"
STACK_ID = "arn:aws:cloudformation:ap-south-1:123456789012:stack/leadscore/1"
LAYER = "arn:aws:lambda:ap-south-1:123456789012:layer:leadscore-model-dev:7"


def described(status="UPDATE_COMPLETE", layer=""):
    return {"Stacks": [{"StackName": STACK, "StackId": STACK_ID, "StackStatus": status,
                        "CreationTime": "2026-01-01T00:00:00Z",
                        "Parameters": [{"ParameterKey": "Stage", "ParameterValue": "dev"},
                                       {"ParameterKey": "RetentionDays",
                                        "ParameterValue": "90"},
                                       {"ParameterKey": "ModelLayerArn",
                                        "ParameterValue": layer}]}]}


def test_the_change_set_changes_model_layer_arn_and_nothing_else():
    client = boto3.client("cloudformation", region_name="ap-south-1",
                          aws_access_key_id="x", aws_secret_access_key="x")
    stub = Stubber(client)
    stub.add_response("describe_stacks", described(), {"StackName": STACK})
    stub.add_response("create_change_set", {"Id": "cs-1", "StackId": STACK_ID}, {
        "StackName": STACK, "ChangeSetName": ANY, "ChangeSetType": "UPDATE",
        "UsePreviousTemplate": True,
        "Parameters": [{"ParameterKey": "Stage", "UsePreviousValue": True},
                       {"ParameterKey": "RetentionDays", "UsePreviousValue": True},
                       {"ParameterKey": "ModelLayerArn", "ParameterValue": LAYER}],
        "Capabilities": ["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"], "Description": ANY})
    stub.add_response("describe_change_set", {"Status": "CREATE_PENDING", "Changes": []},
                      {"StackName": STACK, "ChangeSetName": ANY})
    stub.add_response("describe_change_set", {"Status": "CREATE_COMPLETE", "Changes": []},
                      {"StackName": STACK, "ChangeSetName": ANY})
    stub.add_response("execute_change_set", {}, {"StackName": STACK, "ChangeSetName": ANY})
    stub.add_response("describe_stacks", described("UPDATE_IN_PROGRESS"), {"StackName": STACK})
    stub.add_response("describe_stacks", described("UPDATE_COMPLETE", LAYER),
                      {"StackName": STACK})
    with stub:
        StackTarget(STACK, client, sleep=lambda _: None).point_to(LAYER, None, lambda: 900)
    stub.assert_no_pending_responses()


def test_a_rolled_back_update_is_a_failed_promotion():
    client = boto3.client("cloudformation", region_name="ap-south-1",
                          aws_access_key_id="x", aws_secret_access_key="x")
    stub = Stubber(client)
    stub.add_response("describe_stacks", described(), {"StackName": STACK})
    stub.add_response("create_change_set", {"Id": "cs-1"}, None)
    stub.add_response("describe_change_set", {"Status": "CREATE_COMPLETE", "Changes": []}, None)
    stub.add_response("execute_change_set", {}, None)
    failed = described("UPDATE_ROLLBACK_COMPLETE")
    failed["Stacks"][0]["StackStatusReason"] = "Layer version does not exist"
    stub.add_response("describe_stacks", failed, {"StackName": STACK})
    with stub, pytest.raises(PromotionError, match=r"UPDATE_ROLLBACK_COMPLETE.*does not exist"):
        StackTarget(STACK, client, sleep=lambda _: None).point_to(LAYER, None, lambda: 900)


def test_a_busy_stack_is_not_touched():
    client = boto3.client("cloudformation", region_name="ap-south-1",
                          aws_access_key_id="x", aws_secret_access_key="x")
    stub = Stubber(client)
    stub.add_response("describe_stacks", described("UPDATE_IN_PROGRESS"), {"StackName": STACK})
    with stub, pytest.raises(PromotionError, match="busy"):
        StackTarget(STACK, client).point_to(LAYER, None, lambda: 900)
    stub.assert_no_pending_responses()
