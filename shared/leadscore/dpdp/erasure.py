"""Erasure of what leadscore derived about a contact, with a receipt that proves it.

What leadscore holds about a contact, and where:
- the `ai_lead_*` properties it wrote on the contact in HubSpot;
- its records in stores of derived data (`leadscore.dpdp.stores.ErasableStore`): the ledger
  item (`LedgerTable`: score, tier, event bookkeeping) and the record of which processors
  received the contact's data (`DisclosuresTable`);
- queued work (ScoreQueue/EnrichQueue messages): ids and numbers only, and never acted on
  without consent, because the score and enrich functions re-read consent from HubSpot right
  before they process; pending enrichment is therefore dropped, not deleted.

`Eraser.erase` clears the HubSpot properties (all of them, or only the LLM-written ones when
only `ai_enrichment` was withdrawn), deletes the contact's records from every store it is
given, and writes one receipt per contact to `ErasureReceiptsTable`. A receipt names the contact
only by a keyed hash (HMAC-SHA256 with a key from Secrets Manager, so nobody without the key can
test a guessed id), and says what was erased, why and when. Receipts expire (DynamoDB TTL)
after the audit period.

What erasure cannot reach is named in each receipt (`outside_scope`, `OUTSIDE_SCOPE`): HubSpot
keeps the earlier values of cleared properties in the contact's property history until the
contact itself is deleted, and an LLM provider that received the data keeps it under its own
terms.

HubSpot is cleared before the stores' records are deleted: a contact HubSpot refused to clear
keeps its records and gets no receipt, is reported in `ErasureResult.failed`, and is retried by
the caller (SQS redelivery, the next sweep or purge).

No numpy/lightgbm here: the score, sweep and purge functions import this module.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Literal, Protocol

import boto3
from boto3.dynamodb.conditions import Attr, Key
from pydantic import BaseModel, ConfigDict

from leadscore.dpdp.settings import ErasureSettings
from leadscore.dpdp.stores import ContactKeyedTable, ErasableStore
from leadscore.hubspot.client import ContactProperties, HubSpotBatchError
from leadscore.hubspot.properties import AI_PROPERTIES, ENRICHMENT_PROPERTIES
from leadscore.observability import count, logger
from leadscore.settings import get_secret
from leadscore.timestamps import iso_millis

Scope = Literal["all", "enrichment"]
# Rule 8(3) and Rule 6(1)(e) of the DPDP Rules, 2025 ask for logs of processing to be kept for
# at least a year; erasure evidence is kept longer by default (AuditRetentionDays).
DEFAULT_AUDIT_RETENTION_DAYS = 1095


class ErasureReason(StrEnum):
    CONSENT_WITHDRAWN = "consent_withdrawn"  # webhook: `lead_scoring` no longer consented
    ENRICHMENT_CONSENT_WITHDRAWN = "enrichment_consent_withdrawn"  # webhook: `ai_enrichment` gone
    CONTACT_DELETED = "contact_deleted"  # deleted (or merged away) in HubSpot
    PRIVACY_DELETION = "privacy_deletion"  # HubSpot GDPR/privacy deletion
    RETENTION_EXPIRED = "retention_expired"  # not re-scored within RETENTION_DAYS
    CONSENT_SWEEP = "consent_sweep"  # daily sweep: consent no longer covers what is held
    # The learning loop: consent no longer covers training (`lead_scoring`, or the purpose
    # `TrainingConsentPurpose` requires); only the feature snapshot is erased.
    TRAINING_CONSENT_WITHDRAWN = "training_consent_withdrawn"


# What an erasure does not reach, as a receipt names it.
OUTSIDE_SCOPE = {
    "hubspot_property_history": "HubSpot keeps the earlier values of the cleared properties "
                                "in the contact's property history until the contact is "
                                "deleted (GDPR delete)",
    "llm_provider_copies": "the LLM provider that received the contact's data keeps it under "
                           "its own terms (see docs/dpdp.md)",
}


class ErasureReceipt(BaseModel):
    """One DynamoDB item of `ErasureReceiptsTable`; nothing in it is personal data."""

    model_config = ConfigDict(frozen=True)

    subject: str  # HMAC-SHA256(receipt key, contact id), hex (partition key)
    receipt: str  # "<erased_at>#<reason>" (sort key): one contact's receipts sort in time order
    reason: ErasureReason
    scope: Scope
    hubspot_properties: tuple[str, ...] = ()  # properties that held a value and were cleared
    records: tuple[str, ...] = ()  # stores whose record of the contact was deleted ("ledger")
    outside_scope: tuple[str, ...] = ()  # what this erasure could not reach (OUTSIDE_SCOPE)
    erased_at: str  # iso_millis, UTC
    expires_at: int  # epoch seconds (DynamoDB TTL): end of the audit period
    key_id: str  # which receipt key hashed `subject` (survives key rotation)

    def item(self) -> dict[str, Any]:
        item = self.model_dump(mode="json")
        # DynamoDB has no empty sets; lists may be empty.
        item["hubspot_properties"] = list(self.hubspot_properties)
        item["records"] = list(self.records)
        item["outside_scope"] = list(self.outside_scope)
        return item


class ErasureResult(BaseModel):
    """Contact ids by outcome. `failed` ones were not (fully) erased and must be retried."""

    erased: list[str] = []
    failed: list[str] = []
    hubspot_cleared: int = 0  # contacts whose HubSpot properties held something and were cleared
    records_deleted: dict[str, int] = {}  # per store (its record_name): records deleted


class ContactEraser(Protocol):
    """What the score pipeline, the consent sweep and the retention purge call: `Eraser`."""

    def erase(self, contact_ids: Sequence[str], reason: ErasureReason, *, scope: Scope = "all",
              clear_hubspot: bool = True, now: datetime | None = None,
              extra_records: Sequence[str] = ()) -> ErasureResult: ...


def subject_hash(key: bytes, contact_id: str) -> str:
    """The receipt's name for a contact: only a holder of the key can link it to the id."""
    return hmac.new(key, str(contact_id).encode(), hashlib.sha256).hexdigest()


