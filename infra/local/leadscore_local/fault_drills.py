"""Fault drills: scenarios that inject faults into a running local stack and count the outcome.

Driven over HTTP only, as an operator's tools would: contacts are seeded in the HubSpot
emulator without webhooks, events are delivered as signed HubSpot webhooks
(`webhook_sender`), faults go through the stack's `POST /faults`, poison messages straight onto
ScoreQueue with boto3, and the outcome is read back through the official HubSpot SDK and SQS.

"Applied exactly once" is counted from HubSpot's own `propertiesWithHistory`: every write of
`ai_lead_scored_at` (or, for enrichment, `ai_lead_summary`) is one version. Every contact an
accepted event was about must end with exactly one version, or in the DLQ with a `reason`.

Used by tests/e2e/test_faults.py (small counts) and infra/bench/fault_bench.py (larger ones);
never shipped.
"""

from __future__ import annotations

import itertools
import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import boto3
from hubspot import HubSpot
from hubspot.crm.contacts import BatchReadInputSimplePublicObjectId

from leadscore_local.process import LocalStackProcess
from leadscore_local.webhook_sender import MAX_EVENTS_PER_REQUEST, deliver

PORTAL_ID = 62515
SCORED = "ai_lead_scored_at"  # one version per score write
SUMMARY = "ai_lead_summary"  # one version per enrichment write
SCORE_ONLY, WITH_ENRICHMENT = "lead_scoring", "lead_scoring;ai_enrichment"
HOT_LEAD = {
    "jobtitle": "VP Sales", "numemployees": "100-500", "country": "India",
    "hs_analytics_source": "ORGANIC_SEARCH", "hs_analytics_num_visits": "25",
    "hs_analytics_num_page_views": "60", "lifecyclestage": "lead",
}
POISON_MARKER = "fault-drill-poison"


# --------------------------------------------------------------------- client-side helpers

def wait_for(predicate: Callable[[], Any], timeout: float = 60.0, interval: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def settle(stack: LocalStackProcess, timeout: float = 300.0, quiet: float = 1.0) -> dict:
    """No webhook pending, queues empty, no batch running — twice, `quiet` seconds apart
    (the pollers batch for up to 2 s: use 2.5 where a late batch matters). Hot leads reach
    Slack paced at one post a second per container, so a burst of them takes minutes."""
    def idle() -> dict | bool:
        stats = stack.stats()
        return (not stats["busy"] and not any(stats["queues"].values())
                and not stats["webhooks"]["pending"] and stats)
    wait_for(idle, timeout)
    time.sleep(quiet)
    return wait_for(idle, timeout)


def aws_client(stack: LocalStackProcess, service: str) -> Any:
    return boto3.client(service, region_name="ap-south-1",
                        endpoint_url=stack.info["aws_endpoint_url"],
                        aws_access_key_id="x", aws_secret_access_key="x")


def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def hubspot_sdk(stack: LocalStackProcess) -> HubSpot:
    """The official SDK on the caller's own app (`observer_token`): reading outcomes must not
    compete with the code under test for its app's rate limit."""
    return HubSpot(access_token=stack.observer_token(), host=stack.info["hubspot_url"])


# --------------------------------------------------------------------- outcome

@dataclass
class Outcome:
    scenario: str
    events_accepted: int = 0  # webhook events answered 200, or messages put on ScoreQueue
    contacts: int = 0  # contacts those events were about (each must be accounted for)
    applied_once: int = 0
    applied_more_than_once: int = 0
    dead_lettered: int = 0  # in the DLQ with a reason
    dead_lettered_without_reason: int = 0
    lost: int = 0  # neither applied nor dead-lettered
    enriched_once: int = 0  # LLM scenarios: hot/warm contacts with one enrichment write
    faults_fired: int = 0
    early_retries: int = 0  # HubSpot requests sent before a 429's Retry-After had passed
    function_errors: int = 0  # invocations that failed (their batch was retried)
    seconds: float = 0.0
    reasons: list[str] = field(default_factory=list)  # distinct DLQ reasons seen

    @property
    def holds(self) -> bool:
        """Every contact applied exactly once or dead-lettered with its reason."""
        return (self.lost == 0 and self.applied_more_than_once == 0
                and self.dead_lettered_without_reason == 0 and self.early_retries == 0
                and self.applied_once + self.dead_lettered == self.contacts)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"holds": self.holds}


