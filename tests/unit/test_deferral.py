"""Records waiting for HubSpot (leadscore.scoring.deferral): how long, and for how long at most."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from leadscore.scoring.deferral import MAX_DELAY_SECONDS, Deferrals
from leadscore.scoring.queues import Deferral, EnqueueError, ScoreBatch, ScoreMessage

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
EVENT = ScoreMessage(contact_id="7", event_id=1, subscription_type="contact.creation",
                     occurred_at=1, portal_id=62515)


class Queue:
    def __init__(self, fail: bool = False):
        self.sent: list[tuple[list[ScoreMessage], int, Deferral | None]] = []
        self.fail = fail

    def send(self, messages, *, delay_seconds=0, deferral=None):
        if self.fail:
            raise EnqueueError("1 of 1 ScoreQueue messages not queued")
        self.sent.append((list(messages), delay_seconds, deferral))
        return len(messages)


def deferrals(queue=None, **kwargs) -> Deferrals:
    return Deferrals(queue or Queue(), clock=lambda: NOW, **kwargs)


@pytest.mark.parametrize("jitter", [0.0, 1.0])
def test_retry_after_is_the_delay_plus_at_most_a_second(jitter):
    d = deferrals(jitter=lambda low, high: low + jitter * (high - low))
    assert d.delay_seconds(0, 7.0) == 7 + int(jitter)
    assert d.delay_seconds(5, 3600.0) == MAX_DELAY_SECONDS  # SQS's limit; it waits again


def test_without_retry_after_it_polls_steadily_then_doubles_up_to_sqs_limit():
    longest = deferrals(jitter=lambda low, high: high)
    shortest = deferrals(jitter=lambda low, high: low)
    assert [longest.delay_seconds(n, None) for n in range(14)] == [
        10, 10, 10, 10, 10, 10, 20, 40, 80, 160, 320, 640, 900, 900]
    assert [shortest.delay_seconds(n, None) for n in (0, 6)] == [5, 10]
    assert longest.delay_seconds(400, None) == MAX_DELAY_SECONDS


def test_a_first_deferral_starts_the_clock_and_a_later_one_keeps_it():
    queue = Queue()
    d = deferrals(queue, jitter=lambda low, high: low)
    assert d.defer(ScoreBatch(events=[EVENT]), [EVENT], None).deferred
    since = int(NOW.timestamp() * 1000)
    assert queue.sent[-1][2] == Deferral(since=since, times=1, backoffs=1)
    earlier = since - 600_000
    later = ScoreBatch(events=[EVENT], deferral=Deferral(since=earlier, times=9, backoffs=7))
    assert d.defer(later, [EVENT], None).deferred
    assert queue.sent[-1] == ([EVENT], 20, Deferral(since=earlier, times=10, backoffs=8))
    assert d.defer(later, [EVENT], 3.0).deferred  # guided by Retry-After: no back-off step
    assert queue.sent[-1] == ([EVENT], 3, Deferral(since=earlier, times=10, backoffs=7))


def test_after_the_allowance_it_gives_up_and_sends_nothing():
    queue = Queue()
    d = deferrals(queue, max_wait_seconds=3600)
    since = int((NOW - timedelta(minutes=61)).timestamp() * 1000)
    verdict = d.defer(ScoreBatch(events=[EVENT], deferral=Deferral(since=since, times=12)),
                      [EVENT], 2.0)
    assert (verdict.deferred, verdict.gave_up) == (False, True)
    assert verdict.reason == "HubSpot unavailable for 61 min (12 waits); gave up"
    assert queue.sent == []


def test_a_deferral_that_cannot_be_queued_leaves_the_record_to_sqs():
    verdict = deferrals(Queue(fail=True)).defer(ScoreBatch(events=[EVENT]), [EVENT], None)
    assert (verdict.deferred, verdict.gave_up) == (False, False)
