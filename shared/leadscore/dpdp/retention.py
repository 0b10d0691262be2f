"""The daily retention purge: derived data is kept for `RETENTION_DAYS`, then erased.

"Now" is the real clock; only the local stack may run it at a simulated time
(`leadscore.timestamps.scheduled_time`: `POST /schedules/RetentionPurgeFunction/run
{"time": ...}`). The cutoff is
now − RETENTION_DAYS; a contact not re-scored since then loses what leadscore derived:

1. Ledger items scored before the cutoff: the contact's `ai_lead_scored_at` in HubSpot decides.
   Older (or unreadable) → erase everything (HubSpot properties, ledger item, receipt); the
   contact no longer in HubSpot → erase the ledger item; newer (re-scored, but the ledger write
   was lost) → left alone. DynamoDB's TTL on `expires_at` is only a backstop: it runs days
   late, and would delete the item without clearing HubSpot.
2. Contacts whose `ai_lead_scored_at` in HubSpot is before the cutoff but that have no ledger
   item (it was lost, or the score predates the ledger): erase their properties too.
3. Records of other stores that expire on their own clock (`expiring`: the learning loop's
   feature snapshots, kept `RETENTION_DAYS` from the lead's FIRST score even if it was
   re-scored since): erased from that store only, with a receipt.
4. Optionally (`PURGE_INACTIVE_CONTACTS`, off by default), contacts with no consent value at
   all and no change for the period: "report" counts them and logs their ids (a dry run to
   review first), "delete" deletes them in HubSpot through its GDPR-delete endpoint. This
   deletes the CRM record itself, which the portal owner may keep for other purposes: it is
   the operator's decision, not a default.

No numpy/lightgbm here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import batched
from typing import Any, Literal, Protocol

from pydantic import BaseModel

from leadscore.dpdp.consent import consent_for
from leadscore.dpdp.erasure import ContactEraser, ErasureReason, ErasureResult
from leadscore.dpdp.stores import ScoredContacts
from leadscore.hubspot.client import (
    BATCH_LIMIT,
    SEARCH_PAGE,
    Contact,
    ContactSearch,
    last_ascending_id,
)
from leadscore.observability import count, logger
from leadscore.timestamps import parse_hubspot_datetime

InactiveMode = Literal["off", "report", "delete"]
SCORED_AT = "ai_lead_scored_at"
HUBSPOT_CONTACT = "hubspot_contact"  # receipt record: the CRM contact itself was deleted
REPORTED_IDS = 100  # at most this many candidate ids in the dry-run log line and result
TIME_MARGIN_SECONDS = 60.0  # stop this long before the Lambda timeout


class ContactDeleter(Protocol):
    """HubSpot's GDPR delete (`leadscore.hubspot.client.GdprDeleter`)."""

    def gdpr_delete(self, contact_id: str) -> bool: ...


class PurgeResult(BaseModel):
    expired: int = 0  # ledger items scored before the cutoff
    erased: int = 0  # contacts whose ai_* properties and ledger item were erased
    ledger_only: int = 0  # ledger items of contacts HubSpot no longer has, erased
    kept_rescored: int = 0  # old ledger item, but HubSpot holds a newer score: left alone
    hubspot_only: int = 0  # ai_* properties past the period without a ledger item, erased
    derived_erased: int = 0  # records of `expiring` stores past the period (feature snapshots)
    failed: int = 0  # HubSpot refused the clear; retried by the next purge
    inactive_mode: InactiveMode = "off"
    inactive_found: int = 0  # no consent and no activity for the period
    inactive_deleted: int = 0  # ... GDPR-deleted in HubSpot ("delete" mode)
    inactive_ids: list[str] = []  # "report" mode: the first REPORTED_IDS candidates
    complete: bool = True  # False: stopped before the Lambda timeout; the rest next run


def still_expired(scored_at: str | None, cutoff: datetime) -> bool:
    """Whether HubSpot's score is (still) past retention. Unreadable values count as expired
    (erring towards erasure); absent ones too: nothing newer was written since the ledger's."""
    if not scored_at:
        return True
    parsed = parse_hubspot_datetime(scored_at)
    return parsed is None or parsed < cutoff


def epoch_ms(moment: datetime) -> str:
    """How HubSpot's search compares datetime properties."""
    return str(int(moment.timestamp() * 1000))


def scored_before_filter(cutoff: datetime, after_id: int) -> list[dict[str, Any]]:
    return [{"filters": [
        {"propertyName": SCORED_AT, "operator": "LT", "value": epoch_ms(cutoff)},
        {"propertyName": "hs_object_id", "operator": "GT", "value": str(after_id)},
    ]}]


def inactive_without_consent_filter(purposes_property: str, cutoff: datetime,
                                    after_id: int) -> list[dict[str, Any]]:
    """No consent value at all (never consented to any purpose) and unchanged since cutoff."""
    return [{"filters": [
        {"propertyName": purposes_property, "operator": "NOT_HAS_PROPERTY"},
        {"propertyName": "lastmodifieddate", "operator": "LT", "value": epoch_ms(cutoff)},
        {"propertyName": "hs_object_id", "operator": "GT", "value": str(after_id)},
    ]}]


