"""Webhook ingest: verify HubSpot's request, turn handled events into ScoreQueue messages
(`leadscore.scoring.queues`).

Order matters and is fixed: size (413) → signature (401) → payload (400: not a JSON array of
at most 100) → enqueue (500 if any handled event could not be queued, so HubSpot retries the
delivery) → 200. Nothing is queued for a rejected request, and HubSpot is never called here:
the answer has to be fast. Inside a delivery each event stands alone: one that cannot be read
or names no contact (an association change, a company event, a field of the wrong type) is
set aside and counted (`WebhookEventsSkipped` by `reason`), and the others are queued — HubSpot
does not retry a 4xx, so refusing the delivery would lose them all.

Which events lead to work (the score function decides what, from HubSpot's current state),
in HubSpot's `contact.*` format or the generic `object.*` one with objectTypeId `0-1`:
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
from collections.abc import Callable, Container, Mapping
from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from leadscore.hubspot.properties import AI_PROPERTY_PREFIX
from leadscore.hubspot.webhooks import (
    InvalidWebhookPayload,
    MalformedRequest,
    RequestTooLarge,
    WebhookEvent,
    is_valid_signature,
    parse_delivery,
    request_from_http_api_event,
)
from leadscore.observability import count, count_by_dimension, logger
from leadscore.scoring.queues import (
    DedupingScoreQueue,
    EnqueueError,
    MessageQueue,
    ScoreMessage,
    ScoreQueue,
)
from leadscore.scoring.settings import IngestSettings
from leadscore.settings import get_secret

SCORE_EVENTS = frozenset({"contact.creation", "contact.restore", "contact.merge"})
PROPERTY_CHANGE = "contact.propertyChange"
ERASE_EVENTS = frozenset({"contact.deletion", "contact.privacyDeletion"})


def messages_for(event: WebhookEvent, watched: Container[str]) -> list[ScoreMessage]:
    """The ScoreQueue messages one contact event leads to; empty when it is ignored."""
    kind = event.kind or ""
    if kind == PROPERTY_CHANGE:
        name = event.property_name or ""
        if name.startswith(AI_PROPERTY_PREFIX) or name not in watched:
            return []
    elif kind not in SCORE_EVENTS and kind not in ERASE_EVENTS:
        return []
    common = {"event_id": event.event_id, "subscription_type": kind,
              "occurred_at": event.occurred_at, "portal_id": event.portal_id,
              "subscription_id": event.subscription_id,
              "property_name": event.property_name if kind == PROPERTY_CHANGE else None}
    survivor = event.surviving_object_id
    messages = [ScoreMessage(contact_id=str(survivor), **common)]
    if kind == "contact.merge":
        merged = {event.primary_object_id, event.object_id, *event.merged_object_ids}
        messages += [ScoreMessage(contact_id=str(cid), merged_into=str(survivor), **common)
                     for cid in sorted(i for i in merged if i is not None and i != survivor)]
    return messages


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
        delivery = parse_delivery(request.body)
    except InvalidWebhookPayload as error:
        count("WebhookMalformed")
        return IngestResponse(status_code=400, body={"message": str(error)})

    events = delivery.events
    per_event = [messages_for(e, watched) for e in events]
    handled = [e for e, messages in zip(events, per_event, strict=True) if messages]
    ignored = len(events) - len(handled)
    own_writes = sum(1 for e in events if e.kind == PROPERTY_CHANGE
                     and (e.property_name or "").startswith(AI_PROPERTY_PREFIX))
    skipped = sum(delivery.skipped.values())
    if skipped:
        count_by_dimension("WebhookEventsSkipped", "reason", delivery.skipped)
        logger.warning("Webhook events skipped", extra={
            "skipped": {str(reason): n for reason, n in delivery.skipped.items()},
            "event_ids": delivery.skipped_event_ids})
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
    count("WebhookEventsReceived", delivery.received)
    count("WebhookEventsQueued", new)
    count("WebhookEventsIgnored", ignored)
    count("OwnWriteEventsIgnored", own_writes)
    count("WebhookDuplicates", duplicates)
    logger.info("Webhook accepted", extra={
        "queued": new, "ignored": ignored, "duplicates": duplicates, "skipped": skipped,
        "event_ids": [e.event_id for e in handled],
    })
    return IngestResponse(status_code=200, body={
        "queued": new, "ignored": ignored, "duplicates": duplicates, "skipped": skipped,
    })


# --- the Lambda ---------------------------------------------------------------------------


class IngestFunction:
    """IngestFunction (`POST /webhooks/hubspot`) as `functions/ingest/app.py` runs it: settings
    and the ScoreQueue once per container (a new instance is a new container), the app's
    client secret from Secrets Manager per request (cached)."""

    def __init__(self) -> None:
        self.settings = cache(IngestSettings.from_env)
        self.queue = cache(self._queue)

    def _queue(self) -> ScoreQueue | DedupingScoreQueue:
        settings = self.settings()
        queue = ScoreQueue(settings.score_queue_url)
        if settings.idempotency_table:
            return DedupingScoreQueue(queue, settings.idempotency_table)
        return queue

    def handle(self, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        queue = self.queue()
        if isinstance(queue, DedupingScoreQueue):
            queue.config.register_lambda_context(context)  # in-progress records expire with us
        settings = self.settings()
        response = handle_webhook(
            event, client_secret=lambda: get_secret(settings.hubspot_client_secret_secret),
            public_url=settings.webhook_public_url, queue=queue, watched=settings.watched)
        return response.to_http_api()
