"""An EnrichQueue batch, start to finish: `EnrichmentWorker.run`.

Per batch (up to 100 messages): parse every body (an unreadable one goes to EnrichDLQ) →
over the daily budget already? every message is queued again for later, before any other work
→ one HubSpot batch read of every contact → each message on a thread of its own, once per
contact and score (Powertools idempotency): `triage` (consent, staleness, unchanged basis,
rule-based summary) → an LLM slot (at most `llm_concurrency` contacts talk to the LLM at once,
within the invocation's time: `leadscore.enrichment.batching`) → a fresh read when the first
one is older than `consent_max_age` → budget reservation → `assess` → its properties handed to
one HubSpot batch update for the whole batch → settle the budget.

Each message ends one way: done (enriched, declined, summarised by rules, skipped, or a
duplicate of a score already enriched); queued again as a new message (over the daily budget:
for the next day; no time left in the invocation: at once); dead-lettered with the reason (a
final failure — no valid answer from any model, a request the API rejects, an unreadable body
— or any failure on the last allowed receive); or reported as failed, so SQS delivers it again.

No numpy/lightgbm here.
"""

from __future__ import annotations

import contextvars
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
)
from pydantic import ValidationError

from leadscore.dpdp.disclosures import DynamoDBDisclosures
from leadscore.enrichment.batching import (
    BatchWrite,
    ContactReads,
    LlmSlots,
    OutOfTime,
    TimeBudget,
    WriteFailed,
)
from leadscore.enrichment.budget import DailyBudget, Requeue, delay_until_next_day
from leadscore.enrichment.conversation import EnrichmentError
from leadscore.enrichment.enrich import (
    DEFAULT_COOLDOWN,
    BudgetExhausted,
    EnrichmentResult,
    EnrichRequest,
    assess,
    read_properties,
    shared_fields,
    triage,
)
from leadscore.enrichment.llm import ClientFactory, LlmCall, LlmSettings, ModelPrice, build_client
from leadscore.enrichment.processors import disclosure_for
from leadscore.enrichment.prompt import EnrichmentPrompt
from leadscore.hubspot.client import ContactProperties
from leadscore.messaging import DeadLetter, DeadLetters
from leadscore.observability import count, logger, metrics

ONCE_WINDOW_SECONDS = 4 * 24 * 3600  # EnrichQueue's retention: no copy outlives it
SDK_BACKOFF_SECONDS = 2.0  # the anthropic SDK's waits between its retries, at most, per retry


class EnrichOnce:
    """Runs the work for a (contact, scored_at) pair once: SQS delivers at least once, and a
    second enrichment of the same score would only spend again (Powertools idempotency).

    A failure removes the in-progress record, so a retry runs the work again."""

    def __init__(self, table_name: str, persistence_store: Any | None = None):
        # register_lambda_context(context) per invocation: an in-progress record then
        # expires with the invocation, so a crashed one does not block the retry.
        self.config = IdempotencyConfig(event_key_jmespath="[contact_id, scored_at]",
                                        expires_after_seconds=ONCE_WINDOW_SECONDS)
        self._run = idempotent_function(
            self._call, data_keyword_argument="request",
            persistence_store=persistence_store or DynamoDBPersistenceLayer(table_name=table_name),
            config=self.config)

    @staticmethod
    def _call(request: dict[str, Any], work: Callable[[], str], attempt: str) -> dict[str, str]:
        return {"status": work(), "attempt": attempt}

    def run(self, request: EnrichRequest, work: Callable[[], str]) -> str | None:
        """The work's status, or None when an earlier delivery already did it."""
        attempt = uuid.uuid4().hex
        try:
            done = self._run(request=request.model_dump(), work=work, attempt=attempt)
        except IdempotencyAlreadyInProgressError as error:
            raise RetryLater("a copy of this message is being enriched") from error
        return done["status"] if done["attempt"] == attempt else None


class RetryLater(Exception):
    """Not done yet, nothing wrong: SQS redelivers the record. The message is safe to log."""


def failure_reason(error: Exception) -> tuple[str, bool]:
    """(reason without lead data, whether retrying is pointless)."""
    if isinstance(error, EnrichmentError):
        return error.reason, error.final
    if isinstance(error, ValidationError):
        return "unreadable EnrichQueue message", True
    if isinstance(error, RetryLater | WriteFailed):
        return str(error), False
    return type(error).__name__, False