@dataclass
class RetentionPurge:
    ledger: ScoredContacts
    hubspot: ContactSearch
    eraser: ContactEraser
    retention_days: int
    purposes_property: str = "dpdp_consent_purposes"
    inactive_mode: InactiveMode = "off"
    deleter: ContactDeleter | None = None  # required for inactive_mode="delete"
    seconds_left: Callable[[], float] = field(default=lambda: float("inf"))
    # (store, eraser of that store alone): records erased RETENTION_DAYS after their own time.
    expiring: Sequence[tuple[ScoredContacts, ContactEraser]] = ()
    # Contacts HubSpot refused to clear in this run: counted once, retried by the next run.
    _refused: set[str] = field(default_factory=set, init=False, repr=False)

    def run(self, now: datetime) -> PurgeResult:
        now = now.astimezone(UTC)
        cutoff = now - timedelta(days=self.retention_days)
        result = PurgeResult(inactive_mode=self.inactive_mode)
        self._refused = set()
        steps = [self._expired_ledger_items, self._expired_hubspot_scores,
                 self._expired_derived_records]
        if self.inactive_mode != "off":
            steps.append(self._inactive_contacts)
        for step in steps:
            if not step(now, cutoff, result):
                result.complete = False
                break
        count("RetentionErasures", result.erased + result.ledger_only + result.hubspot_only
              + result.derived_erased)
        count("RetentionKeptRescored", result.kept_rescored)
        count("InactiveContactsFound", result.inactive_found)
        count("InactiveContactsDeleted", result.inactive_deleted)
        if not result.complete:
            count("RetentionPurgeIncomplete")
            logger.warning("Retention purge stopped before the Lambda timeout; "
                           "the next run continues")
        return result

    def _out_of_time(self) -> bool:
        return self.seconds_left() < TIME_MARGIN_SECONDS

    def _erase(self, contact_ids: Sequence[str], now: datetime, **kwargs: Any) -> ErasureResult:
        return self.eraser.erase(contact_ids, ErasureReason.RETENTION_EXPIRED, now=now, **kwargs)

    def _expired_ledger_items(self, now: datetime, cutoff: datetime,
                              result: PurgeResult) -> bool:
        for chunk in batched(self.ledger.scored_before(cutoff), BATCH_LIMIT):
            if self._out_of_time():
                return False
            result.expired += len(chunk)
            current = self.hubspot.batch_read(chunk, [SCORED_AT])
            gone = [cid for cid in chunk if cid not in current]
            expired = [cid for cid in chunk
                       if cid in current and still_expired(current[cid].get(SCORED_AT), cutoff)]
            result.kept_rescored += len(chunk) - len(gone) - len(expired)
            if gone:
                outcome = self._erase(gone, now, clear_hubspot=False)
                result.ledger_only += len(outcome.erased)
                self._refused.update(outcome.failed)
            if expired:
                outcome = self._erase(expired, now)
                result.erased += len(outcome.erased)
                self._refused.update(outcome.failed)
        result.failed = len(self._refused)
        return True

    def _expired_hubspot_scores(self, now: datetime, cutoff: datetime,
                                result: PurgeResult) -> bool:
        last_id = 0
        while not self._out_of_time():
            contacts, _ = self.hubspot.search(scored_before_filter(cutoff, last_id), [SCORED_AT],
                                              limit=SEARCH_PAGE, sorts=["hs_object_id"])
            if not contacts:
                return True
            last_id = last_ascending_id(contacts, last_id)
            outcome = self._erase([c.id for c in contacts if c.id not in self._refused], now)
            result.hubspot_only += len(outcome.erased)
            self._refused.update(outcome.failed)
            result.failed = len(self._refused)
        return False

    def _expired_derived_records(self, now: datetime, cutoff: datetime,
                                 result: PurgeResult) -> bool:
        for store, eraser in self.expiring:
            for chunk in batched(store.scored_before(cutoff), BATCH_LIMIT):
                if self._out_of_time():
                    return False
                outcome = eraser.erase(chunk, ErasureReason.RETENTION_EXPIRED,
                                       clear_hubspot=False, now=now)
                result.derived_erased += len(outcome.erased)
        return True

    def _inactive_contacts(self, now: datetime, cutoff: datetime, result: PurgeResult) -> bool:
        last_id = 0
        while not self._out_of_time():
            contacts, _ = self.hubspot.search(
                inactive_without_consent_filter(self.purposes_property, cutoff, last_id),
                [self.purposes_property, "lastmodifieddate"], limit=SEARCH_PAGE,
                sorts=["hs_object_id"])
            if not contacts:
                return True
            last_id = last_ascending_id(contacts, last_id)
            # Re-checked here: only an absent or empty consent value, never a malformed one.
            candidates = [c.id for c in contacts if _inactive(c, self.purposes_property, cutoff)]
            result.inactive_found += len(candidates)
            if self.inactive_mode == "report":
                room = REPORTED_IDS - len(result.inactive_ids)
                result.inactive_ids += candidates[:max(room, 0)]
                continue
            deleted = [cid for cid in candidates if self._gdpr_delete(cid)]
            if deleted:
                # The receipt; the ledger holds nothing for never-consented contacts, but if
                # it does, this erases it too.
                self._erase(deleted, now, clear_hubspot=False, extra_records=[HUBSPOT_CONTACT])
            result.inactive_deleted += len(deleted)
        return False

    def _gdpr_delete(self, contact_id: str) -> bool:
        if self.deleter is None:
            raise ValueError("inactive_mode='delete' needs a deleter")
        return self.deleter.gdpr_delete(contact_id)


def _inactive(contact: Contact, purposes_property: str, cutoff: datetime) -> bool:
    decision = consent_for(contact.properties, purposes_property)
    if decision.malformed or decision.purposes:
        return False
    modified = parse_hubspot_datetime(contact.properties.get("lastmodifieddate"))
    return modified is not None and modified < cutoff
