"""`leadscore monitor report`: what ModelMonitorFunction measures, as a report an operator reads
(report.html with inline SVG charts, opens offline; report.json with every figure).

Where the stored leads are, one of:
- `--stack-name S`: the deployed stack; the snapshot table and the monitor's settings (outcome
  window, minimums) are read from its ModelMonitorFunction's configuration, so the report
  judges exactly as the daily monitor does;
- `--local-stack FILE`: the JSON line `leadscore local up` printed (`-` = stdin);
- `--table NAME` (with `--endpoint-url` for anything but AWS).

The model is a model directory (`--model`, default the one shipped in layers/model/model):
the one in use. The report says so when the recent leads were scored by another version.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPORT_JSON = "report.json"
REPORT_HTML = "report.html"
MONITOR_FUNCTION = "ModelMonitorFunction"
# The monitor's variables that shape the report (leadscore.monitoring.settings), as
# MonitorConfig fields and their types.
SETTINGS: dict[str, tuple[str, type]] = {
    "OUTCOME_WINDOW_DAYS": ("outcome_window_days", int), "MONITOR_DRIFT_DAYS": ("drift_days", int),
    "MONITOR_ACCURACY_DAYS": ("accuracy_days", int), "MONITOR_TREND_DAYS": ("trend_days", int),
    "MONITOR_MIN_LEADS": ("min_leads", int), "MONITOR_MIN_OUTCOMES": ("min_outcomes", int),
    "MONITOR_CONVERSION_SHIFT": ("conversion_shift", float),
    "MONITOR_AUC_DROP": ("auc_drop", float)}


class ReportError(Exception):
    """Something the operator can fix (printed without a traceback)."""


@dataclass
class Target:
    table: str
    endpoint_url: str | None = None
    region: str = "ap-south-1"
    credentials: dict[str, str] = field(default_factory=dict)
    settings: dict[str, float] = field(default_factory=dict)  # from the deployed monitor


def _session(target: Target) -> Any:
    import boto3

    return boto3.session.Session(region_name=target.region, **target.credentials)


def from_local_stack(line: str) -> Target:
    try:
        stack = json.loads(line)
        table = stack["resources"]["FeatureSnapshotTable"]["Ref"]
        endpoint = stack["aws_endpoint_url"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ReportError("not the JSON line of `leadscore local up` (with resources."
                          f"FeatureSnapshotTable): {exc!r}") from None
    return Target(table=table, endpoint_url=endpoint,
                  credentials={"aws_access_key_id": "local", "aws_secret_access_key": "local"})


def from_deployed_stack(stack_name: str, region: str) -> Target:
    """The snapshot table and settings of the stack's deployed ModelMonitorFunction."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        function = boto3.client("cloudformation", region_name=region).describe_stack_resource(
            StackName=stack_name, LogicalResourceId=MONITOR_FUNCTION
        )["StackResourceDetail"]["PhysicalResourceId"]
        variables = boto3.client("lambda", region_name=region).get_function_configuration(
            FunctionName=function)["Environment"]["Variables"]
    except (BotoCoreError, ClientError, KeyError) as exc:
        raise ReportError(f"cannot read {MONITOR_FUNCTION} of stack {stack_name!r} ({exc}); "
                          "pass --table") from None
    if not variables.get("FEATURE_SNAPSHOT_TABLE"):
        raise ReportError(f"{MONITOR_FUNCTION} of {stack_name!r} names no FEATURE_SNAPSHOT_TABLE")
    settings: dict[str, float] = {}
    for var, (name, kind) in SETTINGS.items():
        if str(variables.get(var, "")).strip():  # unset: the monitor's default, as for it
            try:
                settings[name] = kind(variables[var])
            except ValueError:
                raise ReportError(f"{MONITOR_FUNCTION} has {var}={variables[var]!r}") from None
    return Target(table=variables["FEATURE_SNAPSHOT_TABLE"], region=region, settings=settings)


def _target(args: argparse.Namespace) -> Target:
    if args.local_stack:
        text = sys.stdin.readline() if str(args.local_stack) == "-" else Path(
            args.local_stack).read_text(encoding="utf-8").splitlines()[0]
        return from_local_stack(text)
    if args.table:
        return Target(table=args.table, endpoint_url=args.endpoint_url, region=args.region)
    return from_deployed_stack(args.stack_name, args.region)


