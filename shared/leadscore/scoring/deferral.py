"""Waiting out HubSpot without spending SQS receives.

SQS counts every receive of a message, and after ScoreQueue's maxReceiveCount (5) a failing
message is dead-lettered: a minute of 429s or 5xx from HubSpot used to put every lead that
arrived during it in ScoreDLQ. So a ScoreQueue record whose contacts failed only because
HubSpot was unavailable (`HubSpotUnavailable`: 429, 5xx, timeouts after the client's own
retries) is not handed back to SQS: its events for those contacts are sent to ScoreQueue again
with a delay, and the record is acknowledged.

The delay is HubSpot's `Retry-After` when it gave one (plus up to a second of jitter, so the
waiting containers do not all return at once). Without one (5xx, timeouts, a bare 429) it is a
back-off with jitter: about every BACKOFF_SECONDS for the first STEADY_BACKOFFS waits — a
minute or so of HubSpot trouble is waited out within seconds of its end — then doubling, up to
SQS's 15-minute limit. The body remembers since
when and how often it waited (`ScoreBatch.deferral`); once it has waited `max_wait_seconds`
(template parameter ScoreMaxWaitMinutes, default a day: past HubSpot's daily-limit reset and
any ordinary incident) it goes to ScoreDLQ with the reason instead. Records that failed for
any other reason take SQS's retries as before.

No numpy/lightgbm here.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from leadscore.observability import count, logger
from leadscore.scoring.queues import Deferral, EnqueueError, ScoreBatch, ScoreMessage

MAX_DELAY_SECONDS = 900  # SQS's largest DelaySeconds
BACKOFF_SECONDS = 10.0
STEADY_BACKOFFS = 6  # waits of about BACKOFF_SECONDS before the back-off starts doubling
DEFAULT_MAX_WAIT_SECONDS = 24 * 3600


class DelayedQueue(Protocol):
    """`leadscore.scoring.queues.ScoreQueue`."""

    def send(self, messages: Sequence[ScoreMessage], *, delay_seconds: int = 0,
             deferral: Deferral | None = None) -> int: ...


@dataclass(frozen=True)
class Verdict:
    """What became of a record: `deferred` (acknowledge it), or not, with `gave_up` set when
    it has waited long enough and must go to the DLQ now (with `reason`)."""

    deferred: bool
    gave_up: bool = False
    reason: str = ""


@dataclass
class Deferrals:
    queue: DelayedQueue
    max_wait_seconds: int = DEFAULT_MAX_WAIT_SECONDS
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    jitter: Callable[[float, float], float] = random.uniform

    def delay_seconds(self, backoffs: int, retry_after: float | None) -> int:
        """The wait before the next try: Retry-After if HubSpot gave one, else the back-off
        after `backoffs` earlier waits without one; with jitter, 1..MAX_DELAY_SECONDS."""
        if retry_after is not None:
            seconds = retry_after + self.jitter(0.0, 1.0)
        else:
            doublings = min(max(0, backoffs - STEADY_BACKOFFS + 1), 16)
            backoff = min(MAX_DELAY_SECONDS, BACKOFF_SECONDS * 2 ** doublings)
            seconds = self.jitter(backoff / 2, backoff)  # "equal jitter"
        return max(1, min(MAX_DELAY_SECONDS, math.ceil(seconds)))

    def defer(self, batch: ScoreBatch, events: Sequence[ScoreMessage],
              retry_after: float | None) -> Verdict:
        """Sends `events` (the record's events whose contacts failed) back to ScoreQueue,
        delayed; the verdict says whether the record may be acknowledged."""
        now_ms = int(self.clock().timestamp() * 1000)
        since = batch.deferral.since if batch.deferral else now_ms
        times = batch.deferral.times if batch.deferral else 0
        backoffs = batch.deferral.backoffs if batch.deferral else 0
        waited = (now_ms - since) / 1000
        if waited >= self.max_wait_seconds:
            count("ScoreDeferralsExhausted")
            return Verdict(deferred=False, gave_up=True, reason=(
                f"HubSpot unavailable for {waited / 60:.0f} min ({times} waits); gave up"))
        delay = self.delay_seconds(backoffs, retry_after)
        try:
            self.queue.send(list(events), delay_seconds=delay, deferral=Deferral(
                since=since, times=times + 1, backoffs=backoffs + (retry_after is None)))
        except EnqueueError as error:  # not sent: SQS's own retry of the record it is, then
            logger.warning("Deferral not queued", extra={"error": str(error)})
            return Verdict(deferred=False)
        count("ScoreDeferred")
        return Verdict(deferred=True)
