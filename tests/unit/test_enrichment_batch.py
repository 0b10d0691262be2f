"""Enrichment's routing on refusals, the re-enrichment basis, and the batch worker: HubSpot
requests per batch, the bounded LLM pool, consent freshness before the first call, the time
budget, and a partly failed batch update.

LLM calls go over HTTP to the Anthropic emulator through the official SDK, except where a
scripted client must act during a call (move the clock, withdraw consent, count calls in flight).
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

from fakes import FakeHubSpot
from test_enrichment import (  # noqa: F401  (fixtures)
    CONFIDENT,
    ESCALATION,
    NOW,
    PRIMARY,
    ScriptedClient,
    assessment,
    bodies,
    contact,
    emulator,
    llm,
    queue_body,
    scored,
    sqs_event,
    tool_answer,
)

from leadscore.enrichment.basis import (
    BASIS_PROPERTY,
    ENRICHED_AT_PROPERTY,
    count_bucket,
    enrichment_basis,
    still_current,
)
from leadscore.enrichment.enrich import DECLINED_REASON, enrich_contact
from leadscore.enrichment.llm import MODEL_PRICES, LlmSettings
from leadscore.enrichment.prompt import default_prompt
from leadscore.enrichment.worker import EnrichmentWorker
from leadscore.hubspot.client import HubSpotBatchError
from leadscore.timestamps import iso_millis

# ------------------------------------------------------------------- refusals


def test_a_refusal_is_asked_again_on_the_escalation_model_in_a_fresh_conversation(
        emulator, llm):  # noqa: F811
    emulator.inject_fault("refusal", 1)
    emulator.override_tool_input(CONFIDENT)
    result = enrich_contact(contact(), scored(), llm)

    assert [body["model"] for body in bodies(emulator)] == [PRIMARY, ESCALATION]
    assert len(bodies(emulator)[1]["messages"]) == 1  # nothing appended to the refused one
    assert bodies(emulator)[1]["messages"] == bodies(emulator)[0]["messages"]
    assert [call.outcome for call in result.calls] == ["refused", "valid"]
    assert result.status == "enriched" and result.answered_by == ESCALATION
    assert result.refusals == 1 and result.escalated
    assert result.calls[0].usage.input_tokens > 0  # a refusal's input is billed


def test_refused_by_every_model_writes_the_rule_based_summary_flagged_for_review(
        emulator, llm):  # noqa: F811
    emulator.inject_fault("refusal", 2)
    result = enrich_contact(contact(), scored(), llm)

    assert [call.outcome for call in result.calls] == ["refused", "refused"]
    assert result.status == "declined" and result.needs_review
    assert result.properties["ai_lead_needs_review"] == "true"
    assert result.properties["ai_lead_review_reason"] == DECLINED_REASON
    assert result.properties["ai_lead_summary"]  # the rule-based text, labelled as such


def test_refusal_escalation_can_be_turned_off(emulator, llm):  # noqa: F811
    emulator.inject_fault("refusal", 1)
    result = enrich_contact(contact(), scored(),
                            llm.model_copy(update={"escalate_on": frozenset({"invalid"})}))

    assert [body["model"] for body in bodies(emulator)] == [PRIMARY]
    assert result.status == "declined"


# ------------------------------------------------------------------- re-enrichment basis


def test_visit_counts_are_bucketed_by_powers_of_two():
    assert [count_bucket(v) for v in ("0", "1", "3", "14", "15", "16", "42.0", " x ")] == [
        "0", "1-1", "2-3", "8-15", "8-15", "16-31", "32-63", "x"]


def test_the_basis_changes_only_with_what_the_llm_is_told_materially():
    base = enrichment_basis(contact(), "warm", "llm")
    same = [contact(hs_analytics_num_visits="15"), contact(industry="  manufacturing "),
            contact(ai_lead_reasons="other reasons"), contact(email="x@y.in")]
    changed = [contact(hs_analytics_num_visits="16"), contact(jobtitle="Intern"),
               contact(message="Cancel.")]
    assert all(enrichment_basis(c, "warm", "llm") == base for c in same)
    assert all(enrichment_basis(c, "warm", "llm") != base for c in changed)
    assert enrichment_basis(contact(), "hot", "llm") != base
    assert enrichment_basis(contact(), "warm", "rules") != base


def test_an_unchanged_lead_is_enriched_again_only_after_the_cooldown():
    basis = enrichment_basis(contact(), "warm", "llm")
    done = contact(**{BASIS_PROPERTY: basis,
                      ENRICHED_AT_PROPERTY: iso_millis(NOW - timedelta(days=10))})
    assert still_current(done, basis, NOW, timedelta(days=30))
    assert not still_current(done, basis, NOW, timedelta(days=7))
    assert not still_current(done, basis, NOW, timedelta(0))  # 0: on every score
    assert not still_current(done, "b1:llm:other", NOW, timedelta(days=30))


def test_a_rescore_of_an_unchanged_lead_buys_no_second_answer(emulator, llm):  # noqa: F811
    emulator.override_tool_input(CONFIDENT, count=2)
    first = enrich_contact(contact(), scored(), llm, now=NOW)
    again = contact(**first.properties, hs_analytics_num_visits="15")  # one more visit
    second = enrich_contact(again, scored(), llm, now=NOW + timedelta(hours=1))

    assert second.status == "skipped_unchanged" and second.properties == {}
    assert len(emulator.requests) == 1


# ------------------------------------------------------------------- the batch worker


def worker(hubspot: FakeHubSpot, llm_settings: LlmSettings, **overrides: Any) -> EnrichmentWorker:
    return EnrichmentWorker(hubspot=hubspot, llm=llm_settings, prompt=default_prompt(),
                            prices=MODEL_PRICES, purposes_property="dpdp_consent_purposes",
                            **overrides)


def records(*contact_ids: str) -> list[dict[str, Any]]:
    return sqs_event(*(queue_body(cid) for cid in contact_ids))["Records"]


def plenty() -> int:
    return 300_000


def test_a_batch_costs_one_hubspot_read_and_one_update(emulator, llm):  # noqa: F811
    ids = [str(n) for n in range(1, 101)]
    hubspot = FakeHubSpot({cid: contact() for cid in ids})
    emulator.override_tool_input(CONFIDENT, count=100)
    outcome = worker(hubspot, llm).run(records(*ids), plenty)

    assert outcome.failed_message_ids == frozenset()
    assert {o.status for o in outcome.outcomes.values()} == {"enriched"}
    assert len(emulator.requests) == 100
    assert hubspot.reads == [ids]  # 100 contacts, 1 read
    assert len(hubspot.updates) == 1 and set(hubspot.updates[0]) == set(ids)  # 1 update


class InFlight(ScriptedClient):
    """Valid answers; records the most calls in flight at once."""

    def __init__(self, calls: int, on_call=None):
        super().__init__(*[tool_answer(assessment()) for _ in range(calls)])
        self.lock, self.now, self.most = threading.Lock(), 0, 0
        self.on_call = on_call

    def create(self, **request: Any):
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
            answer = super().create(**request)
        if self.on_call:
            self.on_call()
        time.sleep(0.05)  # long enough for others to start, were they allowed to
        with self.lock:
            self.now -= 1
        return answer


def test_llm_calls_run_side_by_side_but_never_more_than_the_pool():
    ids = [str(n) for n in range(1, 21)]
    hubspot = FakeHubSpot({cid: contact() for cid in ids})
    client = InFlight(20)
    settings = LlmSettings(provider="anthropic", api_key="k")
    outcome = worker(hubspot, settings, llm_concurrency=4,
                     client_factory=lambda _: client).run(records(*ids), plenty)

    assert outcome.failed_message_ids == frozenset() and len(client.requests) == 20
    assert 1 < client.most <= 4


def test_consent_is_read_again_when_the_first_read_is_too_old_for_the_call():
    hubspot = FakeHubSpot({"1": contact(), "2": contact()})
    clock = [0.0]

    def during_the_first_call() -> None:  # 40 s pass; both contacts withdraw consent
        clock[0] += 40
        for cid in ("1", "2"):
            hubspot.contacts[cid]["dpdp_consent_purposes"] = "lead_scoring"

    client = InFlight(2, on_call=during_the_first_call)
    settings = LlmSettings(provider="anthropic", api_key="k")
    outcome = worker(hubspot, settings, llm_concurrency=1, consent_max_age=30.0,
                     clock=lambda: clock[0], client_factory=lambda _: client,
                     ).run(records("1", "2"), plenty)

    assert len(client.requests) == 1  # the second contact's fresh read has no consent
    assert len(hubspot.reads) == 2 and len(hubspot.reads[1]) == 1
    statuses = sorted(o.status for o in outcome.outcomes.values())
    assert statuses == ["enriched", "skipped_no_consent"]
    assert [len(update) for update in hubspot.updates] == [1]


class FakeRequeue:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, int]] = []

    def send(self, bodies_: list[tuple[str, str, int]]) -> set[str]:
        self.sent.extend(bodies_)
        return set()


def test_contacts_the_invocation_has_no_time_for_are_queued_again_not_failed(
        emulator, llm):  # noqa: F811
    hubspot = FakeHubSpot({"1": contact(), "2": contact(dpdp_consent_purposes="lead_scoring")})
    requeue = FakeRequeue()
    little = lambda: 30_000  # noqa: E731  (less than three calls' worst case)
    outcome = worker(hubspot, llm, requeue=requeue).run(records("1", "2"), little)

    assert emulator.requests == [] and outcome.failed_message_ids == frozenset()
    assert outcome.outcomes["m0"].kind == "requeue"  # needs the LLM: next invocation
    assert outcome.outcomes["m1"].status == "skipped_no_consent"  # needs no call: done now
    assert [(key, delay) for key, _, delay in requeue.sent] == [("m0", 0)]


def test_a_partly_failed_batch_update_fails_only_the_contacts_not_written(emulator, llm):  # noqa: F811
    hubspot = FakeHubSpot({"1": contact(), "2": contact()})
    hubspot.update_error = HubSpotBatchError("batch update", ["2"])
    emulator.override_tool_input(CONFIDENT, count=2)
    outcome = worker(hubspot, llm).run(records("1", "2"), plenty)

    assert outcome.failed_message_ids == {"m1"}  # SQS delivers it again
    assert outcome.outcomes["m0"].status == "enriched"
    assert "HubSpot batch update partly failed" in outcome.outcomes["m1"].status


def test_two_messages_for_one_contact_in_a_batch_write_once(emulator, llm):  # noqa: F811
    hubspot = FakeHubSpot({"1": contact()})
    emulator.override_tool_input(CONFIDENT, count=2)
    outcome = worker(hubspot, llm, cooldown=timedelta(0)).run(records("1", "1"), plenty)

    assert len(hubspot.updates) == 1 and list(hubspot.updates[0]) == ["1"]
    assert len(outcome.failed_message_ids) == 1  # the other is delivered again later
