"""Webhook ingest: verify HubSpot's request, turn handled events into ScoreQueue messages.

Order matters and is fixed: size (413) → signature (401) → payload (400) → enqueue (500 if
any handled event could not be queued, so HubSpot retries the delivery) → 200. Nothing is
queued for a rejected request, and HubSpot is never called here: the answer has to be fast.

Which events lead to work (the score function decides what, from HubSpot's current state):
- `contact.creation`, `contact.restore`: score the contact;
- `contact.propertyChange` of a watched property (the model's inputs and the consent
  properties): re-score, which erases instead when consent was withdrawn;
- `contact.merge`: score the surviving contact, erase what we derived from the merged ones;
- `contact.deletion`, `contact.privacyDeletion`: erase derived data.
Changes to `ai_lead_*` properties — what leadscore itself writes — never lead to work, even if
someone subscribes to them or lists them as watched: that is what keeps our own writes from
re-scoring in a loop.

No numpy/lightgbm here: this module ships to the ingest function.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Container, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import boto3
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyPersistenceLayerError,
)
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field

from leadscore.hubspot.client import AI_PROPERTY_PREFIX
from leadscore.hubspot.webhooks import (
    InvalidWebhookPayload,
    MalformedRequest,
    RequestTooLarge,
    WebhookEvent,
    is_valid_signature,
    parse_events,
    request_from_http_api_event,
)
from leadscore.observability import count, logger

SCORE_EVENTS = frozenset({"contact.creation", "contact.restore", "contact.merge"})
PROPERTY_CHANGE = "contact.propertyChange"
ERASE_EVENTS = frozenset({"contact.deletion", "contact.privacyDeletion"})
BACKFILL = "leadscore.backfill"  # subscription_type of messages `leadscore backfill` sends
SQS_BATCH_LIMIT = 10
# Events per ScoreQueue message: a delivery of 100 events is one SendMessageBatch call, not
# ten (measured by infra/bench/burst_bench.py; see CONTRACTS.md, "Messages"). A failed
# message is retried whole; the score function skips the events it already applied.
EVENTS_PER_MESSAGE = 10
ENQUEUE_ATTEMPTS = 3
SEND_WORKERS = 10  # boto3's default connection pool size
# HubSpot retries a failed delivery for up to a day; remember events a little longer.
DEDUPE_WINDOW_SECONDS = 48 * 3600


class ScoreMessage(BaseModel):
    """One accepted event for the score function (CONTRACTS.md, "Messages"). `merged_into` is
    set only for a contact that a `contact.merge` folded into another one."""

    model_config = ConfigDict(frozen=True)

    contact_id: str
    event_id: int
    subscription_type: str
    occurred_at: int
    portal_id: int
    merged_into: str | None = None


class ScoreBatch(BaseModel):
    """A ScoreQueue body carrying up to EVENTS_PER_MESSAGE events; what ScoreQueue sends.
    A body may also be one bare ScoreMessage; `score_messages` reads both."""

    model_config = ConfigDict(frozen=True)

    events: list[ScoreMessage] = Field(min_length=1, max_length=EVENTS_PER_MESSAGE)


def score_messages(body: str) -> list[ScoreMessage]:
    """The events in one ScoreQueue body; raises pydantic's ValidationError if unreadable."""
    if '"events"' in body:
        return list(ScoreBatch.model_validate_json(body).events)
    return [ScoreMessage.model_validate_json(body)]


def messages_for(event: WebhookEvent, watched: Container[str]) -> list[ScoreMessage]:
    """The ScoreQueue messages one webhook event leads to; empty when it is ignored."""
    kind = event.subscription_type
    if kind == PROPERTY_CHANGE:
        name = event.property_name or ""
        if name.startswith(AI_PROPERTY_PREFIX) or name not in watched:
            return []
    elif kind not in SCORE_EVENTS and kind not in ERASE_EVENTS:
        return []
    common = {"event_id": event.event_id, "subscription_type": kind,
              "occurred_at": event.occurred_at, "portal_id": event.portal_id}
    survivor = event.surviving_object_id
    messages = [ScoreMessage(contact_id=str(survivor), **common)]
    if kind == "contact.merge":
        merged = {event.primary_object_id, event.object_id, *event.merged_object_ids}
        messages += [ScoreMessage(contact_id=str(cid), merged_into=str(survivor), **common)
                     for cid in sorted(i for i in merged if i is not None and i != survivor)]
    return messages


