"""One HubSpot request budget for the whole app, shared by every Lambda container.

HubSpot limits requests per app (a private app's token) over a rolling 10 seconds, not per
container: ScoreFunction alone may run 5 containers at once, EnrichFunction 2, and the two
daily jobs one each. A budget per process would let their sum pass the app's limit. So every
HubSpot request first takes a slot in a DynamoDB table (`HubSpotBudgetTable`): one item per
wall-clock second, counting the requests of that second across all containers, and a
conditional update that refuses the slot once `per_second` are taken; the caller then waits for
the next second. One UpdateItem per HubSpot request (HubSpot's batch calls carry 100 contacts
each, so that is a few per hundred leads); items expire after an hour (TTL).

A rolling 10-second window spans at most 11 such seconds, and a request reaches HubSpot a
little after it took its slot, so at most 12 x `per_second` requests arrive in any 10 s
(`leadscore_local.budget_drill` measures it): the default 8 keeps that (96) under every tier's
limit (100 per 10 s for Free and Starter, 190 for Professional and Enterprise, 250 with the API
limit increase; HubSpot's API usage guidelines). Operators raise it for their tier, leaving
room for the CLI tools (backfill, export) when they share the token.

A 429 with Retry-After makes every container wait (the seconds ahead are marked full);
HubSpot's rate-limit headers running low slow this container down. If DynamoDB cannot be
reached, the container falls back to its share of the budget (`per_second` divided among
FALLBACK_CONTAINERS) rather than stop or run unbounded.

No numpy/lightgbm here.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from leadscore.hubspot.client import RequestBudget, low_water_pause
from leadscore.observability import count, logger

BUDGET_KEY = "hubspot-requests"  # one app (one token) per stack
SLOT_TTL_SECONDS = 3600
# Containers that may call HubSpot at once: ScoreFunction's MaximumConcurrency (5),
# EnrichFunction's (2), SlackNotifyFunction's (2), ConsentSweepFunction,
# RetentionPurgeFunction and ModelRetrainFunction (reserved 1 each).
# tests/unit/test_request_budget.py keeps this equal to template.yaml.
FALLBACK_CONTAINERS = 12
MAX_PAUSE_SECONDS = 10.0  # as RequestBudget.pause: HubSpot's windows are 10 s long


class SharedRequestBudget:
    """`RequestBudget`'s interface (acquire, pause, observe) over a DynamoDB table."""

    def __init__(self, table_name: str, per_second: int, *, dynamodb: Any | None = None,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep,
                 fallback: Any | None = None):
        if per_second < 1:
            raise ValueError("per_second must be at least 1")
        self.table_name = table_name
        self.per_second = per_second
        self._dynamodb = dynamodb or boto3.client("dynamodb")
        self._clock, self._sleep = clock, sleep
        self._fallback = fallback or RequestBudget(max(per_second / FALLBACK_CONTAINERS, 0.1))
        self._paused_until = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Takes one slot of the app's budget, waiting as long as needed; returns seconds
        waited."""
        waited = 0.0
        while True:
            now = self._clock()
            with self._lock:
                pause = self._paused_until - now
            if pause > 0:
                self._sleep(pause)
                waited += pause
                continue
            second = math.floor(now)
            try:
                self._take(second)
                if self._clock() < second + 1:
                    return waited
                # The second ran out while its slot was taken (a slow or loaded container): a
                # request sent now would count in a later second than its slot. Take another.
                continue
            except ClientError as error:
                if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    return waited + self._fall_back(error)
            except BotoCoreError as error:
                return waited + self._fall_back(error)
            # This second's slots are taken: try the next one (a little jitter, so waiting
            # containers do not all ask at the same instant).
            wait = second + 1 - now + random.uniform(0, 0.05)
            self._sleep(wait)
            waited += wait

    def pause(self, seconds: float) -> None:
        """HubSpot said to wait (429 Retry-After): every container waits, so the seconds up
        to then are marked full (bounded by MAX_PAUSE_SECONDS)."""
        seconds = min(max(seconds, 0.0), MAX_PAUSE_SECONDS)
        now = self._clock()
        with self._lock:
            self._paused_until = max(self._paused_until, now + seconds)
        try:
            for second in range(math.floor(now), math.ceil(now + seconds)):
                self._dynamodb.update_item(
                    TableName=self.table_name, Key=self._key(second),
                    UpdateExpression="SET taken = :full, expires_at = :ttl",
                    ExpressionAttributeValues={":full": {"N": str(self.per_second)},
                                               ":ttl": {"N": str(second + SLOT_TTL_SECONDS)}})
        except (BotoCoreError, ClientError) as error:
            logger.warning("HubSpot budget pause not shared", extra={
                "error": type(error).__name__})

    def observe(self, headers: Mapping[str, str] | None) -> None:
        """HubSpot's rate-limit headers running low: this container slows down (every
        container sees the same app-wide figures)."""
        pause = low_water_pause(headers)
        if pause:
            with self._lock:
                self._paused_until = max(self._paused_until, self._clock() + pause)

    def _take(self, second: int) -> None:
        self._dynamodb.update_item(
            TableName=self.table_name, Key=self._key(second),
            UpdateExpression="ADD taken :one SET expires_at = if_not_exists(expires_at, :ttl)",
            ConditionExpression="attribute_not_exists(taken) OR taken < :limit",
            ExpressionAttributeValues={":one": {"N": "1"},
                                       ":limit": {"N": str(self.per_second)},
                                       ":ttl": {"N": str(second + SLOT_TTL_SECONDS)}})

    def _fall_back(self, error: Exception) -> float:
        count("HubSpotBudgetFallbacks")
        logger.warning("HubSpot budget table unavailable; using this container's share",
                       extra={"error": type(error).__name__})
        return self._fallback.acquire()

    @staticmethod
    def _key(second: int) -> dict[str, dict[str, str]]:
        return {"slot": {"S": f"{BUDGET_KEY}#{second}"}}
