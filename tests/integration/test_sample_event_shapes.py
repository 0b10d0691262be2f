"""events/ keep the shapes of the events AWS sends, as `sam local generate-event` prints them
(generated now, offline, by the SAM CLI `make build` installs): API Gateway HTTP API payload 2.0
for the HTTP functions, SQS for the queue consumers, EventBridge's scheduled event for the
schedules. Keys are compared at every level, with the value types.

Allowed differences, each for a stated reason: SAM's samples carry keys AWS sends only in some
cases (OPTIONAL), some objects are free-form maps whose keys are data (FREE_FORM), and SAM's
scheduled-event template lacks the `version` every EventBridge envelope carries (EXTRA).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from leadscore_local.sam_invoke import sample_events
from leadscore_local.template import load_template

ROOT = Path(__file__).resolve().parents[2]
SAM = ROOT / ".tools" / "sam" / "bin" / "sam"
GENERATOR = {  # template event type -> `sam local generate-event` arguments
    "HttpApi": ("apigateway", "http-api-proxy"),
    "SQS": ("sqs", "receive-message"),
    "Schedule": ("cloudwatch", "scheduled-event"),
}
OPTIONAL = {
    # Only with cookies, a query string, path parameters, stage variables, mutual TLS or an
    # authorizer, none of which the webhook and /score routes have.
    "HttpApi": {"cookies", "queryStringParameters", "pathParameters", "stageVariables",
                "requestContext.authentication", "requestContext.authorizer"},
}
FREE_FORM = {"headers", "queryStringParameters", "pathParameters", "stageVariables",
             "Records[].messageAttributes", "detail"}
EXTRA = {"Schedule": {"version"}}

pytestmark = pytest.mark.build


def shape(value: Any, path: str = "") -> dict[str, str]:
    """Every key path (a list's items as `[]`) → the JSON type found there. Items of one list
    must have one shape; if they do not, a `(items differ)` path says so."""
    found = {path: type(value).__name__} if path else {}
    if isinstance(value, dict) and path not in FREE_FORM:
        for key, item in value.items():
            found |= shape(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list) and value:
        items = [shape(item, f"{path}[]") for item in value]
        found |= items[0]
        if any(item != items[0] for item in items[1:]):
            found[f"{path}[] (items differ)"] = "list"
    return found


def under(path: str, prefixes: set[str]) -> bool:
    return any(path == p or path.startswith(p + ".") or path.startswith(p + "[]")
               for p in prefixes)


@pytest.fixture(scope="module")
def generated() -> dict[str, dict[str, Any]]:
    if not SAM.is_file():
        pytest.skip(f"no SAM CLI at {SAM}: run `make build` first")
    out = {}
    for kind, arguments in GENERATOR.items():
        completed = subprocess.run(
            [str(SAM), "local", "generate-event", *arguments], cwd=ROOT, capture_output=True,
            text=True, timeout=120, check=True,
            env={**os.environ, "SAM_CLI_TELEMETRY": "0"})
        out[kind] = json.loads(completed.stdout)
    return out


def event_kinds() -> list[tuple[str, Path]]:
    resources = load_template(ROOT / "template.yaml")["Resources"]
    pairs = []
    for logical_id, path in sample_events(ROOT):
        (kind,) = {e["Type"] for e in resources[logical_id]["Properties"]["Events"].values()}
        pairs.append((kind, path))
    return pairs


@pytest.mark.parametrize(("kind", "path"), event_kinds(), ids=lambda v: getattr(v, "name", v))
def test_sample_event_has_the_aws_shape(generated, kind: str, path: Path) -> None:
    ours, theirs = shape(json.loads(path.read_text())), shape(generated[kind])
    missing = {p for p in theirs.keys() - ours.keys() if not under(p, OPTIONAL.get(kind, set()))}
    invented = {p for p in ours.keys() - theirs.keys() if not under(p, EXTRA.get(kind, set()))}
    assert not missing, f"{path.name} lacks {sorted(missing)}"
    assert not invented, f"{path.name} has keys AWS does not send: {sorted(invented)}"
    retyped = {p: (ours[p], theirs[p]) for p in ours.keys() & theirs.keys()
               if ours[p] != theirs[p]}
    assert not retyped, f"{path.name}: types differ (ours, SAM's): {retyped}"