# --------------------------------------------------------------------- the drills

class FaultDrills:
    """Scenarios against one running stack; each settles the stack and empties the DLQs first,
    so scenarios can run one after another on the same stack."""

    def __init__(self, stack: LocalStackProcess):
        self.stack = stack
        self.hubspot = hubspot_sdk(stack)
        self.sqs = aws_client(stack, "sqs")
        urls = self.sqs.list_queues()["QueueUrls"]
        self.queue_url = {name: next(u for u in urls if u.rsplit("/", 1)[-1].endswith(name))
                          for name in ("ScoreQueue", "ScoreDLQ", "EnrichDLQ")}
        # Event ids HubSpot never reused in this stack's life: start past any earlier run.
        self._event_ids = itertools.count(int(time.time() * 1000) * 100)
        self._emails = itertools.count()
        self._tag = uuid.uuid4().hex[:6]

    # ---------------------------------------------------------------- building blocks
    def seed(self, count: int, consent: str = SCORE_ONLY) -> list[str]:
        """Contacts created without webhooks: only the drill's own events reach the stack."""
        contacts = [{**HOT_LEAD, "dpdp_consent_purposes": consent,
                     "email": f"drill-{self._tag}-{next(self._emails)}@faults.example.in"}
                    for _ in range(count)]
        request = urllib.request.Request(
            self.stack.info["hubspot_url"] + "/_emulator/contacts", method="POST",
            data=json.dumps({"contacts": contacts, "announce": False}).encode(),
            headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())["ids"]

    def event(self, contact_id: str, kind: str = "contact.creation",
              occurred_at: int | None = None, **extra: Any) -> dict[str, Any]:
        return {"eventId": next(self._event_ids), "subscriptionId": 1, "portalId": PORTAL_ID,
                "appId": 54321, "occurredAt": occurred_at or int(time.time() * 1000),
                "subscriptionType": kind, "attemptNumber": 0, "objectId": int(contact_id),
                "changeSource": "CRM", **extra}

    def deliver(self, events: Sequence[dict[str, Any]],
                attempts: int = 10) -> list[dict[str, Any]]:
        """Sends events in HubSpot-sized signed batches; a batch not answered 200 is sent again
        as HubSpot would (up to 10 attempts). Returns the events that were accepted."""
        accepted: list[dict[str, Any]] = []
        url, secret = self.stack.info["webhook_url"], self.stack.info["hubspot_client_secret"]
        for start in range(0, len(events), MAX_EVENTS_PER_REQUEST):
            chunk = list(events[start:start + MAX_EVENTS_PER_REQUEST])
            for attempt in range(attempts):
                try:
                    status, _ = deliver(url, [dict(e, attemptNumber=attempt) for e in chunk],
                                        secret)
                except OSError:
                    status = 0
                if status == 200:
                    accepted += chunk
                    break
                time.sleep(1.0)
        return accepted

    def inject(self, target: str | dict[str, Any], status: int | str | None,
               count: int) -> None:
        """`target` may be the whole fault (extra fields such as `retry_after`) as a dict."""
        fault = dict(target) if isinstance(target, dict) else {"target": target,
                                                               "status": status}
        self.stack.admin("POST", "/faults", {**fault, "count": count})

    def versions(self, contact_ids: Iterable[str], name: str) -> dict[str, int]:
        """How many times `name` was written on each contact (HubSpot's property history)."""
        ids = list(contact_ids)
        counts = dict.fromkeys(ids, 0)  # a contact HubSpot no longer returns counts as unwritten
        for start in range(0, len(ids), 50):  # HubSpot's limit for history reads
            page = self.hubspot.crm.contacts.batch_api.read(BatchReadInputSimplePublicObjectId(
                inputs=[{"id": cid} for cid in ids[start:start + 50]], properties=[name],
                properties_with_history=[name]))
            for contact in page.results:
                history = (contact.properties_with_history or {}).get(name) or []
                counts[contact.id] = len(history)
        return counts

    def tiers(self, contact_ids: Iterable[str]) -> dict[str, str | None]:
        ids = list(contact_ids)
        found: dict[str, str | None] = {}
        for start in range(0, len(ids), 100):
            page = self.hubspot.crm.contacts.batch_api.read(BatchReadInputSimplePublicObjectId(
                inputs=[{"id": cid} for cid in ids[start:start + 100]],
                properties=["ai_lead_tier"], properties_with_history=[]))
            found |= {c.id: c.properties.get("ai_lead_tier") for c in page.results}
        return found

    def drain(self, queue: str) -> list[tuple[str, str | None]]:
        """Empties a DLQ: (body, reason attribute or None) per message."""
        taken: list[tuple[str, str | None]] = []
        while batch := self.sqs.receive_message(
                QueueUrl=self.queue_url[queue], MaxNumberOfMessages=10, VisibilityTimeout=60,
                MessageAttributeNames=["All"]).get("Messages"):
            for message in batch:
                reason = (message.get("MessageAttributes") or {}).get("reason", {})
                taken.append((message["Body"], reason.get("StringValue")))
            self.sqs.delete_message_batch(QueueUrl=self.queue_url[queue], Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)])
        return taken

    def _counters(self) -> tuple[float, int, int, int]:
        """(now, faults fired so far in the stack and both emulators, early HubSpot retries,
        function errors)."""
        hubspot = self._emulator_stats("hubspot_url")
        llm = self._emulator_stats("anthropic_url").get("faults_served", {})
        stats = self.stack.stats()
        fired = (sum(stats["faults_injected"].values())
                 + sum(hubspot.get("faults_served", {}).values()) + sum(llm.values()))
        return (time.monotonic(), fired, sum(hubspot.get("early_retries", {}).values()),
                sum(stats["errors"].values()))

    def _emulator_stats(self, key: str) -> dict[str, Any]:
        with urllib.request.urlopen(self.stack.info[key] + "/_emulator/stats",
                                    timeout=10) as response:
            return json.loads(response.read())

    # ---------------------------------------------------------------- accounting
    def _begin(self) -> tuple[float, int, int, int]:
        settle(self.stack)
        self.drain("ScoreDLQ")
        self.drain("EnrichDLQ")
        return self._counters()

    def _finish(self, outcome: Outcome, began: tuple[float, int, int, int]) -> Outcome:
        now, fired, early, errors = self._counters()
        outcome.seconds = round(now - began[0], 1)
        outcome.faults_fired, outcome.early_retries = fired - began[1], early - began[2]
        outcome.function_errors = errors - began[3]
        return outcome

    def _account(self, outcome: Outcome, contact_ids: Sequence[str],
                 began: tuple[float, int, int, int], *, enrichment: bool = False,
                 timeout: float = 180.0) -> Outcome:
        settle(self.stack, timeout=timeout, quiet=2.5)
        outcome.contacts = len(set(contact_ids))
        dead = self._dead_letters("ScoreDLQ")
        writes = self.versions(set(contact_ids), SCORED)
        self.tally(outcome, writes, dead)
        if enrichment:  # hot and warm contacts must also be enriched once or dead-lettered
            upper = [cid for cid, tier in self.tiers(writes).items()
                     if tier in ("hot", "warm") and writes[cid] == 1]
            enrich = Outcome(outcome.scenario)
            self.tally(enrich, self.versions(upper, SUMMARY), self._dead_letters("EnrichDLQ"))
            outcome.enriched_once = enrich.applied_once
            outcome.applied_once -= enrich.dead_lettered + enrich.dead_lettered_without_reason
            outcome.dead_lettered += enrich.dead_lettered
            outcome.dead_lettered_without_reason += enrich.dead_lettered_without_reason
            outcome.applied_more_than_once += enrich.applied_more_than_once
            outcome.lost += enrich.lost
            outcome.reasons = sorted(set(outcome.reasons) | set(enrich.reasons))
        return self._finish(outcome, began)

    def _dead_letters(self, queue: str) -> dict[str, str | None]:
        """Contact id -> reason for every DLQ message (a ScoreQueue body lists events; an
        EnrichQueue body names one contact); unreadable bodies are keyed by the body."""
        dead: dict[str, str | None] = {}
        for body, reason in self.drain(queue):
            try:
                parsed = json.loads(body)
            except ValueError:
                dead[body] = reason
                continue
            if isinstance(parsed, dict) and "contact_id" in parsed:
                dead[str(parsed["contact_id"])] = reason
            elif isinstance(parsed, dict) and isinstance(parsed.get("events"), list):
                dead |= {str(e.get("contact_id")): reason for e in parsed["events"]}
            else:
                dead[body] = reason
        return dead

    @staticmethod
    def tally(outcome: Outcome, writes: dict[str, int], dead: dict[str, str | None]) -> None:
        reasons = set(outcome.reasons)
        for contact_id, count in writes.items():
            if count > 1:
                outcome.applied_more_than_once += 1
            elif count == 1:
                outcome.applied_once += 1
            elif dead.get(contact_id):
                outcome.dead_lettered += 1
                reasons.add(dead[contact_id] or "")
            elif contact_id in dead:
                outcome.dead_lettered_without_reason += 1
            else:
                outcome.lost += 1
        outcome.reasons = sorted(reasons)

    def _creations(self, name: str, contacts: int, faults: Sequence[tuple[str, Any, int]],
                   consent: str = SCORE_ONLY, *, enrichment: bool = False,
                   faults_after: Sequence[tuple[str, Any, int]] = (),
                   timeout: float = 180.0) -> Outcome:
        """Seed `contacts`, inject `faults`, deliver one creation event each, inject
        `faults_after` (they meet the functions behind ingest), account for the contacts whose
        event was accepted (a refused one is HubSpot's to deliver again)."""
        began = self._begin()
        ids = self.seed(contacts, consent)
        for target, status, count in faults:
            self.inject(target, status, count)
        accepted = self.deliver([self.event(c) for c in ids])
        for target, status, count in faults_after:
            self.inject(target, status, count)
        outcome = Outcome(name, events_accepted=len(accepted))
        return self._account(outcome, [str(e["objectId"]) for e in accepted], began,
                             enrichment=enrichment, timeout=timeout)

    # ---------------------------------------------------------------- scenarios
    def hubspot_429_burst(self, contacts: int = 20, faults: int = 4) -> Outcome:
        """HubSpot answers 429 with Retry-After: the client waits and retries."""
        return self._creations("hubspot_429_burst", contacts, [("hubspot", 429, faults)])

    def hubspot_5xx(self, contacts: int = 20, faults: int = 3) -> Outcome:
        return self._creations("hubspot_5xx", contacts, [("hubspot", 500, faults)])

    def hubspot_rate_limit_episode(self, contacts: int = 40, throttles: int = 25,
                                   errors: int = 10) -> Outcome:
        """HubSpot answers 429 (some with Retry-After, some without) and then 500 to every call
        for a while: messages wait and every contact ends scored; none is dead-lettered."""
        return self._creations("hubspot_rate_limit_episode", contacts, [
            ("hubspot", 429, throttles - throttles // 2),
            ({"target": "hubspot", "status": 429, "retry_after": None}, None, throttles // 2),
            ("hubspot", 500, errors)], timeout=600.0)  # it waits out back-offs of ~10 s

    def hubspot_timeouts(self, contacts: int = 10, faults: int = 2) -> Outcome:
        return self._creations("hubspot_timeouts", contacts, [("hubspot", "timeout", faults)])

    def llm_faults(self, contacts: int = 4, faults: int = 2) -> Outcome:
        """429, 529, 500, timeouts and malformed tool output from the LLM: each hot or warm
        contact ends enriched once or in EnrichDLQ with the reason."""
        return self._creations(
            "llm_faults", contacts,
            [("anthropic", status, faults) for status in (429, 529, 500, "timeout", "malformed")],
            WITH_ENRICHMENT, enrichment=True)

    def dynamodb_throttling(self, contacts: int = 20, ingest_faults: int = 2,
                            faults: int = 3) -> Outcome:
        """Throttling that outlived the SDK's retries: first at ingest (it answers 5xx and
        HubSpot delivers again), then behind it, inside the ScoreQueue's batching window."""
        return self._creations("dynamodb_throttling", contacts,
                               [("dynamodb", "throttle", ingest_faults)],
                               faults_after=[("dynamodb", "throttle", faults)])

    def score_crash_mid_batch(self, contacts: int = 20, crashes: int = 1) -> Outcome:
        """ScoreFunction dies after its writes, before acknowledging: SQS redelivers the batch
        and the ledger must keep the second run from writing again."""
        return self._creations("score_crash_mid_batch", contacts,
                               [("ScoreFunction", "crash", crashes)])

    def poison_messages(self, good: int = 6, poison: int = 3) -> Outcome:
        """Unreadable bodies put straight on ScoreQueue beside good ones in the same batch: the
        poison ends in ScoreDLQ with a reason, the good messages are applied."""
        began = self._begin()
        ids = self.seed(good)
        now = int(time.time() * 1000)
        bodies = [json.dumps({"events": [{
            "contact_id": cid, "event_id": next(self._event_ids),
            "subscription_type": "contact.creation", "occurred_at": now,
            "portal_id": PORTAL_ID}]}) for cid in ids]
        bodies += [f'{{"{POISON_MARKER}": {i}, "events": "not a list"' for i in range(poison)]
        sent = 0
        for start in range(0, len(bodies), 10):
            response = self.sqs.send_message_batch(
                QueueUrl=self.queue_url["ScoreQueue"],
                Entries=[{"Id": str(i), "MessageBody": body}
                         for i, body in enumerate(bodies[start:start + 10])])
            sent += len(response.get("Successful") or [])
        outcome = Outcome("poison_messages", events_accepted=sent)
        settle(self.stack, timeout=180.0, quiet=2.5)
        dead = self._dead_letters("ScoreDLQ")
        self.tally(outcome, self.versions(ids, SCORED), dead)
        poisoned = {body: reason for body, reason in dead.items() if POISON_MARKER in body}
        self.tally(outcome, dict.fromkeys(poisoned, 0), poisoned)
        outcome.lost += poison - len(poisoned)  # poison that vanished without a trace
        outcome.contacts = good + poison
        self._finish(outcome, began)
        outcome.faults_fired += poison  # the poison is this drill's fault
        return outcome

    def duplicates_and_out_of_order(self, contacts: int = 10, copies: int = 3) -> Outcome:
        """Each creation delivered `copies` times (HubSpot retries, replays), then an older
        change for the same contact arriving late: one score write per contact."""
        began = self._begin()
        ids = self.seed(contacts)
        now = int(time.time() * 1000)
        creations = [self.event(cid, occurred_at=now) for cid in ids]
        accepted = 0
        for _ in range(copies):
            accepted += len(self.deliver(creations))
        late = [self.event(cid, "contact.propertyChange", occurred_at=now - 60_000,
                           propertyName="hs_analytics_num_visits", propertyValue="1")
                for cid in ids]
        wait_for(lambda: all(n >= 1 for n in self.versions(ids, SCORED).values()), 60)
        accepted += len(self.deliver(late))
        return self._account(Outcome("duplicates_and_out_of_order", events_accepted=accepted),
                             ids, began)

    def run(self, names: Sequence[str] | None = None,
            sizes: dict[str, dict[str, int]] | None = None) -> list[Outcome]:
        """Runs the named scenarios (all by default) with optional per-scenario sizes."""
        sizes = sizes or {}
        return [getattr(self, name)(**sizes.get(name, {})) for name in names or SCENARIOS]


SCENARIOS = ("hubspot_429_burst", "hubspot_5xx", "hubspot_rate_limit_episode",
             "hubspot_timeouts", "llm_faults",
             "dynamodb_throttling", "poison_messages", "duplicates_and_out_of_order",
             "score_crash_mid_batch")
