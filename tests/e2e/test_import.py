"""An import into HubSpot (issue 14, item 7), small variant: contacts created through HubSpot's
batch create API reach the functions as HubSpot announces them (creation + one propertyChange per
subscribed property, ≤100 events a delivery); every consented contact is scored, none is
dead-lettered, and every HubSpot request the functions made is accounted for by route and by
function. The 2,000-contact figure (contacts per request) is infra/bench/import_bench.py."""

from __future__ import annotations

import math

import pytest

from leadscore_local.import_scenario import run_import

pytestmark = pytest.mark.e2e


def test_an_import_scores_every_consented_contact_with_batched_requests(stack):
    outcome = run_import(stack, contacts=300, seed=11, timeout=600)

    assert outcome.contacts == 300
    assert outcome.events > outcome.contacts  # creations plus propertyChanges
    assert outcome.scored == outcome.consented > 0, outcome
    assert outcome.dead_lettered == 0, outcome
    # Every request is attributed: to a route (emulator side) and to a function (stack side).
    assert sum(outcome.by_route.values()) == outcome.hubspot_requests, outcome
    assert sum(outcome.by_function.values()) == outcome.hubspot_requests, outcome
    assert "other" not in outcome.by_function, outcome
    # The score side coalesces across messages and deliveries: one batch read and one batch
    # update per ≤100 contacts, with slack for batches a delivery boundary splits.
    floor = 2 * math.ceil(outcome.contacts / 100)
    assert outcome.by_function["ScoreFunction"] <= 2 * floor, outcome
