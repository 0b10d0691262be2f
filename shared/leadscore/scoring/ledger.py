"""The score ledger: what leadscore holds about a contact, in DynamoDB (`LedgerTable`).

One item per scored contact (pk `contact_id`), overwritten on every re-score: score, probability,
tier, model version, a hash of the model inputs, when (first and latest score), the `occurredAt`
of the newest webhook event applied (`last_event_at`), whether the hot-lead alert went out, and
`expires_at` for DynamoDB TTL. No personal data: ids, numbers and a hash. The ledger is how
retention and consent erasure find what to delete, so it is written only for contacts that are
scored (consent given), right after their score is written to HubSpot.

`last_event_at` orders writes: a score is recorded only if no newer event was applied meanwhile
(a conditional write); `recent_event_ids` lets the score function recognise an event it has
already applied, however HubSpot regrouped its retries.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

import boto3
from boto3.dynamodb.conditions import Attr
from botocore.config import Config
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict

from leadscore.timestamps import iso_millis

# TTL is a backstop, not the retention mechanism: the daily purge must see an expired item
# before DynamoDB's TTL sweeper (which runs up to days late, or early relative to the purge)
# removes it, or the contact's HubSpot properties would never be cleared.
TTL_GRACE_DAYS = 7
BATCH_GET_LIMIT = 100  # DynamoDB BatchGetItem
WRITE_WORKERS = 8  # conditional writes are one request each; a few in parallel


class LedgerEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    contact_id: str
    score: int
    probability: float
    tier: str
    model_version: str
    scored_at: str  # iso_millis
    expires_at: int  # epoch seconds (DynamoDB TTL)
    feature_hash: str = ""  # leadscore.scoring.pipeline.feature_hash of the model's inputs
    last_event_at: int = 0  # epoch ms: occurredAt of the newest event this score applies
    # "portalId:eventId" of the latest webhook events applied, to recognise redeliveries.
    recent_event_ids: tuple[str, ...] = ()

    @classmethod
    def for_score(cls, *, contact_id: str, score: int, probability: float, tier: str,
                  model_version: str, scored_at: datetime, retention_days: int,
                  feature_hash: str = "", last_event_at: int = 0,
                  recent_event_ids: Sequence[str] = ()) -> LedgerEntry:
        expires = scored_at + timedelta(days=retention_days + TTL_GRACE_DAYS)
        return cls(contact_id=contact_id, score=score, probability=probability, tier=tier,
                   model_version=model_version, scored_at=iso_millis(scored_at),
                   expires_at=int(expires.timestamp()), feature_hash=feature_hash,
                   last_event_at=last_event_at, recent_event_ids=tuple(recent_event_ids))


@dataclass(frozen=True)
class LedgerState:
    """What the ledger says about a contact before a batch changes it."""

    tier: str | None = None
    last_event_at: int = 0
    hot_alerted: bool = False
    recent_event_ids: frozenset[str] = frozenset()


@dataclass
class RecordOutcome:
    recorded: set[str] = field(default_factory=set)
    superseded: set[str] = field(default_factory=set)  # a newer event was applied meanwhile


def _item(entry: LedgerEntry) -> dict[str, Any]:
    """The entry as a DynamoDB item (numbers as Decimal, lists for the event ids)."""
    item = entry.model_dump()
    item["probability"] = Decimal(str(round(entry.probability, 6)))
    item["recent_event_ids"] = list(entry.recent_event_ids)
    return item


class DynamoDBLedger:
    """The ledger table: the score pipeline's ordering and hot-alert bookkeeping, and the
    `ErasableStore` and `ScoredContacts` the DPDP code erases from and scans
    (`leadscore.dpdp.stores`)."""

    record_name = "ledger"  # what an erasure receipt lists when it deleted a ledger item

    def __init__(self, table_name: str, dynamodb: Any | None = None):
        # Room for WRITE_WORKERS parallel conditional writes on one connection pool.
        self._dynamodb = dynamodb or boto3.resource(
            "dynamodb", config=Config(max_pool_connections=WRITE_WORKERS + 2))
        self._table = self._dynamodb.Table(table_name)
        self._table_name = table_name

    def put_many(self, entries: Iterable[LedgerEntry]) -> None:
        """Unconditional writes (seeding, migrations); scores go through `record`."""
        with self._table.batch_writer(overwrite_by_pkeys=["contact_id"]) as batch:
            for entry in entries:
                batch.put_item(Item=_item(entry))

    def states(self, contact_ids: Sequence[str]) -> dict[str, LedgerState]:
        """Current items of these contacts (absent ids have none), 100 per BatchGetItem."""
        found: dict[str, LedgerState] = {}
        ids = list(dict.fromkeys(contact_ids))
        for start in range(0, len(ids), BATCH_GET_LIMIT):
            request: dict[str, Any] = {self._table_name: {
                "Keys": [{"contact_id": cid} for cid in ids[start:start + BATCH_GET_LIMIT]],
                "ProjectionExpression": "contact_id, tier, last_event_at, hot_alerted_at, "
                                        "recent_event_ids",
                "ConsistentRead": True,
            }}
            while request:
                response = self._dynamodb.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self._table_name, []):
                    found[str(item["contact_id"])] = LedgerState(
                        tier=item.get("tier"), last_event_at=int(item.get("last_event_at", 0)),
                        hot_alerted="hot_alerted_at" in item,
                        recent_event_ids=frozenset(item.get("recent_event_ids") or ()))
                request = response.get("UnprocessedKeys") or {}
        return found

    def record(self, entries: Sequence[LedgerEntry]) -> RecordOutcome:
        """Writes each score unless the item already applies a newer event. A tier other
        than hot forgets the hot alert, so the next time the contact turns hot it is alerted.

        Each item is read (one consistent BatchGetItem per 100) and replaced by a PutItem
        conditioned on the item being exactly as read. Why: in moto (the local stack) the
        conditional UpdateItem below costs ~11 ms and a conditional PutItem ~4 ms, which
        halved webhook-to-score in burst_bench.py; in DynamoDB the read adds one read unit per
        item and one round trip per 100, the writes cost the same. Only when a concurrent
        writer changed the item in between does the write fall back to that UpdateItem,
        conditioned on event order, so the outcome is the same as before."""
        outcome = RecordOutcome()
        if not entries:
            return outcome
        current = self._items([entry.contact_id for entry in entries])
        with ThreadPoolExecutor(max_workers=min(WRITE_WORKERS, len(entries))) as pool:
            results = pool.map(lambda e: self._put_one(e, current.get(e.contact_id)), entries)
            for entry, recorded in zip(entries, results, strict=True):
                (outcome.recorded if recorded else outcome.superseded).add(entry.contact_id)
        return outcome

    def _items(self, contact_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        ids = list(dict.fromkeys(contact_ids))
        for start in range(0, len(ids), BATCH_GET_LIMIT):
            request: dict[str, Any] = {self._table_name: {
                "Keys": [{"contact_id": cid} for cid in ids[start:start + BATCH_GET_LIMIT]],
                "ConsistentRead": True,
            }}
            while request:
                response = self._dynamodb.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self._table_name, []):
                    found[str(item["contact_id"])] = item
                request = response.get("UnprocessedKeys") or {}
        return found

    def _put_one(self, entry: LedgerEntry, seen: dict[str, Any] | None) -> bool:
        if seen is not None and int(seen.get("last_event_at", 0)) > entry.last_event_at:
            return False  # a newer event is applied (a consistent read)
        if seen is None:
            item = _item(entry) | {"first_scored_at": entry.scored_at}
            condition, values = "attribute_not_exists(contact_id)", {}
        else:
            # What the UpdateItem would leave: the item's other attributes, this entry's values.
            item = {k: v for k, v in seen.items() if k != "hot_alerted_at"} | _item(entry)
            item.setdefault("first_scored_at", entry.scored_at)
            # Unchanged since read: the same newest event, and the same hot-alert claim.
            if "last_event_at" in seen:
                condition = "last_event_at = :seen_event"
                values = {":seen_event": seen["last_event_at"]}
            else:
                condition, values = "attribute_not_exists(last_event_at)", {}
            if "hot_alerted_at" in seen:
                condition += " AND hot_alerted_at = :seen_alert"
                values[":seen_alert"] = seen["hot_alerted_at"]
                if entry.tier == "hot":
                    item["hot_alerted_at"] = seen["hot_alerted_at"]
            else:
                condition += " AND attribute_not_exists(hot_alerted_at)"
        try:
            self._table.put_item(Item=item, ConditionExpression=condition,
                                 **({"ExpressionAttributeValues": values} if values else {}))
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return self._record_one(entry)  # changed meanwhile: decide by event order
            raise
        return True

    def _record_one(self, entry: LedgerEntry) -> bool:
        values = _item(entry)
        del values["contact_id"]
        names = {f"#{k}": k for k in values}
        update = "SET " + ", ".join(f"#{k} = :{k}" for k in values)
        update += ", first_scored_at = if_not_exists(first_scored_at, :scored_at)"
        if entry.tier != "hot":
            update += " REMOVE hot_alerted_at"
        try:
            self._table.update_item(
                Key={"contact_id": entry.contact_id},
                UpdateExpression=update,
                ConditionExpression="attribute_not_exists(last_event_at) "
                                    "OR last_event_at <= :last_event_at",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={f":{k}": v for k, v in values.items()},
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def claim_hot_alert(self, contact_id: str, at: datetime) -> bool:
        """Marks the hot alert as sent unless it already was; True if this caller sends it."""
        try:
            self._table.update_item(
                Key={"contact_id": contact_id},
                UpdateExpression="SET hot_alerted_at = :at",
                ConditionExpression="attribute_exists(contact_id) "
                                    "AND attribute_not_exists(hot_alerted_at)",
                ExpressionAttributeValues={":at": iso_millis(at)},
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def release_hot_alert(self, contact_id: str) -> None:
        """The alert could not be published: let the retry send it."""
        self._table.update_item(Key={"contact_id": contact_id},
                                UpdateExpression="REMOVE hot_alerted_at")

    def delete_many(self, contact_ids: Sequence[str]) -> set[str]:
        """Deletes these contacts' items; returns the ids that had one."""
        held = set(self.states(contact_ids))
        with self._table.batch_writer(overwrite_by_pkeys=["contact_id"]) as batch:
            for contact_id in sorted(held):
                batch.delete_item(Key={"contact_id": contact_id})
        return held

    def scored_before(self, cutoff: datetime) -> Iterator[str]:
        kwargs: dict[str, Any] = {
            "FilterExpression": Attr("scored_at").lt(iso_millis(cutoff)),
            "ProjectionExpression": "contact_id",
        }
        while True:
            page = self._table.scan(**kwargs)
            for item in page.get("Items", []):
                yield str(item["contact_id"])
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


class ScoreLedger(Protocol):
    """`leadscore.scoring.ledger.DynamoDBLedger`'s ordering and alert bookkeeping."""

    def states(self, contact_ids: Sequence[str]) -> dict[str, LedgerState]: ...

    def record(self, entries: Sequence[LedgerEntry]) -> RecordOutcome: ...

    def claim_hot_alert(self, contact_id: str, at: datetime) -> bool: ...

    def release_hot_alert(self, contact_id: str) -> None: ...
