"""Webhook ingest: verify HubSpot's request, turn handled events into ScoreQueue messages.

Order matters and is fixed: size (413) → signature (401) → payload (400) → enqueue (500 if
any handled event could not be queued, so HubSpot retries the delivery) → 200. Nothing is
queued for a rejected request, and HubSpot is never called here: the answer has to be fast.

No numpy/lightgbm here: this module ships to the ingest function.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
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
from pydantic import BaseModel, ConfigDict

from leadscore.observability import count, logger
from leadscore.webhooks import (
    InvalidWebhookPayload,
    MalformedRequest,
    RequestTooLarge,
    WebhookEvent,
    is_valid_signature,
    parse_events,
    request_from_http_api_event,
)

# Subscription types that lead to a score. Others (propertyChange, deletion, privacyDeletion)
# are acknowledged and counted until their handling exists, so HubSpot does not retry them.
HANDLED_SUBSCRIPTION_TYPES = frozenset({"contact.creation"})
SQS_BATCH_LIMIT = 10
ENQUEUE_ATTEMPTS = 3
# HubSpot retries a failed delivery for up to a day; remember events a little longer.
DEDUPE_WINDOW_SECONDS = 48 * 3600
DEDUPE_WORKERS = 8  # below botocore's default pool of 10 connections per client


class ScoreMessage(BaseModel):
    """ScoreQueue message body (CONTRACTS.md, "Messages")."""

    model_config = ConfigDict(frozen=True)

    contact_id: str
    event_id: int
    subscription_type: str
    occurred_at: int
    portal_id: int

    @classmethod
    def from_event(cls, event: WebhookEvent) -> ScoreMessage:
        return cls(contact_id=str(event.object_id), event_id=event.event_id,
                   subscription_type=event.subscription_type, occurred_at=event.occurred_at,
                   portal_id=event.portal_id)


class EnqueueError(Exception):
    """Some messages could not be queued; the caller must not acknowledge them."""


class MessageQueue(Protocol):
    def send(self, messages: Sequence[ScoreMessage]) -> int:
        """Queues the messages; returns how many were new (not duplicates)."""
        ...


class ScoreQueue:
    """SendMessageBatch in chunks of 10, retrying entries SQS reports as failed."""

    def __init__(self, queue_url: str, sqs_client: Any | None = None,
                 sleep: Callable[[float], None] = time.sleep):
        self._url = queue_url
        self._sqs = sqs_client or boto3.client("sqs")
        self._sleep = sleep

    def send(self, messages: Sequence[ScoreMessage]) -> int:
        for start in range(0, len(messages), SQS_BATCH_LIMIT):
            self._send_chunk(messages[start:start + SQS_BATCH_LIMIT])
        return len(messages)

    def _send_chunk(self, chunk: Sequence[ScoreMessage]) -> None:
        pending = {str(i): message.model_dump_json() for i, message in enumerate(chunk)}
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
    """Queues each message at most once per DEDUPE_WINDOW_SECONDS (Powertools idempotency).

    The key is the whole message — eventId together with portal, contact, type and time —
    so a HubSpot retry of a delivery is recognised while distinct events never collide. The
    idempotent unit is "queue this one message": if sending fails, Powertools removes the
    in-progress record and HubSpot's retry queues it. That is three AWS calls per event
    instead of one SendMessageBatch per ten, so events are handled on a few threads to keep
    a 100-event delivery well inside HubSpot's timeout.
    """

    def __init__(self, queue: ScoreQueue, table_name: str,
                 persistence_store: DynamoDBPersistenceLayer | None = None):
        self._queue = queue
        self.config = IdempotencyConfig(expires_after_seconds=DEDUPE_WINDOW_SECONDS)
        self._send_once = idempotent_function(
            self._send_one,
            data_keyword_argument="message",
            persistence_store=persistence_store or DynamoDBPersistenceLayer(table_name=table_name),
            config=self.config,
        )

    def _send_one(self, message: dict[str, Any], attempt: str) -> dict[str, str]:
        self._queue.send([ScoreMessage.model_validate(message)])
        return {"attempt": attempt}

    def _send_if_new(self, message: ScoreMessage) -> bool:
        """True if queued now; False if an earlier delivery already queued it (Powertools
        then returns that delivery's stored result, whose `attempt` is not ours)."""
        attempt = uuid.uuid4().hex
        try:
            result = self._send_once(message=message.model_dump(), attempt=attempt)
        except IdempotencyAlreadyInProgressError as error:
            # A concurrent delivery of the same event is mid-flight; let HubSpot retry.
            raise EnqueueError("event is being queued by another request") from error
        except IdempotencyPersistenceLayerError as error:
            raise EnqueueError("idempotency store unavailable") from error
        return result["attempt"] == attempt

    def send(self, messages: Sequence[ScoreMessage]) -> int:
        if not messages:
            return 0
        # Every message is attempted; the first failure is raised once all have finished.
        with ThreadPoolExecutor(max_workers=min(DEDUPE_WORKERS, len(messages))) as pool:
            return sum(pool.map(self._send_if_new, messages))


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
    now_ms: int | None = None,
) -> IngestResponse:
    """Answers one HubSpot webhook delivery (API Gateway HTTP API payload v2 event).

    `client_secret` is called only for requests that pass the size check.
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

    handled = [e for e in events if e.subscription_type in HANDLED_SUBSCRIPTION_TYPES]
    ignored = len(events) - len(handled)
    # Identical events repeated inside one delivery are queued once.
    messages = list(dict.fromkeys(ScoreMessage.from_event(e) for e in handled))
    try:
        new = queue.send(messages)
    except EnqueueError as error:
        count("EnqueueFailures")
        logger.error("Webhook events not queued; HubSpot will retry",
                     extra={"reason": str(error), "event_ids": [e.event_id for e in handled]})
        return IngestResponse(status_code=500, body={"message": "Events not queued; retry"})

    count("WebhookEventsReceived", len(events))
    count("WebhookEventsQueued", new)
    count("WebhookEventsIgnored", ignored)
    count("WebhookDuplicates", len(handled) - new)
    logger.info("Webhook accepted", extra={
        "queued": new, "ignored": ignored, "duplicates": len(handled) - new,
        "event_ids": [e.event_id for e in handled],
    })
    return IngestResponse(status_code=200, body={
        "queued": new, "ignored": ignored, "duplicates": len(handled) - new,
    })
