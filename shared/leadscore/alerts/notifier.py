"""From a hot-lead alert to one Slack post.

The score function publishes an alert to HotLeadsTopic once per contact entering `hot` (its
ledger remembers it); the topic delivers it to SlackAlertQueue. For each alert this module:

1. re-reads the contact from HubSpot (events are triggers, not data): no contact, no
   `lead_scoring` consent or no longer hot → nothing is posted (the consent gate applies here
   too, and a lead that cooled down is not announced as hot);
2. decides about the LLM fit summary. The lead will get one when it has `ai_enrichment`
   consent, an LLM provider is configured and its tier is enriched (`ENRICH_TIERS`); then the
   post waits until the summary written after this score is on the contact (HubSpot's
   property history says when each value was written), re-queueing the alert with a growing
   delay, for at most `SLACK_SUMMARY_WAIT_SECONDS`, after which it is posted saying the summary
   will follow in HubSpot. A lead that will not be enriched is posted at once;
3. posts once per (contact, score time): Powertools idempotency on DynamoDB. A post that fails
   removes the claim, so SQS retries it; one that was sent but never answered keeps it and goes
   to the DLQ with that reason (it may be in the channel), so a lead is never posted twice.

Failures are retried by SQS and end in SlackAlertDLQ with a reason (`messaging.DeadLetters`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import boto3
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
)
from pydantic import BaseModel, ValidationError, field_validator

from leadscore.alerts.message import HotLead, Summary, hot_lead_message, record_url
from leadscore.alerts.slack import SlackWebhook
from leadscore.dpdp.consent import consent_for
from leadscore.hubspot.history import ContactHistory
from leadscore.messaging import DeadLetter, DeadLetters
from leadscore.observability import count, logger
from leadscore.timestamps import parse_hubspot_datetime

HOT_TIER = "hot"
SUMMARY_PROPERTY = "ai_lead_summary"
SCORED_AT_PROPERTY = "ai_lead_scored_at"
LEAD_PROPERTIES = ("ai_lead_score", "ai_lead_probability", "ai_lead_tier", "ai_lead_reasons",
                   SUMMARY_PROPERTY, "ai_lead_needs_review", "ai_lead_review_reason",
                   "ai_lead_model_version", SCORED_AT_PROPERTY)
FIRST_DELAY_SECONDS = 10  # an LLM answer takes seconds; then 20, 40, ... up to the cap
MAX_DELAY_SECONDS = 120
POSTED_ONCE_SECONDS = 7 * 24 * 3600  # SNS and SQS duplicates arrive within minutes


class HotLeadNotice(BaseModel):
    """A HotLeadsTopic message (`leadscore.scoring.queues.HotLeadAlert`: ids and numbers only),
    plus when the notifier first saw it, once it waits for the summary."""

    contact_id: str
    portal_id: int | None = None
    score: int
    tier: str
    model_version: str
    scored_at: str
    waiting_since: str | None = None

    @field_validator("contact_id", mode="before")
    @classmethod
    def _id_as_string(cls, value: object) -> object:
        return str(value) if isinstance(value, int) else value


class RetryLater(Exception):
    """Nothing wrong, not done yet: SQS delivers the record again."""

    final = False


def summary_written_after_score(contact: ContactHistory, scored_at: str) -> bool:
    """Whether `ai_lead_summary` was written after the score of `scored_at` reached HubSpot.
    Both times are HubSpot's (property history), so the Lambda clock does not matter: the
    score's write is the first version of `ai_lead_scored_at` at or after that score."""
    if not (contact.properties.get(SUMMARY_PROPERTY) or "").strip():
        return False
    score_time = parse_hubspot_datetime(scored_at)
    score_writes = [version.timestamp
                    for version in contact.history.get(SCORED_AT_PROPERTY, [])
                    if score_time is None or ((written := parse_hubspot_datetime(version.value))
                                              and written >= score_time)]
    if not score_writes:
        return False
    written_at = min(score_writes)
    return any(version.timestamp >= written_at
               for version in contact.history.get(SUMMARY_PROPERTY, []))


@dataclass(frozen=True)
class NotifierConfig:
    purposes_property: str
    enrich_tiers: frozenset[str]
    llm_enabled: bool  # LLM_PROVIDER is not "off"
    summary_wait_seconds: int
    hubspot_app_url: str
    default_portal_id: int | None


