"""The daily LLM budget and putting messages back on EnrichQueue for later.

The daily budget (`DailyBudget`) is an atomic spend counter per UTC day in DynamoDB. Before a
contact's LLM calls the worker reserves a fixed amount with one conditional `UpdateItem ...
ADD` (concurrent callers never overshoot by more than one reservation each); after the calls
it settles the reservation to the real estimated cost. Item: `{"day": "2026-11-23",
"spent_micro_usd": N, "expires_at": epoch s}`, in millionths of a dollar so no floating-point
drift accumulates in the counter.

`Requeue` puts message bodies back on EnrichQueue as new messages, with a delay. Why not a
longer visibility timeout on the failed record: every receive counts towards maxReceiveCount,
so a message waiting out the budget (or one the batch had no time left for) would end in the
DLQ although nothing failed. A fresh copy starts at zero receives; SQS delays are at most 15
minutes, so a message waiting for the next day's budget comes back every 15 minutes (one cheap
counter read per batch) until midnight.

No numpy/lightgbm here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from itertools import batched
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

MICRO = 1_000_000
KEEP_DAYS = 7  # counters expire (DynamoDB TTL) a week after their day
SQS_MAX_DELAY_SECONDS = 900
SQS_BATCH = 10


def _micro(usd: float) -> int:
    return round(usd * MICRO)


def day_of(now: datetime) -> str:
    return now.astimezone(UTC).date().isoformat()


def seconds_until_next_day(now: datetime) -> int:
    now = now.astimezone(UTC)
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    return max(1, int((midnight - now).total_seconds()))


def delay_until_next_day(now: datetime) -> int:
    """The SQS delay for a message waiting for the next UTC day's budget."""
    return min(SQS_MAX_DELAY_SECONDS, seconds_until_next_day(now))


class DailyBudget:
    """`try_reserve` before calling, `settle` after; `spent_usd` for reports and tests."""

    def __init__(self, table_name: str, limit_usd: float, *, dynamodb: Any | None = None):
        self.table_name = table_name
        self.limit_usd = limit_usd
        self._dynamodb = dynamodb or boto3.client("dynamodb")

    def try_reserve(self, usd: float, now: datetime) -> bool:
        """Adds `usd` to today's spend if that keeps it within the limit; False otherwise."""
        amount = _micro(usd)
        if amount > _micro(self.limit_usd):  # the condition below lets a day's first one pass
            return False
        try:
            self._dynamodb.update_item(
                TableName=self.table_name, Key={"day": {"S": day_of(now)}},
                UpdateExpression="ADD spent_micro_usd :amount SET expires_at = :expires",
                ConditionExpression="attribute_not_exists(spent_micro_usd) "
                                    "OR spent_micro_usd <= :ceiling",
                ExpressionAttributeValues={
                    ":amount": {"N": str(amount)},
                    ":ceiling": {"N": str(_micro(self.limit_usd) - amount)},
                    ":expires": {"N": str(int((now + timedelta(days=KEEP_DAYS)).timestamp()))},
                },
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def settle(self, reserved_usd: float, spent_usd: float | None, now: datetime) -> None:
        """Replaces a reservation with what the calls cost (unknown cost: it stays reserved)."""
        if spent_usd is None:
            return
        delta = _micro(spent_usd) - _micro(reserved_usd)
        if delta:
            self._dynamodb.update_item(
                TableName=self.table_name, Key={"day": {"S": day_of(now)}},
                UpdateExpression="ADD spent_micro_usd :delta",
                ExpressionAttributeValues={":delta": {"N": str(delta)}},
            )

    def cannot_afford(self, usd: float, now: datetime) -> bool:
        """A cheap look before any other work (a waiting message must not spend HubSpot
        quota every time it comes back); `try_reserve` stays the atomic decision."""
        return self.spent_usd(now) + usd > self.limit_usd

    def spent_usd(self, now: datetime) -> float:
        item = self._dynamodb.get_item(TableName=self.table_name,
                                       Key={"day": {"S": day_of(now)}},
                                       ConsistentRead=True).get("Item") or {}
        return int(item.get("spent_micro_usd", {}).get("N", "0")) / MICRO


class Requeue:
    """Sends message bodies to EnrichQueue again, as new messages, ten per call."""

    def __init__(self, queue_url: str, *, sqs: Any | None = None):
        self.queue_url = queue_url
        self._sqs = sqs or boto3.client("sqs")

    def send(self, bodies: Sequence[tuple[str, str, int]]) -> set[str]:
        """(key, body, delay seconds) each; returns the keys that were not queued."""
        failed: set[str] = set()
        for chunk in batched(bodies, SQS_BATCH):
            by_id = {str(i): key for i, (key, _, _) in enumerate(chunk)}
            try:
                response = self._sqs.send_message_batch(QueueUrl=self.queue_url, Entries=[
                    {"Id": str(i), "MessageBody": body,
                     "DelaySeconds": max(0, min(SQS_MAX_DELAY_SECONDS, delay))}
                    for i, (_, body, delay) in enumerate(chunk)])
            except (BotoCoreError, ClientError):
                failed.update(by_id.values())
                continue
            failed.update(by_id[entry["Id"]] for entry in response.get("Failed") or [])
        return failed
