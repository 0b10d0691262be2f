"""The score pipeline: a batch of ScoreQueue messages, scored and written back to HubSpot.

Batch flow, per 100 contacts: ledger state (one BatchGetItem) → drop events already applied or
older than the newest applied → one HubSpot batch read (model properties, consent, what we
wrote) → consent gate → model → one HubSpot batch update → ledger (conditional on event order)
→ hot-lead alert (only when entering `hot`) → enrichment message. Deletions, merges and
withdrawn consent erase instead (`leadscore.dpdp.erasure.Eraser`). A contact is reported as
failed (its SQS records go back to the queue) unless every step it needed succeeded; contacts
HubSpot no longer has are dropped, not retried. Contacts without `lead_scoring` consent are
never written, stored, alerted on or enriched.

Events are triggers, not data: every score reads the contact's current state from HubSpot.
What an event's `occurredAt` decides is whether it is still news: one older than the newest
event already applied (the ledger's `last_event_at`), or one applied before (its id is among the
ledger's `recent_event_ids`), is dropped. The ledger write is conditional on that order; a batch
that loses the race to a newer event queues the contact once more, so the newest state wins.

The model is passed in (loaded by the handler from the model layer), so this module does not
import numpy/lightgbm itself.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ValidationError

from leadscore.dpdp.consent import consent_for
from leadscore.dpdp.erasure import ContactEraser, ErasureReason, Scope
from leadscore.hubspot.client import (
    BATCH_LIMIT,
    ContactProperties,
    HubSpotBatchError,
    HubSpotError,
    HubSpotUnavailable,
)
from leadscore.hubspot.properties import ENRICHMENT_PROPERTIES
from leadscore.learning.capture import ScoredLead, SnapshotStep
from leadscore.messaging import MAX_REASON_LENGTH
from leadscore.model.contract import ScoreResultLike, ScoringModel
from leadscore.observability import count, logger
from leadscore.personal_data import EMAIL
from leadscore.scoring.deferral import Deferrals
from leadscore.scoring.ingest import ERASE_EVENTS
from leadscore.scoring.ledger import LedgerEntry, LedgerState, ScoreLedger
from leadscore.scoring.queues import (
    RESCORE,
    EnrichmentQueue,
    EnrichMessage,
    HotLeadAlert,
    HotLeadAlerts,
    MessageQueue,
    ScoreBatch,
    ScoreMessage,
    read_score_batch,
)
from leadscore.timestamps import iso_millis

HOT_TIER = "hot"
MAX_RECENT_EVENT_IDS = 20  # per contact, to recognise redelivered events


class ShadowScoring(Protocol):
    """A shadow challenger (`leadscore.monitoring.shadow.ShadowChallenger`): scores leads
    beside the model, records the scores beside their snapshots, never writes HubSpot and
    never raises."""

    def score(self, leads: Sequence[tuple[str, Mapping[str, str | None]]]) -> Mapping[str, Any]:
        ...

    def record(self, results: Mapping[str, Any]) -> None: ...


class ScoreRunResult(BaseModel):
    """What happened to each contact of a batch (ids only)."""

    scored: list[str] = []
    skipped_consent: list[str] = []  # includes malformed consent
    malformed_consent: list[str] = []
    not_found: list[str] = []
    stale: list[str] = []  # a newer event was already applied: nothing to do
    erased: list[str] = []  # derived data erased (deleted, merged away, consent withdrawn)
    failed: list[str] = []  # to be retried: their SQS records are reported as failures
    failure_reasons: dict[str, str] = {}  # contact id -> why (for the DLQ's reason attribute)
    # Failed only because HubSpot was unavailable: contact id -> its Retry-After, if it gave one.
    transient: dict[str, float | None] = {}


class SqsRecordLike(Protocol):
    @property
    def message_id(self) -> str: ...

    @property
    def body(self) -> str: ...


@dataclass(frozen=True)
class BatchOutcome:
    result: ScoreRunResult
    failed_message_ids: frozenset[str]
    reasons: Mapping[str, str] = field(default_factory=dict)  # message id -> why it failed
    final: frozenset[str] = frozenset()  # failed ids that must go to the DLQ now


def hubspot_score_properties(result: ScoreResultLike, model_version: str,
                             scored_at: datetime) -> dict[str, str]:
    """The values written to HubSpot; every value is a string, as the API expects."""
    return {
        "ai_lead_score": str(int(result.score)),
        "ai_lead_probability": f"{float(result.probability):.4f}",
        "ai_lead_tier": result.tier,
        "ai_lead_reasons": "\n".join(result.reasons),
        "ai_lead_model_version": model_version,
        "ai_lead_scored_at": iso_millis(scored_at),
    }


def feature_hash(properties: Mapping[str, str | None], names: Iterable[str]) -> str:
    """A short fingerprint of the model's inputs, to tell whether a re-score saw new data.
    An e-mail address enters only as its domain, which is all the model reads of it: an
    unkeyed hash of the address would let anyone holding the ledger test a guessed one."""
    def value(name: str) -> str | None:
        raw = properties.get(name)
        if raw and EMAIL.fullmatch(raw.strip()):
            return "@" + raw.strip().rsplit("@", 1)[1].lower()
        return raw

    canonical = json.dumps([[name, value(name)] for name in sorted(set(names))],
                           separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def event_key(message: ScoreMessage) -> str | None:
    """`ScoreMessage.event_key`: what identifies a webhook event; None for backfill and
    refresh messages."""
    return message.event_key


@dataclass(frozen=True)
class ContactWork:
    """What a batch does for one contact, decided by its newest event."""

    contact_id: str
    occurred_at: int
    portal_id: int
    erase_reason: ErasureReason | None = None  # None: score
    event_keys: tuple[str, ...] = ()  # every event this work applies

    @classmethod
    def from_message(cls, message: ScoreMessage) -> ContactWork:
        reason = None
        if message.subscription_type == "contact.privacyDeletion":
            reason = ErasureReason.PRIVACY_DELETION
        elif message.subscription_type in ERASE_EVENTS or message.merged_into:
            reason = ErasureReason.CONTACT_DELETED
        key = event_key(message)
        return cls(message.contact_id, message.occurred_at, message.portal_id, reason,
                   (key,) if key else ())


def is_news(message: ScoreMessage, state: LedgerState | None) -> bool:
    """False for an event already applied (a redelivery) or older than the newest applied
    one. A privacy deletion is always news: it is final, nothing newer can undo it."""
    if state is None or message.subscription_type == "contact.privacyDeletion":
        return True
    key = event_key(message)
    return not (key and key in state.recent_event_ids) and (
        message.occurred_at >= state.last_event_at)


def plan(messages: Iterable[ScoreMessage]) -> dict[str, ContactWork]:
    """One piece of work per contact: its newest event wins; on a tie, erasing wins."""
    work: dict[str, ContactWork] = {}
    for message in messages:
        candidate = ContactWork.from_message(message)
        current = work.get(message.contact_id)
        if current is not None:
            keys = tuple(dict.fromkeys(current.event_keys + candidate.event_keys))
            if ((candidate.occurred_at, candidate.erase_reason is not None)
                    <= (current.occurred_at, current.erase_reason is not None)):
                candidate = current
            candidate = replace(candidate, event_keys=keys)
        work[message.contact_id] = candidate
    return work


# (reason, scope, clear HubSpot) -> contact ids
Erasures = dict[tuple[ErasureReason, Scope, bool], list[str]]


@dataclass
class ScorePipeline:
    hubspot: ContactProperties
    model: ScoringModel
    ledger: ScoreLedger
    purposes_property: str
    retention_days: int
    eraser: ContactEraser | None = None
    enrich_tiers: frozenset[str] = frozenset({"hot", "warm"})
    hot_leads: HotLeadAlerts | None = None
    enrichment: EnrichmentQueue | None = None
    requeue: MessageQueue | None = None  # the ScoreQueue, for re-scores after a lost race
    deferrals: Deferrals | None = None  # records that wait for HubSpot instead of failing
    snapshots: SnapshotStep | None = None  # the learning loop: point-in-time features, outcomes
    shadow: ShadowScoring | None = None  # the shadow challenger, for first scores (issue 13)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def run_sqs_batch(self, records: Sequence[SqsRecordLike]) -> BatchOutcome:
        """Scores a whole SQS batch at once and names the records to hand back to SQS, with
        the reason each failed. A body that is not a ScoreMessage is reported as failed, so it
        ends in the DLQ for inspection instead of vanishing."""
        reasons: dict[str, str] = {}
        batches: dict[str, ScoreBatch] = {}
        for record in records:
            try:
                batches[record.message_id] = read_score_batch(record.body)
            except ValidationError:
                reasons[record.message_id] = "unreadable ScoreQueue message"
                logger.error("Unreadable ScoreQueue message",
                             extra={"message_id": record.message_id})
        count("MalformedMessages", len(reasons))
        result = self.run([m for batch in batches.values() for m in batch.events])
        final: set[str] = set()
        for message_id, batch in batches.items():
            # A record fails if any of its events' contacts failed; on the retry, the events
            # already applied are recognised and skipped.
            failed = [m for m in batch.events if m.contact_id in result.failure_reasons]
            if not failed:
                continue
            why = "; ".join(sorted({result.failure_reasons[m.contact_id] for m in failed}))
            if self.deferrals and all(m.contact_id in result.transient for m in failed):
                verdict = self.deferrals.defer(batch, failed, max(
                    (hint for m in failed if (hint := result.transient[m.contact_id])),
                    default=None))
                if verdict.deferred:
                    continue  # acknowledged: it waits on ScoreQueue for HubSpot
                if verdict.gave_up:
                    final.add(message_id)
                    why = f"{verdict.reason}: {why}"
            reasons[message_id] = why[:MAX_REASON_LENGTH]
        return BatchOutcome(result=result, failed_message_ids=frozenset(reasons),
                            reasons=reasons, final=frozenset(final))

    def run(self, messages: Sequence[ScoreMessage]) -> ScoreRunResult:
        by_contact: dict[str, list[ScoreMessage]] = defaultdict(list)
        for message in messages:  # several events for one contact: one pass
            by_contact[message.contact_id].append(message)
        contact_ids = list(by_contact)
        result = ScoreRunResult()
        for start in range(0, len(contact_ids), BATCH_LIMIT):
            chunk = contact_ids[start:start + BATCH_LIMIT]
            self._run_chunk({cid: by_contact[cid] for cid in chunk}, result)
        result.failed = list(result.failure_reasons)
        count("ContactsScored", len(result.scored))
        count("SkippedNoConsent", len(result.skipped_consent))
        count("MalformedConsent", len(result.malformed_consent))
        count("ContactNotFound", len(result.not_found))
        count("StaleEvents", len(result.stale))
        count("ContactsErased", len(result.erased))
        count("ScoreFailures", len(result.failed))
        logger.info("Score batch done", extra={
            "event_ids": sorted({key for m in messages if (key := event_key(m))}),
            "scored": len(result.scored), "skipped_consent": len(result.skipped_consent),
            # Whose data this batch read: what a breach notice goes to (`dpdp affected`).
            "scored_contact_ids": result.scored, "skipped_contact_ids": result.skipped_consent,
            "stale": result.stale, "erased": len(result.erased),  # erased: named by receipts only
            "not_found": result.not_found,
            "failed": result.failed,
        })
        return result

    def _run_chunk(self, chunk: Mapping[str, list[ScoreMessage]],
                   result: ScoreRunResult) -> None:
        try:
            states = self.ledger.states(list(chunk))
        except (BotoCoreError, ClientError) as error:
            self._fail(result, list(chunk), "Ledger read failed", error)
            return
        news = [m for cid, found in chunk.items() for m in found
                if is_news(m, states.get(cid))]
        work = plan(news)
        result.stale.extend(cid for cid in chunk if cid not in work)
        erasures: Erasures = defaultdict(list)
        to_score: list[ContactWork] = []
        for w in work.values():
            if w.erase_reason is not None:
                erasures[(w.erase_reason, "all", False)].append(w.contact_id)  # gone from HubSpot
            else:
                to_score.append(w)
        if to_score:
            self._score(to_score, states, result, erasures)
        for (reason, scope, clear_hubspot), ids in erasures.items():
            self._erase(result, ids, reason, scope, clear_hubspot)

    def _score(self, works: list[ContactWork], states: Mapping[str, LedgerState],
               result: ScoreRunResult, erasures: Erasures) -> None:
        ids = [w.contact_id for w in works]
        wanted = list(dict.fromkeys([*self.model.properties, self.purposes_property,
                                     "ai_lead_score", *ENRICHMENT_PROPERTIES,
                                     *(self.snapshots.properties if self.snapshots else ())]))
        try:
            found = self.hubspot.batch_read(ids, wanted)
        except HubSpotError as error:
            self._fail(result, ids, "HubSpot batch read failed", error)
            return

        consented: list[tuple[ContactWork, dict[str, str | None], bool]] = []
        for w in works:
            properties = found.get(w.contact_id)
            if properties is None:
                result.not_found.append(w.contact_id)
                if w.contact_id in states:  # deleted without our noticing: forget it too
                    erasures[(ErasureReason.CONTACT_DELETED, "all", False)].append(w.contact_id)
                continue
            decision = consent_for(properties, self.purposes_property)
            if not decision.may_score:
                result.skipped_consent.append(w.contact_id)
                if decision.malformed:
                    result.malformed_consent.append(w.contact_id)
                if w.contact_id in states or properties.get("ai_lead_score"):
                    erasures[(ErasureReason.CONSENT_WITHDRAWN, "all", True)].append(w.contact_id)
                continue
            if not decision.may_enrich and any(properties.get(p) for p in ENRICHMENT_PROPERTIES):
                erasures[(ErasureReason.ENRICHMENT_CONSENT_WITHDRAWN, "enrichment", True)].append(
                    w.contact_id)
            consented.append((w, properties, decision.may_enrich))
        if not consented:
            return

        try:
            scores = self.model.score_many([props for _, props, _ in consented],
                                           with_reasons=True)
        except Exception as error:  # a model bug must not lose the batch: retry, then DLQ
            self._fail(result, [w.contact_id for w, _, _ in consented], "Model failed", error)
            return
        scored_at = self.clock()
        by_id = {w.contact_id: (w, score, may_enrich)
                 for (w, _, may_enrich), score in zip(consented, scores, strict=True)}
        hashes = {w.contact_id: feature_hash(props, self.model.properties)
                  for w, props, _ in consented}

        written = list(by_id)
        try:
            self.hubspot.batch_update({
                cid: hubspot_score_properties(by_id[cid][1], self.model.version, scored_at)
                for cid in written
            })
        except HubSpotBatchError as error:
            self._fail(result, sorted(error.failed_ids), "HubSpot batch update partly failed",
                       error)
            written = [cid for cid in written if cid not in error.failed_ids]
        except HubSpotError as error:
            self._fail(result, written, "HubSpot batch update failed", error)
            return

        if self.snapshots is not None:  # before the ledger: a retry must still see a first score
            missed = self.snapshots.record([ScoredLead(
                cid, by_id[cid][0].portal_id, by_id[cid][0].occurred_at, found[cid],
                by_id[cid][1].score, by_id[cid][1].probability, by_id[cid][1].tier,
                first_score=cid not in states) for cid in written], scored_at)
            for cid, why in missed.items():
                self._fail(result, [cid], why, None)
            written = [cid for cid in written if cid not in missed]

        # The ledger write is conditional on event order: it fails when a newer event was
        # applied since this batch read the ledger. HubSpot may then hold this (older) score
        # over the newer one, so the contact is queued once more to be scored afresh.
        entries = [self._entry(by_id[cid][0], by_id[cid][1], hashes[cid], states.get(cid),
                               scored_at) for cid in written]
        try:
            outcome = self.ledger.record(entries)
        except (BotoCoreError, ClientError) as error:
            self._fail(result, written, "Ledger write failed", error)
            return
        if outcome.superseded:
            self._rescore(sorted(outcome.superseded), by_id, result)
        written = [cid for cid in written if cid in outcome.recorded]
        if self.shadow is not None:  # after the write-back: HubSpot never waits for it
            first = {w.contact_id: props for w, props, _ in consented if w.contact_id not in states}
            self.shadow.record(self.shadow.score([(cid, first[cid]) for cid in written
                                                  if cid in first]))

        undelivered = self._alert_and_enrich(written, by_id, states, scored_at)
        for cid, what in undelivered.items():
            self._fail(result, [cid], what, None)
        result.scored.extend(cid for cid in written if cid not in undelivered)

    def _entry(self, work: ContactWork, score: ScoreResultLike, hashed: str,
               state: LedgerState | None, scored_at: datetime) -> LedgerEntry:
        recent = list(dict.fromkeys([*work.event_keys, *sorted(
            state.recent_event_ids if state else ())]))[:MAX_RECENT_EVENT_IDS]
        return LedgerEntry.for_score(
            contact_id=work.contact_id, score=score.score, probability=score.probability,
            tier=score.tier, model_version=self.model.version, scored_at=scored_at,
            retention_days=self.retention_days, feature_hash=hashed,
            last_event_at=max(work.occurred_at, state.last_event_at if state else 0),
            recent_event_ids=recent)

    def _rescore(self, contact_ids: list[str],
                 by_id: Mapping[str, tuple[ContactWork, ScoreResultLike, bool]],
                 result: ScoreRunResult) -> None:
        result.stale.extend(contact_ids)
        count("SupersededScores", len(contact_ids))
        if self.requeue is None:
            return
        now_ms = int(self.clock().timestamp() * 1000)
        try:
            self.requeue.send([ScoreMessage(
                contact_id=cid, event_id=0, subscription_type=RESCORE,
                occurred_at=max(now_ms, by_id[cid][0].occurred_at + 1),
                portal_id=by_id[cid][0].portal_id) for cid in contact_ids])
        except Exception as error:  # retry the whole thing instead
            self._fail(result, contact_ids, "Re-score not queued", error)

    def _alert_and_enrich(self, written: list[str],
                          by_id: Mapping[str, tuple[ContactWork, ScoreResultLike, bool]],
                          states: Mapping[str, LedgerState],
                          scored_at: datetime) -> dict[str, str]:
        """Alerts contacts entering `hot` (once: the ledger remembers the alert until the
        contact leaves the tier) and queues enrichment; returns the undelivered ones."""
        stamp = iso_millis(scored_at)
        undelivered: dict[str, str] = {}
        entering = [cid for cid in written if by_id[cid][1].tier == HOT_TIER
                    and not (states.get(cid) and states[cid].tier == HOT_TIER
                             and states[cid].hot_alerted)]
        if entering and self.hot_leads:
            claimed = [cid for cid in entering if self.ledger.claim_hot_alert(cid, scored_at)]
            not_published = self.hot_leads.publish([HotLeadAlert(
                contact_id=cid, portal_id=by_id[cid][0].portal_id, score=by_id[cid][1].score,
                tier=HOT_TIER, model_version=self.model.version, scored_at=stamp,
            ) for cid in claimed])
            for cid in not_published:
                self.ledger.release_hot_alert(cid)
                undelivered[cid] = "hot-lead alert not published"
            count("HotLeadAlerts", len(claimed) - len(not_published))
        enrich = [EnrichMessage(contact_id=cid, score=by_id[cid][1].score,
                                tier=by_id[cid][1].tier, model_version=self.model.version,
                                scored_at=stamp, event_ids=list(by_id[cid][0].event_keys))
                  for cid in written
                  if by_id[cid][1].tier in self.enrich_tiers and by_id[cid][2]]
        if enrich and self.enrichment:
            not_queued = self.enrichment.send(enrich)
            undelivered.update(dict.fromkeys(not_queued, "enrichment not queued"))
            count("EnrichmentQueued", len(enrich) - len(not_queued))
        return undelivered

    def _erase(self, result: ScoreRunResult, contact_ids: list[str], reason: ErasureReason,
               scope: Scope, clear_hubspot: bool) -> None:
        if self.eraser is None:
            self._fail(result, contact_ids, "No eraser configured", None)
            return
        try:
            outcome = self.eraser.erase(contact_ids, reason, scope=scope,
                                        clear_hubspot=clear_hubspot, now=self.clock())
        except Exception as error:  # retried by SQS; the DLQ names the reason in the end
            self._fail(result, contact_ids, f"Erasure ({reason}) failed", error)
            return
        failed = set(getattr(outcome, "failed", None) or ())
        if failed:
            self._fail(result, sorted(failed), f"Erasure ({reason}) partly failed", None)
        if scope == "all":
            result.erased.extend(cid for cid in contact_ids if cid not in failed)

    @staticmethod
    def _fail(result: ScoreRunResult, contact_ids: Sequence[str], what: str,
              error: BaseException | None) -> None:
        # Exception type and HubSpot status/category only: messages can quote property values.
        status = getattr(error, "status", None)
        category = getattr(error, "category", None)
        reason = what
        if error is not None:
            reason += f": {type(error).__name__}"
            if status is not None:
                reason += f" status={status} category={category}"
        for cid in contact_ids:
            first = cid not in result.failure_reasons
            result.failure_reasons.setdefault(cid, reason[:MAX_REASON_LENGTH])
            if not isinstance(error, HubSpotUnavailable):
                result.transient.pop(cid, None)
            elif first:
                result.transient[cid] = error.retry_after
        logger.warning(what, extra={"contact_ids": list(contact_ids),
                                    "error": type(error).__name__ if error else None,
                                    "status": status, "category": category})