def key_id(key: bytes) -> str:
    """A short fingerprint of the receipt key (a hash of a random secret reveals nothing)."""
    return hashlib.sha256(b"leadscore-receipt-key:" + key).hexdigest()[:12]


class ReceiptStore(Protocol):
    def put_many(self, receipts: Sequence[ErasureReceipt]) -> None: ...


class DynamoDBReceipts:
    """`ErasureReceiptsTable`: pk `subject`, sk `receipt`, TTL attribute `expires_at`."""

    def __init__(self, table_name: str, dynamodb: Any | None = None):
        self._table = (dynamodb or boto3.resource("dynamodb")).Table(table_name)

    def put_many(self, receipts: Sequence[ErasureReceipt]) -> None:
        with self._table.batch_writer(overwrite_by_pkeys=["subject", "receipt"]) as batch:
            for receipt in receipts:
                batch.put_item(Item=receipt.item())

    def scan(self, since: datetime | None = None,
             until: datetime | None = None) -> Iterator[dict[str, Any]]:
        """Every receipt erased in [since, until) (both optional)."""
        condition = None
        if since is not None:
            condition = Attr("erased_at").gte(iso_millis(since))
        if until is not None:
            before = Attr("erased_at").lt(iso_millis(until))
            condition = before if condition is None else condition & before
        kwargs: dict[str, Any] = {"FilterExpression": condition} if condition is not None else {}
        while True:
            page = self._table.scan(**kwargs)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def for_subject(self, subject: str) -> list[dict[str, Any]]:
        """One contact's receipts, oldest first (the caller hashes the id with the key)."""
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"KeyConditionExpression": Key("subject").eq(subject)}
        while True:
            page = self._table.query(**kwargs)
            items += page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


