"""The app-wide HubSpot request budget in DynamoDB (leadscore.hubspot.shared_budget), on moto,
with a simulated clock: per second, across containers, paused by a 429, and its fallback."""

from __future__ import annotations

import boto3
import pytest
from fakes import create_table
from moto import mock_aws
from test_alarms import ROOT

from leadscore.hubspot import client as hubspot_client
from leadscore.hubspot.client import RequestBudget, shared_budget
from leadscore.hubspot.shared_budget import FALLBACK_CONTAINERS, SharedRequestBudget
from leadscore_local.cfn_yaml import load_template

TABLE = "HubSpotBudgetTable"


class Clock:
    """Wall-clock seconds that only move when someone sleeps (shared by 'containers')."""

    def __init__(self, now: float = 1_800_000_000.2):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def table(aws_env):
    with mock_aws():
        create_table(TABLE)
        yield boto3.client("dynamodb")


def budget(dynamodb, clock, per_second=3, **kwargs) -> SharedRequestBudget:
    return SharedRequestBudget(TABLE, per_second, dynamodb=dynamodb, clock=clock,
                               sleep=clock.sleep, **kwargs)


def test_per_second_requests_go_at_once_and_the_next_waits_for_the_next_second(table):
    clock = Clock()
    shared = budget(table, clock)
    assert [shared.acquire() for _ in range(3)] == [0, 0, 0]
    waited = shared.acquire()
    assert 0.8 <= waited <= 0.85 and int(clock.now) == 1_800_000_001


def test_containers_share_one_budget(table):
    clock = Clock()
    containers = [budget(table, clock), budget(table, clock)]  # two processes, one table
    for container in containers:
        container.acquire()
        container.acquire()
    # 4 requests asked for in one second with 3 allowed: the fourth went in the next.
    assert int(clock.now) == 1_800_000_001
    slots = {item["slot"]["S"]: int(item["taken"]["N"])
             for item in table.scan(TableName=TABLE)["Items"]}
    assert slots == {"hubspot-requests#1800000000": 3, "hubspot-requests#1800000001": 1}
    assert all(int(item["expires_at"]["N"]) > clock.now
               for item in table.scan(TableName=TABLE)["Items"])


def test_a_429_pauses_every_container(table):
    clock = Clock()
    throttled, other = budget(table, clock), budget(table, clock)
    throttled.pause(2)  # HubSpot: Retry-After 2
    other.acquire()
    assert clock.now >= 1_800_000_002  # the other container waited out the pause too


def test_low_rate_limit_headers_slow_this_container(table):
    clock = Clock()
    shared = budget(table, clock, per_second=20)
    shared.observe({"X-HubSpot-RateLimit-Remaining": "1", "X-HubSpot-RateLimit-Max": "100",
                    "X-HubSpot-RateLimit-Interval-Milliseconds": "10000"})
    assert shared.acquire() > 0


def test_without_its_table_a_container_falls_back_to_its_share(aws_env):
    with mock_aws():
        fallback_clock = Clock()
        fallback = RequestBudget(12 / FALLBACK_CONTAINERS, burst=1, clock=fallback_clock,
                                 sleep=fallback_clock.sleep)
        shared = SharedRequestBudget("no-such-table", 12, dynamodb=boto3.client("dynamodb"),
                                     fallback=fallback)
        assert SharedRequestBudget("t", 8)._fallback.per_second == 8 / FALLBACK_CONTAINERS
        start = fallback_clock.now
        shared.acquire()
        shared.acquire()
        # One request a second: 12 a second shared by the 12 containers that may call HubSpot.
        assert fallback_clock.now - start == pytest.approx(1.0)


def test_the_lambdas_get_the_shared_budget_and_other_processes_their_own(monkeypatch):
    monkeypatch.setattr(hubspot_client, "_shared_budgets", {})
    monkeypatch.delenv("HUBSPOT_BUDGET_TABLE", raising=False)
    assert isinstance(shared_budget(9), RequestBudget)
    monkeypatch.setenv("HUBSPOT_BUDGET_TABLE", TABLE)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")
    app_wide = shared_budget(9)
    assert isinstance(app_wide, SharedRequestBudget) and app_wide.per_second == 9
    assert shared_budget(9) is app_wide  # one per process


def test_the_fallback_share_covers_every_container_that_may_call_hubspot():
    # A container without its table takes per_second / FALLBACK_CONTAINERS: that must not
    # be more than its share when every function holding the HubSpot token runs at once.
    resources = load_template(ROOT / "template.yaml")["Resources"]
    containers = 0
    for resource in resources.values():
        properties = resource.get("Properties", {})
        policies = str(properties.get("Policies", ""))
        if resource["Type"] != "AWS::Serverless::Function" or "HubSpotTokenSecret" not in policies:
            continue
        events = properties.get("Events", {}).values()
        sqs = [e["Properties"].get("ScalingConfig", {}).get("MaximumConcurrency")
               for e in events if e["Type"] == "SQS"]
        reserved = properties.get("ReservedConcurrentExecutions")
        assert all(sqs) and (sqs or reserved or all(e["Type"] == "Schedule" for e in events))
        containers += sum(sqs) or reserved or 1  # a daily schedule runs one at a time
    assert containers >= 4
    assert containers == FALLBACK_CONTAINERS


def test_a_slot_whose_second_passed_while_it_was_taken_is_not_used(table):
    """A loaded container that takes its slot late would send in the next second beside that
    second's own requests (bunching past the app's limit): it takes a slot of the current
    second instead."""
    clock = Clock()
    shared = budget(table, clock)
    take = shared._take

    def slow_take(second: int) -> None:
        take(second)
        if second == 1_800_000_000:
            clock.sleep(1.2)  # descheduled while taking its slot

    shared._take = slow_take
    shared.acquire()
    assert int(clock.now) == 1_800_000_001
    counts = {int(item["slot"]["S"].rsplit("#", 1)[-1]) if "#" in item["slot"]["S"] else
              item["slot"]["S"]: int(item["taken"]["N"]) for item in table.scan(
                  TableName=TABLE)["Items"]}
    assert sorted(counts.values()) == [1, 1]  # the late slot, and the one the request used
