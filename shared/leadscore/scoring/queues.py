"""The queues the score function reads and writes: ScoreQueue messages (what ingest, backfill and
re-scores send), EnrichQueue messages and hot-lead alerts (what a score sends on).

Message shapes: docs/CONTRACTS.md, "Messages". Every send goes through
`leadscore.messaging.BatchSender`.

No numpy/lightgbm here: this module ships to the ingest function.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyPersistenceLayerError,
)
from pydantic import BaseModel, ConfigDict, Field

from leadscore.messaging import BatchSender, Outgoing

# Events per ScoreQueue message: a delivery of 100 events is one SendMessageBatch call, not
# ten (measured by infra/bench/burst_bench.py; see CONTRACTS.md, "Messages"). A failed
# message is retried whole; the score function skips the events it already applied.
EVENTS_PER_MESSAGE = 10
ENQUEUE_ATTEMPTS = 3
SEND_WORKERS = 10  # boto3's default connection pool size
# HubSpot retries a failed delivery for up to a day; remember events a little longer.
DEDUPE_WINDOW_SECONDS = 48 * 3600
# subscription_type of ScoreMessages that do not come from webhooks (their event_id is 0):
BACKFILL = "leadscore.backfill"  # sent by `leadscore backfill`
RESCORE = "leadscore.rescore"  # a contact queued again after losing a race to a newer event


class ScoreMessage(BaseModel):
    """One accepted event for the score function (CONTRACTS.md, "Messages"). `merged_into` is
    set only for a contact that a `contact.merge` folded into another one. `subscription_type`
    is in the `contact.*` vocabulary whichever format HubSpot sent."""

    model_config = ConfigDict(frozen=True)

    contact_id: str
    event_id: int
    subscription_type: str
    occurred_at: int
    portal_id: int
    merged_into: str | None = None
    subscription_id: int = 0  # 0 on messages that do not come from webhooks
    property_name: str | None = None  # propertyChange events

    @property
    def event_key(self) -> str | None:
        """What identifies the HubSpot event: HubSpot documents eventId as not unique, so
        (portalId, subscriptionId, eventId, objectId, propertyName, occurredAt). None for
        messages that do not come from webhooks (backfill, re-scores)."""
        if not self.event_id:
            return None
        return (f"{self.portal_id}:{self.subscription_id}:{self.event_id}:{self.contact_id}:"
                f"{self.property_name or ''}:{self.occurred_at}")


class Deferral(BaseModel):
    """How long a body has been waiting for HubSpot to answer (`leadscore.scoring.deferral`):
    since when (epoch ms of its first deferral), how many times it was sent back, and how many
    of those without a Retry-After from HubSpot (they set the back-off)."""

    model_config = ConfigDict(frozen=True)

    since: int
    times: int = Field(ge=1)
    backoffs: int = Field(default=0, ge=0)


class ScoreBatch(BaseModel):
    """A ScoreQueue body carrying up to EVENTS_PER_MESSAGE events; what ScoreQueue sends.
    A body may also be one bare ScoreMessage; `read_score_batch` reads both."""

    model_config = ConfigDict(frozen=True)

    events: list[ScoreMessage] = Field(min_length=1, max_length=EVENTS_PER_MESSAGE)
    deferral: Deferral | None = None  # set on bodies sent back while HubSpot was unavailable


def read_score_batch(body: str) -> ScoreBatch:
    """One ScoreQueue body; raises pydantic's ValidationError if unreadable."""
    if '"events"' in body:
        return ScoreBatch.model_validate_json(body)
    return ScoreBatch(events=[ScoreMessage.model_validate_json(body)])


def score_messages(body: str) -> list[ScoreMessage]:
    """The events in one ScoreQueue body; raises pydantic's ValidationError if unreadable."""
    return list(read_score_batch(body).events)


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
    failed (ENQUEUE_ATTEMPTS in all); raises EnqueueError if any body was not queued."""

    def __init__(self, queue_url: str, sqs_client: Any | None = None,
                 sleep: Callable[[float], None] = time.sleep):
        self._sender = BatchSender.sqs(queue_url, sqs_client, attempts=ENQUEUE_ATTEMPTS,
                                       workers=SEND_WORKERS, sleep=sleep)

    def send(self, messages: Sequence[ScoreMessage], *, delay_seconds: int = 0,
             deferral: Deferral | None = None) -> int:
        """`delay_seconds` and `deferral`: for bodies sent back to wait for HubSpot."""
        bodies = [ScoreBatch(events=list(messages[start:start + EVENTS_PER_MESSAGE]),
                             deferral=deferral).model_dump_json(exclude_none=True)
                  for start in range(0, len(messages), EVENTS_PER_MESSAGE)]
        failed = self._sender.send([Outgoing(str(i), body, delay_seconds=delay_seconds)
                                    for i, body in enumerate(bodies)])
        if failed:  # the delivery is answered 500, so HubSpot retries it
            raise EnqueueError(f"{len(failed)} of {len(bodies)} ScoreQueue messages not queued: "
                               f"{sorted(set(failed.values()))[0]}")
        return len(messages)


class DedupingScoreQueue:
    """Queues a delivery's messages at most once per DEDUPE_WINDOW_SECONDS (Powertools
    idempotency on DynamoDB).

    The idempotency key is the delivery's set of events — each by its `event_key`, with its
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
        delivery = {"events": sorted({(m.event_key or "", m.subscription_type)
                                      for m in messages})}
        attempt = uuid.uuid4().hex
        try:
            result = self._send_once(delivery=delivery, messages=messages, attempt=attempt)
        except IdempotencyAlreadyInProgressError as error:
            # A concurrent copy of this delivery is mid-flight; let HubSpot retry.
            raise EnqueueError("delivery is being queued by another request") from error
        except IdempotencyPersistenceLayerError as error:
            raise EnqueueError("idempotency store unavailable") from error
        return len(messages) if result["attempt"] == attempt else 0


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


class EnrichmentQueue:
    """Sends EnrichQueue messages; returns the contact ids not queued."""

    def __init__(self, queue_url: str, sqs_client: Any | None = None):
        self._sender = BatchSender.sqs(queue_url, sqs_client)

    def send(self, messages: Sequence[EnrichMessage]) -> set[str]:
        return set(self._sender.send([Outgoing(message.contact_id, message.model_dump_json())
                                      for message in messages]))


class HotLeadAlerts:
    """Publishes to `HotLeadsTopic`; returns the contact ids not published."""

    def __init__(self, topic_arn: str, sns_client: Any | None = None):
        self._sender = BatchSender.sns(topic_arn, sns_client, subject="leadscore: hot lead")

    def publish(self, alerts: Sequence[HotLeadAlert]) -> set[str]:
        return set(self._sender.send([Outgoing(alert.contact_id, alert.model_dump_json(),
                                               {"tier": alert.tier}) for alert in alerts]))