def build(args: argparse.Namespace) -> tuple[Any, list[str]]:
    """The monitor's result for these arguments, and warnings to print."""
    from leadscore.model import load
    from leadscore.monitoring.monitor import MonitorConfig, measure
    from leadscore.monitoring.snapshots import DynamoDBSnapshots

    target = _target(args)
    if not (args.model / "metadata.json").is_file():
        raise ReportError(f"{args.model} is not a model directory: pass --model with the "
                          "model in use")
    model = load(args.model)
    settings = target.settings | {name: value for name, _ in SETTINGS.values()
                                  if (value := getattr(args, name)) is not None}
    resource = _session(target).resource("dynamodb", endpoint_url=target.endpoint_url)
    now = args.at or datetime.now(UTC)
    result = measure(model, DynamoDBSnapshots(target.table, resource), now,
                     MonitorConfig(**settings))
    warnings = []
    drift = next((w for w in result.drift if w.days == result.config.drift_days), None)
    if drift and drift.versions and model.version not in drift.versions:
        warnings.append(f"the recent leads were scored by {', '.join(sorted(drift.versions))}, "
                        f"not by {model.version}: pass --model with the model in use")
    return result, warnings


def write(result: Any, out: Path) -> tuple[Path, Path]:
    from leadscore.monitoring.report_html import render_html

    out.mkdir(parents=True, exist_ok=True)
    (out / REPORT_JSON).write_text(result.model_dump_json(indent=2) + "\n", encoding="utf-8")
    (out / REPORT_HTML).write_text(render_html(result), encoding="utf-8")
    return out / REPORT_HTML, out / REPORT_JSON


def summary(result: Any) -> list[str]:
    lines = [f"model {result.model.version}: {result.snapshots_read:,} stored leads read"]
    for window in result.drift:
        figure = (f"largest PSI {window.max_psi:.3f} ({window.max_feature}), score PSI "
                  f"{window.score.psi:.3f}" if window.score else window.note)
        lines.append(f"last {window.days} days: {window.leads:,} leads, {window.status}: "
                     f"{figure}")
    accuracy = result.accuracy
    if accuracy is not None:
        lines.append(f"realised ({accuracy.final:,} final outcomes, {accuracy.status}): AUC "
                     f"{accuracy.realized_auc} vs {accuracy.training_auc} at training, "
                     f"conversion {accuracy.conversion_rate} vs "
                     f"{accuracy.training_conversion_rate}")
    lines += [f"problem: {problem}" for problem in result.problems]
    return lines


def cmd_monitor_report(args: argparse.Namespace) -> int:
    try:
        result, warnings = build(args)
    except ReportError as exc:
        print(f"leadscore: error: {exc}", file=sys.stderr)
        return 2
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for line in summary(result):
        print(line)
    page, figures = write(result, args.out)
    print(f"report → {page} (figures in {figures})")
    return 1 if result.problems else 0


def _moment(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date/time: {value}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def add_parser(commands: Any) -> None:
    """`leadscore monitor report` on the CLI's subcommands."""
    monitor = commands.add_parser("monitor", help="model monitoring: drift, realised accuracy")
    monitor_commands = monitor.add_subparsers(dest="monitor_command", required=True)
    report = monitor_commands.add_parser(
        "report", help="report.html (charts, offline) + report.json: drift per feature, score "
                       "distribution, tier conversion, realised AUC by week, shadow challenger")
    where = report.add_mutually_exclusive_group()
    where.add_argument("--stack-name", default="leadscore",
                       help="deployed stack whose ModelMonitorFunction to follow (default)")
    where.add_argument("--local-stack", metavar="FILE",
                       help="the JSON line of `leadscore local up` in FILE, or - for stdin")
    where.add_argument("--table", help="FeatureSnapshotTable name")
    report.add_argument("--region", default="ap-south-1")
    report.add_argument("--endpoint-url", help="DynamoDB endpoint for --table")
    report.add_argument("--model", type=Path, default=Path("layers/model/model"),
                        help="the model in use (default: layers/model/model)")
    report.add_argument("--at", type=_moment, help="as of this moment (default: now, UTC)")
    report.add_argument("--out", type=Path, required=True, help="report directory to write")
    for name, kind in SETTINGS.values():
        report.add_argument(f"--{name.replace('_', '-')}", dest=name, type=kind,
                            help="override the deployed monitor's setting")
    report.set_defaults(func=cmd_monitor_report)
