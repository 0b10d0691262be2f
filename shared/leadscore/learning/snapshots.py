"""Point-in-time feature snapshots: what the model saw when it first scored a lead, and what
became of the lead (FeatureSnapshotTable, docs/CONTRACTS.md "Learning loop and monitoring").

One item per lead (pk `contact_id`), taken at its FIRST score and never replaced: later
re-scores may already see conversion activity (visits after a sales call, a job title a rep
corrected), which would leak the label into the training features. The item holds the model's
input properties as HubSpot strings (`features`, JSON) with the e-mail address reduced to its
domain (`@gmail.com`: the feature needs no more, and the snapshot must not hold the address),
the score the lead got, and later its outcome (`outcomes`). Issue 13's shadow challenger adds
`shadow_*` attributes; every write here leaves them alone.

Personal data: written only with consent (`capture`), erased by every full erasure (it is an
`ErasableStore` for `leadscore.dpdp.erasure.Eraser`) and by the retention purge
(`scored_before`), TTL `expires_at` as the backstop.

Why DynamoDB, not date-partitioned files in S3: erasing one person is one DeleteItem, outcomes
are updated in place, TTL backs the purge; a retrain reads everything with a parallel Scan.

No numpy/lightgbm here.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

import boto3
from boto3.dynamodb.conditions import Attr, ConditionExpressionBuilder
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict

from leadscore.timestamps import iso_millis

SNAPSHOT_RECORD = "feature_snapshot"  # how an erasure receipt names this store's record
# As for the ledger: the retention purge deletes on time, DynamoDB's TTL (days late) only backs it.
TTL_GRACE_DAYS = 7
WRITE_WORKERS = 8  # conditional writes are one request each
BATCH_GET_LIMIT = 100
SCAN_SEGMENTS = 4  # parallel Scan segments for reads of the whole table


class Outcome(StrEnum):
    POSITIVE = "positive"
    NEGATIVE = "negative"
    PRIOR = "prior"  # converted before the first score: says nothing about the score


class OutcomeSource(StrEnum):
    WEBHOOK = "webhook"  # seen by the score pipeline when a watched property changed
    HISTORY = "history"  # read from HubSpot's property history once the window closed
    WINDOW = "window"  # nothing positive within OutcomeWindowDays: negative


def reduce_email(value: str | None) -> str | None:
    """`asha@example.in` → `@example.in`: the domain the e-mail feature reads, without the
    address. None when there is no domain."""
    text = (value or "").strip()
    _, at, domain = text.rpartition("@")
    return f"@{domain.lower()}" if at and domain else None


class Snapshot(BaseModel):
    """One FeatureSnapshotTable item."""

    model_config = ConfigDict(frozen=True)

    contact_id: str
    portal_id: int = 0
    scored_at: str  # iso millis of the first score
    scored_day: str  # YYYY-MM-DD of scored_at
    model_version: str
    score: int
    probability: float
    tier: str
    features: dict[str, str | None]  # the model's input properties, e-mail reduced to a domain
    schema_hash: str = ""  # feature schema of the model that took it
    expires_at: int = 0  # epoch seconds (TTL)
    outcome: Outcome | None = None
    outcome_at: str | None = None
    outcome_source: OutcomeSource | None = None
    outcome_checked_at: str | None = None
    # Issue 13: the shadow challenger's score of the same lead (written by the score pipeline).
    shadow_version: str | None = None
    shadow_score: int | None = None
    shadow_probability: float | None = None
    shadow_tier: str | None = None

    @classmethod
    def take(cls, *, contact_id: str, portal_id: int, scored_at: datetime, model_version: str,
             score: int, probability: float, tier: str, properties: Mapping[str, str | None],
             columns: Sequence[str], email_column: str | None, schema_hash: str,
             retention_days: int, outcome: Outcome | None = None) -> Snapshot:
        features = {column: properties.get(column) for column in columns}
        if email_column and email_column in features:
            features[email_column] = reduce_email(features[email_column])
        stamp = iso_millis(scored_at)
        expires = scored_at + timedelta(days=retention_days + TTL_GRACE_DAYS)
        return cls(
            contact_id=contact_id, portal_id=portal_id, scored_at=stamp, scored_day=stamp[:10],
            model_version=model_version, score=int(score), probability=float(probability),
            tier=tier, features=features, schema_hash=schema_hash,
            expires_at=int(expires.timestamp()), outcome=outcome,
            outcome_at=stamp if outcome else None,
            outcome_source=OutcomeSource.WEBHOOK if outcome else None,
            outcome_checked_at=stamp if outcome else None)

    @property
    def scored_time(self) -> datetime:
        return parse_iso(self.scored_at)

    @property
    def settled(self) -> bool:
        """Its outcome is final (positive, negative, or reached before the first score)."""
        return self.outcome is not None

    def item(self) -> dict[str, Any]:
        """The DynamoDB item (resource API types); absent optional attributes are left out."""
        item = self.model_dump(mode="json", exclude_none=True)
        item["features"] = json.dumps(self.features, separators=(",", ":"), sort_keys=True)
        for name in ("probability", "shadow_probability"):
            if name in item:
                item[name] = Decimal(str(round(item[name], 6)))
        return item

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Snapshot:
        values = dict(item)
        values["features"] = json.loads(values.get("features") or "{}")
        for name in ("portal_id", "score", "expires_at", "shadow_score"):
            if name in values:
                values[name] = int(values[name])
        for name in ("probability", "shadow_probability"):
            if name in values:
                values[name] = float(values[name])
        return cls.model_validate(values)


def parse_iso(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class OutcomeUpdate:
    """An outcome to record, if the lead has none yet. `scored_from`/`scored_until` bound the
    first score it may apply to (the webhook path: the change happened within the window and
    not before the first score); otherwise any snapshot without an outcome takes it."""

    contact_id: str
    outcome: Outcome
    at: datetime
    source: OutcomeSource
    checked_at: datetime
    scored_from: datetime | None = None
    scored_until: datetime | None = None


@dataclass
class SnapshotWrites:
    taken: set[str] = field(default_factory=set)  # new snapshots
    existed: set[str] = field(default_factory=set)  # already had one: left as it was
    failed: dict[str, str] = field(default_factory=dict)  # contact id -> error type


class SnapshotStore:
    """FeatureSnapshotTable. Also the `ErasableStore` and `ScoredContacts` the DPDP code erases
    from and the retention purge scans (`leadscore.dpdp.stores`)."""

    record_name = SNAPSHOT_RECORD

    def __init__(self, table_name: str, dynamodb: Any | None = None,
                 client: Any | None = None):
        config = Config(max_pool_connections=WRITE_WORKERS + SCAN_SEGMENTS + 2)
        self._dynamodb = dynamodb or boto3.resource("dynamodb", config=config)
        self._client = client or (self._dynamodb.meta.client if dynamodb
                                  else boto3.client("dynamodb", config=config))
        self._table = self._dynamodb.Table(table_name)
        self.table_name = table_name

    # ---------------------------------------------------------------- writes
    def put_first(self, snapshots: Sequence[Snapshot]) -> SnapshotWrites:
        """Writes each snapshot unless the lead already has one (a conditional put: the first
        score wins, however often it is retried)."""
        writes = SnapshotWrites()
        if not snapshots:
            return writes

        def put(snapshot: Snapshot) -> None:
            try:
                self._table.put_item(Item=snapshot.item(),
                                     ConditionExpression="attribute_not_exists(contact_id)")
                writes.taken.add(snapshot.contact_id)
            except ClientError as error:
                if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                    writes.existed.add(snapshot.contact_id)
                else:
                    writes.failed[snapshot.contact_id] = error.response["Error"]["Code"]
            except BotoCoreError as error:
                writes.failed[snapshot.contact_id] = type(error).__name__

        with ThreadPoolExecutor(max_workers=min(WRITE_WORKERS, len(snapshots))) as pool:
            list(pool.map(put, snapshots))
        return writes

    def record_outcomes(self, updates: Sequence[OutcomeUpdate]) -> set[str]:
        """Records each outcome on a snapshot that has none yet; returns the contact ids
        updated. Only the outcome attributes are written (never `shadow_*` or features)."""
        recorded: set[str] = set()
        if not updates:
            return recorded

        def update(change: OutcomeUpdate) -> None:
            condition = "attribute_exists(contact_id) AND attribute_not_exists(outcome)"
            values: dict[str, Any] = {
                ":outcome": change.outcome.value, ":at": iso_millis(change.at),
                ":source": change.source.value, ":checked": iso_millis(change.checked_at)}
            if change.scored_from is not None:
                condition += " AND scored_at >= :from"
                values[":from"] = iso_millis(change.scored_from)
            if change.scored_until is not None:
                condition += " AND scored_at <= :until"
                values[":until"] = iso_millis(change.scored_until)
            try:
                self._table.update_item(
                    Key={"contact_id": change.contact_id},
                    UpdateExpression="SET outcome = :outcome, outcome_at = :at, "
                                     "outcome_source = :source, outcome_checked_at = :checked",
                    ConditionExpression=condition, ExpressionAttributeValues=values)
            except ClientError as error:
                if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
                return
            recorded.add(change.contact_id)

        with ThreadPoolExecutor(max_workers=min(WRITE_WORKERS, len(updates))) as pool:
            list(pool.map(update, updates))
        return recorded

    # ---------------------------------------------------------------- DPDP
    def held(self, contact_ids: Sequence[str]) -> set[str]:
        """The ids among these that have a snapshot (consistent reads, 100 per request)."""
        found: set[str] = set()
        ids = list(dict.fromkeys(contact_ids))
        for start in range(0, len(ids), BATCH_GET_LIMIT):
            request: dict[str, Any] = {self.table_name: {
                "Keys": [{"contact_id": cid} for cid in ids[start:start + BATCH_GET_LIMIT]],
                "ProjectionExpression": "contact_id", "ConsistentRead": True}}
            while request:
                response = self._dynamodb.batch_get_item(RequestItems=request)
                found.update(str(item["contact_id"])
                             for item in response.get("Responses", {}).get(self.table_name, []))
                request = response.get("UnprocessedKeys") or {}
        return found

    def delete_many(self, contact_ids: Sequence[str]) -> set[str]:
        """Deletes these contacts' snapshots; returns the ids that had one."""
        held = self.held(contact_ids)
        with self._table.batch_writer(overwrite_by_pkeys=["contact_id"]) as batch:
            for contact_id in sorted(held):
                batch.delete_item(Key={"contact_id": contact_id})
        return held

    def scored_before(self, cutoff: datetime) -> Iterator[str]:
        """Contacts first scored before `cutoff` (the retention purge)."""
        for item in self.scan_items(projection=["contact_id"],
                                    condition=Attr("scored_at").lt(iso_millis(cutoff))):
            yield item["contact_id"]["S"]

    # ---------------------------------------------------------------- reads
    def snapshots(self, *, scored_from: datetime | None = None,
                  scored_until: datetime | None = None, pending_only: bool = False,
                  segments: int = SCAN_SEGMENTS) -> Iterator[Snapshot]:
        """The snapshots of leads first scored in [scored_from, scored_until) (either bound
        optional), with their outcomes; `pending_only`: those without an outcome yet. A
        parallel Scan: order is not defined."""
        condition = None
        if scored_from is not None:
            condition = Attr("scored_at").gte(iso_millis(scored_from))
        if scored_until is not None:
            until = Attr("scored_at").lt(iso_millis(scored_until))
            condition = until if condition is None else condition & until
        if pending_only:
            pending = Attr("outcome").not_exists()
            condition = pending if condition is None else condition & pending
        deserialize = TypeDeserializer().deserialize
        for item in self.scan_items(condition=condition, segments=segments):
            yield Snapshot.from_item({name: deserialize(value) for name, value in item.items()})

    def scan_items(self, *, projection: Sequence[str] | None = None, condition: Any = None,
                   segments: int = SCAN_SEGMENTS) -> Iterator[dict[str, Any]]:
        """Raw items (DynamoDB's typed JSON, e.g. `{"S": "..."}`) of a parallel Scan, as pages
        arrive. Raw, because turning a million items into Python objects costs more than
        reading them (see infra/bench/retrain_bench.py)."""
        kwargs: dict[str, Any] = {"TableName": self.table_name}
        if projection:
            kwargs["ProjectionExpression"] = ", ".join(f"#p{i}" for i in range(len(projection)))
            kwargs["ExpressionAttributeNames"] = {f"#p{i}": name
                                                  for i, name in enumerate(projection)}
        if condition is not None:
            built = _build_condition(condition)
            kwargs["FilterExpression"] = built["expression"]
            kwargs.setdefault("ExpressionAttributeNames", {}).update(built["names"])
            if built["values"]:
                kwargs["ExpressionAttributeValues"] = built["values"]
        yield from _parallel_scan(self._client, kwargs, max(1, segments))


