"""Hot leads to Slack (`leadscore.alerts`): the message a rep reads, when it is posted (at
once, or once the LLM summary is on the contact), that it is posted once, that the consent gate
applies, and that failures retry and end in the DLQ with a reason. Slack itself is faked here;
tests/integration/test_slack_webhook.py drives the client over HTTP and
tests/e2e/test_what_reps_see.py the whole flow through the local stack."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from fakes import create_table
from moto import mock_aws

from leadscore.alerts.message import HotLead, Summary, hot_lead_message, record_url
from leadscore.alerts.notifier import (
    DeferredAlerts,
    HotLeadNotice,
    HotLeadNotifier,
    NotifierConfig,
    PostOnce,
    summary_written_after_score,
)
from leadscore.alerts.slack import SlackDeliveryUnknown, SlackError
from leadscore.hubspot.history import ContactHistory, PropertyVersion
from leadscore.messaging import DeadLetters
from leadscore_local.slack_receiver import block_problem

SCORED_AT = "2026-03-02T10:00:00.000Z"
T0 = datetime(2026, 3, 2, 10, 0, 0, 400_000, tzinfo=UTC)  # when HubSpot stored that score
CONSENT = "dpdp_consent_purposes"
ALERT = HotLeadNotice(contact_id="101", portal_id=62515, score=96, tier="hot",
                      model_version="20250630-7e2952cb", scored_at=SCORED_AT)
CONFIG = NotifierConfig(purposes_property=CONSENT, enrich_tiers=frozenset({"hot", "warm"}),
                        llm_enabled=True, summary_wait_seconds=600,
                        hubspot_app_url="https://app.hubspot.com", default_portal_id=None)


def contact(consent: str = "lead_scoring;ai_enrichment", tier: str = "hot",
            summary_at: datetime | None = None, scored_at: str = SCORED_AT,
            **extra: str) -> ContactHistory:
    """A contact as HubSpot returns it with history: the score `scored_at` (the Lambda's
    clock) stored at T0 (HubSpot's clock), an older score before it."""
    properties = {
        CONSENT: consent, "ai_lead_score": "96", "ai_lead_tier": tier,
        "ai_lead_probability": "0.4120", "ai_lead_model_version": "20250630-7e2952cb",
        "ai_lead_reasons": "Visited 25 times (+)\nJob title: CTO (+)\nFree-mail address (−)",
        "ai_lead_scored_at": scored_at, "ai_lead_summary": None, **extra}
    history = {"ai_lead_scored_at": [version("2026-02-01T08:00:00.000Z",
                                             T0 - timedelta(days=29)), version(scored_at, T0)],
               "ai_lead_summary": []}
    if summary_at:
        properties["ai_lead_summary"] = properties.get("ai_lead_summary") or (
            "Senior buyer at a mid-sized firm; asked for a demo.")
        history["ai_lead_summary"] = [version(properties["ai_lead_summary"], summary_at)]
    return ContactHistory(id="101", properties=properties, created_at=None, history=history)


def version(value: str, at: datetime) -> PropertyVersion:
    """A property version as `HubSpotClient.batch_read_history` gives it (epoch ms)."""
    return PropertyVersion(value, int(at.timestamp() * 1000))


class FakeHubSpot:
    def __init__(self, contacts: dict[str, ContactHistory]) -> None:
        self.contacts, self.reads = contacts, 0

    def batch_read_history(self, ids, properties, history):
        self.reads += 1
        assert {"ai_lead_summary", "ai_lead_scored_at"} <= set(history)
        return {i: self.contacts[i] for i in ids if i in self.contacts}


class FakeSlack:
    def __init__(self, error: BaseException | None = None) -> None:
        self.posts: list[dict[str, Any]] = []
        self.error = error

    def post(self, message: dict[str, Any]) -> None:
        if self.error:
            raise self.error
        self.posts.append(message)


@pytest.fixture
def aws(aws_env):
    with mock_aws():
        sqs = boto3.client("sqs")
        queue = sqs.create_queue(QueueName="SlackAlertQueue")["QueueUrl"]
        dlq = sqs.create_queue(QueueName="SlackAlertDLQ")["QueueUrl"]
        create_table("IdempotencyTable")
        yield sqs, queue, dlq


class Deferrals:
    """DeferredAlerts without the wait: records what would come back, and after how long."""

    def __init__(self) -> None:
        self.deferred: list[tuple[HotLeadNotice, int]] = []

    def defer(self, alert: HotLeadNotice, delay_seconds: int) -> None:
        self.deferred.append((alert, delay_seconds))


def notifier(aws, found: ContactHistory | None, slack: FakeSlack | None = None,
             now: datetime = T0 + timedelta(seconds=2), deferrals: Any = None,
             **config: Any) -> HotLeadNotifier:
    sqs, queue, dlq = aws
    return HotLeadNotifier(
        hubspot=FakeHubSpot({"101": found} if found else {}),
        config=NotifierConfig(**{**CONFIG.__dict__, **config}),
        slack=slack if slack is not None else FakeSlack(),
        deferrals=deferrals or DeferredAlerts(queue, sqs), dead_letters=DeadLetters(dlq, 5, sqs),
        once=PostOnce("IdempotencyTable"), clock=lambda: now)


def messages(sqs, url) -> list[dict[str, Any]]:
    found = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                MessageAttributeNames=["All"], AttributeNames=["All"])
    return found.get("Messages", [])


