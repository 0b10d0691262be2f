"""Alarms and the dashboard in template.yaml watch metrics that really exist.

A CloudWatch alarm on a metric nobody emits never fires, and a dashboard line for a renamed
metric stays flat: both fail silently in production, so they are checked here. Custom metrics
(namespace LeadScore) must be emitted by the code; AWS metrics must name a resource of this
stack of the right type.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from leadscore_local.cfn_yaml import load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template(ROOT / "template.yaml")
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
ALARMS = {k: v["Properties"] for k, v in RESOURCES.items() if v["Type"] == "AWS::CloudWatch::Alarm"}
NAMESPACE = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"][
    "POWERTOOLS_METRICS_NAMESPACE"]
DIMENSION_TYPES = {"QueueName": "AWS::SQS::Queue", "FunctionName": "AWS::Serverless::Function"}


def emitted_metric_names() -> set[str]:
    """Names passed to `count("X")`, `gauge("X", ...)` (leadscore.monitoring.metrics) or
    `add_metric(name="X")` anywhere in the runtime code."""
    names: set[str] = set()
    for path in [*(ROOT / "shared").rglob("*.py"), *(ROOT / "functions").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            callee = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(
                node.func, "id", "")
            if (callee in ("count", "count_by_dimension", "gauge") and node.args
                    and isinstance(node.args[0], ast.Constant)):
                names.add(node.args[0].value)
            if callee == "add_metric":
                names.update(k.value.value for k in node.keywords
                             if k.arg == "name" and isinstance(k.value, ast.Constant))
    return names


def alarm_metrics(alarm: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The metrics an alarm reads: its own, or each MetricStat of a metric-math alarm."""
    if "MetricName" in alarm:
        yield {k: alarm[k] for k in ("Namespace", "MetricName", "Dimensions") if k in alarm}
    for query in alarm.get("Metrics", []):
        if "MetricStat" in query:
            yield query["MetricStat"]["Metric"]


def referenced_resource(value: Any) -> str:
    if isinstance(value, dict) and "Ref" in value:
        return value["Ref"]
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return value["Fn::GetAtt"][0]
    raise AssertionError(f"dimension value {value!r} does not reference a resource")


DASHBOARDS = [k for k, v in RESOURCES.items() if v["Type"] == "AWS::CloudWatch::Dashboard"]
# Dimensions a custom metric may carry besides `service` (leadscore.monitoring.metrics).
METRIC_DIMENSIONS = {"FeaturePSI": "feature", "TierConversion": "tier"}


def dashboard_widgets() -> list[dict[str, Any]]:
    widgets = []
    for dashboard in DASHBOARDS:
        body = RESOURCES[dashboard]["Properties"]["DashboardBody"]["Fn::Sub"]
        # ${Resource} / ${Resource.Attr} / ${AWS::Region} become their names so the JSON parses;
        # a ${NumberParameter} (an annotation's value) becomes 0.
        body = re.sub(r"\$\{([A-Z][A-Za-z]*(?:Psi|Drop|Shift))\}", "0", body)
        widgets += json.loads(re.sub(r"\$\{([^}]+)\}", r"\1", body))["widgets"]
    return widgets


def dashboard_expressions() -> list[str]:
    return [item["expression"] for widget in dashboard_widgets()
            for line in widget["properties"]["metrics"] for item in line
            if isinstance(item, dict) and "expression" in item]


def dashboard_metrics() -> list[tuple[str, str, list[str]]]:
    """(namespace, metric, dimension values) of every dashboard line, CloudWatch's "." and
    "..." shorthands expanded; expression lines are `dashboard_expressions`."""
    lines = []
    for widget in dashboard_widgets():
        previous: list[str] = []
        for line in widget["properties"]["metrics"]:
            parts = [p for p in line if isinstance(p, str)]
            if not parts:
                continue
            if parts[0] == "...":
                parts = previous[:-1] + parts[1:]
            # "." repeats the previous line's value at the same position
            parts = [previous[i] if p == "." else p for i, p in enumerate(parts)]
            previous = parts
            lines.append((parts[0], parts[1], parts[2:]))
    return lines


