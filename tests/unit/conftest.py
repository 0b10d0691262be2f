"""Fixtures for the Lambda runtime unit tests: AWS test env, fresh handler modules, fakes.

Helpers reach tests through the `kit` fixture rather than `from conftest import ...`, which
would pick up whichever conftest.py pytest imported last.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib.util
import itertools
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fakes import FakeHubSpot

ROOT = Path(__file__).resolve().parents[2]
if importlib.util.find_spec("leadscore") is None:  # not pip-installed: use the source tree
    sys.path.insert(0, str(ROOT / "shared"))

CLIENT_SECRET = "test-client-secret-0000"
_module_ids = itertools.count()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and region for moto; Powertools without X-Ray; no cached secrets."""
    from aws_lambda_powertools.utilities import parameters

    from leadscore.observability import metrics

    for name, value in {
        "AWS_DEFAULT_REGION": "ap-south-1", "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
        "POWERTOOLS_TRACE_DISABLED": "true", "POWERTOOLS_SERVICE_NAME": "leadscore",
        "POWERTOOLS_METRICS_NAMESPACE": "LeadScore",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "WEBHOOK_PUBLIC_URL", "IDEMPOTENCY_TABLE",
                 "SCORE_API_PUBLIC_URL", "ENRICH_QUEUE_URL", "HOT_LEADS_TOPIC_ARN"):
        monkeypatch.delenv(name, raising=False)
    parameters.clear_caches()
    metrics.clear_metrics()
    yield
    parameters.clear_caches()
    metrics.clear_metrics()


def load_function(name: str) -> Any:
    """`functions/<name>/app.py` as a fresh module (each function's module is named `app`),
    so module-level caches start empty in every test."""
    path = ROOT / "functions" / name / "app.py"
    spec = importlib.util.spec_from_file_location(f"test_fn_{name}_{next(_module_ids)}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class FakeLambdaContext:
    function_name: str = "leadscore-test"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:ap-south-1:123456789012:function:leadscore-test"
    aws_request_id: str = "req-1"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


# --- HubSpot-shaped requests --------------------------------------------------------------


def sign(secret: str, method: str, uri: str, body: bytes, timestamp: int) -> str:
    """v3 signature computed independently of the SDK."""
    source = method.encode() + uri.encode() + body + str(timestamp).encode()
    return base64.b64encode(hmac.new(secret.encode(), source, hashlib.sha256).digest()).decode()


def http_api_event(body: bytes | str, *, secret: str | None = CLIENT_SECRET,
                   domain: str = "abc123.execute-api.ap-south-1.amazonaws.com",
                   path: str = "/webhooks/hubspot", query: str = "",
                   signed_uri: str | None = None, timestamp: int | None = None,
                   base64_body: bool = False) -> dict[str, Any]:
    """An API Gateway HTTP API (v2) event, signed as HubSpot would for `signed_uri`."""
    raw = body.encode() if isinstance(body, str) else body
    stamp = int(time.time() * 1000) if timestamp is None else timestamp
    uri = signed_uri or f"https://{domain}{path}" + (f"?{query}" if query else "")
    headers = {"content-type": "application/json", "x-hubspot-request-timestamp": str(stamp)}
    if secret is not None:
        headers["x-hubspot-signature-v3"] = sign(secret, "POST", uri, raw, stamp)
    return {
        "version": "2.0", "routeKey": f"POST {path}", "rawPath": path, "rawQueryString": query,
        "headers": headers,
        "requestContext": {"domainName": domain, "requestId": "api-req-1",
                           "http": {"method": "POST", "path": path}, "stage": "$default"},
        "body": base64.b64encode(raw).decode() if base64_body else raw.decode(),
        "isBase64Encoded": base64_body,
    }


def webhook_event(event_id: int, object_id: int,
                  subscription_type: str = "contact.creation", **extra: Any) -> dict[str, Any]:
    return {"eventId": event_id, "subscriptionId": 1, "portalId": 62515, "appId": 54321,
            "occurredAt": 1_700_000_000_000 + event_id, "subscriptionType": subscription_type,
            "attemptNumber": 0, "objectId": object_id, "changeFlag": "CREATED",
            "changeSource": "CRM", **extra}


def webhook_body(events: list[dict[str, Any]]) -> bytes:
    return json.dumps(events, separators=(",", ":")).encode()


# --- fakes for the score pipeline ---------------------------------------------------------


@dataclass(frozen=True)
class FakeResult:
    score: int
    probability: float
    tier: str
    reasons: list[str]


class FakeModel:
    """The `leadscore.model.LeadModel` interface: score = 10 × visits, capped at 100."""

    version = "test-model-1"

    def __init__(self) -> None:
        self.properties = ["hs_analytics_num_visits", "jobtitle"]
        self.rows_scored = 0

    def score(self, properties: dict[str, str | None]) -> FakeResult:
        visits = int(properties.get("hs_analytics_num_visits") or 0)
        score = min(100, visits * 10)
        tier = ("hot" if score >= 80 else "warm" if score >= 50 else "cold" if score >= 20
                else "disqualified")
        return FakeResult(score, score / 100, tier, [f"{visits} website visits", "Job title"])

    def score_many(self, rows: list[dict[str, str | None]],
                   with_reasons: bool = True) -> list[FakeResult]:
        self.rows_scored += len(rows)
        return [self.score(row) for row in rows]


@pytest.fixture
def fake_model() -> FakeModel:
    return FakeModel()


@pytest.fixture
def kit() -> SimpleNamespace:
    return SimpleNamespace(
        CLIENT_SECRET=CLIENT_SECRET, sign=sign, http_api_event=http_api_event,
        webhook_event=webhook_event, webhook_body=webhook_body, load_function=load_function,
        FakeHubSpot=FakeHubSpot, FakeModel=FakeModel, FakeResult=FakeResult,
    )
