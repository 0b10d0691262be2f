"""The daily consent sweep: erases what consent no longer covers, for withdrawals whose webhook
never arrived (`sweep_withdrawn_consent`), resuming where the last run stopped (`SsmSweepCursor`).

No numpy/lightgbm here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import batched
from typing import Any, Protocol

import boto3
from pydantic import BaseModel

from leadscore.dpdp.consent import consent_for
from leadscore.dpdp.erasure import ContactEraser, ErasureReason, Scope
from leadscore.dpdp.stores import ScoredContacts
from leadscore.hubspot.client import (
    BATCH_LIMIT,
    SEARCH_PAGE,
    ContactSearch,
    last_ascending_id,
)
from leadscore.hubspot.properties import ENRICHMENT_PROPERTIES
from leadscore.observability import count, logger

# One filter group per property (HubSpot allows five groups, OR-ed): a contact carrying any of
# these holds something leadscore wrote. Every score write sets the first three together, every
# enrichment write the last two.
AI_MARKERS = ("ai_lead_score", "ai_lead_scored_at", "ai_lead_tier", "ai_lead_summary",
              "ai_lead_next_action")
# Stop this long before the Lambda timeout.
TIME_MARGIN_SECONDS = 60.0
# The search pass leaves this much for the ledger pass (a scan of the ledger table, and batch
# reads of the few items whose contacts carry no ai_* property).
LEDGER_PASS_RESERVE_SECONDS = 120.0
# The saved resume point is rounded down to a multiple of this (re-examining a few contacts is
# harmless; storing the id of a real, possibly just erased, contact is not needed).
CURSOR_STEP = 1000


class SweepCursor(Protocol):
    """Where the next sweep starts: the highest contact id a finished range ended on (0: from
    the first). `SsmSweepCursor` keeps it in SSM Parameter Store."""

    def load(self) -> int: ...

    def save(self, after_id: int) -> None: ...


class SweepResult(BaseModel):
    examined: int = 0  # contacts carrying ai_* properties in HubSpot
    ledger_checked: int = 0  # ledger items whose contacts carry none (checked by id)
    erased: int = 0  # `lead_scoring` consent gone: every ai_* property and the ledger item
    enrichment_cleared: int = 0  # `ai_enrichment` gone: the LLM-written properties only
    deleted_contacts: int = 0  # ledger items of contacts HubSpot no longer has
    malformed: int = 0  # consent values that could not be read (treated as withdrawn)
    failed: int = 0  # HubSpot refused the clear; retried by the next sweep
    complete: bool = True  # False: this run did not reach the last contact
    resumed_after: int = 0  # the run examined contacts with ids above this one
    next_start: int = 0  # where the next run starts (0: from the first contact)


def carrying_ai_properties(after_id: int) -> list[dict[str, Any]]:
    """Search filter: contacts with any AI_MARKERS property and an id above `after_id`.
    Keyset paging on `hs_object_id` instead of the search cursor: HubSpot's search stops at
    10,000 results per query, and clearing contacts would shift cursor pages under us."""
    return [{"filters": [
        {"propertyName": name, "operator": "HAS_PROPERTY"},
        {"propertyName": "hs_object_id", "operator": "GT", "value": str(after_id)},
    ]} for name in AI_MARKERS]


class SsmSweepCursor:
    """The consent sweep's resume point in an SSM String parameter (a contact id number; "0"
    or missing: from the first contact). A position only: no data about that contact."""

    def __init__(self, name: str, *, ssm: Any | None = None):
        self.name = name
        self._ssm = ssm or boto3.client("ssm")

    def load(self) -> int:
        try:
            value = self._ssm.get_parameter(Name=self.name)["Parameter"]["Value"]
        except self._ssm.exceptions.ParameterNotFound:
            return 0
        return int(value) if value.isdigit() else 0  # unreadable: sweep everything again

    def save(self, after_id: int) -> None:
        self._ssm.put_parameter(Name=self.name, Value=str(after_id), Type="String",
                                Overwrite=True)


@dataclass
class _Sweep:
    hubspot: ContactSearch
    eraser: ContactEraser
    purposes_property: str
    now: datetime
    result: SweepResult
    failed_ids: set[str] = field(default_factory=set)  # HubSpot refused to clear these

    def decide(self, contacts: Mapping[str, Mapping[str, Any]]) -> tuple[list[str], list[str]]:
        """(contacts to erase entirely, contacts whose LLM-written properties to clear)."""
        erase, clear_enrichment = [], []
        for contact_id, properties in contacts.items():
            decision = consent_for(properties, self.purposes_property)
            self.result.malformed += decision.malformed
            if not decision.may_score:  # fail closed: malformed counts as withdrawn
                erase.append(contact_id)
            elif not decision.may_enrich and any(properties.get(name)
                                                 for name in ENRICHMENT_PROPERTIES):
                clear_enrichment.append(contact_id)
        return erase, clear_enrichment

    def erase(self, contact_ids: list[str], scope: Scope = "all",
              reason: ErasureReason = ErasureReason.CONSENT_SWEEP,
              clear_hubspot: bool = True) -> None:
        if not contact_ids:
            return
        outcome = self.eraser.erase(contact_ids, reason, scope=scope,
                                    clear_hubspot=clear_hubspot, now=self.now)
        done = len(outcome.erased)
        if reason is ErasureReason.CONTACT_DELETED:
            self.result.deleted_contacts += done
        elif scope == "enrichment":
            self.result.enrichment_cleared += done
        else:
            self.result.erased += done
        self.result.failed += len(outcome.failed)
        self.failed_ids.update(outcome.failed)


def sweep_withdrawn_consent(
    *,
    hubspot: ContactSearch,
    ledger: ScoredContacts,
    eraser: ContactEraser,
    purposes_property: str,
    now: datetime,
    seconds_left: Callable[[], float] | None = None,
    cursor: SweepCursor | None = None,
) -> SweepResult:
    """Erases what consent no longer covers, for withdrawals whose webhook never arrived.

    1. Contacts carrying an ai_* property (HubSpot search, keyset-paged by id, from where the
       `cursor` says the last run stopped): consent without `lead_scoring` (or unreadable) →
       erase everything; without `ai_enrichment` but with LLM-written properties → clear those.
    2. Ledger items in the same id range whose contacts step 1 did not see, in id order (batch
       read by id): contact gone from HubSpot → erase the item; consent not covering it → erase.
    Each page is erased as it is read. `seconds_left` (the Lambda's remaining time) ends step 1
    early enough for step 2. The cursor then keeps the id up to which both steps are done, so
    the next run goes on from there: a portal too large for one run is swept over several
    days, not only its first ids. A contact HubSpot refused to clear holds the cursor back
    (retried next run) unless that would stop all progress. Reaching the end resets it.
    """
    result = SweepResult()
    sweep = _Sweep(hubspot, eraser, purposes_property, now, result)
    deadline = seconds_left or (lambda: float("inf"))
    start_id = _load_cursor(cursor)

    seen: set[str] = set()
    last_id, reached_end = start_id, False
    while deadline() >= TIME_MARGIN_SECONDS + LEDGER_PASS_RESERVE_SECONDS:
        contacts, _ = hubspot.search(
            carrying_ai_properties(last_id), [purposes_property, *ENRICHMENT_PROPERTIES],
            limit=SEARCH_PAGE, sorts=["hs_object_id"])
        if not contacts:
            reached_end = True
            break
        last_id = last_ascending_id(contacts, last_id)
        seen.update(contact.id for contact in contacts)
        result.examined += len(contacts)
        erase, clear_enrichment = sweep.decide({c.id: c.properties for c in contacts})
        sweep.erase(erase)
        sweep.erase(clear_enrichment, scope="enrichment")

    # Every id up to `done_to` is swept once step 2 has covered it too.
    done_to = math.inf if reached_end else float(last_id)
    to_check = _ledger_ids_to_check(ledger, now, seen, start_id, done_to, deadline)
    if to_check is None:  # no time left even to list them
        done_to = start_id
    else:
        chunks = list(batched(to_check, BATCH_LIMIT))
        for index, chunk in enumerate(chunks):
            _sweep_ledger_chunk(sweep, chunk)
            if index + 1 < len(chunks) and deadline() < TIME_MARGIN_SECONDS:
                following = chunks[index + 1][0]
                done_to = min(done_to, int(following) - 1) if following.isdigit() else start_id
                break
    refused = [int(cid) for cid in sweep.failed_ids if cid.isdigit()]
    if refused and min(refused) - 1 > start_id:
        done_to = min(done_to, min(refused) - 1)

    result.complete = done_to == math.inf
    result.resumed_after = start_id
    result.next_start = 0 if result.complete else int(done_to)
    count("ConsentSweepErasures", result.erased)
    count("ConsentSweepEnrichmentErasures", result.enrichment_cleared)
    count("ConsentSweepDeletedContacts", result.deleted_contacts)
    count("MalformedConsent", result.malformed)
    if not result.complete:
        count("ConsentSweepIncomplete")
        if result.next_start <= start_id:
            count("ConsentSweepNoProgress")
        logger.warning("Consent sweep did not reach the last contact; the next run goes on "
                       "from where this one stopped", extra={
                           "examined": result.examined, "resumed_after": start_id,
                           "next_start": result.next_start})
    _save_cursor(cursor, start_id, result.next_start)
    return result


def _ledger_ids_to_check(ledger: ScoredContacts, now: datetime, seen: set[str], start_id: int,
                         done_to: float, deadline: Callable[[], float]) -> list[str] | None:
    """Ledger ids in (start_id, done_to] that the search did not see: ids that are not HubSpot
    numbers first (always checked), then the rest in id order. None: out of time."""
    other: list[str] = []
    numbered: list[int] = []
    for index, contact_id in enumerate(ledger.scored_before(now)):
        if index % 1000 == 999 and deadline() < TIME_MARGIN_SECONDS:
            return None
        if contact_id in seen:
            continue
        if not contact_id.isdigit():
            other.append(contact_id)
        elif start_id < int(contact_id) <= done_to:
            numbered.append(int(contact_id))
    return other + [str(number) for number in sorted(numbered)]


def _load_cursor(cursor: SweepCursor | None) -> int:
    if cursor is None:
        return 0
    try:
        return max(0, cursor.load())
    except Exception:  # a broken cursor must not switch the safety net off: sweep it all
        count("ConsentSweepCursorFailures")
        logger.exception("Consent sweep cursor unreadable; sweeping from the first contact")
        return 0


def _save_cursor(cursor: SweepCursor | None, start_id: int, next_start: int) -> None:
    """Saves `next_start` rounded down to CURSOR_STEP when that still moves on: a position in
    the id space rather than the id of a contact (SSM keeps old values in its history)."""
    if cursor is None:
        return
    rounded = next_start // CURSOR_STEP * CURSOR_STEP
    position = rounded if rounded > start_id or next_start == 0 else next_start
    if position == start_id:
        return
    try:
        cursor.save(position)
    except Exception:  # the erasures are done; the next run repeats this range
        count("ConsentSweepCursorFailures")
        logger.exception("Consent sweep cursor not saved; the next run repeats this range")


def _sweep_ledger_chunk(sweep: _Sweep, contact_ids: Sequence[str]) -> None:
    sweep.result.ledger_checked += len(contact_ids)
    found = sweep.hubspot.batch_read(contact_ids, [sweep.purposes_property])
    sweep.erase([cid for cid in contact_ids if cid not in found],
                reason=ErasureReason.CONTACT_DELETED, clear_hubspot=False)
    erase, _ = sweep.decide(found)
    sweep.erase(erase)