class EnqueueError(Exception):
    """Some messages could not be queued; the caller must not acknowledge them."""


class MessageQueue(Protocol):
    def send(self, messages: Sequence[ScoreMessage]) -> int:
        """Queues the messages; returns how many were new (not duplicates)."""
        ...


class ScoreQueue:
    """Sends ScoreBatch bodies of up to EVENTS_PER_MESSAGE events, 10 bodies per
    SendMessageBatch (a webhook delivery fits in one call; larger sends, as from
    `leadscore backfill`, run their calls in parallel), retrying entries SQS reports as
    failed."""

    def __init__(self, queue_url: str, sqs_client: Any | None = None,
                 sleep: Callable[[float], None] = time.sleep):
        self._url = queue_url
        self._sqs = sqs_client or boto3.client("sqs")
        self._sleep = sleep

    def send(self, messages: Sequence[ScoreMessage]) -> int:
        bodies = [ScoreBatch(events=list(messages[start:start + EVENTS_PER_MESSAGE]))
                  .model_dump_json(exclude_none=True)
                  for start in range(0, len(messages), EVENTS_PER_MESSAGE)]
        chunks = [bodies[start:start + SQS_BATCH_LIMIT]
                  for start in range(0, len(bodies), SQS_BATCH_LIMIT)]
        if len(chunks) <= 1:
            for chunk in chunks:
                self._send_chunk(chunk)
            return len(messages)
        with ThreadPoolExecutor(max_workers=min(len(chunks), SEND_WORKERS)) as pool:
            for future in [pool.submit(self._send_chunk, chunk) for chunk in chunks]:
                future.result()  # re-raises EnqueueError: the delivery is answered 500
        return len(messages)

    def _send_chunk(self, bodies: Sequence[str]) -> None:
        pending = {str(i): body for i, body in enumerate(bodies)}
        for attempt in range(ENQUEUE_ATTEMPTS):
            try:
                response = self._sqs.send_message_batch(
                    QueueUrl=self._url,
                    Entries=[{"Id": i, "MessageBody": body} for i, body in pending.items()],
                )
            except (BotoCoreError, ClientError) as error:
                raise EnqueueError(f"SendMessageBatch failed: {type(error).__name__}") from error
            failed = response.get("Failed") or []
            if not failed:
                return
            if any(entry.get("SenderFault") for entry in failed):
                raise EnqueueError(f"SQS rejected messages: {failed[0].get('Code')}")
            pending = {entry["Id"]: pending[entry["Id"]] for entry in failed}
            if attempt + 1 < ENQUEUE_ATTEMPTS:
                self._sleep(0.05 * 2**attempt)
        raise EnqueueError(f"{len(pending)} messages still failing after {ENQUEUE_ATTEMPTS} tries")