def _build_condition(condition: Any) -> dict[str, Any]:
    """A boto3 condition as the low-level client's expression, names and typed values."""
    built = ConditionExpressionBuilder().build_expression(condition)
    serialize = TypeSerializer().serialize
    return {"expression": built.condition_expression,
            "names": built.attribute_name_placeholders,
            "values": {k: serialize(v) for k, v in built.attribute_value_placeholders.items()}}


_DONE = object()


def _parallel_scan(client: Any, kwargs: Mapping[str, Any],
                   segments: int) -> Iterator[dict[str, Any]]:
    """Scan's pages from `segments` threads, yielded here as they come (at most a few pages
    wait in memory). An error in any segment is raised here."""
    pages: queue.Queue[Any] = queue.Queue(maxsize=2 * segments)
    stop = threading.Event()

    def scan(segment: int) -> None:
        request = {**kwargs, **({"Segment": segment, "TotalSegments": segments}
                                if segments > 1 else {})}
        try:
            while not stop.is_set():
                page = client.scan(**request)
                pages.put(page.get("Items", []))
                if "LastEvaluatedKey" not in page:
                    break
                request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        except Exception as error:  # handed to the reader, which raises it
            pages.put(error)
        finally:
            pages.put(_DONE)

    threads = [threading.Thread(target=scan, args=(s,), daemon=True) for s in range(segments)]
    for thread in threads:
        thread.start()
    running = segments
    try:
        while running:
            page = pages.get()
            if page is _DONE:
                running -= 1
            elif isinstance(page, Exception):
                raise page
            else:
                yield from page
    finally:
        stop.set()
        while any(thread.is_alive() for thread in threads):  # unblock writers, let them end
            with contextlib.suppress(queue.Empty):
                pages.get(timeout=0.05)


def snapshot_store_from_env(environ: Mapping[str, str] | None = None) -> SnapshotStore | None:
    """The store named by `FEATURE_SNAPSHOT_TABLE`; None where the variable is unset (a stack
    without the learning loop, unit tests of other parts)."""
    name = (os.environ if environ is None else environ).get("FEATURE_SNAPSHOT_TABLE")
    return SnapshotStore(name) if name else None

