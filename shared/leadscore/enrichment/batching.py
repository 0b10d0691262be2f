"""What the contacts of one EnrichQueue batch share while they are enriched side by side: the
HubSpot reads (`ContactReads`), the LLM call slots and the invocation's time (`TimeBudget`),
and the one HubSpot write at the end (`BatchWrite`).

- Reads: one batch read for every contact of the batch before any LLM call; a contact whose
  turn for an LLM slot comes more than `max_age` after its read is read again — in one batch
  read for every contact still waiting — so consent is never older than `max_age` at a
  contact's first LLM call (a retry or the escalation model uses the same read, as it did
  when each message was its own invocation).
- Time: a contact is started only while the invocation has time for its worst case (three
  calls, each with the SDK's retries, plus the write); a call is made only while there is time
  for it. What was not started goes back to the queue as a new message, not to the DLQ.
- Write: each contact hands in its properties and waits; when every contact of the batch has
  handed in or finished without a write, one batch update (100 contacts per request) writes
  them all and each waiting contact learns whether its own write took effect.

No numpy/lightgbm here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from leadscore.hubspot.client import ContactProperties, HubSpotBatchError

MAX_CALLS_PER_CONTACT = 3  # fast model, its retry, the escalation model (enrich.assess)
WRITE_RESERVE_SECONDS = 15.0  # the batch write, re-queues and dead letters after the calls


class OutOfTime(Exception):
    """The invocation has no time left for this contact: it goes back to the queue."""


class WriteFailed(Exception):
    """This contact's properties were not written (the others' may have been)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class TimeBudget:
    """The invocation's remaining time against the worst case of an LLM call."""

    def __init__(self, remaining_ms: Callable[[], int], call_seconds: float,
                 reserve_seconds: float = WRITE_RESERVE_SECONDS):
        self._remaining_ms = remaining_ms
        self.call_seconds = call_seconds
        self.reserve_seconds = reserve_seconds

    def remaining(self) -> float:
        return self._remaining_ms() / 1000

    def start_window(self) -> float:
        """Seconds left in which a contact may still be started."""
        return self.remaining() - MAX_CALLS_PER_CONTACT * self.call_seconds - self.reserve_seconds

    def check_call(self) -> None:
        """Raises OutOfTime unless one more call (with its retries) and the write still fit."""
        if self.remaining() < self.call_seconds + self.reserve_seconds:
            raise OutOfTime("no time left for another LLM call")


class LlmSlots:
    """At most `size` contacts talk to the LLM at once; a slot is given only within the time
    budget's start window."""

    def __init__(self, size: int, time_budget: TimeBudget):
        self._slots = threading.BoundedSemaphore(size)
        self._time = time_budget

    def acquire(self) -> None:
        window = self._time.start_window()
        if window <= 0 or not self._slots.acquire(timeout=window):
            raise OutOfTime("no time left to start this contact")
        if self._time.start_window() <= 0:  # the wait used the window up
            self._slots.release()
            raise OutOfTime("no time left to start this contact")

    def release(self) -> None:
        self._slots.release()


@dataclass
class _Read:
    properties: dict[str, str | None] | None
    at: float


@dataclass
class ContactReads:
    """Fresh HubSpot reads of a batch's contacts; see the module docstring."""

    hubspot: ContactProperties
    properties: list[str]
    max_age: float
    clock: Callable[[], float] = time.monotonic
    requests: int = 0  # batch read calls made (each reads up to 100 contacts)
    _reads: dict[str, _Read] = field(default_factory=dict)
    _waiting: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def read(self, contact_ids: Iterable[str]) -> None:
        """Reads these contacts now (ids HubSpot does not know read as None)."""
        ids = list(dict.fromkeys(contact_ids))
        if not ids:
            return
        found = self.hubspot.batch_read(ids, self.properties)
        self.requests += -(-len(ids) // 100)
        at = self.clock()
        for contact_id in ids:
            self._reads[contact_id] = _Read(found.get(contact_id), at)

    def get(self, contact_id: str) -> dict[str, str | None] | None:
        return self._reads[contact_id].properties

    def wait_for_llm(self, contact_id: str) -> None:
        """The contact needs the LLM: a refresh before its turn will include it."""
        with self._lock:
            self._waiting.add(contact_id)

    def stop_waiting(self, contact_id: str) -> None:
        with self._lock:
            self._waiting.discard(contact_id)

    def fresh(self, contact_id: str) -> dict[str, str | None] | None:
        """The contact's properties as read at most `max_age` ago (reading every contact
        still waiting again when this one's read is older); it stops waiting."""
        with self._lock:
            if self.clock() - self._reads[contact_id].at > self.max_age:
                self.read(sorted(self._waiting | {contact_id}))
            self._waiting.discard(contact_id)
            return self._reads[contact_id].properties

    def age(self, contact_id: str) -> float:
        return self.clock() - self._reads[contact_id].at


class BatchWrite:
    """One HubSpot batch update for every contact of a batch that has something to write."""

    def __init__(self, hubspot: ContactProperties, participants: int):
        self._hubspot = hubspot
        self._pending = participants  # contacts that may still hand in a write
        self._updates: dict[str, Mapping[str, str]] = {}
        self._failed: dict[str, str] = {}
        self._flushed = False
        self.requests = 0
        self._done = threading.Condition()

    def submit(self, contact_id: str, properties: Mapping[str, str],
               timeout: float | None = None) -> None:
        """Hands in this contact's properties and waits for the write; raises WriteFailed."""
        with self._done:
            if contact_id in self._updates:  # one write per contact per batch
                self._pending -= 1
                self._flush_if_complete()
                raise WriteFailed("another message of this batch writes the same contact")
            self._updates[contact_id] = properties
            self._pending -= 1
            self._flush_if_complete()
            if not self._done.wait_for(lambda: self._flushed, timeout=timeout):
                raise WriteFailed("the batch write did not happen in time")
            if contact_id in self._failed:
                raise WriteFailed(self._failed[contact_id])

    def leave(self) -> None:
        """This contact finished without a write."""
        with self._done:
            self._pending -= 1
            self._flush_if_complete()

    def _flush_if_complete(self) -> None:
        if self._pending > 0 or self._flushed:
            return
        if self._updates:
            self.requests = -(-len(self._updates) // 100)
            try:
                self._hubspot.batch_update(self._updates)
            except HubSpotBatchError as error:
                reason = f"HubSpot batch update partly failed: status={error.status}"
                self._failed = dict.fromkeys(error.failed_ids, reason)
            except Exception as error:  # nothing written: every waiting contact is told
                status = getattr(error, "status", None)
                reason = f"HubSpot batch update failed: {type(error).__name__}" + (
                    f" status={status}" if status is not None else "")
                self._failed = dict.fromkeys(self._updates, reason)
        self._flushed = True
        self._done.notify_all()
