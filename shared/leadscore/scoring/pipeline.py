"""The score pipeline (ScoreQueue batches) and the synchronous score used by `POST /score`.

Batch flow, per 100 contacts: ledger state (one BatchGetItem) → drop events already applied or
older than the newest applied → one HubSpot batch read (model properties, consent, what we
wrote) → consent gate → model → one HubSpot batch update → ledger (conditional on event order)
→ hot-lead alert (only when entering `hot`) → enrichment message. Deletions, merges and
withdrawn consent erase instead (`leadscore.dpdp.erasure.Eraser`). A contact is reported as failed
(its SQS records go back to the queue) unless every step it needed succeeded; contacts HubSpot
no longer has are dropped, not retried. Contacts without `lead_scoring` consent are never
written, stored, alerted on or enriched.

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
import hmac
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, ValidationError

from leadscore.cli.dlq import REASON_ATTRIBUTE
from leadscore.dpdp.consent import consent_for
from leadscore.dpdp.erasure import ErasureReason
from leadscore.hubspot.client import (
    BATCH_LIMIT,
    ENRICHMENT_PROPERTIES,
    HubSpotBatchError,
    HubSpotError,
)
from leadscore.hubspot.webhooks import (
    HttpRequest,
    MalformedRequest,
    RequestTooLarge,
    is_valid_signature,
    request_from_http_api_event,
)
from leadscore.observability import count, logger
from leadscore.scoring.ingest import ERASE_EVENTS, ScoreMessage, score_messages
from leadscore.scoring.ledger import LedgerEntry, LedgerState, RecordOutcome, iso_millis

SNS_BATCH_LIMIT = 10
SQS_BATCH_LIMIT = 10
HOT_TIER = "hot"
MAX_REASON_LENGTH = 256  # what a DLQ `reason` attribute carries
MAX_RECENT_EVENT_IDS = 20  # per contact, to recognise redelivered events
RESCORE = "leadscore.rescore"  # a contact queued again after losing a race to a newer event
Scope = Literal["all", "enrichment"]


class ScoreResultLike(Protocol):
    score: int
    probability: float
    tier: str
    reasons: list[str]


class ScoringModel(Protocol):
    """What `leadscore.model.load()` returns (CONTRACTS.md, "Python APIs")."""

    version: str
    properties: list[str]

    def score(self, properties: Mapping[str, str | None]) -> ScoreResultLike: ...

    def score_many(self, rows: Sequence[Mapping[str, str | None]],
                   with_reasons: bool = True) -> list[ScoreResultLike]: ...


class ContactReaderWriter(Protocol):
    def batch_read(self, ids: Iterable[str],
                   properties: Iterable[str]) -> dict[str, dict[str, str | None]]: ...

    def batch_update(self, updates: Mapping[str, Mapping[str, str]]) -> None: ...


class ScoreLedger(Protocol):
    """`leadscore.scoring.ledger.DynamoDBLedger`'s ordering and alert bookkeeping."""

    def states(self, contact_ids: Sequence[str]) -> dict[str, LedgerState]: ...

    def record(self, entries: Sequence[LedgerEntry]) -> RecordOutcome: ...

    def claim_hot_alert(self, contact_id: str, at: datetime) -> bool: ...

    def release_hot_alert(self, contact_id: str) -> None: ...


class ContactEraser(Protocol):
    """`leadscore.dpdp.erasure.Eraser` (CONTRACTS.md, "Erasure")."""

    def erase(self, contact_ids: Sequence[str], reason: ErasureReason, *, scope: Scope = "all",
              clear_hubspot: bool = True, now: datetime | None = None) -> Any: ...


class EnrichMessage(BaseModel):
    """EnrichQueue message body (CONTRACTS.md, "Messages")."""

    model_config = ConfigDict(frozen=True)

    contact_id: str
    score: int
    tier: str
    model_version: str
    scored_at: str
    event_ids: list[str] = []  # the HubSpot events ("portal:eventId") behind this score, for logs