# --------------------------------------------------------------------------- the message


def test_the_message_shows_what_a_rep_needs_and_no_contact_details():
    lead = HotLead(contact_id="101", score="96", tier="hot", probability="0.4120",
                   reasons=["Visited 25 times (+)", "Job title: CTO <!channel> (+)"],
                   summary="Reach asha@acme.in or +91 98765 43210 & ask <https://evil|here>.",
                   needs_review=True, review_reason="scored hot but the LLM found red flags",
                   model_version="20250630-7e2952cb")
    link = record_url("https://app.hubspot.com/", 62515, "101")
    assert link == "https://app.hubspot.com/contacts/62515/record/0-1/101"
    message = hot_lead_message(lead, link=link, summary=Summary.READY)
    text = json.dumps(message, ensure_ascii=False)
    assert block_problem(message) is None  # Block Kit the Slack receiver accepts
    assert message["text"] == f"Hot lead: score 96/100: {link}"
    assert message["blocks"][0]["text"]["text"] == "Hot lead: score 96/100"
    assert "*Conversion probability*\\n41 %" in text
    assert "• Visited 25 times (+)" in text
    assert f"<{link}|Open contact 101 in HubSpot>" in text
    assert "asha@acme.in" not in text and "98765" not in text
    assert "[e-mail removed]" in text and "[phone removed]" in text
    # Lead data cannot mention a channel or forge a link in Slack's mrkdwn.
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text
    assert "<https://evil" not in text and "&amp; ask" in text
    assert "Flagged for review: scored hot but the LLM found red flags" in text


@pytest.mark.parametrize(("summary", "note"), [
    (Summary.NOT_REQUESTED, "No AI fit summary for this lead"),
    (Summary.NOT_READY, "not ready yet; it will appear on the contact in HubSpot"),
])
def test_without_a_summary_the_message_says_why(summary, note):
    lead = HotLead("7", "91", "hot", None, [], None, False, None, None)
    message = hot_lead_message(lead, link=None, summary=summary)
    assert block_problem(message) is None
    assert note in json.dumps(message)
    assert "set HubSpotPortalId for a link" in json.dumps(message)
    assert record_url("https://app.hubspot.com", None, "7") is None


# --------------------------------------------------------------------------- when to post


def test_summary_readiness_is_judged_on_hubspots_own_clock():
    assert not summary_written_after_score(contact(), SCORED_AT)
    assert summary_written_after_score(contact(summary_at=T0 + timedelta(seconds=5)), SCORED_AT)
    # A summary written for an earlier score (the lead was warm before) is not this one's.
    assert not summary_written_after_score(contact(summary_at=T0 - timedelta(days=2)),
                                           SCORED_AT)
    # The Lambda's clock ran 5 s ahead of HubSpot's: the summary, stored 3 s after the score
    # by HubSpot's clock, is still this score's (HubSpot's timestamps are compared).
    ahead = "2026-03-02T10:00:05.000Z"
    assert summary_written_after_score(
        contact(summary_at=T0 + timedelta(seconds=3), scored_at=ahead), ahead)


def test_a_lead_that_will_not_be_enriched_is_posted_at_once(aws):
    cases = ((contact(consent="lead_scoring"), {}),  # no ai_enrichment consent
             (contact(), {"llm_enabled": False}),  # LLM_PROVIDER off
             (contact(), {"enrich_tiers": frozenset({"warm"})}))  # hot leads not enriched
    for day, (found, config) in enumerate(cases, start=2):
        slack = FakeSlack()
        notifier(aws, found, slack, **config).handle(
            ALERT.model_copy(update={"scored_at": f"2026-03-0{day}T10:00:00.000Z"})
            .model_dump_json(), "m1", 1)
        [message] = slack.posts
        assert "No AI fit summary for this lead" in json.dumps(message)
    sqs, queue, dlq = aws
    assert messages(sqs, queue) == [] and messages(sqs, dlq) == []


