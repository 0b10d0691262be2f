"""The score ledger: what leadscore holds about a contact, in DynamoDB (`LedgerTable`).

One item per scored contact (pk `contact_id`), overwritten on every re-score: score, probability,
tier, model version, when, and `expires_at` for DynamoDB TTL. No personal data: ids and numbers
only. The ledger is how retention and consent erasure find what to delete, so it is written only
for contacts that were actually scored (consent given) and written to HubSpot.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

import boto3
from boto3.dynamodb.conditions import Attr
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict

from leadscore.hubspot_client import AI_PROPERTIES, BATCH_LIMIT, HubSpotBatchError
from leadscore.observability import count, logger

# TTL is a backstop, not the retention mechanism: the daily purge must see an expired item
# before DynamoDB's TTL sweeper (which runs up to days late, or early relative to the purge)
# removes it, or the contact's HubSpot properties would never be cleared.
TTL_GRACE_DAYS = 7


def iso_millis(moment: datetime) -> str:
    """`YYYY-MM-DDTHH:MM:SS.sssZ` in UTC: what HubSpot datetime properties and the ledger store;
    sorts lexicographically in time order."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class LedgerEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    contact_id: str
    score: int
    probability: float
    tier: str
    model_version: str
    scored_at: str  # iso_millis
    expires_at: int  # epoch seconds (DynamoDB TTL)

    @classmethod
    def for_score(cls, *, contact_id: str, score: int, probability: float, tier: str,
                  model_version: str, scored_at: datetime, retention_days: int) -> LedgerEntry:
        expires = scored_at + timedelta(days=retention_days + TTL_GRACE_DAYS)
        return cls(contact_id=contact_id, score=score, probability=probability, tier=tier,
                   model_version=model_version, scored_at=iso_millis(scored_at),
                   expires_at=int(expires.timestamp()))


class Ledger(Protocol):
    def put_many(self, entries: Iterable[LedgerEntry]) -> None: ...

    def delete_many(self, contact_ids: Iterable[str]) -> None: ...

    def scored_before(self, cutoff: datetime) -> Iterator[str]:
        """Contact ids whose latest score is older than `cutoff`."""
        ...

    def delete_if_scored_before(self, contact_id: str, cutoff: datetime) -> bool:
        """Deletes the item unless it was re-scored since `cutoff`; True if deleted."""
        ...


class DynamoDBLedger:
    def __init__(self, table_name: str, dynamodb: Any | None = None):
        self._table = (dynamodb or boto3.resource("dynamodb")).Table(table_name)

    def put_many(self, entries: Iterable[LedgerEntry]) -> None:
        with self._table.batch_writer(overwrite_by_pkeys=["contact_id"]) as batch:
            for entry in entries:
                item = entry.model_dump()
                item["probability"] = Decimal(str(round(entry.probability, 6)))
                batch.put_item(Item=item)

    def delete_many(self, contact_ids: Iterable[str]) -> None:
        with self._table.batch_writer(overwrite_by_pkeys=["contact_id"]) as batch:
            for contact_id in contact_ids:
                batch.delete_item(Key={"contact_id": contact_id})

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

    def delete_if_scored_before(self, contact_id: str, cutoff: datetime) -> bool:
        try:
            self._table.delete_item(
                Key={"contact_id": contact_id},
                ConditionExpression=Attr("scored_at").lt(iso_millis(cutoff)),
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True


# --- retention -----------------------------------------------------------------------------


class ContactStore(Protocol):
    def batch_read(self, ids: Iterable[str],
                   properties: Iterable[str]) -> dict[str, dict[str, str | None]]: ...

    def batch_update(self, updates: Mapping[str, Mapping[str, str]]) -> None: ...


class PurgeResult(BaseModel):
    expired: int = 0  # ledger items older than the retention period
    cleared: int = 0  # contacts whose ai_* properties were cleared in HubSpot
    deleted: int = 0  # ledger items deleted
    failed: int = 0  # HubSpot refused the clear; retried by the next purge


def _parse_hubspot_datetime(value: str) -> datetime | None:
    """HubSpot datetimes come back as ISO-8601 (or epoch ms when written that way)."""
    try:
        if value.isdigit():
            return datetime.fromtimestamp(int(value) / 1000, tz=UTC)
        parsed = datetime.fromisoformat(value)
    except (ValueError, OverflowError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _still_expired(scored_at: str | None, cutoff: datetime) -> bool:
    """Whether the contact's HubSpot score is (still) past retention. A score written after the
    cutoff means the contact was re-scored since the ledger scan: leave it alone. Unreadable
    values are cleared (erring towards erasure); absent ones need nothing cleared."""
    if not scored_at:
        return False
    parsed = _parse_hubspot_datetime(scored_at)
    return parsed is None or parsed < cutoff


def purge_expired_scores(
    *,
    ledger: Ledger,
    hubspot: ContactStore,
    retention_days: int,
    now: datetime,
) -> PurgeResult:
    """Erases scores older than `retention_days`: clears the contacts' ai_* properties in
    HubSpot, then deletes their ledger items. HubSpot first: if the clear fails, the ledger item
    survives and the next run retries. Contacts deleted from HubSpot, or already cleared, only
    lose the ledger item; contacts re-scored since (newer `ai_lead_scored_at`) are left alone.
    """
    cutoff = now - timedelta(days=retention_days)
    result = PurgeResult()
    expired = list(ledger.scored_before(cutoff))
    result.expired = len(expired)
    for start in range(0, len(expired), BATCH_LIMIT):
        chunk: Sequence[str] = expired[start:start + BATCH_LIMIT]
        current = hubspot.batch_read(chunk, ["ai_lead_scored_at"])
        to_clear = [cid for cid in chunk
                    if cid in current and _still_expired(current[cid].get("ai_lead_scored_at"),
                                                         cutoff)]
        failed: frozenset[str] = frozenset()
        if to_clear:
            try:
                hubspot.batch_update({cid: dict.fromkeys(AI_PROPERTIES, "") for cid in to_clear})
            except HubSpotBatchError as error:
                failed = error.failed_ids
        result.cleared += len(to_clear) - len(failed)
        result.failed += len(failed)
        for contact_id in chunk:
            if contact_id in failed:
                continue
            if (contact_id in current and contact_id not in to_clear
                    and current[contact_id].get("ai_lead_scored_at")):
                continue  # HubSpot holds a newer score: keep the record that we hold it
            if ledger.delete_if_scored_before(contact_id, cutoff):
                result.deleted += 1
                logger.info("Erasure receipt", extra={
                    "contact_id": contact_id, "reason": "retention_expired",
                    "erased_at": iso_millis(now),
                    "erased": (["hubspot:" + ",".join(AI_PROPERTIES)] if contact_id in to_clear
                               else []) + ["ledger"],
                })
    count("RetentionErasures", result.deleted)
    count("ErasureFailures", result.failed)
    return result