class HotLeadAlert(BaseModel):
    """SNS message for a contact entering the hot tier: ids and numbers only."""

    model_config = ConfigDict(frozen=True)

    contact_id: str
    portal_id: int | None
    score: int
    tier: str
    model_version: str
    scored_at: str


class HotLeadAlerts:
    """Publishes to `HotLeadsTopic` with PublishBatch; returns the contact ids not published."""

    def __init__(self, topic_arn: str, sns_client: Any | None = None):
        self._arn = topic_arn
        self._sns = sns_client or boto3.client("sns")

    def publish(self, alerts: Sequence[HotLeadAlert]) -> set[str]:
        failed: set[str] = set()
        for start in range(0, len(alerts), SNS_BATCH_LIMIT):
            chunk = alerts[start:start + SNS_BATCH_LIMIT]
            entries = [{
                "Id": str(i), "Subject": "leadscore: hot lead", "Message": alert.model_dump_json(),
                "MessageAttributes": {"tier": {"DataType": "String", "StringValue": alert.tier}},
            } for i, alert in enumerate(chunk)]
            try:
                response = self._sns.publish_batch(TopicArn=self._arn,
                                                   PublishBatchRequestEntries=entries)
            except (BotoCoreError, ClientError):
                failed.update(alert.contact_id for alert in chunk)
                continue
            failed.update(chunk[int(entry["Id"])].contact_id
                          for entry in response.get("Failed") or [])
        return failed


class EnrichmentQueue:
    """Sends EnrichQueue messages with SendMessageBatch; returns the contact ids not queued."""

    def __init__(self, queue_url: str, sqs_client: Any | None = None):
        self._url = queue_url
        self._sqs = sqs_client or boto3.client("sqs")

    def send(self, messages: Sequence[EnrichMessage]) -> set[str]:
        failed: set[str] = set()
        for start in range(0, len(messages), SQS_BATCH_LIMIT):
            chunk = messages[start:start + SQS_BATCH_LIMIT]
            entries = [{"Id": str(i), "MessageBody": message.model_dump_json()}
                       for i, message in enumerate(chunk)]
            try:
                response = self._sqs.send_message_batch(QueueUrl=self._url, Entries=entries)
            except (BotoCoreError, ClientError):
                failed.update(message.contact_id for message in chunk)
                continue
            failed.update(chunk[int(entry["Id"])].contact_id
                          for entry in response.get("Failed") or [])
        return failed


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
    """A short fingerprint of the model's inputs, to tell whether a re-score saw new data."""
    canonical = json.dumps([[name, properties.get(name)] for name in sorted(set(names))],
                           separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def event_key(message: ScoreMessage) -> str | None:
    """`portalId:eventId` of a webhook event; None for backfill and refresh messages."""
    return f"{message.portal_id}:{message.event_id}" if message.event_id else None


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


class MessageQueue(Protocol):
    def send(self, messages: Sequence[ScoreMessage]) -> int: ...


@dataclass
class ScorePipeline:
    hubspot: ContactReaderWriter
    model: ScoringModel
    ledger: ScoreLedger
    purposes_property: str
    retention_days: int
    eraser: ContactEraser | None = None
    enrich_tiers: frozenset[str] = frozenset({"hot", "warm"})
    hot_leads: HotLeadAlerts | None = None
    enrichment: EnrichmentQueue | None = None
    requeue: MessageQueue | None = None  # the ScoreQueue, for re-scores after a lost race
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def run_sqs_batch(self, records: Sequence[SqsRecordLike]) -> BatchOutcome:
        """Scores a whole SQS batch at once and names the records to hand back to SQS, with
        the reason each failed. A body that is not a ScoreMessage is reported as failed, so it
        ends in the DLQ for inspection instead of vanishing."""
        reasons: dict[str, str] = {}
        events: dict[str, list[ScoreMessage]] = {}
        for record in records:
            try:
                events[record.message_id] = score_messages(record.body)
            except ValidationError:
                reasons[record.message_id] = "unreadable ScoreQueue message"
                logger.error("Unreadable ScoreQueue message",
                             extra={"message_id": record.message_id})
        count("MalformedMessages", len(reasons))
        result = self.run([m for found in events.values() for m in found])
        for message_id, found in events.items():
            # A record fails if any of its events' contacts failed; on the retry, the events
            # already applied are recognised and skipped.
            why = sorted({result.failure_reasons[m.contact_id] for m in found
                          if m.contact_id in result.failure_reasons})
            if why:
                reasons[message_id] = "; ".join(why)[:MAX_REASON_LENGTH]
        return BatchOutcome(result=result, failed_message_ids=frozenset(reasons),
                            reasons=reasons)

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
                                     "ai_lead_score", *ENRICHMENT_PROPERTIES]))
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
            result.failure_reasons.setdefault(cid, reason[:MAX_REASON_LENGTH])
        logger.warning(what, extra={"contact_ids": list(contact_ids),
                                    "error": type(error).__name__ if error else None,
                                    "status": status, "category": category})