def _spent(calls: list[LlmCall]) -> float | None:
    costs = [call.cost_usd for call in calls]
    return None if any(cost is None for cost in costs) else float(sum(costs))  # type: ignore[arg-type]


def record_usage(calls: list[LlmCall]) -> None:
    """Token and cost metrics per LLM call."""
    for call in calls:
        count("LlmCalls")
        if call.outcome == "invalid":
            count("LlmInvalidAnswers")
        if call.outcome == "refused":
            count("LlmRefusals")
        count("LlmInputTokens", call.usage.input_tokens)
        count("LlmOutputTokens", call.usage.output_tokens)
        count("LlmCacheReadTokens", call.usage.cache_read_input_tokens)
        count("LlmCacheCreationTokens", call.usage.cache_creation_input_tokens)
        if call.cost_usd:
            metrics.add_metric(name="LlmCostUSD", unit=MetricUnit.NoUnit, value=call.cost_usd)


STATUS_METRICS = {"enriched": "ContactsEnriched", "declined": "EnrichmentDeclined",
                  "auto_summary": "EnrichmentAutoSummaries",
                  "skipped_no_consent": "EnrichmentSkippedNoConsent",
                  "skipped_stale": "EnrichmentSkippedStale",
                  "skipped_unchanged": "EnrichmentSkippedUnchanged"}


def _log_result(result: EnrichmentResult, event_ids: list[str]) -> None:
    count(STATUS_METRICS[result.status])
    count("EnrichmentEscalations", int(result.escalated))
    count("EnrichmentNeedsReview", int(result.needs_review))
    usage = result.usage
    logger.info("Contact enrichment done", extra={
        "contact_id": result.contact_id, "event_ids": event_ids, "status": result.status,
        "answered_by": result.answered_by, "prompt_version": result.prompt_version,
        "escalated": result.escalated, "refusals": result.refusals,
        "needs_review": result.needs_review, "llm_calls": len(result.calls),
        "input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
        "cache_read_input_tokens": usage.cache_read_input_tokens,
        "cache_creation_input_tokens": usage.cache_creation_input_tokens,
        "estimated_cost_usd": result.estimated_cost_usd,
    })


@dataclass
class MessageOutcome:
    """How one SQS record of the batch ended (see the module docstring)."""

    kind: str  # "done", "requeue", "failed"
    status: str = ""  # done: the enrichment status; failed: the reason
    delay: int = 0  # requeue: seconds
    final: bool = False  # failed: retrying is pointless


@dataclass
class BatchOutcome:
    failed_message_ids: frozenset[str]
    outcomes: dict[str, MessageOutcome] = field(default_factory=dict)


@dataclass
class _Batch:
    """What the messages of one invocation share."""

    reads: ContactReads
    slots: LlmSlots
    time: TimeBudget
    write: BatchWrite
    now: datetime
    consent_ages: list[float] = field(default_factory=list)


