"""Promotion that keeps "the model comes from a Lambda layer" true and the stack the truth.

Promoting candidate V:
1. check its `layer.zip` in ModelArtifactsBucket: a valid zip whose `model/` loads as model V
   and scores a contact (a corrupt or missing artifact stops here: nothing changed);
2. publish it as a new version of the layer `leadscore-model-<stage>` (Lambda reads the zip
   from S3);
3. point the stack's `ModelLayerArn` parameter at that version: a CloudFormation change set
   on this stack (its previous template, every other parameter's previous value) executed
   and waited for. CloudFormation updates the model functions' layers, or rolls the whole
   update back: the functions are never left without a working model;
4. record the promotion in the bucket (`promotions/`).

A later `sam deploy` keeps the promoted model: SAM CLI sends `UsePreviousValue` for every
parameter it is not given (samcli/commands/deploy/deploy_context.py, `merge_parameters`),
unless `ModelLayerArn` is among the parameter overrides (`sam deploy --guided` prompts every
parameter with its template default and saves the answers: enter the value `leadscore model
list` shows, or the built model comes back).

Rolling back points `ModelLayerArn` at the layer in use before the last promotion (or at the
built ModelLayer, `to_built`). The local stack has no CloudFormation: there the stack step is
its admin API (`LocalStackTarget`, a setting only the local stack sets).

No numpy/lightgbm here: the model check is handed in (`check_model`).
"""

from __future__ import annotations

import io
import json
import tempfile
import time
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from leadscore.learning.registry import ArtifactStore, CandidateMissing, PromotionRecord
from leadscore.observability import count, logger
from leadscore.timestamps import iso_millis

MODEL_LAYER_PARAMETER = "ModelLayerArn"
LAYER_RUNTIMES = ["python3.12"]
POLL_SECONDS = 5.0
MARGIN_SECONDS = 30.0


class PromotionError(Exception):
    """The promotion did not happen; the model in use is unchanged (the reason says why)."""


class ModelLayerTarget(Protocol):
    """Where the model functions get their model layer from: the stack, or the local stack."""

    def current(self) -> str:
        """The layer version ARN in use ("" = the built ModelLayer)."""
        ...

    def point_to(self, layer_arn: str, source: tuple[str, str] | None,
                 seconds_left: Callable[[], float]) -> None:
        """Make the model functions use `layer_arn` ("" = the built one); `source` is the
        (bucket, key) of its zip. Raises PromotionError when that did not happen."""
        ...


@dataclass
class StackTarget:
    """The deployed stack: `ModelLayerArn` changed by a change set, nothing else."""

    stack_name: str
    cloudformation: Any = None
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self) -> None:
        self.cloudformation = self.cloudformation or boto3.client("cloudformation")

    def _stack(self) -> dict[str, Any]:
        return self.cloudformation.describe_stacks(StackName=self.stack_name)["Stacks"][0]

    def current(self) -> str:
        parameters = {p["ParameterKey"]: p.get("ParameterValue", "")
                      for p in self._stack().get("Parameters", [])}
        if MODEL_LAYER_PARAMETER not in parameters:
            raise PromotionError(f"stack {self.stack_name} has no {MODEL_LAYER_PARAMETER} "
                                 "parameter: deploy this version of template.yaml first")
        return parameters[MODEL_LAYER_PARAMETER]

    def point_to(self, layer_arn: str, source: tuple[str, str] | None,
                 seconds_left: Callable[[], float]) -> None:
        stack = self._stack()
        status = stack["StackStatus"]
        if status.endswith("_IN_PROGRESS"):
            raise PromotionError(f"stack {self.stack_name} is busy ({status}); try again later")
        parameters = [{"ParameterKey": p["ParameterKey"], "UsePreviousValue": True}
                      for p in stack.get("Parameters", [])
                      if p["ParameterKey"] != MODEL_LAYER_PARAMETER]
        parameters.append({"ParameterKey": MODEL_LAYER_PARAMETER, "ParameterValue": layer_arn})
        name = f"leadscore-model-{int(time.time())}"
        try:
            self.cloudformation.create_change_set(
                StackName=self.stack_name, ChangeSetName=name, ChangeSetType="UPDATE",
                UsePreviousTemplate=True, Parameters=parameters,
                Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
                Description=f"leadscore: {MODEL_LAYER_PARAMETER}={layer_arn or '(built model)'}")
            if not self._change_set_ready(name, seconds_left):
                return  # nothing to change: already in use
            self.cloudformation.execute_change_set(StackName=self.stack_name,
                                                   ChangeSetName=name)
        except (BotoCoreError, ClientError) as error:
            raise PromotionError(f"change set on {self.stack_name} failed: {error}") from None
        self._wait_for_update(seconds_left)

    def _change_set_ready(self, name: str, seconds_left: Callable[[], float]) -> bool:
        while seconds_left() > MARGIN_SECONDS:
            found = self.cloudformation.describe_change_set(StackName=self.stack_name,
                                                            ChangeSetName=name)
            if found["Status"] == "CREATE_COMPLETE":
                return True
            if found["Status"] == "FAILED":
                reason = found.get("StatusReason", "")
                self.cloudformation.delete_change_set(StackName=self.stack_name,
                                                      ChangeSetName=name)
                if "didn't contain changes" in reason or "No updates" in reason:
                    return False
                raise PromotionError(f"change set {name} failed: {reason}")
            self.sleep(POLL_SECONDS)
        raise PromotionError(f"change set {name} not ready in time; nothing was executed")

    def _wait_for_update(self, seconds_left: Callable[[], float]) -> None:
        while seconds_left() > MARGIN_SECONDS:
            stack = self._stack()
            status = stack["StackStatus"]
            if status == "UPDATE_COMPLETE":
                return
            if "ROLLBACK" in status or status.endswith("_FAILED"):
                why = stack.get("StackStatusReason") or "see the stack's events"
                raise PromotionError(f"stack update {status} ({why}); CloudFormation kept the "
                                     "previous model")
            self.sleep(POLL_SECONDS)
        raise PromotionError(f"stack {self.stack_name} still updating when time ran out; "
                             "CloudFormation completes or rolls it back on its own: check the "
                             "stack, then `leadscore model list`")


