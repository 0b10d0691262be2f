"""`leadscore model retrain | list | show | promote | rollback`: the learning loop from an
operator's machine.

Against a deployed stack (`--stack-name`, default `leadscore`; the operator's AWS credentials):
the stack's outputs name the artifacts bucket and the retrain function; `retrain` invokes the
function and waits for its decision; `promote` and `rollback` run the same promoter the retrain
runs (a new layer version and a change set on the stack's `ModelLayerArn`).
Against the local stack (`--local-stack stack.json`: the JSON line `leadscore local up`
printed): moto and the admin API stand in for AWS and CloudFormation.

Tooling: not shipped to Lambda.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from leadscore.learning.promotion import LocalStackTarget, ModelLayerTarget, Promoter, StackTarget
from leadscore.learning.registry import ArtifactStore, Decision, PromotionRecord
from leadscore.learning.shadow_pointer import ShadowPointer, SsmShadowPointer

RETRAIN_FUNCTION = "ModelRetrainFunction"
RETRAIN_READ_TIMEOUT = 960  # the function's own timeout is 900 s


def check_model(directory: Path) -> str:
    """Loads a model directory and scores an empty contact; its version."""
    from leadscore.model import load

    model = load(directory)
    model.score({})
    return model.version


@dataclass
class ModelStack:
    """Where the learning loop of one stack lives."""

    artifacts: ArtifactStore
    target: ModelLayerTarget
    layer_name: str
    lambda_client: Any
    retrain: Callable[[str | None], dict[str, Any]]  # simulated time (local only) -> decision
    shadow: ShadowPointer | None = None  # None: the stack names no shadow-challenger parameter

    def reset_shadow(self) -> str:
        """After a promotion or rollback by hand: no shadow challenger, as after a retrain's
        promotion (one judged against the replaced champion is stale; the next retrain names
        a new one). What to tell the operator; raises when the parameter could not be set."""
        if self.shadow is None:
            return "shadow challenger: not used by this stack"
        self.shadow.set(None)
        return "shadow challenger: none (the next retrain names one)"

    def promoter(self) -> Promoter:
        return Promoter(artifacts=self.artifacts, target=self.target, layer_name=self.layer_name,
                        check_model=check_model, lambda_client=self.lambda_client)

    def in_use(self) -> str:
        """The model in use, as the operator reads it."""
        arn = self.target.current()
        if not arn:
            return "the model built into the stack (ModelLayer)"
        version = self.artifacts.version_of_layer(arn)
        return f"{version or 'unknown version'} ({arn})"


def deployed_stack(stack_name: str, region: str) -> ModelStack:
    session = boto3.session.Session(region_name=region)
    cloudformation = session.client("cloudformation")
    stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    parameters = {p["ParameterKey"]: p.get("ParameterValue", "")
                  for p in stack.get("Parameters", [])}
    missing = {"ModelArtifactsBucketName", "ModelRetrainFunctionName"} - set(outputs)
    if missing:
        raise ValueError(f"stack {stack_name} has no {', '.join(sorted(missing))} output: "
                         "deploy this version of template.yaml first")
    shadow = outputs.get("ShadowChallengerParameterName")
    lambda_client = session.client("lambda", config=Config(
        read_timeout=RETRAIN_READ_TIMEOUT, retries={"max_attempts": 1}))

    def retrain(at: str | None) -> dict[str, Any]:
        if at:
            raise ValueError("--time is for the local stack only: a deployed retrain always "
                             "uses the real clock")
        answer = lambda_client.invoke(FunctionName=outputs["ModelRetrainFunctionName"],
                                      Payload=json.dumps({"trigger": "cli"}).encode())
        body = json.loads(answer["Payload"].read() or b"{}")
        if answer.get("FunctionError"):
            raise ValueError(f"the retrain failed: {body.get('errorMessage', body)}")
        return body

    return ModelStack(
        artifacts=ArtifactStore(outputs["ModelArtifactsBucketName"], session.client("s3")),
        target=StackTarget(stack_name, cloudformation),
        layer_name=f"leadscore-model-{parameters.get('Stage', 'dev')}",
        lambda_client=lambda_client, retrain=retrain,
        shadow=SsmShadowPointer(shadow, session.client("ssm")) if shadow else None)


def local_stack(info_path: Path) -> ModelStack:
    """The local stack whose JSON line is in `info_path`."""
    from leadscore_local.env_vars import sam_env_vars
    from leadscore_local.resources import local_client
    from leadscore_local.template import load_template

    info = json.loads(Path(info_path).read_text().strip().splitlines()[0])
    template = load_template(Path(__file__).resolve().parents[3] / "template.yaml")
    environment = sam_env_vars(info, template)[RETRAIN_FUNCTION]
    endpoint = info["aws_endpoint_url"]

    def retrain(at: str | None) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{info['admin_url']}/schedules/{RETRAIN_FUNCTION}/run",
            data=json.dumps({"time": at} if at else {}).encode(), method="POST",
            headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=RETRAIN_READ_TIMEOUT) as response:
            return json.loads(response.read())["result"]

    return ModelStack(
        artifacts=ArtifactStore(environment["MODEL_ARTIFACTS_BUCKET"],
                                local_client("s3", endpoint)),
        target=LocalStackTarget(f"{info['admin_url']}/model-layer"),
        layer_name=environment["MODEL_LAYER_NAME"],
        lambda_client=local_client("lambda", endpoint), retrain=retrain,
        shadow=SsmShadowPointer(shadow, local_client("ssm", endpoint))
        if (shadow := environment.get("SHADOW_CHALLENGER_PARAMETER")) else None)


# ------------------------------------------------------------------------------- printing


def _figure(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def decision_line(decision: Decision) -> str:
    champion, challenger = decision.champion, decision.challenger
    figures = ""
    if champion and challenger:
        figures = (f"  AUC {_figure(champion.auc)} → {_figure(challenger.auc)}, "
                   f"Brier {_figure(champion.brier)} → {_figure(challenger.brier)}")
    return (f"{decision.run_id}  {decision.result:<8}  "
            f"{decision.champion_version or '—'} → {decision.challenger_version or '—'}"
            f"{figures}\n    {decision.reason}")


def decision_details(decision: Decision, report_uri: str | None) -> list[str]:
    data = decision.data
    lines = [
        f"run {decision.run_id} ({decision.trigger}), {decision.started_at} → "
        f"{decision.finished_at or '?'}",
        f"result: {decision.result}" + ("  (an operator must act)"
                                        if decision.operator_action else ""),
        f"why: {decision.reason}",
        f"champion: {decision.champion_version or '—'}   challenger: "
        f"{decision.challenger_version or '—'}",
        f"snapshots {data.snapshots:,}: labelled {data.labelled:,} ({data.positives:,} converted, "
        f"{data.negatives:,} not), waiting {data.pending:,}, inside their window "
        f"{data.window_open:,}, converted before scoring {data.prior:,}",
        f"trained on {data.train_rows:,} leads; judged on the newest {data.judge_rows:,} "
        f"(first scored {data.judged_from or '—'} to {data.judged_to or '—'})",
    ]
    if data.missing_columns:
        lines.append("columns missing from snapshots: " + ", ".join(
            f"{column} {100 * share:.0f}%" for column, share in data.missing_columns.items()))
    for name, figures in (("champion", decision.champion), ("challenger", decision.challenger)):
        if figures is None:
            continue
        tiers = ", ".join(f"{t.tier} {t.leads} leads {100 * t.conversion_rate:.1f}%"
                          for t in figures.tiers)
        lines.append(f"{name:<10} {figures.version}: AUC {_figure(figures.auc)}, Brier "
                     f"{_figure(figures.brier)}, top-decile lift "
                     f"{_figure(figures.lift_top_decile, 2)} "
                     f"({100 * figures.conversion_top_decile:.1f}% convert); {tiers}")
    if decision.gate is not None:
        policy = decision.policy
        lines.append(f"gate (AUC tolerance {policy.auc_tolerance}, Brier tolerance "
                     f"{policy.brier_tolerance}): {'passed' if decision.gate.passed else 'failed'}")
        lines += [f"  {reason}" for reason in decision.gate.reasons]
    if decision.promotion is not None:
        lines.append(promotion_line(decision.promotion))
    if decision.seconds:
        lines.append("seconds: " + ", ".join(f"{step} {seconds:.1f}"
                                             for step, seconds in decision.seconds.items()))
    if report_uri:
        lines.append(f"report: {report_uri}")
    return lines


def promotion_line(record: PromotionRecord) -> str:
    what = record.version or "the built model"
    line = f"{record.at}  {record.action} to {what}: {record.status}"
    if record.layer_version_arn:
        line += f" ({record.layer_version_arn})"
    return line + (f" — {record.reason}" if record.reason else "")