def test_alarm_inventory_covers_what_operators_need():
    watched = {(m["Namespace"], m["MetricName"]) for a in ALARMS.values() for m in alarm_metrics(a)}
    assert {("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
            ("AWS/SQS", "ApproximateAgeOfOldestMessage"),
            ("AWS/Lambda", "Errors"), ("AWS/Lambda", "Throttles")} <= watched


@pytest.mark.parametrize("alarm_id", sorted(ALARMS))
def test_alarm_notifies_the_alarm_topic(alarm_id):
    assert ALARMS[alarm_id]["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    assert ALARMS[alarm_id]["TreatMissingData"] == "notBreaching"


@pytest.mark.parametrize("alarm_id", sorted(ALARMS))
def test_alarm_watches_a_metric_that_is_emitted(alarm_id):
    metrics = list(alarm_metrics(ALARMS[alarm_id]))
    assert metrics, f"{alarm_id} reads no metric"
    for metric in metrics:
        if metric["Namespace"] == NAMESPACE:
            assert metric["MetricName"] in emitted_metric_names(), (
                f"{alarm_id}: nothing emits {metric['MetricName']}")
            assert metric["Dimensions"] == [{"Name": "service", "Value": "leadscore"}]
            continue
        assert metric["Namespace"] in {"AWS/SQS", "AWS/Lambda"}
        for dimension in metric["Dimensions"]:
            resource = referenced_resource(dimension["Value"])
            assert RESOURCES[resource]["Type"] == DIMENSION_TYPES[dimension["Name"]], alarm_id


@pytest.mark.parametrize("metric_name", ["Errors", "Throttles"])
def test_every_function_is_watched_for_errors_and_throttles(metric_name):
    watched = {referenced_resource(d["Value"]) for a in ALARMS.values() for m in alarm_metrics(a)
               if m["MetricName"] == metric_name for d in m["Dimensions"]}
    functions = {k for k, v in RESOURCES.items() if v["Type"] == "AWS::Serverless::Function"}
    assert watched == functions


def test_every_queue_is_watched_for_age_and_every_dlq_for_messages():
    def queues(metric_name: str) -> set[str]:
        return {referenced_resource(d["Value"]) for a in ALARMS.values()
                for m in alarm_metrics(a) if m["MetricName"] == metric_name
                for d in m["Dimensions"]}

    dlqs = {k for k, v in RESOURCES.items()
            if v["Type"] == "AWS::SQS::Queue" and "RedrivePolicy" not in v["Properties"]}
    assert queues("ApproximateNumberOfMessagesVisible") == dlqs
    assert queues("ApproximateAgeOfOldestMessage") == {
        k for k, v in RESOURCES.items()
        if v["Type"] == "AWS::SQS::Queue" and "RedrivePolicy" in v["Properties"]}


def test_dashboard_lines_are_metrics_that_exist():
    emitted = emitted_metric_names()
    lines = dashboard_metrics()
    assert len(lines) >= 20
    for namespace, metric, dimensions in lines:
        if namespace == NAMESPACE:
            assert metric in emitted, f"dashboard shows {metric}, which nothing emits"
            assert dimensions[:2] == ["service", "leadscore"]
            assert dimensions[2:3] == ([METRIC_DIMENSIONS[metric]] if metric in METRIC_DIMENSIONS
                                       else []), (metric, dimensions)
        else:
            name, value = dimensions[0], dimensions[1].split(".")[0]
            assert RESOURCES[value]["Type"] == DIMENSION_TYPES[name], (metric, value)


def test_dashboard_searches_find_emitted_metrics():
    expressions = dashboard_expressions()
    assert expressions, "the model dashboard's per-feature PSI is a SEARCH expression"
    for expression in expressions:
        [(dimensions, metric)] = re.findall(
            r"SEARCH\('\{([^}]*)\} MetricName=\"(\w+)\"'", expression)
        namespace, *names = dimensions.split(",")
        assert namespace == NAMESPACE and metric in emitted_metric_names()
        assert sorted(names) == sorted(["service", METRIC_DIMENSIONS[metric]])