@dataclass
class LocalStackTarget:
    """The local stack's admin API (`LEADSCORE_LOCAL_PROMOTION_URL`, set only by the local
    stack): it extracts the layer zip and reloads the model functions as new containers."""

    url: str

    def _call(self, payload: dict[str, Any] | None) -> dict[str, Any]:
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(self.url, data=data, method="POST" if data else "GET",
                                         headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.loads(response.read())
        except OSError as error:
            raise PromotionError(f"local stack refused the model layer: {error}") from None

    def current(self) -> str:
        return self._call(None).get("layer_arn", "")

    def point_to(self, layer_arn: str, source: tuple[str, str] | None,
                 seconds_left: Callable[[], float]) -> None:
        self._call({"layer_arn": layer_arn, "bucket": source[0] if source else None,
                    "key": source[1] if source else None})


def check_layer(layer: bytes, version: str, check_model: Callable[[Path], str]) -> None:
    """Raises PromotionError unless `layer` is a zip whose `model/` loads as model `version`."""
    try:
        with zipfile.ZipFile(io.BytesIO(layer)) as archive:
            broken = archive.testzip()
            if broken:
                raise PromotionError(f"layer.zip of {version} is corrupt ({broken})")
            with tempfile.TemporaryDirectory() as scratch:
                archive.extractall(scratch)
                loaded = check_model(Path(scratch) / "model")
    except PromotionError:
        raise
    except Exception as error:  # not a zip, a model that does not load or score
        raise PromotionError(f"layer.zip of {version} does not hold a working model: "
                             f"{type(error).__name__}: {error}") from None
    if loaded != version:
        raise PromotionError(f"layer.zip of {version} holds model {loaded}")


@dataclass
class Promoter:
    artifacts: ArtifactStore
    target: ModelLayerTarget
    layer_name: str
    check_model: Callable[[Path], str]  # loads a model directory, scores a contact, -> version
    lambda_client: Any = None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        self.lambda_client = self.lambda_client or boto3.client("lambda")

    def promote(self, version: str, *, by: str,
                seconds_left: Callable[[], float] = lambda: float("inf")) -> PromotionRecord:
        """Make candidate `version` the model in use; the record says whether it happened."""
        previous = ""
        try:
            previous = self.target.current()
            source = self.artifacts.layer_location(version)
            check_layer(self.artifacts.layer_bytes(version), version, self.check_model)
            published = self.lambda_client.publish_layer_version(
                LayerName=self.layer_name, Description=f"leadscore model {version}",
                Content={"S3Bucket": source[0], "S3Key": source[1]},
                CompatibleRuntimes=LAYER_RUNTIMES, CompatibleArchitectures=["x86_64"])
            arn = published["LayerVersionArn"]
            self.target.point_to(arn, source, seconds_left)
        except (PromotionError, CandidateMissing, BotoCoreError, ClientError) as error:
            return self._failed("promote", version, previous, by, error)
        return self._done("promote", version, arn, previous, by)

    def rollback(self, *, by: str, to_built: bool = False,
                 seconds_left: Callable[[], float] = lambda: float("inf")) -> PromotionRecord:
        """Back to the model in use before the last promotion (`to_built`: the built one)."""
        current = ""
        try:
            current = self.target.current()
            if to_built:
                arn, version = "", None
            else:
                last = next((r for r in self.artifacts.promotions()
                             if r.status == "done" and r.layer_version_arn == current), None)
                if last is None or not current:
                    raise PromotionError("nothing to roll back to: the model in use was not "
                                         "promoted by leadscore (use --to-built for the built "
                                         "model)")
                arn, version = last.previous_layer_arn, last.previous_version
            source = self.artifacts.layer_location(version) if version else None
            self.target.point_to(arn, source, seconds_left)
        except (PromotionError, CandidateMissing, BotoCoreError, ClientError) as error:
            return self._failed("rollback", None, current, by, error)
        return self._done("rollback", version, arn, current, by)

    def _done(self, action: str, version: str | None, arn: str, previous: str,
              by: str) -> PromotionRecord:
        record = PromotionRecord(at=iso_millis(self.clock()), action=action, version=version,
                                 layer_version_arn=arn, previous_layer_arn=previous,
                                 previous_version=self.artifacts.version_of_layer(previous),
                                 status="done", by=by)
        self.artifacts.record_promotion(record)
        logger.info("Model layer changed", extra=record.model_dump())
        return record

    def _failed(self, action: str, version: str | None, previous: str, by: str,
                error: Exception) -> PromotionRecord:
        record = PromotionRecord(at=iso_millis(self.clock()), action=action, version=version,
                                 layer_version_arn="", previous_layer_arn=previous,
                                 status="failed", reason=str(error), by=by)
        count("PromotionFailures")
        logger.error("Model layer not changed", extra=record.model_dump())
        try:
            self.artifacts.record_promotion(record)
        except (BotoCoreError, ClientError):
            logger.exception("Failed promotion not recorded")
        return record
