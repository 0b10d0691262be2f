"""Feature snapshots in the daily DPDP jobs (their real handlers, moto): the consent sweep erases
them with the ledger; the retention purge erases each RETENTION_DAYS after the lead's FIRST
score, even when the lead was re-scored since."""

from __future__ import annotations

from datetime import timedelta

import pytest
from dpdp_fakes import SearchableHubSpot
from learning_fakes import learning_tables, pattern_leads, seed_snapshots
from test_dpdp_handlers import (  # noqa: F401  (fixtures: aws, context)
    NOW,
    _module,
    _receipts,
    _scored,
    _seed_ledger,
    aws,
    context,
)

from leadscore.learning.snapshots import SnapshotStore
from leadscore.timestamps import SIMULATED_CLOCK_SETTING


@pytest.fixture
def snapshots(aws, monkeypatch) -> SnapshotStore:  # noqa: F811
    learning_tables(monkeypatch)
    return SnapshotStore("FeatureSnapshotTable")


def held(store: SnapshotStore) -> set[str]:
    return {snapshot.contact_id for snapshot in store.snapshots()}


def test_the_purge_erases_a_snapshot_180_days_after_the_first_score(snapshots, kit, context,  # noqa: F811
                                                                  monkeypatch):
    monkeypatch.setenv(SIMULATED_CLOCK_SETTING, "1")  # run at NOW, as the local stack may
    leads = pattern_leads(2, 41)
    # Contact 1 was first scored 200 days ago and re-scored last week; contact 2 last week.
    seed_snapshots(snapshots, leads[:1], first_scored=NOW - timedelta(days=200), outcome=False)
    seed_snapshots(snapshots, leads[1:], first_scored=NOW - timedelta(days=7), outcome=False,
                   first_id=2)
    _seed_ledger({"1": NOW - timedelta(days=7), "2": NOW - timedelta(days=7)})
    hubspot = SearchableHubSpot({"1": _scored("lead_scoring", NOW - timedelta(days=7)),
                                 "2": _scored("lead_scoring", NOW - timedelta(days=7))})

    result = _module(kit, "retention_purge", hubspot).lambda_handler(
        {"time": NOW.isoformat()}, context)
    assert result["derived_erased"] == 1 and result["erased"] == 0
    assert held(snapshots) == {"2"}
    [receipt] = _receipts()
    assert (receipt["reason"], receipt["records"]) == ("retention_expired", ["feature_snapshot"])


def test_the_sweep_erases_the_snapshot_of_a_withdrawn_contact(snapshots, kit, context):  # noqa: F811
    seed_snapshots(snapshots, pattern_leads(2, 42), first_scored=NOW - timedelta(days=3),
                   outcome=False)
    _seed_ledger({"1": NOW - timedelta(days=3), "2": NOW - timedelta(days=3)})
    hubspot = SearchableHubSpot({"1": _scored("", NOW - timedelta(days=3)),  # withdrawn
                                 "2": _scored("lead_scoring", NOW - timedelta(days=3))})
    result = _module(kit, "consent_sweep", hubspot).lambda_handler({}, context)
    assert result["erased"] == 1
    assert held(snapshots) == {"2"}
    [receipt] = [r for r in _receipts() if r["scope"] == "all"]  # 2 lost its LLM summary only
    assert receipt["reason"] == "consent_sweep"
    assert set(receipt["records"]) == {"ledger", "feature_snapshot"}
