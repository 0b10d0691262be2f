"""An EnrichQueue message, start to finish: `EnrichmentWorker.handle`.

Per message: parse → (once per contact and score, Powertools idempotency) fresh HubSpot read →
`leadscore.enrichment.enrich.enrich_contact` (consent, staleness, budget, LLM) → HubSpot write.
Over the daily budget the message is queued again for later (`DeferredEnrichments`); a
failure that is final (no valid answer from any model, an unreadable body), or any failure on
the last allowed receive, goes to EnrichDLQ with the reason (`leadscore.messaging.DeadLetters`);
other failures are raised, so the SQS batch reports them and SQS redelivers.

The daily budget (`DailyBudget`) is an atomic spend counter per UTC day in DynamoDB. Before a
contact's LLM calls the worker reserves a fixed amount with one conditional `UpdateItem ...
ADD` (concurrent containers never overshoot by more than one reservation each); after the
calls it settles the reservation to the real estimated cost. Item: `{"day": "2026-11-23",
"spent_micro_usd": N, "expires_at": epoch s}`, in millionths of a dollar so no floating-point
drift accumulates in the counter.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import boto3
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
)
from botocore.exceptions import ClientError
from pydantic import ValidationError

from leadscore.dpdp.disclosures import DynamoDBDisclosures
from leadscore.enrichment.conversation import EnrichmentError
from leadscore.enrichment.enrich import (
    BudgetExhausted,
    EnrichmentResult,
    EnrichRequest,
    enrich_contact,
    read_properties,
    shared_fields,
)
from leadscore.enrichment.llm import ClientFactory, LlmCall, LlmSettings, ModelPrice, build_client
from leadscore.enrichment.processors import disclosure_for
from leadscore.enrichment.prompt import EnrichmentPrompt
from leadscore.hubspot.client import ContactProperties
from leadscore.messaging import DeadLetter, DeadLetters
from leadscore.observability import count, logger, metrics

MICRO = 1_000_000
KEEP_DAYS = 7  # counters expire (DynamoDB TTL) a week after their day
SQS_MAX_DELAY_SECONDS = 900
ONCE_WINDOW_SECONDS = 4 * 24 * 3600  # EnrichQueue's retention: no copy outlives it


def _micro(usd: float) -> int:
    return round(usd * MICRO)


def day_of(now: datetime) -> str:
    return now.astimezone(UTC).date().isoformat()


def seconds_until_next_day(now: datetime) -> int:
    now = now.astimezone(UTC)
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    return max(1, int((midnight - now).total_seconds()))


class DailyBudget:
    """`try_reserve` before calling, `settle` after; `spent_usd` for reports and tests."""

    def __init__(self, table_name: str, limit_usd: float, *, dynamodb: Any | None = None):
        self.table_name = table_name
        self.limit_usd = limit_usd
        self._dynamodb = dynamodb or boto3.client("dynamodb")

    def try_reserve(self, usd: float, now: datetime) -> bool:
        """Adds `usd` to today's spend if that keeps it within the limit; False otherwise."""
        amount = _micro(usd)
        if amount > _micro(self.limit_usd):  # the condition below lets a day's first one pass
            return False
        try:
            self._dynamodb.update_item(
                TableName=self.table_name, Key={"day": {"S": day_of(now)}},
                UpdateExpression="ADD spent_micro_usd :amount SET expires_at = :expires",
                ConditionExpression="attribute_not_exists(spent_micro_usd) "
                                    "OR spent_micro_usd <= :ceiling",
                ExpressionAttributeValues={
                    ":amount": {"N": str(amount)},
                    ":ceiling": {"N": str(_micro(self.limit_usd) - amount)},
                    ":expires": {"N": str(int((now + timedelta(days=KEEP_DAYS)).timestamp()))},
                },
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def settle(self, reserved_usd: float, spent_usd: float | None, now: datetime) -> None:
        """Replaces a reservation with what the calls cost (unknown cost: it stays reserved)."""
        if spent_usd is None:
            return
        delta = _micro(spent_usd) - _micro(reserved_usd)
        if delta:
            self._dynamodb.update_item(
                TableName=self.table_name, Key={"day": {"S": day_of(now)}},
                UpdateExpression="ADD spent_micro_usd :delta",
                ExpressionAttributeValues={":delta": {"N": str(delta)}},
            )

    def cannot_afford(self, usd: float, now: datetime) -> bool:
        """A cheap look before any other work (a waiting message must not spend HubSpot
        quota every time it comes back); `try_reserve` stays the atomic decision."""
        return self.spent_usd(now) + usd > self.limit_usd

    def spent_usd(self, now: datetime) -> float:
        item = self._dynamodb.get_item(TableName=self.table_name,
                                       Key={"day": {"S": day_of(now)}},
                                       ConsistentRead=True).get("Item") or {}
        return int(item.get("spent_micro_usd", {}).get("N", "0")) / MICRO


class DeferredEnrichments:
    """Puts a message back on EnrichQueue with a delay, as a new message.

    Why not a longer visibility timeout on the failed record: every receive counts towards
    maxReceiveCount, so a message waiting out the budget would end in the DLQ although nothing
    failed. A fresh copy starts at zero receives; SQS delays are at most 15 minutes, so a
    waiting message comes back every 15 minutes (one cheap counter read each) until midnight.
    """

    def __init__(self, queue_url: str, *, sqs: Any | None = None):
        self.queue_url = queue_url
        self._sqs = sqs or boto3.client("sqs")

    def defer(self, body: str, now: datetime) -> int:
        """Queues `body` again; returns the delay in seconds."""
        delay = min(SQS_MAX_DELAY_SECONDS, seconds_until_next_day(now))
        self._sqs.send_message(QueueUrl=self.queue_url, MessageBody=body, DelaySeconds=delay)
        return delay


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
    if isinstance(error, RetryLater):
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
        count("LlmInputTokens", call.usage.input_tokens)
        count("LlmOutputTokens", call.usage.output_tokens)
        count("LlmCacheReadTokens", call.usage.cache_read_input_tokens)
        count("LlmCacheCreationTokens", call.usage.cache_creation_input_tokens)
        if call.cost_usd:
            metrics.add_metric(name="LlmCostUSD", unit=MetricUnit.NoUnit, value=call.cost_usd)


def _log_result(result: EnrichmentResult) -> None:
    count({"enriched": "ContactsEnriched", "auto_summary": "EnrichmentAutoSummaries",
           "skipped_no_consent": "EnrichmentSkippedNoConsent",
           "skipped_stale": "EnrichmentSkippedStale"}[result.status])
    count("EnrichmentEscalations", int(result.escalated))
    count("EnrichmentNeedsReview", int(result.needs_review))
    usage = result.usage
    logger.info("Contact enrichment done", extra={
        "contact_id": result.contact_id, "status": result.status,
        "answered_by": result.answered_by, "prompt_version": result.prompt_version,
        "escalated": result.escalated, "needs_review": result.needs_review,
        "llm_calls": len(result.calls), "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_input_tokens": usage.cache_read_input_tokens,
        "cache_creation_input_tokens": usage.cache_creation_input_tokens,
        "estimated_cost_usd": result.estimated_cost_usd,
    })


@dataclass
class EnrichmentWorker:
    """Everything one invocation needs; `handle` takes one SQS record's parts."""

    hubspot: ContactProperties
    llm: LlmSettings
    prompt: EnrichmentPrompt
    prices: Mapping[str, ModelPrice]
    purposes_property: str
    reservation_usd: float = 0.02
    budget: DailyBudget | None = None
    deferrals: DeferredEnrichments | None = None
    dead_letters: DeadLetters | None = None
    once: EnrichOnce | None = None
    client_factory: ClientFactory = build_client
    disclosures: DynamoDBDisclosures | None = None  # which processors received whose data
    retention_days: int = 180  # the disclosure record expires with the contact's other data

    def handle(self, body: str, message_id: str, receive_count: int) -> None:
        """Returns when the record is done (enriched, skipped, deferred or dead-lettered);
        raises when SQS should deliver it again."""
        try:
            self._handle(body)
        except Exception as error:
            reason, final = failure_reason(error)
            if self.dead_letters is None or not self.dead_letters.takes(receive_count,
                                                                        final=final):
                raise
            if not self.dead_letters.send([DeadLetter(message_id, body, reason)]):
                raise  # not in the DLQ: SQS delivers it again

    def _handle(self, body: str) -> None:
        request = EnrichRequest.model_validate_json(body)
        logger.append_keys(event_ids=request.event_ids)  # the webhook events, through every hop
        now = datetime.now(UTC)
        work = partial(self._enrich, request, now)
        try:
            if self.once is None:
                work()
            elif self.once.run(request, work) is None:
                count("EnrichmentDuplicatesSkipped")
                logger.info("Already enriched for this score",
                            extra={"contact_id": request.contact_id})
        except BudgetExhausted:
            count("EnrichmentDeferredBudget")
            if self.deferrals is None:
                raise RetryLater("daily LLM budget spent") from None
            delay = self.deferrals.defer(body, now)
            logger.info("Daily LLM budget spent; enrichment deferred",
                        extra={"contact_id": request.contact_id, "delay_seconds": delay})

    def _enrich(self, request: EnrichRequest, now: datetime) -> str:
        budget = self.budget
        if budget and self.llm.enabled and budget.cannot_afford(self.reservation_usd, now):
            raise BudgetExhausted()
        contact = self.hubspot.batch_read([request.contact_id],
                                          read_properties(self.purposes_property))
        properties = contact.get(request.contact_id)
        if properties is None:  # deleted since it was scored
            logger.info("Contact not found; nothing to enrich",
                        extra={"contact_id": request.contact_id})
            count("EnrichmentContactMissing")
            return "contact_missing"
        reserve = partial(budget.try_reserve, self.reservation_usd, now) if budget else None
        disclose = (partial(self._disclose, self.disclosures, request.contact_id,
                            shared_fields(properties)) if self.disclosures else None)
        try:
            result = enrich_contact(properties, request, self.llm, self.client_factory,
                                    purposes_property=self.purposes_property,
                                    prompt=self.prompt, prices=self.prices,
                                    reserve_budget=reserve, disclose=disclose)
        except EnrichmentError as error:
            record_usage(error.calls)
            if budget:  # the reservation was made: the calls happened after it
                budget.settle(self.reservation_usd, _spent(error.calls), now)
            count("EnrichmentFailures")
            logger.warning("Enrichment failed", extra={"contact_id": request.contact_id,
                                                       "reason": error.reason})
            raise
        record_usage(result.calls)
        if budget and result.calls:
            budget.settle(self.reservation_usd, result.estimated_cost_usd, now)
        if result.properties:
            self.hubspot.batch_update({request.contact_id: result.properties})
        _log_result(result)
        return result.status

    def _disclose(self, disclosures: DynamoDBDisclosures, contact_id: str,
                  fields: tuple[str, ...], model: str) -> None:
        """Records the processor about to receive the contact's data (before the request)."""
        disclosures.add(contact_id, disclosure_for(self.llm, model, fields),
                        now=datetime.now(UTC), retention_days=self.retention_days)