@dataclass
class EnrichmentWorker:
    """Everything one invocation needs; `run` takes the SQS records of a batch."""

    hubspot: ContactProperties
    llm: LlmSettings
    prompt: EnrichmentPrompt
    prices: Mapping[str, ModelPrice]
    purposes_property: str
    reservation_usd: float = 0.02
    budget: DailyBudget | None = None
    requeue: Requeue | None = None
    dead_letters: DeadLetters | None = None
    once: EnrichOnce | None = None
    client_factory: ClientFactory = build_client
    disclosures: DynamoDBDisclosures | None = None  # which processors received whose data
    retention_days: int = 180  # the disclosure record expires with the contact's other data
    llm_concurrency: int = 10
    consent_max_age: float = 30.0
    cooldown: timedelta = DEFAULT_COOLDOWN
    clock: Callable[[], float] = time.monotonic

    def run(self, records: Sequence[Mapping[str, Any]],
            remaining_ms: Callable[[], int]) -> BatchOutcome:
        """Enriches a batch of raw SQS records; names the ones SQS must deliver again."""
        now = datetime.now(UTC)
        outcomes: dict[str, MessageOutcome] = {}
        requests: dict[str, EnrichRequest] = {}
        for record in records:
            try:
                requests[record["messageId"]] = EnrichRequest.model_validate_json(record["body"])
            except ValidationError:
                outcomes[record["messageId"]] = MessageOutcome(
                    "failed", "unreadable EnrichQueue message", final=True)
        if requests:
            outcomes |= self._enrich(requests, now, remaining_ms)
        failed = self._route(records, outcomes)
        self._summarise(outcomes)
        return BatchOutcome(failed_message_ids=frozenset(failed), outcomes=outcomes)

    # ------------------------------------------------------------------ the batch
    def _enrich(self, requests: Mapping[str, EnrichRequest], now: datetime,
                remaining_ms: Callable[[], int]) -> dict[str, MessageOutcome]:
        if self.budget and self.llm.enabled and self.budget.cannot_afford(
                self.reservation_usd, now):
            count("EnrichmentDeferredBudget", len(requests))
            return {mid: MessageOutcome("requeue", delay=delay_until_next_day(now))
                    for mid in requests}
        reads = ContactReads(self.hubspot, read_properties(self.purposes_property),
                             self.consent_max_age, self.clock)
        try:
            reads.read(request.contact_id for request in requests.values())
        except Exception as error:  # HubSpot unavailable: every message is retried
            reason, _ = failure_reason(error)
            logger.warning("Enrichment batch read failed", extra={"error": reason})
            return {mid: MessageOutcome("failed", f"HubSpot batch read failed: {reason}")
                    for mid in requests}
        time_budget = TimeBudget(remaining_ms, self.llm.timeout_seconds * (
            self.llm.max_retries + 1) + SDK_BACKOFF_SECONDS * self.llm.max_retries)
        batch = _Batch(reads=reads, slots=LlmSlots(self.llm_concurrency, time_budget),
                       time=time_budget, write=BatchWrite(self.hubspot, len(requests)), now=now)
        with ThreadPoolExecutor(max_workers=len(requests),
                                thread_name_prefix="enrich") as threads:
            # Each thread runs in a copy of the invocation's context (contextvars), so what is
            # scoped to the invocation follows its work.
            futures = {mid: threads.submit(contextvars.copy_context().run, self._message,
                                           request, batch)
                       for mid, request in requests.items()}
            outcomes = {mid: future.result() for mid, future in futures.items()}
        self._batch_metrics(batch, len(requests))
        return outcomes

    def _message(self, request: EnrichRequest, batch: _Batch) -> MessageOutcome:
        """One message of the batch, on its own thread; never raises."""
        wrote = False

        def work() -> str:
            nonlocal wrote
            status, properties = self._contact(request, batch)
            if properties:
                wrote = True  # from here on the batch write accounts for this contact
                batch.write.submit(request.contact_id, properties,
                                   timeout=max(1.0, batch.time.remaining()))
            return status

        try:
            if self.once is None:
                return MessageOutcome("done", work())
            status = self.once.run(request, work)
            if status is None:
                count("EnrichmentDuplicatesSkipped")
                logger.info("Already enriched for this score",
                            extra={"contact_id": request.contact_id})
                return MessageOutcome("done", "duplicate")
            return MessageOutcome("done", status)
        except BudgetExhausted:
            count("EnrichmentDeferredBudget")
            logger.info("Daily LLM budget spent; enrichment deferred",
                        extra={"contact_id": request.contact_id})
            return MessageOutcome("requeue", delay=delay_until_next_day(batch.now))
        except OutOfTime:
            count("EnrichmentRequeuedOutOfTime")
            return MessageOutcome("requeue", delay=0)
        except Exception as error:
            reason, final = failure_reason(error)
            return MessageOutcome("failed", reason, final=final)
        finally:
            if not wrote:
                batch.write.leave()

    def _contact(self, request: EnrichRequest,
                 batch: _Batch) -> tuple[str, dict[str, str] | None]:
        """(status, properties to write or None) for one contact; raises to fail or defer."""
        properties = batch.reads.get(request.contact_id)
        decided = self._triage(request, properties, batch)
        if decided is not None:
            return decided
        batch.reads.wait_for_llm(request.contact_id)
        try:
            batch.slots.acquire()
        except OutOfTime:
            batch.reads.stop_waiting(request.contact_id)
            raise
        try:
            properties = batch.reads.fresh(request.contact_id)
            decided = self._triage(request, properties, batch)  # fresh data may decide it
            if decided is not None:
                return decided
            batch.consent_ages.append(batch.reads.age(request.contact_id))
            result = self._assess(request, properties or {}, batch)
        finally:
            batch.slots.release()
        _log_result(result, request.event_ids)
        return result.status, result.properties

    def _triage(self, request: EnrichRequest, properties: dict[str, str | None] | None,
                batch: _Batch) -> tuple[str, dict[str, str] | None] | None:
        if properties is None:  # deleted since it was scored
            logger.info("Contact not found; nothing to enrich",
                        extra={"contact_id": request.contact_id})
            count("EnrichmentContactMissing")
            return "contact_missing", None
        result = triage(properties, request, self.llm, purposes_property=self.purposes_property,
                        now=batch.now, cooldown=self.cooldown)
        if result is None:
            return None
        _log_result(result, request.event_ids)
        return result.status, result.properties or None

    def _assess(self, request: EnrichRequest, properties: Mapping[str, str | None],
                batch: _Batch) -> EnrichmentResult:
        budget, now = self.budget, batch.now
        if budget and not budget.try_reserve(self.reservation_usd, now):
            raise BudgetExhausted()
        try:
            result = assess(properties, request, self.llm, self.client_factory(self.llm),
                            prompt=self.prompt, prices=self.prices, now=now,
                            before_call=partial(self._before_call, batch, request.contact_id,
                                                shared_fields(properties)))
        except EnrichmentError as error:
            record_usage(error.calls)
            if budget:  # the reservation was made: the calls happened after it
                budget.settle(self.reservation_usd, _spent(error.calls), now)
            count("EnrichmentFailures")
            logger.warning("Enrichment failed", extra={"contact_id": request.contact_id,
                                                       "reason": error.reason})
            raise
        record_usage(result.calls)
        if budget:
            budget.settle(self.reservation_usd, result.estimated_cost_usd, now)
        return result

    # ------------------------------------------------------------------ endings
    def _route(self, records: Sequence[Mapping[str, Any]],
               outcomes: dict[str, MessageOutcome]) -> set[str]:
        """Re-queues and dead-letters what needs it; returns the ids SQS must deliver again."""
        by_id = {record["messageId"]: record for record in records}
        again = [(mid, by_id[mid]["body"], outcome.delay) for mid, outcome in outcomes.items()
                 if outcome.kind == "requeue"]
        failed = {mid for mid, outcome in outcomes.items() if outcome.kind == "failed"}
        if again:
            not_queued = self.requeue.send(again) if self.requeue else {mid for mid, *_ in again}
            for mid in not_queued:  # SQS delivers it again instead
                outcomes[mid] = MessageOutcome("failed", "not queued again")
            failed |= not_queued
        if failed and self.dead_letters:
            letters = [DeadLetter(mid, by_id[mid]["body"], outcomes[mid].status or "failed")
                       for mid in sorted(failed) if self.dead_letters.takes(
                           int(by_id[mid].get("attributes", {}).get("ApproximateReceiveCount", 1)),
                           final=outcomes[mid].final)]
            failed -= self.dead_letters.send(letters) if letters else set()
        return failed

    def _batch_metrics(self, batch: _Batch, messages: int) -> None:
        count("EnrichmentBatchMessages", messages)
        count("EnrichmentHubSpotReads", batch.reads.requests)
        count("EnrichmentHubSpotWrites", batch.write.requests)
        if batch.consent_ages:
            metrics.add_metric(name="EnrichmentConsentAgeMax", unit=MetricUnit.Seconds,
                               value=round(max(batch.consent_ages), 3))

    def _summarise(self, outcomes: Mapping[str, MessageOutcome]) -> None:
        kinds = Counter(outcome.kind for outcome in outcomes.values())
        statuses = Counter(outcome.status for outcome in outcomes.values()
                           if outcome.kind == "done")
        logger.info("Enrichment batch done", extra={
            "messages": len(outcomes), "outcomes": dict(kinds), "statuses": dict(statuses),
            "failure_reasons": sorted({o.status for o in outcomes.values()
                                       if o.kind == "failed"}),
        })

    def _before_call(self, batch: _Batch, contact_id: str, fields: tuple[str, ...],
                     model: str) -> None:
        """Before each LLM request: stop when out of time, then record the disclosure (if the
        record fails, nothing is sent)."""
        batch.time.check_call()
        self._disclose(contact_id, fields, model)

    def _disclose(self, contact_id: str, fields: tuple[str, ...], model: str) -> None:
        """Records the processor about to receive the contact's data (before the request)."""
        if self.disclosures is not None:
            self.disclosures.add(contact_id, disclosure_for(self.llm, model, fields),
                                 now=datetime.now(UTC), retention_days=self.retention_days)
