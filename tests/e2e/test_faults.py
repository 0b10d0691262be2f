"""Fault drills, fast variants: every scenario of `leadscore_local.fault_drills` against one
`leadscore local up` subprocess, driven over HTTP only.

The invariant for each: every contact an accepted event was about ends applied exactly once
(one version of `ai_lead_scored_at` in HubSpot's property history) or sits in a DLQ with its
reason; none lost, none applied twice. The larger variants are infra/bench/fault_bench.py.
"""

from __future__ import annotations

import pytest
from hubspot.crm.contacts import SimplePublicObjectInput

from leadscore_local.fault_drills import SCORED, FaultDrills, Outcome

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def drills(stack):
    return FaultDrills(stack)


def assert_invariant(outcome) -> None:
    assert outcome.events_accepted > 0, outcome
    assert outcome.lost == 0, outcome
    assert outcome.applied_more_than_once == 0, outcome
    assert outcome.dead_lettered_without_reason == 0, outcome
    assert outcome.applied_once + outcome.dead_lettered == outcome.contacts, outcome
    assert outcome.early_retries == 0, outcome  # Retry-After honoured
    assert outcome.holds


@pytest.mark.parametrize("scenario", ["hubspot_429_burst", "hubspot_5xx", "hubspot_timeouts",
                                      "dynamodb_throttling", "score_crash_mid_batch"])
def test_transient_faults_lose_nothing_and_apply_each_contact_once(drills, scenario):
    outcome = getattr(drills, scenario)()
    assert_invariant(outcome)
    assert outcome.faults_fired > 0, outcome  # the fault really hit the functions
    assert outcome.applied_once == outcome.contacts, outcome  # retries absorbed every fault


def test_a_rate_limit_episode_delays_the_leads_and_dead_letters_none(drills):
    # 25 x 429 (with and without Retry-After) then 10 x 500 while 40 leads arrive: SQS counts
    # every receive, so a throttled message that simply failed would reach the DLQ. They wait.
    outcome = drills.hubspot_rate_limit_episode(contacts=40, throttles=25, errors=10)
    assert_invariant(outcome)
    assert outcome.faults_fired >= 35, outcome
    assert outcome.dead_lettered == 0, outcome
    assert outcome.applied_once == 40, outcome


def test_llm_faults_end_enriched_or_in_the_enrich_dlq_with_a_reason(drills):
    outcome = drills.llm_faults()
    assert_invariant(outcome)
    assert outcome.faults_fired > 0, outcome
    assert outcome.enriched_once + outcome.dead_lettered > 0, outcome


def test_poison_messages_are_dead_lettered_with_a_reason_and_the_good_ones_applied(drills):
    outcome = drills.poison_messages(good=6, poison=3)
    assert_invariant(outcome)
    assert outcome.applied_once == 6 and outcome.dead_lettered == 3, outcome
    assert outcome.reasons and all(outcome.reasons), outcome


def test_duplicate_and_late_webhooks_apply_each_contact_once(drills):
    outcome = drills.duplicates_and_out_of_order(contacts=8, copies=3)
    assert_invariant(outcome)
    assert outcome.events_accepted == 8 * 4, outcome
    assert outcome.applied_once == 8, outcome


def test_the_count_sees_a_second_write_and_a_missing_one(drills, hubspot):
    # The invariant is only as good as its count: two writes of the score on one contact
    # must show as "applied more than once", none (and no DLQ message) as "lost".
    twice, never = drills.seed(2)
    for stamp in ("2030-01-01T00:00:00.000Z", "2030-01-01T00:00:01.000Z"):
        hubspot.crm.contacts.basic_api.update(
            twice, SimplePublicObjectInput(properties={SCORED: stamp}))
    outcome = Outcome("check")
    drills.tally(outcome, drills.versions([twice, never], SCORED), {})
    assert (outcome.applied_more_than_once, outcome.lost, outcome.applied_once) == (1, 1, 0)
    assert not outcome.holds