class PostOnce:
    """Posts a (contact, scored_at) once however often SQS delivers its alert (Powertools
    idempotency). Without the Lambda context registered, a claim left by an invocation that
    died mid-post stays until it expires: the retries fail as in progress and the record ends
    in the DLQ saying so, rather than posting a second time."""

    def __init__(self, table_name: str, persistence_store: Any | None = None) -> None:
        self._run = idempotent_function(
            self._post, data_keyword_argument="alert",
            persistence_store=persistence_store or DynamoDBPersistenceLayer(table_name=table_name),
            config=IdempotencyConfig(event_key_jmespath="[contact_id, scored_at]",
                                     expires_after_seconds=POSTED_ONCE_SECONDS))

    @staticmethod
    def _post(alert: dict[str, Any], send: Callable[[], None], attempt: str) -> dict[str, str]:
        send()
        return {"attempt": attempt}

    def run(self, alert: HotLeadNotice, send: Callable[[], None]) -> bool:
        """True if posted now, False if an earlier delivery did."""
        attempt = uuid.uuid4().hex
        try:
            done = self._run(alert={"contact_id": alert.contact_id,
                                    "scored_at": alert.scored_at}, send=send, attempt=attempt)
        except IdempotencyAlreadyInProgressError:
            raise RetryLater("an earlier attempt to post this lead did not finish; it may "
                             "have reached Slack: check the channel before redriving") from None
        return done["attempt"] == attempt


class DeferredAlerts:
    """Puts an alert back on SlackAlertQueue with a delay, as a new message (its receive count
    starts again: waiting for a summary is not a failure)."""

    def __init__(self, queue_url: str, sqs: Any | None = None) -> None:
        self.queue_url = queue_url
        self._sqs = sqs or boto3.client("sqs")

    def defer(self, alert: HotLeadNotice, delay_seconds: int) -> None:
        self._sqs.send_message(QueueUrl=self.queue_url, DelaySeconds=delay_seconds,
                               MessageBody=alert.model_dump_json())