class DeadLetters:
    """Sends records on their last allowed receive to the DLQ with a `reason` attribute.

    SQS's redrive moves a message after maxReceiveCount failed receives but cannot say why;
    sending it ourselves on the last receive, and acknowledging it, puts the reason on it.
    """

    def __init__(self, dlq_url: str, max_receive_count: int, sqs_client: Any | None = None):
        self._url = dlq_url
        self.max_receive_count = max_receive_count
        self._sqs = sqs_client or boto3.client("sqs")

    def route(self, records: Sequence[Mapping[str, Any]], failed: frozenset[str],
              reasons: Mapping[str, str]) -> frozenset[str]:
        """Dead-letters failed raw SQS records that will not be received again; returns the
        failed ids still to report to SQS (the others are now safely in the DLQ)."""
        last = [r for r in records if r["messageId"] in failed
                and int(r.get("attributes", {}).get("ApproximateReceiveCount", 1))
                >= self.max_receive_count]
        sent: set[str] = set()
        for start in range(0, len(last), SQS_BATCH_LIMIT):
            chunk = last[start:start + SQS_BATCH_LIMIT]
            entries = [{
                "Id": str(i), "MessageBody": record["body"],
                "MessageAttributes": {
                    REASON_ATTRIBUTE: {"DataType": "String", "StringValue": (
                        reasons.get(record["messageId"]) or "failed")[:MAX_REASON_LENGTH]},
                    "source_message_id": {"DataType": "String",
                                          "StringValue": record["messageId"]},
                },
            } for i, record in enumerate(chunk)]
            try:
                response = self._sqs.send_message_batch(QueueUrl=self._url, Entries=entries)
            except (BotoCoreError, ClientError) as error:
                # Left to SQS's redrive: the message still reaches the DLQ, without a reason.
                logger.error("Could not dead-letter records", extra={
                    "error": type(error).__name__})
                continue
            sent.update(chunk[int(entry["Id"])]["messageId"]
                        for entry in response.get("Successful") or [])
        count("DeadLettered", len(sent))
        if sent:
            logger.warning("Records dead-lettered", extra={
                "message_ids": sorted(sent), "reasons": sorted({reasons.get(m) for m in sent})})
        return failed - sent


# --- POST /score ---------------------------------------------------------------------------


class InvalidScoreRequest(ValueError):
    """The request body cannot be scored; the message names the field and is safe to return."""


class ScoreApiResponse(BaseModel):
    status_code: int
    body: dict[str, Any]


def _property_source(payload: Any) -> tuple[Mapping[str, Any], str]:
    """Where the properties are, for the shapes HubSpot and people send:
    custom workflow action `{"object": {"properties": {...}}}`, workflow "send a webhook" /
    CRM object `{"properties": {...}}` (values plain or legacy `{"value": ...}`), or a flat
    `{"property": "value"}` object."""
    if not isinstance(payload, dict):
        raise InvalidScoreRequest("body must be a JSON object")
    obj = payload.get("object")
    if isinstance(obj, dict) and "properties" in obj:
        source, where = obj["properties"], "object.properties"
    elif "properties" in payload:
        source, where = payload["properties"], "properties"
    else:
        return payload, ""
    if not isinstance(source, dict):
        raise InvalidScoreRequest(f"'{where}' must be a JSON object")
    return source, where + "."


