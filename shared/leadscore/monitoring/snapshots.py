"""The leads monitoring reads: feature snapshots taken at each lead's first score.

The snapshot store belongs to the learning loop (docs/CONTRACTS.md, "FeatureSnapshotTable");
monitoring reads it through `SnapshotSource`, a protocol of its own, so it needs nothing but
the item shape. `DynamoDBSnapshots` reads that shape from the table (a parallel Scan filtered
on `scored_at`: the table is keyed by contact, and one daily scan of a retention period's leads
is cheap next to a secondary index written on every score).

An item that does not have the contract's shape is counted and skipped, never fatal: one bad
item must not stop the monitor (and silence its alarms).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

import boto3
from boto3.dynamodb.conditions import Attr
from botocore.config import Config
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from leadscore.timestamps import iso_millis

SCAN_SEGMENTS = 4  # parallel Scan segments (DynamoDB spreads them over partitions)
# Only what monitoring uses (placeholders: some names may be DynamoDB reserved words).
PROJECTED = ("contact_id", "scored_at", "model_version", "score", "probability", "tier",
             "features", "shadow_version", "shadow_score", "shadow_probability", "shadow_tier",
             "outcome", "outcome_at")

Outcome = Literal["positive", "negative", "prior"]


class Snapshot(BaseModel):
    """One lead as first scored (docs/CONTRACTS.md, "FeatureSnapshotTable"): the model's input
    properties as HubSpot strings, the champion's recorded score, the shadow challenger's if
    one ran, and the outcome once known (`prior` = converted before its first score)."""

    model_config = ConfigDict(frozen=True)

    contact_id: str
    scored_at: datetime
    model_version: str
    score: int = Field(ge=0, le=100)
    probability: float = Field(ge=0.0, le=1.0)
    tier: str
    features: dict[str, str | None]
    shadow_version: str | None = None
    shadow_score: int | None = Field(default=None, ge=0, le=100)
    shadow_probability: float | None = Field(default=None, ge=0.0, le=1.0)
    shadow_tier: str | None = None
    outcome: Outcome | None = None
    outcome_at: datetime | None = None

    @field_validator("features", mode="before")
    @classmethod
    def _json_object(cls, value: Any) -> Any:
        """Stored as a JSON string (one attribute, whatever the model's columns)."""
        if isinstance(value, str):
            value = json.loads(value)
        if not isinstance(value, Mapping):
            raise ValueError("features must be a JSON object")
        return {str(k): (None if v is None else str(v)) for k, v in value.items()}

    @property
    def converted(self) -> bool | None:
        """True/False once the outcome is final; None while pending or when it came first."""
        return {"positive": True, "negative": False}.get(self.outcome or "")


def model_inputs(features: Mapping[str, str | None],
                 email_column: str | None) -> Mapping[str, str | None]:
    """A snapshot's properties as the model reads them. The e-mail column is stored as its
    domain only (`@gmail.com`: the snapshot keeps no address), which the features module, made
    for whole addresses, would read as missing: a placeholder local part is put back."""
    domain = features.get(email_column) if email_column else None
    if not domain or not domain.startswith("@"):
        return features
    return {**features, email_column: "lead" + domain}


@dataclass
class SnapshotRead:
    """What one read found: the readable snapshots, and how many items were not."""

    snapshots: list[Snapshot] = field(default_factory=list)
    unreadable: int = 0


class SnapshotSource(Protocol):
    def snapshots(self, scored_from: datetime, scored_to: datetime) -> SnapshotRead:
        """Leads first scored in [scored_from, scored_to)."""


def parse_items(items: Iterable[Mapping[str, Any]]) -> SnapshotRead:
    read = SnapshotRead()
    for item in items:
        try:
            read.snapshots.append(Snapshot.model_validate(dict(item)))
        except (ValidationError, ValueError):  # ValueError: features not JSON
            read.unreadable += 1
    return read


class DynamoDBSnapshots:
    """FeatureSnapshotTable, read-only: `Scan` with a `scored_at` filter, `SCAN_SEGMENTS`
    segments in parallel."""

    def __init__(self, table_name: str, dynamodb: Any | None = None,
                 segments: int = SCAN_SEGMENTS):
        self._dynamodb = dynamodb or boto3.resource(
            "dynamodb", config=Config(max_pool_connections=segments + 2))
        self._table = self._dynamodb.Table(table_name)
        self.segments = segments

    def snapshots(self, scored_from: datetime, scored_to: datetime) -> SnapshotRead:
        window = Attr("scored_at").between(iso_millis(scored_from), iso_millis(scored_to))
        with ThreadPoolExecutor(max_workers=self.segments) as pool:
            pages = pool.map(lambda s: list(self._segment(s, window)), range(self.segments))
            items = [item for page in pages for item in page
                     if str(item.get("scored_at", "")) < iso_millis(scored_to)]
        return parse_items(items)

    def _segment(self, segment: int, window: Any) -> Iterator[Mapping[str, Any]]:
        # `between` is inclusive at both ends; the caller drops the upper bound itself.
        kwargs: dict[str, Any] = {
            "FilterExpression": window, "Segment": segment, "TotalSegments": self.segments,
            "ProjectionExpression": ", ".join(f"#p_{name}" for name in PROJECTED),
            "ExpressionAttributeNames": {f"#p_{name}": name for name in PROJECTED},
        }
        while True:
            page = self._table.scan(**kwargs)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