def test_a_lead_being_enriched_waits_for_its_summary_then_shows_it(aws):
    slack, deferrals = FakeSlack(), Deferrals()
    notifier(aws, contact(), slack, deferrals=deferrals).handle(ALERT.model_dump_json(), "m1", 1)
    assert slack.posts == []
    [(deferred, delay)] = deferrals.deferred
    assert delay == 10 and deferred.waiting_since == "2026-03-02T10:00:02.400Z"
    assert deferred.model_dump(exclude={"waiting_since"}) == ALERT.model_dump(
        exclude={"waiting_since"})
    # Still not there 30 s later: back again, after longer.
    notifier(aws, contact(), slack, now=T0 + timedelta(seconds=32), deferrals=deferrals).handle(
        deferred.model_dump_json(), "m2", 1)
    assert [d for _, d in deferrals.deferred] == [10, 30] and slack.posts == []

    ready = contact(summary_at=T0 + timedelta(seconds=40))
    notifier(aws, ready, slack, now=T0 + timedelta(seconds=65)).handle(
        deferred.model_dump_json(), "m3", 1)
    [message] = slack.posts
    assert "*AI fit summary*\\nSenior buyer at a mid-sized firm" in json.dumps(message)


def test_a_waiting_alert_goes_back_on_the_queue_with_a_delay(aws):
    sqs, queue, _ = aws
    DeferredAlerts(queue, sqs).defer(ALERT, 0)
    [message] = messages(sqs, queue)
    assert HotLeadNotice.model_validate_json(message["Body"]) == ALERT


def test_a_summary_that_does_not_come_in_time_is_not_waited_for_forever(aws):
    sqs, queue, _ = aws
    slack = FakeSlack()
    waiting = ALERT.model_copy(update={"waiting_since": "2026-03-02T10:00:02.000Z"})
    notifier(aws, contact(), slack, now=T0 + timedelta(seconds=700)).handle(
        waiting.model_dump_json(), "m1", 1)
    [message] = slack.posts
    assert "not ready yet" in json.dumps(message)
    assert messages(sqs, queue) == []


@pytest.mark.parametrize(("found", "why"), [
    (None, "deleted"),
    (contact(consent=""), "no consent"),
    (contact(consent="ai_enrichment"), "no lead_scoring consent"),
    (contact(consent="lead_scoring;bogus"), "malformed consent"),
    (contact(tier="warm"), "cooled down before it was posted"),
])
def test_nothing_is_posted_for_a_lead_that_is_gone_unconsented_or_no_longer_hot(
        aws, found, why):
    slack = FakeSlack()
    notifier(aws, found, slack).handle(ALERT.model_dump_json(), "m1", 1)
    assert slack.posts == [], why


def test_without_a_webhook_url_nothing_is_read_or_sent(aws):
    quiet = notifier(aws, contact())
    quiet.slack = None
    quiet.handle(ALERT.model_dump_json(), "m1", 1)
    assert quiet.hubspot.reads == 0


# --------------------------------------------------------------------------- once, failures


def test_a_lead_is_posted_once_however_often_its_alert_arrives(aws):
    slack = FakeSlack()
    for message_id in ("m1", "m2", "m3"):  # SNS and SQS deliver at least once
        notifier(aws, contact(consent="lead_scoring"), slack).handle(
            ALERT.model_dump_json(), message_id, 1)
    assert len(slack.posts) == 1
    # Entering hot again later is a new score: a new post.
    again = ALERT.model_copy(update={"scored_at": "2026-04-01T09:00:00.000Z"})
    notifier(aws, contact(consent="lead_scoring"), slack).handle(again.model_dump_json(), "m4", 1)
    assert len(slack.posts) == 2


def reasons(sqs, dlq) -> list[str]:
    return [m["MessageAttributes"]["reason"]["StringValue"] for m in messages(sqs, dlq)]


def test_a_final_slack_failure_goes_to_the_dlq_with_its_reason_at_once(aws):
    sqs, _, dlq = aws
    failing = FakeSlack(SlackError("Slack answered 410 channel_is_archived: ...", final=True))
    notifier(aws, contact(consent="lead_scoring"), failing).handle(
        ALERT.model_dump_json(), "m1", 1)
    assert reasons(sqs, dlq) == ["Slack answered 410 channel_is_archived: ..."]


def test_a_passing_slack_failure_is_retried_and_dead_lettered_on_the_last_receive(aws):
    sqs, _, dlq = aws
    failing = FakeSlack(SlackError("Slack answered 500 rollup_error", final=False))
    with pytest.raises(SlackError):
        notifier(aws, contact(consent="lead_scoring"), failing).handle(
            ALERT.model_dump_json(), "m1", 1)
    assert reasons(sqs, dlq) == []
    notifier(aws, contact(consent="lead_scoring"), failing).handle(
        ALERT.model_dump_json(), "m1", 5)
    assert reasons(sqs, dlq) == ["Slack answered 500 rollup_error"]
    # The failed attempts left no claim: once Slack is back, the redriven alert is posted.
    slack = FakeSlack()
    notifier(aws, contact(consent="lead_scoring"), slack).handle(
        ALERT.model_dump_json(), "m1", 1)
    assert len(slack.posts) == 1