class Eraser:
    """Erases derived data and writes receipts (docs/CONTRACTS.md, "Erasure").

    `stores` are the stores of derived data to delete from (the ledger). Built in the Lambdas
    by `eraser_from_env`.
    """

    def __init__(self, *, hubspot: ContactProperties, stores: Sequence[ErasableStore],
                 receipts: ReceiptStore, receipt_key: bytes,
                 audit_retention_days: int = DEFAULT_AUDIT_RETENTION_DAYS):
        if not receipt_key:
            raise ValueError("receipt_key must not be empty")
        self.hubspot = hubspot
        self.stores = tuple(stores)
        self.receipts = receipts
        self._key = receipt_key
        self._key_id = key_id(receipt_key)
        self.audit_retention_days = audit_retention_days

    def subject(self, contact_id: str) -> str:
        return subject_hash(self._key, contact_id)

    def erase(self, contact_ids: Sequence[str], reason: ErasureReason, *,
              scope: Scope = "all", clear_hubspot: bool = True,
              now: datetime | None = None, extra_records: Sequence[str] = ()) -> ErasureResult:
        """Erases what was derived about these contacts (see the module docstring).

        `scope="enrichment"` clears only the LLM-written properties (the score stays; the
        stores hold nothing LLM-derived). `clear_hubspot=False` skips HubSpot, for contacts
        that no longer exist there. `extra_records` names stores the caller has already erased
        the contacts from, for the receipt (e.g. the HubSpot contact itself). HubSpot being
        unavailable raises (nothing was erased for the contacts of the failed call; the caller
        retries).
        """
        ids = list(dict.fromkeys(str(cid) for cid in contact_ids if str(cid)))
        result = ErasureResult()
        if not ids:
            return result
        now = (now or datetime.now(UTC)).astimezone(UTC)
        reason = ErasureReason(reason)
        properties = AI_PROPERTIES if scope == "all" else ENRICHMENT_PROPERTIES

        cleared: dict[str, tuple[str, ...]] = {}
        failed: set[str] = set()
        if clear_hubspot:
            cleared, failed = self._clear_hubspot(ids, properties)
        done = [cid for cid in ids if cid not in failed]

        deleted: dict[str, set[str]] = {}  # store -> contacts whose record it deleted
        if scope == "all" and done:
            for store in self.stores:
                deleted[store.record_name] = store.delete_many(done)

        erased_at = iso_millis(now)
        expires_at = int((now + timedelta(days=self.audit_retention_days)).timestamp())
        self.receipts.put_many([ErasureReceipt(
            subject=self.subject(cid), receipt=f"{erased_at}#{reason.value}", reason=reason,
            scope=scope, hubspot_properties=cleared.get(cid, ()),
            records=tuple(name for name, held in deleted.items() if cid in held)
            + tuple(extra_records),
            outside_scope=outside_scope(cleared.get(cid, ()),
                                        cid in deleted.get("disclosures", ())),
            erased_at=erased_at,
            expires_at=expires_at, key_id=self._key_id,
        ) for cid in done])

        result.erased = done
        result.failed = sorted(failed)
        result.hubspot_cleared = len(cleared)
        result.records_deleted = {name: len(held) for name, held in deleted.items()}
        count("ErasureReceipts", len(done))
        count("ErasureFailures", len(failed))
        # Counts only: an erased contact is named nowhere but in its receipt's keyed hash.
        logger.info("Erasure done", extra={
            "reason": reason.value, "scope": scope, "erased": len(done),
            "hubspot_cleared": len(cleared), "records_deleted": result.records_deleted,
            "failed_contact_ids": result.failed,
        })
        return result

    def _clear_hubspot(self, ids: Sequence[str], properties: Sequence[str]
                       ) -> tuple[dict[str, tuple[str, ...]], set[str]]:
        """Clears the properties that hold a value; returns (cleared per contact, failed ids).
        Reading first spares HubSpot writes (and property-change events) for contacts that hold
        nothing, and tells contacts HubSpot no longer has (nothing to clear) from failures."""
        current = self.hubspot.batch_read(ids, properties)
        to_clear = {cid: names for cid, values in current.items()
                    if (names := tuple(p for p in properties if values.get(p) not in (None, "")))}
        failed: set[str] = set()
        if to_clear:
            try:
                # An empty string is how the HubSpot API clears a property.
                self.hubspot.batch_update({cid: dict.fromkeys(names, "")
                                           for cid, names in to_clear.items()})
            except HubSpotBatchError as error:
                failed = set(error.failed_ids) & set(to_clear)
        return {cid: names for cid, names in to_clear.items() if cid not in failed}, failed


def outside_scope(cleared_properties: Sequence[str], had_disclosures: bool) -> tuple[str, ...]:
    """What a contact's erasure did not reach (codes of OUTSIDE_SCOPE)."""
    return ((("hubspot_property_history",) if cleared_properties else ())
            + (("llm_provider_copies",) if had_disclosures else ()))


def eraser_from_env(*, hubspot: ContactProperties, stores: Sequence[ErasableStore],
                    environ: Mapping[str, str] | None = None) -> Eraser:
    """An Eraser from the function's environment: `ERASURE_RECEIPTS_TABLE`,
    `ERASURE_RECEIPT_KEY_SECRET` (Secrets Manager id of the hashing key; cached five minutes)
    and `AUDIT_RETENTION_DAYS`; besides `stores`, it erases from the tables keyed by contact
    id that the environment names (`DISCLOSURES_TABLE`)."""
    settings = ErasureSettings.from_env(os.environ if environ is None else environ)
    key = get_secret(settings.erasure_receipt_key_secret)
    stores = [*stores, *(ContactKeyedTable(table, name)
                         for name, table in settings.contact_tables().items())]
    return Eraser(hubspot=hubspot, stores=stores,
                  receipts=DynamoDBReceipts(settings.erasure_receipts_table),
                  receipt_key=key.encode() if isinstance(key, str) else bytes(key),
                  audit_retention_days=settings.audit_retention_days)
