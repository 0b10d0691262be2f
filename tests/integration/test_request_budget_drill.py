"""One HubSpot request budget for the whole app (issue 14, item 4), with several client
processes — as several Lambda containers — on one app token against the HubSpot emulator with
a Starter account's documented limit (100 requests per 10 s per app)."""

from __future__ import annotations

from leadscore_local.budget_drill import run_drill


def test_processes_sharing_the_app_budget_stay_under_the_apps_limit():
    shared = run_drill(processes=5, requests_each=30, per_second=8, shared=True)
    assert shared.requests == 150  # every request made, none retried
    assert shared.rate_limited == 0
    assert shared.busiest_10s <= shared.tier_limit_per_10s


def test_a_budget_per_process_lets_their_sum_pass_the_apps_limit():
    # What the functions did before: each container its own 10 requests a second.
    per_process = run_drill(processes=5, requests_each=30, per_second=10, shared=False)
    assert per_process.rate_limited > 0
    assert per_process.requests > 150  # the 429s were retried