def test_an_unanswered_post_is_never_sent_again_and_says_so(aws):
    sqs, _, dlq = aws
    notifier(aws, contact(consent="lead_scoring"), FakeSlack(SlackDeliveryUnknown())).handle(
        ALERT.model_dump_json(), "m1", 1)
    assert "may have been posted: check the channel" in reasons(sqs, dlq)[0]


def test_an_invocation_that_died_mid_post_blocks_a_second_post(aws):
    sqs, _, dlq = aws
    with pytest.raises(SystemExit):  # the container died between claiming and finishing
        notifier(aws, contact(consent="lead_scoring"), FakeSlack(SystemExit())).handle(
            ALERT.model_dump_json(), "m1", 1)
    slack = FakeSlack()
    with pytest.raises(Exception, match="did not finish"):
        notifier(aws, contact(consent="lead_scoring"), slack).handle(
            ALERT.model_dump_json(), "m1", 2)
    notifier(aws, contact(consent="lead_scoring"), slack).handle(
        ALERT.model_dump_json(), "m1", 5)
    assert slack.posts == []
    assert "did not finish; it may have reached Slack" in reasons(sqs, dlq)[0]


def test_an_unreadable_alert_goes_to_the_dlq_at_once(aws):
    sqs, _, dlq = aws
    notifier(aws, contact()).handle('{"contact_id": "101"}', "m1", 1)
    assert reasons(sqs, dlq) == ["unreadable hot-lead alert"]


def test_the_notifier_takes_at_most_its_cap_of_the_apps_hubspot_budget():
    from leadscore.alerts.wiring import CappedBudget
    from leadscore.hubspot.client import RequestBudget

    slept: list[float] = []
    now = [0.0]
    shared = RequestBudget(8.0, clock=lambda: now[0], sleep=slept.append)
    capped = CappedBudget(shared, RequestBudget(1.0, clock=lambda: now[0], sleep=slept.append))
    waits = [capped.acquire() for _ in range(3)]  # no time passes: the cap makes them queue
    assert waits == [0.0, 1.0, 2.0]
    # The app-wide bucket saw every request: the cap never lets the notifier bypass it.
    assert shared.acquire() == 0.0 and round(shared._tokens, 6) == 4.0


# --------------------------------------------------------------------------- one read a batch


def alerts_for(contact_ids: list[str]) -> list[str]:
    return [ALERT.model_copy(update={"contact_id": cid}).model_dump_json()
            for cid in contact_ids]


def test_a_batch_of_alerts_costs_one_hubspot_read(aws):
    ids = ["101", "102", "103", "104"]
    slack = FakeSlack()
    batch = notifier(aws, None, slack)
    batch.hubspot = FakeHubSpot({cid: contact(consent="lead_scoring") for cid in ids[:3]})
    bodies = alerts_for(ids)
    batch.prefetch([*bodies, "not an alert"])
    for n, body in enumerate(bodies):
        batch.handle(body, f"m{n}", 1)
    assert batch.hubspot.reads == 1
    assert len(slack.posts) == 3  # 104 is not in HubSpot: not posted, not read again
    # The read-ahead serves each record once: a redelivery reads the contact anew.
    batch.handle(bodies[0], "m0", 2)
    assert batch.hubspot.reads == 2


def test_a_failed_batch_read_falls_back_to_one_read_per_alert(aws):
    class FlakyHubSpot(FakeHubSpot):
        def batch_read_history(self, ids, properties, history):
            if len(ids) > 1:
                self.reads += 1
                raise RuntimeError("HubSpot answered 502")
            return super().batch_read_history(ids, properties, history)

    slack = FakeSlack()
    batch = notifier(aws, None, slack)
    batch.hubspot = FlakyHubSpot({"101": contact(consent="lead_scoring"),
                                  "102": contact(consent="lead_scoring")})
    bodies = alerts_for(["101", "102"])
    batch.prefetch(bodies)
    for n, body in enumerate(bodies):
        batch.handle(body, f"m{n}", 1)
    assert batch.hubspot.reads == 3 and len(slack.posts) == 2


def test_without_a_webhook_url_a_batch_reads_nothing(aws):
    quiet = notifier(aws, contact())
    quiet.slack = None
    quiet.prefetch(alerts_for(["101"]))
    assert quiet.hubspot.reads == 0
