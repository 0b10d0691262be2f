"""FeatureSnapshotTable (moto): first score wins, the typed read API by time range, the DPDP
protocols (erasure, retention), and the history path that settles outcomes a webhook missed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from learning_fakes import NOW, HistoryHubSpot, learning_tables, pattern_leads, seed_snapshots
from moto import mock_aws

from leadscore.dpdp.stores import ScoreRecords
from leadscore.learning.outcomes import OutcomeCloser, OutcomeRules
from leadscore.learning.snapshots import Outcome, OutcomeSource, SnapshotStore
from leadscore.model.config import parse_config

PROP = "dpdp_consent_purposes"
RULES = OutcomeRules.from_config(parse_config(
    '[label]\ncolumn = "lifecyclestage"\npositive = ["opportunity", "customer"]\n'
    '[features]\nnumeric = ["hs_analytics_num_visits"]\n'), window_days=60)


@pytest.fixture
def store(aws_env, monkeypatch):
    with mock_aws():
        learning_tables(monkeypatch)
        yield SnapshotStore("FeatureSnapshotTable")


def test_the_first_snapshot_wins(store):
    [first] = seed_snapshots(store, pattern_leads(1, 1), first_scored=NOW, outcome=False)
    again = first.model_copy(update={"scored_at": "2030-01-01T00:00:00.000Z", "score": 1})
    writes = store.put_first([again])
    assert (writes.taken, writes.existed, writes.failed) == (set(), {"1"}, {})
    assert next(store.snapshots()).scored_at == first.scored_at


def test_the_read_api_by_time_range_and_outcome(store):
    snapshots = seed_snapshots(store, pattern_leads(30, 2), first_scored=NOW,
                               spacing=timedelta(days=1), outcome=False)
    store.record_outcomes([])  # nothing to do is fine
    from leadscore.learning.snapshots import OutcomeUpdate

    store.record_outcomes([OutcomeUpdate("3", Outcome.POSITIVE, NOW, OutcomeSource.WEBHOOK,
                                         checked_at=NOW)])
    week = list(store.snapshots(scored_from=NOW + timedelta(days=10),
                                scored_until=NOW + timedelta(days=17), segments=3))
    assert sorted(int(s.contact_id) for s in week) == list(range(10, 17))
    assert len(list(store.snapshots(pending_only=True))) == 29
    assert {s.contact_id: s.outcome for s in store.snapshots()}["3"] is Outcome.POSITIVE
    assert {s.contact_id for s in store.snapshots()} == {s.contact_id for s in snapshots}


def test_it_is_an_erasable_store_with_its_own_retention_clock(store):
    records: ScoreRecords = store  # what the DPDP jobs are handed (checked by the type)
    assert records.record_name == "feature_snapshot"
    seed_snapshots(store, pattern_leads(5, 3), first_scored=NOW, spacing=timedelta(days=1),
                   outcome=False)
    assert sorted(store.scored_before(NOW + timedelta(days=3))) == ["1", "2"]
    assert store.delete_many(["2", "9"]) == {"2"}
    assert sorted(s.contact_id for s in store.snapshots()) == ["1", "3", "4", "5"]


def test_the_history_path_settles_what_the_webhooks_missed(store):
    leads = pattern_leads(120, 4)
    seed_snapshots(store, leads, first_scored=NOW, spacing=timedelta(hours=1), outcome=False)
    hubspot = HistoryHubSpot({str(i): dict(props) for i, (props, _) in enumerate(leads, 1)})
    for contact_id in ("1", "2"):  # converted 5 days after their first score: no webhook seen
        hubspot.set(contact_id, "lifecyclestage", "customer",
                    NOW + timedelta(hours=int(contact_id), days=5))
    hubspot.set("3", "lifecyclestage", "customer", NOW + timedelta(days=70))  # too late
    del hubspot.contacts["4"]  # deleted meanwhile: its erasure is the deletion webhook's
    hubspot.contacts["5"][PROP] = ""  # consent withdrawn
    closer = OutcomeCloser(store=store, hubspot=hubspot, rules=RULES, purposes_property=PROP)

    early = closer.close(NOW + timedelta(days=30))  # no window has closed yet
    assert (early.pending, early.checked) == (120, 0)
    result = closer.close(NOW + timedelta(days=65))  # every window has closed
    assert (result.positive, result.negative, result.not_in_hubspot, result.consent_gone) == (
        2, 116, 1, 1)
    assert result.withdrawn_ids == ["5"]
    settled = {s.contact_id: s for s in store.snapshots()}
    assert (settled["1"].outcome, settled["1"].outcome_source) == (Outcome.POSITIVE, "history")
    assert (settled["3"].outcome, settled["3"].outcome_source) == (Outcome.NEGATIVE, "window")
    assert settled["4"].outcome is None and settled["5"].outcome is None

    # Each lead is read once: the next run reads only the two left without an outcome.
    hubspot.history_reads.clear()
    closer.close(NOW + timedelta(days=66))
    assert sorted(cid for ids in hubspot.history_reads for cid in ids) == ["4", "5"]


def test_the_history_path_stops_before_the_lambda_timeout(store):
    leads = pattern_leads(20, 5)
    seed_snapshots(store, leads, first_scored=NOW, outcome=False)
    hubspot = HistoryHubSpot({str(i): dict(props) for i, (props, _) in enumerate(leads, 1)})
    closer = OutcomeCloser(store=store, hubspot=hubspot, rules=RULES, purposes_property=PROP,
                           seconds_left=lambda: 10.0)
    result = closer.close(NOW + timedelta(days=90))
    assert not result.complete and result.checked == 0 and hubspot.history_reads == []