@dataclass
class HotLeadNotifier:
    """Everything one invocation needs; `handle` takes one SQS record's parts."""

    hubspot: Any  # leadscore.hubspot.client.HubSpotClient: batch_read_history
    config: NotifierConfig
    slack: SlackWebhook | None  # None: no webhook URL in the secret, nothing is sent
    deferrals: DeferredAlerts | None = None
    dead_letters: DeadLetters | None = None
    once: PostOnce | None = None
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    # Contacts read ahead for a batch (`prefetch`): contact id -> contact, None if unknown.
    _read_ahead: dict[str, ContactHistory | None] = field(default_factory=dict, init=False,
                                                          repr=False)

    def prefetch(self, bodies: Iterable[str]) -> None:
        """Reads the contacts of a batch's alerts together (one HubSpot request per 50) instead
        of one request each; a record then posts within seconds of the read (Slack's pacing).
        Best effort: when the read fails, each record reads its own contact and fails alone."""
        self._read_ahead = {}
        if self.slack is None:
            return
        ids: list[str] = []
        for body in bodies:
            try:
                ids.append(HotLeadNotice.model_validate_json(body).contact_id)
            except ValidationError:
                continue  # dead-lettered when its record is handled
        if not ids:
            return
        try:
            found = self._read(ids)
        except Exception as error:  # the records read again, one by one
            logger.warning("Batch read of hot leads failed; reading each on its own",
                           extra={"error": type(error).__name__})
            return
        self._read_ahead = {contact_id: found.get(contact_id) for contact_id in ids}

    def _read(self, ids: list[str]) -> dict[str, ContactHistory]:
        return self.hubspot.batch_read_history(
            ids, [self.config.purposes_property, *LEAD_PROPERTIES],
            [SUMMARY_PROPERTY, SCORED_AT_PROPERTY])

    def _contact(self, contact_id: str) -> ContactHistory | None:
        if contact_id in self._read_ahead:
            return self._read_ahead.pop(contact_id)  # used once: a redelivery reads anew
        return self._read([contact_id]).get(contact_id)

    def handle(self, body: str, message_id: str, receive_count: int) -> None:
        """Returns when the record is done (posted, skipped, deferred or dead-lettered);
        raises when SQS should deliver it again."""
        try:
            self._handle(body)
        except Exception as error:
            if isinstance(error, ValidationError):
                reason, final = "unreadable hot-lead alert", True
            else:
                reason = getattr(error, "reason", None) or str(error) or type(error).__name__
                final = bool(getattr(error, "final", False))
            count("SlackAlertFailures")
            logger.warning("Slack alert not posted", extra={"message_id": message_id,
                                                            "reason": reason, "final": final})
            if self.dead_letters is None or not self.dead_letters.takes(receive_count,
                                                                        final=final):
                raise
            if not self.dead_letters.send([DeadLetter(message_id, body, reason)]):
                raise

    def _handle(self, body: str) -> None:
        alert = HotLeadNotice.model_validate_json(body)
        if self.slack is None:
            count("SlackNotConfigured")
            logger.info("No Slack webhook URL in the secret; hot lead not posted",
                        extra={"contact_id": alert.contact_id})
            return
        contact = self._contact(alert.contact_id)
        skipped = self._skip_reason(contact)
        if skipped:
            count("SlackAlertsSkipped")
            logger.info("Hot lead not posted", extra={"contact_id": alert.contact_id,
                                                      "why": skipped})
            return
        summary = self._summary(alert, contact)
        if summary is None:
            return  # deferred
        link = record_url(self.config.hubspot_app_url,
                          alert.portal_id or self.config.default_portal_id, alert.contact_id)
        message = hot_lead_message(_lead(alert.contact_id, contact.properties), link=link,
                                   summary=summary)
        slack = self.slack
        if self.once is None:
            slack.post(message)
            posted = True
        else:
            posted = self.once.run(alert, lambda: slack.post(message))
        count("SlackAlertsPosted" if posted else "SlackAlertDuplicatesSkipped")
        logger.info("Hot lead posted to Slack" if posted else "Hot lead already posted",
                    extra={"contact_id": alert.contact_id, "summary": summary.value})

    def _skip_reason(self, contact: ContactHistory | None) -> str | None:
        if contact is None:
            return "contact_missing"
        if not consent_for(contact.properties, self.config.purposes_property).may_score:
            return "no_consent"
        if contact.properties.get("ai_lead_tier") != HOT_TIER:
            return "no_longer_hot"
        return None

    def _summary(self, alert: HotLeadNotice, contact: ContactHistory) -> Summary | None:
        """READY / NOT_REQUESTED / NOT_READY to post now; None when the alert was deferred."""
        consent = consent_for(contact.properties, self.config.purposes_property)
        if not (consent.may_enrich and self.config.llm_enabled
                and HOT_TIER in self.config.enrich_tiers):
            return Summary.NOT_REQUESTED
        if summary_written_after_score(contact, alert.scored_at):
            return Summary.READY
        now = self.clock()
        since = parse_hubspot_datetime(alert.waiting_since) or now
        waited = (now - since).total_seconds()
        if waited >= self.config.summary_wait_seconds or self.deferrals is None:
            count("SlackAlertsWithoutSummary")
            return Summary.NOT_READY
        delay = min(MAX_DELAY_SECONDS, max(FIRST_DELAY_SECONDS, int(waited)),
                    max(1, int(self.config.summary_wait_seconds - waited)))
        waiting = alert.model_copy(update={"waiting_since": _iso(since)})
        self.deferrals.defer(waiting, delay)
        count("SlackAlertsWaitingForSummary")
        logger.info("Hot lead waits for its AI summary",
                    extra={"contact_id": alert.contact_id, "delay_seconds": delay})
        return None


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _lead(contact_id: str, properties: Mapping[str, str | None]) -> HotLead:
    return HotLead(
        contact_id=contact_id, score=properties.get("ai_lead_score") or "?",
        tier=properties.get("ai_lead_tier") or HOT_TIER,
        probability=properties.get("ai_lead_probability"),
        reasons=[line.strip() for line in (properties.get("ai_lead_reasons") or "").splitlines()
                 if line.strip()],
        summary=properties.get(SUMMARY_PROPERTY),
        needs_review=(properties.get("ai_lead_needs_review") or "").lower() == "true",
        review_reason=properties.get("ai_lead_review_reason"),
        model_version=properties.get("ai_lead_model_version"),
    )
