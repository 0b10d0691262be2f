"""What DPDP needs from stores it does not own: the score ledger today (`leadscore.scoring.ledger.
DynamoDBLedger` implements both protocols), the feature snapshots next. The wiring injects them,
so dpdp never imports the code that writes them. Tables of derived data keyed by contact id
alone are erased by `ContactKeyedTable`, named in `ErasureSettings.contact_tables`.

No numpy/lightgbm here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, Protocol

import boto3

BATCH_GET_LIMIT = 100  # DynamoDB BatchGetItem


class ErasableStore(Protocol):
    """Records derived from contacts, keyed by contact id, that erasure must delete."""

    record_name: str  # how an erasure receipt names this store's record, e.g. "ledger"

    def delete_many(self, contact_ids: Sequence[str]) -> set[str]:
        """Deletes the records of these contacts; returns the ids that had one."""
        ...


class ScoredContacts(Protocol):
    """The contacts a store holds a score for, found by when they were scored: the consent
    sweep's ledger pass (everything scored before now) and the retention purge (before the
    cutoff)."""

    def scored_before(self, cutoff: datetime) -> Iterator[str]: ...


class ScoreRecords(ErasableStore, ScoredContacts, Protocol):
    """Both: what the DPDP jobs need of the score ledger."""


class ContactKeyedTable:
    """A DynamoDB table of derived data with one item per contact (pk `contact_id`): erasure
    deletes the item. Needs `dynamodb:BatchGetItem` and `dynamodb:BatchWriteItem` on it."""

    def __init__(self, table_name: str, record_name: str, dynamodb: Any | None = None):
        self.record_name = record_name
        self._dynamodb = dynamodb or boto3.resource("dynamodb")
        self._table_name = table_name

    def delete_many(self, contact_ids: Sequence[str]) -> set[str]:
        ids = list(dict.fromkeys(str(cid) for cid in contact_ids))
        held: set[str] = set()
        for start in range(0, len(ids), BATCH_GET_LIMIT):
            request: dict[str, Any] = {self._table_name: {
                "Keys": [{"contact_id": cid} for cid in ids[start:start + BATCH_GET_LIMIT]],
                "ProjectionExpression": "contact_id", "ConsistentRead": True}}
            while request:
                response = self._dynamodb.batch_get_item(RequestItems=request)
                held.update(str(item["contact_id"]) for item in
                            response.get("Responses", {}).get(self._table_name, []))
                request = response.get("UnprocessedKeys") or {}
        table = self._dynamodb.Table(self._table_name)
        with table.batch_writer(overwrite_by_pkeys=["contact_id"]) as batch:
            for contact_id in sorted(held):
                batch.delete_item(Key={"contact_id": contact_id})
        return held