class DedupingScoreQueue:
    """Queues a delivery's messages at most once per DEDUPE_WINDOW_SECONDS (Powertools
    idempotency on DynamoDB).

    The idempotency key is the delivery's set of events — (portalId, eventId) with contact and
    type — so HubSpot's retry of a delivery (same events, higher `attemptNumber`) is recognised
    as a whole, at two DynamoDB calls per delivery rather than per event: that is what keeps
    the acknowledgement within milliseconds for 100 events. If sending fails, Powertools
    removes the in-progress record and HubSpot's retry queues the delivery again. A retry that
    regroups events differently gets a new key; the score function then recognises each
    event id it already applied (the ledger keeps the recent ones per contact), so a
    re-delivered event still leads to one score write.
    """

    def __init__(self, queue: ScoreQueue, table_name: str,
                 persistence_store: DynamoDBPersistenceLayer | None = None):
        self._queue = queue
        self.config = IdempotencyConfig(expires_after_seconds=DEDUPE_WINDOW_SECONDS)
        self._send_once = idempotent_function(
            self._send_delivery,
            data_keyword_argument="delivery",
            persistence_store=persistence_store or DynamoDBPersistenceLayer(table_name=table_name),
            config=self.config,
        )

    def _send_delivery(self, delivery: dict[str, Any], messages: Sequence[ScoreMessage],
                       attempt: str) -> dict[str, str]:
        self._queue.send(messages)
        return {"attempt": attempt}

    def send(self, messages: Sequence[ScoreMessage]) -> int:
        """Returns len(messages) if queued now, 0 if an earlier delivery queued them
        (Powertools then returns that delivery's stored result, whose `attempt` differs)."""
        if not messages:
            return 0
        delivery = {"events": sorted({(m.portal_id, m.event_id, m.contact_id,
                                       m.subscription_type) for m in messages})}
        attempt = uuid.uuid4().hex
        try:
            result = self._send_once(delivery=delivery, messages=messages, attempt=attempt)
        except IdempotencyAlreadyInProgressError as error:
            # A concurrent copy of this delivery is mid-flight; let HubSpot retry.
            raise EnqueueError("delivery is being queued by another request") from error
        except IdempotencyPersistenceLayerError as error:
            raise EnqueueError("idempotency store unavailable") from error
        return len(messages) if result["attempt"] == attempt else 0


class IngestResponse(BaseModel):
    status_code: int
    body: dict[str, Any]

    def to_http_api(self) -> dict[str, Any]:
        return {"statusCode": self.status_code, "headers": {"Content-Type": "application/json"},
                "body": json.dumps(self.body)}


UNAUTHORIZED = IngestResponse(status_code=401, body={"message": "Unauthorized"})


def handle_webhook(
    event: Mapping[str, Any],
    *,
    client_secret: Callable[[], str],
    public_url: str | None,
    queue: MessageQueue,
    watched: Container[str] = frozenset(),
    now_ms: int | None = None,
) -> IngestResponse:
    """Answers one HubSpot webhook delivery (API Gateway HTTP API payload v2 event).

    `client_secret` is called only for requests that pass the size check; `watched` names
    the properties whose changes lead to a re-score.
    """
    try:
        request = request_from_http_api_event(event, public_url)
    except RequestTooLarge as error:
        count("WebhookTooLarge")
        return IngestResponse(status_code=413, body={"message": str(error)})
    except MalformedRequest as error:
        count("WebhookMalformed")
        return IngestResponse(status_code=400, body={"message": str(error)})

    if not is_valid_signature(request, client_secret(), now_ms=now_ms):
        count("WebhookSignatureRejected")
        logger.warning("Webhook rejected: signature or timestamp invalid")
        return UNAUTHORIZED

    try:
        events = parse_events(request.body)
    except InvalidWebhookPayload as error:
        count("WebhookMalformed")
        return IngestResponse(status_code=400, body={"message": str(error)})

    per_event = [messages_for(e, watched) for e in events]
    handled = [e for e, messages in zip(events, per_event, strict=True) if messages]
    ignored = len(events) - len(handled)
    own_writes = sum(1 for e in events if e.subscription_type == PROPERTY_CHANGE
                     and (e.property_name or "").startswith(AI_PROPERTY_PREFIX))
    # Identical events repeated inside one delivery are queued once.
    messages = list(dict.fromkeys(m for found in per_event for m in found))
    try:
        new = queue.send(messages)
    except EnqueueError as error:
        count("EnqueueFailures")
        logger.error("Webhook events not queued; HubSpot will retry",
                     extra={"reason": str(error), "event_ids": [e.event_id for e in handled]})
        return IngestResponse(status_code=500, body={"message": "Events not queued; retry"})

    duplicates = len(messages) - new
    count("WebhookEventsReceived", len(events))
    count("WebhookEventsQueued", new)
    count("WebhookEventsIgnored", ignored)
    count("OwnWriteEventsIgnored", own_writes)
    count("WebhookDuplicates", duplicates)
    logger.info("Webhook accepted", extra={
        "queued": new, "ignored": ignored, "duplicates": duplicates,
        "event_ids": [e.event_id for e in handled],
    })
    return IngestResponse(status_code=200, body={
        "queued": new, "ignored": ignored, "duplicates": duplicates,
    })
