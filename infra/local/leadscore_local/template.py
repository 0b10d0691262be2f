"""Reads template.yaml into what the local stack needs: resources, functions and their events.

The template is the single source of truth: routes, queues, batch sizes, schedules and
environment variables come from it, so the local stack cannot drift from what is deployed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from leadscore_local.cfn_yaml import load_template

__all__ = ["FunctionSpec", "functions", "load_template", "parameter_defaults"]


@dataclass(frozen=True)
class HttpRoute:
    method: str
    path: str


@dataclass(frozen=True)
class SqsSource:
    queue: str  # logical id of the queue
    batch_size: int
    batching_window_seconds: int
    report_batch_item_failures: bool
    maximum_concurrency: int | None


@dataclass(frozen=True)
class Schedule:
    name: str
    expression: str


@dataclass
class FunctionSpec:
    logical_id: str
    code_dir: Path
    handler: str
    timeout: int
    memory_mb: int
    environment: dict[str, Any]
    http_routes: list[HttpRoute] = field(default_factory=list)
    sqs_sources: list[SqsSource] = field(default_factory=list)
    schedules: list[Schedule] = field(default_factory=list)


def _logical_id(value: Any) -> str:
    """The logical id behind !GetAtt X.Arn or !Ref X."""
    if isinstance(value, dict):
        if "Fn::GetAtt" in value:
            return value["Fn::GetAtt"][0]
        if "Ref" in value:
            return value["Ref"]
    raise ValueError(f"expected !Ref or !GetAtt, got {value!r}")


def functions(template: dict[str, Any], root: Path) -> list[FunctionSpec]:
    """Every AWS::Serverless::Function with Globals applied, as SAM does."""
    defaults = template.get("Globals", {}).get("Function", {})
    default_env = defaults.get("Environment", {}).get("Variables", {})
    specs = []
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        props = resource.get("Properties", {})
        env = {**default_env, **props.get("Environment", {}).get("Variables", {})}
        spec = FunctionSpec(
            logical_id=logical_id,
            code_dir=(root / props["CodeUri"]).resolve(),
            handler=props.get("Handler", defaults.get("Handler", "app.lambda_handler")),
            timeout=int(props.get("Timeout", defaults.get("Timeout", 3))),
            memory_mb=int(props.get("MemorySize", defaults.get("MemorySize", 128))),
            environment=env,
        )
        for name, event in props.get("Events", {}).items():
            kind, event_props = event.get("Type"), event.get("Properties", {})
            if kind == "HttpApi":
                spec.http_routes.append(
                    HttpRoute(event_props["Method"].upper(), event_props["Path"])
                )
            elif kind == "SQS":
                scaling = event_props.get("ScalingConfig", {})
                spec.sqs_sources.append(SqsSource(
                    queue=_logical_id(event_props["Queue"]),
                    batch_size=int(event_props.get("BatchSize", 10)),
                    batching_window_seconds=int(
                        event_props.get("MaximumBatchingWindowInSeconds", 0)
                    ),
                    report_batch_item_failures="ReportBatchItemFailures"
                    in event_props.get("FunctionResponseTypes", []),
                    maximum_concurrency=scaling.get("MaximumConcurrency"),
                ))
            elif kind in ("Schedule", "ScheduleV2"):
                expression = event_props.get("Schedule") or event_props.get("ScheduleExpression")
                spec.schedules.append(Schedule(name, expression))
        specs.append(spec)
    return specs


def parameter_defaults(template: dict[str, Any]) -> dict[str, str]:
    return {
        name: str(spec.get("Default", ""))
        for name, spec in template.get("Parameters", {}).items()
    }