def request_properties(payload: Any, wanted: Iterable[str]) -> dict[str, str | None]:
    """The `wanted` properties as HubSpot strings; other fields are ignored, whatever they are."""
    source, prefix = _property_source(payload)
    properties: dict[str, str | None] = {}
    for name in wanted:
        if name not in source:
            continue
        value = source[name]
        if isinstance(value, dict) and "value" in value:  # legacy {"value": ..., "versions": []}
            value = value["value"]
        if value is None or isinstance(value, str):
            properties[name] = value
        elif isinstance(value, bool):
            properties[name] = "true" if value else "false"
        elif isinstance(value, int | float):
            properties[name] = str(value)
        else:
            raise InvalidScoreRequest(
                f"'{prefix}{name}' must be a string, number, boolean or null"
            )
    return properties


def score_one(properties: Mapping[str, str | None], model: ScoringModel,
              purposes_property: str) -> dict[str, Any]:
    """Scores one lead if consent allows. No consent is an answer, not an error: a workflow
    branches on `scored` instead of logging a failed action."""
    decision = consent_for(properties, purposes_property)
    if not decision.may_score:
        count("SkippedNoConsent")
        if decision.malformed:
            count("MalformedConsent")
        reason = ("consent property is malformed" if decision.malformed
                  else "no consent for lead_scoring")
        return {"scored": False, "reason": reason}
    result = model.score(properties)
    count("ContactsScored")
    return {"scored": True, "score": int(result.score), "probability": float(result.probability),
            "tier": result.tier, "reasons": list(result.reasons), "model_version": model.version}


API_KEY_HEADER = "x-api-key"
UNAUTHORIZED_MESSAGE = ("Unauthorized: sign the request as HubSpot does (X-HubSpot-Signature-v3) "
                        f"or send a valid {API_KEY_HEADER} header")


def is_authorized(request: HttpRequest, *, client_secret: Callable[[], str],
                  api_key: Callable[[], str | None], now_ms: int | None = None) -> bool:
    """An `x-api-key` header is checked against the key (constant time) and nothing else;
    without one, the request must carry a valid HubSpot v3 signature."""
    presented = request.headers.get(API_KEY_HEADER)
    if presented is not None:
        expected = api_key()
        return bool(expected) and hmac.compare_digest(
            presented.encode("utf-8", "replace"), expected.encode())
    return is_valid_signature(request, client_secret(), now_ms=now_ms)


def answer_score_request(
    event: Mapping[str, Any],
    *,
    client_secret: Callable[[], str],
    public_url: str | None,
    model: ScoringModel,
    purposes_property: str,
    api_key: Callable[[], str | None] = lambda: None,
    now_ms: int | None = None,
) -> ScoreApiResponse:
    """`POST /score`: size (413) → authentication (401) → JSON and field types (400) → consent
    → score (200). Nothing is written or stored: the caller owns what it does with the score."""
    try:
        request = request_from_http_api_event(event, public_url)
    except RequestTooLarge as error:
        count("ScoreApiBadRequest")
        return ScoreApiResponse(status_code=413, body={"message": str(error)})
    except MalformedRequest as error:
        count("ScoreApiBadRequest")
        return ScoreApiResponse(status_code=400, body={"message": str(error)})
    if not is_authorized(request, client_secret=client_secret, api_key=api_key, now_ms=now_ms):
        count("ScoreApiUnauthorized")
        return ScoreApiResponse(status_code=401, body={"message": UNAUTHORIZED_MESSAGE})
    try:
        properties = request_properties(json.loads(request.body),
                                        [*model.properties, purposes_property])
    except (UnicodeDecodeError, json.JSONDecodeError):
        count("ScoreApiBadRequest")
        return ScoreApiResponse(status_code=400, body={"message": "body is not valid JSON"})
    except InvalidScoreRequest as error:
        count("ScoreApiBadRequest")
        return ScoreApiResponse(status_code=400, body={"message": str(error)})
    return ScoreApiResponse(status_code=200, body=score_one(properties, model, purposes_property))
