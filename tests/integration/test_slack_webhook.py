"""The Slack client (`leadscore.alerts.slack`) against the local stack's Slack receiver over
real HTTP: success, Slack's documented failures (429 with Retry-After, 5xx, 404/410, invalid
blocks), a post that was sent but never answered (not repeated), pacing between posts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from leadscore.alerts import slack
from leadscore.alerts.message import HotLead, Summary, hot_lead_message
from leadscore.alerts.slack import SlackDeliveryUnknown, SlackError, SlackWebhook, webhook_url
from leadscore_local import slack_receiver
from leadscore_local.slack_receiver import SlackReceiver

LEAD = HotLead(contact_id="101", score="96", tier="hot", probability="0.4120",
               reasons=["Visited 25 times (+)", "Job title: CTO (+)"], summary=None,
               needs_review=False, review_reason=None, model_version="20250630-7e2952cb")
MESSAGE = hot_lead_message(LEAD, link="https://app.hubspot.com/contacts/62515/record/0-1/101",
                           summary=Summary.NOT_REQUESTED)


@pytest.fixture
def receiver() -> Iterator[SlackReceiver]:
    server = SlackReceiver()
    server.start()
    yield server
    server.stop()


class FakeTime:
    """A clock that only `sleep` moves: no test waits in real time."""

    def __init__(self) -> None:
        self.now, self.waits = 100.0, []

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now

    def backoffs(self) -> list[float]:
        """The retry waits (the rest is pacing between attempts)."""
        return [wait for wait in self.waits if wait >= 0.5]


def webhook(url: str, time: FakeTime | None = None) -> SlackWebhook:
    time = time or FakeTime()
    return SlackWebhook(url, sleep=time.sleep, clock=time.clock)


def test_a_valid_message_is_posted_and_recorded(receiver: SlackReceiver) -> None:
    client = SlackWebhook(receiver.webhook_url)
    client.post(MESSAGE)
    assert [post["payload"] for post in receiver.report()["posts"]] == [MESSAGE]
    assert client.posted == 1


def test_rate_limit_is_waited_out_per_retry_after(receiver: SlackReceiver) -> None:
    receiver.inject_fault(429, 1)
    time = FakeTime()
    client = webhook(receiver.webhook_url, time)
    client.post(MESSAGE)
    assert time.backoffs() == [1.0]  # Retry-After: 1
    assert client.rate_limited == 1 and len(receiver.report()["posts"]) == 1
    assert receiver.report()["answers"] == {"200": 1, "429": 1}


def test_posts_are_paced_at_slacks_rate() -> None:
    now = [100.0]
    waits: list[float] = []

    class Ok:
        status, data, headers = 200, b"ok", {}

    class Http:
        def request(self, *args, **kwargs):
            return Ok()

    def sleep(seconds: float) -> None:
        waits.append(round(seconds, 3))
        now[0] += seconds

    client = SlackWebhook("https://hooks.slack.com/services/T/B/x", http=Http(), sleep=sleep,
                          clock=lambda: now[0])
    client.post(MESSAGE)
    now[0] += 0.3
    client.post(MESSAGE)
    now[0] += 2.0
    client.post(MESSAGE)
    assert waits == [round(slack.MIN_INTERVAL_SECONDS - 0.3, 3)]  # only the second waited


def test_still_rate_limited_is_a_retryable_failure(receiver: SlackReceiver) -> None:
    receiver.inject_fault(429, slack.ATTEMPTS)
    with pytest.raises(SlackError) as failure:
        webhook(receiver.webhook_url).post(MESSAGE)
    assert not failure.value.final and "429 rate_limited" in failure.value.reason
    assert receiver.report()["posts"] == []


def test_server_errors_are_retried_then_posted(receiver: SlackReceiver) -> None:
    receiver.inject_fault(500, 2)
    time = FakeTime()
    webhook(receiver.webhook_url, time).post(MESSAGE)
    assert time.backoffs() == [1, 2] and len(receiver.report()["posts"]) == 1


@pytest.mark.parametrize(("status", "code", "advice"), [
    (410, "channel_is_archived", "archived"),
    (404, "channel_not_found", "no longer exists"),
    (403, "action_prohibited", "forbids"),
])
def test_a_broken_webhook_or_channel_is_final_and_says_what_to_fix(
        receiver: SlackReceiver, status: int, code: str, advice: str) -> None:
    receiver.inject_fault(status, 1)
    with pytest.raises(SlackError) as failure:
        webhook(receiver.webhook_url).post(MESSAGE)
    assert failure.value.final
    assert f"Slack answered {status} {code}" in failure.value.reason
    assert advice in failure.value.reason
    assert receiver.webhook_url not in failure.value.reason  # the URL is a credential


def test_blocks_slack_would_refuse_are_final(receiver: SlackReceiver) -> None:
    broken = {"text": "x", "blocks": [{"type": "header", "text": {
        "type": "plain_text", "text": "h" * 151}}]}
    with pytest.raises(SlackError) as failure:
        SlackWebhook(receiver.webhook_url).post(broken)
    assert failure.value.final and "400 invalid_blocks" in failure.value.reason
    with pytest.raises(SlackError, match="missing_text_or_fallback"):
        SlackWebhook(receiver.webhook_url).post({"blocks": MESSAGE["blocks"]})


def test_an_unanswered_post_is_not_repeated(receiver: SlackReceiver, monkeypatch) -> None:
    monkeypatch.setattr(slack, "TIMEOUT", slack.urllib3.Timeout(connect=1.0, read=0.5))
    monkeypatch.setattr(slack_receiver, "LATE_ANSWER_SECONDS", 1.5)
    receiver.inject_fault("timeout", 1)
    with pytest.raises(SlackDeliveryUnknown) as failure:
        webhook(receiver.webhook_url).post(MESSAGE)
    assert failure.value.final and "may have been posted" in failure.value.reason
    assert len(receiver.report()["posts"]) == 1  # it did reach the channel; sent once


def test_only_a_webhook_url_counts_as_configured() -> None:
    assert webhook_url("https://hooks.slack.com/services/T0/B0/abc") == (
        "https://hooks.slack.com/services/T0/B0/abc")
    assert webhook_url("http://127.0.0.1:8080/services/x") == "http://127.0.0.1:8080/services/x"
    for placeholder in ("Q2x7hJ3kP0aZr9T1bV5mN8cW4yE6uD2s", "", None, "http://example.com/x",
                        "hooks.slack.com/services/T0/B0/abc"):
        assert webhook_url(placeholder) is None
