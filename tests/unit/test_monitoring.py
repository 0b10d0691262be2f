"""Model monitoring's logic: the training reference, PSI drift, realised accuracy, the weekly
trend, the shadow comparison and the monitor job's resilience, on the shipped model and
snapshots of the contract's shape (leadscore_local.snapshot_seed scores synthetic leads)."""

from __future__ import annotations

import json
import random
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import numpy as np
import pytest
from fakes import create_table
from moto import mock_aws

from leadscore.cli.synthetic import generate_contacts
from leadscore.model import load
from leadscore.model.backtest import roc_auc
from leadscore.model.reference import (
    MISSING,
    OTHER,
    TOP_CATEGORIES,
    Reference,
    bin_indices,
)
from leadscore.monitoring.accuracy import auc, realised_accuracy, shadow_comparisons, weekly_trend
from leadscore.monitoring.drift import psi, window_drift
from leadscore.monitoring.monitor import MonitorConfig, measure
from leadscore.monitoring.snapshots import DynamoDBSnapshots, Snapshot, SnapshotRead, parse_items
from leadscore.timestamps import iso_millis
from leadscore_local.snapshot_seed import as_of, never_seen, put_items, snapshot_items, spread

ROOT = Path(__file__).resolve().parents[2]
MODEL_DIR = ROOT / "layers/model/model"
NOW = datetime(2026, 3, 1, 6, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def model():
    return load(MODEL_DIR)


@pytest.fixture(scope="module")
def reference(model) -> Reference:
    found = Reference.from_metadata(model.metadata)
    assert found is not None, "the shipped model has no reference: run `make model`"
    return found


@pytest.fixture(scope="module")
def pool():
    """Leads like the training population (another seed), to sample cohorts from."""
    return generate_contacts(6000, seed=77, now=NOW)


def cohort(model, pool, n, *, start, end, seed, shifted=False, now=None, first_id=1):
    """`n` stored leads first scored in [start, end), as the learning loop stores them."""
    contacts = random.Random(seed).choices(pool, k=n)
    if shifted:
        contacts = never_seen(contacts, seed)
    times = spread(n, start, end, seed)
    contacts = [dict(c, hs_object_id=str(first_id + i))
                for i, c in enumerate(as_of(model, contacts, NOW, times))]
    return snapshot_items(model, contacts, times, portal_id=1, now=now, seed=seed)


def leads(items) -> list[Snapshot]:
    read = parse_items(items)
    assert read.unreadable == 0
    return read.snapshots


# --------------------------------------------------------------------------- reference


def test_reference_bins_the_whole_training_set(model, reference):
    rows = model.metadata["metrics"]["rows"]
    assert reference.rows == rows
    assert set(reference.features) == {spec.name for spec in model.schema.features}
    for name, bins in reference.features.items():
        assert sum(bins.counts) == rows, name
        assert bins.labels[-1] == MISSING
    assert sum(reference.score.counts) == model.metadata["metrics"]["validation_rows"]
    # the score is a percentile of these very leads: about a tenth in each decile
    shares = np.array(reference.score.counts) / sum(reference.score.counts)
    assert np.all(np.abs(shares - 0.1) < 0.03), shares


def test_categories_beyond_the_top_and_never_seen_share_the_other_bin(model, reference):
    bins = reference.features["jobtitle"]
    spec = next(s for s in model.schema.features if s.name == "jobtitle")
    assert bins.labels[:TOP_CATEGORIES] == list(spec.vocabulary[:TOP_CATEGORIES])
    assert bins.labels[TOP_CATEGORIES] == OTHER
    codes = np.array([0.0, TOP_CATEGORIES - 1, TOP_CATEGORIES, spec.other_code, np.nan])
    assert bin_indices(bins, codes).tolist() == [0, TOP_CATEGORIES - 1, TOP_CATEGORIES,
                                                 TOP_CATEGORIES, TOP_CATEGORIES + 1]


def test_numeric_bins_are_at_or_below_their_edge(reference):
    bins = reference.features["hs_analytics_num_visits"]
    edges = bins.edges
    values = np.array([edges[0], edges[0] + 0.5, edges[-1], edges[-1] + 1, np.nan])
    assert bin_indices(bins, values).tolist() == [0, 1, len(edges) - 1, len(edges),
                                                  len(edges) + 1]


def test_model_without_reference_and_malformed_reference():
    assert Reference.from_metadata({"version": "old"}) is None
    with pytest.raises(ValueError, match="unreadable reference"):
        Reference.from_metadata({"reference": {"format": 1, "rows": 3, "features": {},
                                               "score": {"edges": [1], "labels": ["a"],
                                                         "counts": [1]}}})


def test_training_writes_the_reference_deterministically(model):
    metadata = json.loads((MODEL_DIR / "metadata.json").read_text())
    assert metadata["reference"]["format"] == 1
    assert metadata["version"] == model.version  # the reference is not part of the version


# --------------------------------------------------------------------------- drift


def test_psi_is_zero_for_the_same_shares_and_large_for_an_unseen_bin():
    assert psi([100, 200, 300], [10, 20, 30]) == pytest.approx(0.0, abs=1e-3)
    # 30 % of the window in a bin training never filled: drift, not a division by zero
    assert psi([5000, 5000, 0], [35, 35, 30]) > 0.25
    with pytest.raises(ValueError):
        psi([1, 2], [1, 2, 3])


def test_ordinary_leads_are_stable_and_never_seen_ones_drift(model, reference, pool):
    start = NOW - timedelta(days=7)
    ordinary = window_drift(model, reference, leads(cohort(model, pool, 600, start=start,
                                                           end=NOW, seed=1)),
                            days=7, scored_from=start, scored_to=NOW, min_leads=200)
    shifted = window_drift(model, reference, leads(cohort(model, pool, 600, start=start,
                                                          end=NOW, seed=2, shifted=True)),
                           days=7, scored_from=start, scored_to=NOW, min_leads=200)
    assert ordinary.status == shifted.status == "measured"
    assert ordinary.max_psi < 0.1
    assert ordinary.score.psi < 0.1
    by_name = {f.name: f.psi for f in shifted.features}
    for name in ("hs_analytics_source", "country", "hs_analytics_num_visits",
                 "hs_analytics_num_page_views"):
        assert by_name[name] >= 0.25, (name, by_name)
    assert shifted.max_psi >= 0.25
    assert shifted.score.psi > ordinary.score.psi
    # the e-mail domain is read as a domain, not as missing: no drift on the free-mail flag
    assert by_name["email_free_mail"] < 0.1


def test_a_property_absent_from_every_lead_is_flagged_and_counts_as_drift(model, reference,
                                                                          pool):
    items = cohort(model, pool, 300, start=NOW - timedelta(days=7), end=NOW, seed=3)
    for item in items:
        features = json.loads(item["features"])
        del features["numemployees"]
        item["features"] = json.dumps(features)
    drift = window_drift(model, reference, leads(items), days=7,
                         scored_from=NOW - timedelta(days=7), scored_to=NOW, min_leads=200)
    numemployees = next(f for f in drift.features if f.name == "numemployees")
    assert numemployees.absent and numemployees.psi > 0.25
    assert not any(f.absent for f in drift.features if f.name != "numemployees")


@pytest.mark.parametrize(("count", "has_reference", "status"), [
    (0, True, "no_leads"), (50, True, "too_few_leads"), (50, False, "no_reference")])
def test_windows_that_cannot_be_judged_say_why(model, reference, pool, count, has_reference,
                                               status):
    items = cohort(model, pool, count, start=NOW - timedelta(days=7), end=NOW, seed=4)
    drift = window_drift(model, reference if has_reference else None, leads(items), days=7,
                         scored_from=NOW - timedelta(days=7), scored_to=NOW, min_leads=200)
    assert drift.status == status
    assert drift.note


# --------------------------------------------------------------------------- accuracy


def test_auc_matches_the_backtest_auc_with_ties():
    rng = random.Random(5)
    labels = [rng.random() < 0.2 for _ in range(2000)]
    scores = [round(rng.random() + (0.3 if y else 0), 1) for y in labels]  # many ties
    assert auc(labels, scores) == pytest.approx(roc_auc(np.array(labels, dtype=int),
                                                        np.array(scores)), abs=1e-12)
    assert auc([True, True], [0.1, 0.2]) is None


def accuracy_cohort(model, pool, **kwargs):
    """Leads first scored 90 to 60 days before NOW, outcomes as known at NOW."""
    return leads(cohort(model, pool, 1500, start=NOW - timedelta(days=90),
                        end=NOW - timedelta(days=60), seed=6, now=NOW, **kwargs))


def test_realised_accuracy_on_a_closed_cohort(model, pool):
    cohort_leads = accuracy_cohort(model, pool)
    result = realised_accuracy(cohort_leads, model_version=model.version,
                               metadata=model.metadata, cohort_from=NOW - timedelta(days=90),
                               cohort_to=NOW - timedelta(days=60), min_outcomes=300)
    assert result.status == "measured"
    assert result.final == result.leads == 1500 and result.pending == 0
    truth = [lead.converted for lead in cohort_leads]
    assert result.conversion_rate == pytest.approx(sum(truth) / len(truth), abs=1e-4)
    # leads like the training ones: close to what training saw and promised
    assert abs(result.conversion_change) < 0.3
    assert result.realized_auc > result.training_auc - 0.05
    hot = next(t for t in result.tiers if t.tier == "hot")
    disqualified = next(t for t in result.tiers if t.tier == "disqualified")
    assert hot.conversion_rate > disqualified.conversion_rate
    assert hot.promised_rate == next(row["conversion_rate"] for row in
                                     model.metadata["tiers"]["validation"] if row["tier"] == "hot")
    assert sum(b.leads for b in result.reliability) == result.model_leads


def test_pending_prior_and_other_versions_are_kept_apart(model, pool):
    cohort_leads = accuracy_cohort(model, pool)
    changed = []
    for i, lead in enumerate(cohort_leads):
        update = {}
        if i % 10 == 0:
            update = {"outcome": None, "outcome_at": None}  # never settled
        elif i % 10 == 1:
            update = {"outcome": "prior"}
        elif i % 10 == 2:
            update = {"model_version": "older-version"}
        changed.append(lead.model_copy(update=update))
    result = realised_accuracy(changed, model_version=model.version, metadata=model.metadata,
                               cohort_from=NOW, cohort_to=NOW, min_outcomes=300)
    assert (result.pending, result.prior) == (150, 150)
    assert result.final == 1200
    assert result.model_leads == 1050  # the older version's leads count for conversion only


def test_too_few_outcomes_are_shown_not_judged(model, pool):
    result = realised_accuracy(accuracy_cohort(model, pool)[:100], model_version=model.version,
                               metadata=model.metadata, cohort_from=NOW, cohort_to=NOW,
                               min_outcomes=300)
    assert result.status == "too_few_outcomes" and result.note


def test_weekly_trend_judges_only_closed_weeks(model, pool):
    old = cohort(model, pool, 400, start=NOW - timedelta(days=120),
                 end=NOW - timedelta(days=100), seed=7, now=NOW)
    recent = cohort(model, pool, 200, start=NOW - timedelta(days=20), end=NOW - timedelta(days=1),
                    seed=8, now=NOW, first_id=10_000)
    points = weekly_trend(leads(old + recent), now=NOW, outcome_window_days=60)
    assert sum(p.leads for p in points) == 600
    closed = [p for p in points if p.window_closed]
    assert closed and all(p.conversion_rate is not None for p in closed)
    open_weeks = [p for p in points if not p.window_closed]
    assert open_weeks and all(p.conversion_rate is None and p.realized_auc is None
                              for p in open_weeks)
    assert [p.week for p in points] == sorted(p.week for p in points)


def test_shadow_comparison_judges_both_on_the_same_leads(model, pool):
    cohort_leads = accuracy_cohort(model, pool)
    rng = random.Random(9)
    shadowed = [lead.model_copy(update={
        "shadow_version": "challenger-1", "shadow_score": min(100, lead.score + 5),
        "shadow_probability": rng.random(),  # a challenger no better than chance
        "shadow_tier": lead.tier}) for lead in cohort_leads[:1000]]
    [comparison] = shadow_comparisons(shadowed + cohort_leads[1000:])
    assert comparison.leads == 1000 == comparison.final
    assert comparison.tier_agreement == 1.0
    assert 0 < comparison.mean_abs_score_difference <= 5
    assert comparison.champion_auc > 0.7 > comparison.challenger_auc


# --------------------------------------------------------------------------- the job


class ListSource:
    def __init__(self, items, unreadable=0):
        self.items, self.unreadable, self.asked = items, unreadable, []

    def snapshots(self, scored_from, scored_to):
        self.asked.append((scored_from, scored_to))
        read = parse_items(self.items)
        read.snapshots = [s for s in read.snapshots if scored_from <= s.scored_at < scored_to]
        read.unreadable += self.unreadable
        return read


def test_measure_reads_once_and_emits_only_what_was_measured(model, pool):
    recent = cohort(model, pool, 400, start=NOW - timedelta(days=7), end=NOW, seed=10)
    # enough final outcomes to tell the alarms' changes from chance (see the next test)
    closed = cohort(model, pool, 7000, start=NOW - timedelta(days=85),
                    end=NOW - timedelta(days=61), seed=11, now=NOW, first_id=20_000)
    source = ListSource(recent + closed, unreadable=2)
    result = measure(model, source, NOW, MonitorConfig())
    assert len(source.asked) == 1 and source.asked[0][0] <= NOW - timedelta(days=182)
    assert [d.days for d in result.drift] == [7, 30]
    assert result.drift[0].leads == 400 and result.drift[0].status == "measured"
    metrics = result.metrics
    assert metrics["MonitorLeads"] == 400
    assert metrics["FeatureDriftMaxPSI"] == result.drift[0].max_psi < 0.25
    assert {f"FeaturePSI[feature={spec.name}]" for spec in model.schema.features} <= set(metrics)
    assert metrics["RealizedAUC"] == result.accuracy.realized_auc
    assert metrics["TrainingAUC"] == model.metadata["metrics"]["auc"]
    assert metrics["ConversionRate"] == result.accuracy.conversion_rate
    assert metrics["MonitorUnreadableSnapshots"] == 2
    assert "ModelWithoutReference" not in metrics and not result.problems


def test_alarmed_accuracy_figures_wait_for_enough_outcomes(model, pool):
    closed = cohort(model, pool, 1500, start=NOW - timedelta(days=85),
                    end=NOW - timedelta(days=61), seed=11, now=NOW)
    result = measure(model, ListSource(closed), NOW)
    accuracy = result.accuracy
    assert accuracy.status == "measured" and accuracy.final == 1500
    # on 1,500 leads chance moves the conversion rate by about ±7 % (relative) and the AUC
    # by about ±0.02: a 10 % shift or a 0.05 drop cannot be told from chance at 3 errors
    assert 0.06 < accuracy.conversion_change_error < 0.08
    assert 0.015 < accuracy.realized_auc_error < 0.03
    assert not accuracy.conversion_judged and not accuracy.auc_judged
    assert "conversion rate not emitted" in accuracy.note
    assert "realised AUC not emitted" in accuracy.note
    assert not {"ConversionRate", "RealizedAUC", "TrainingAUC"} & set(result.metrics)
    assert "TierConversion[tier=hot]" in result.metrics  # no alarm reads it


def test_measure_with_too_few_leads_emits_no_drift_or_accuracy(model, pool):
    items = cohort(model, pool, 50, start=NOW - timedelta(days=7), end=NOW, seed=12)
    metrics = measure(model, ListSource(items), NOW).metrics
    assert metrics == {"MonitorLeads": 50, "MonitorFinalOutcomes": 0}


def test_model_without_reference_still_reports_accuracy(model, pool, tmp_path):
    directory = tmp_path / "old-model"
    shutil.copytree(MODEL_DIR, directory)
    metadata = json.loads((directory / "metadata.json").read_text())
    del metadata["reference"]
    (directory / "metadata.json").write_text(json.dumps(metadata))
    old = load(directory)
    closed = cohort(old, pool, 500, start=NOW - timedelta(days=85), end=NOW - timedelta(days=61),
                    seed=13, now=NOW)
    result = measure(old, ListSource(closed), NOW)
    assert not result.model.reference and "no reference" in result.model.reference_problem
    assert all(d.status == "no_reference" for d in result.drift)
    assert result.metrics["ModelWithoutReference"] == 1
    assert result.accuracy.status == "measured" and result.accuracy.realized_auc > 0.6
    assert "FeatureDriftMaxPSI" not in result.metrics


def test_a_failing_part_is_reported_and_the_rest_still_measured(model, pool, monkeypatch):
    import leadscore.monitoring.monitor as monitor

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(monitor, "realised_accuracy", broken)
    items = cohort(model, pool, 300, start=NOW - timedelta(days=7), end=NOW, seed=14)
    result = measure(model, ListSource(items), NOW)
    assert result.problems == ["accuracy: RuntimeError: boom"]
    assert result.accuracy is None
    assert "FeatureDriftMaxPSI" in result.metrics and result.metrics["MonitorFailures"] == 1


def test_dynamodb_reader_reads_a_half_open_window_over_parallel_segments(aws_env, model, pool):
    with mock_aws():
        create_table("FeatureSnapshotTable")
        table = boto3.resource("dynamodb").Table("FeatureSnapshotTable")
        start, end = NOW - timedelta(days=7), NOW
        inside = cohort(model, pool, 300, start=start, end=end, seed=16)
        outside = cohort(model, pool, 50, start=end, end=end + timedelta(days=1), seed=17,
                         first_id=5_000)
        edge = dict(inside[0], contact_id="edge", scored_at=iso_millis(end))  # excluded
        broken = dict(inside[1], contact_id="broken", features="[1, 2]")
        put_items(table, [*inside, *outside, edge, broken])
        read = DynamoDBSnapshots("FeatureSnapshotTable", segments=3).snapshots(start, end)
    assert sorted(s.contact_id for s in read.snapshots) == sorted(i["contact_id"]
                                                                  for i in inside)
    assert read.unreadable == 1
    first = next(s for s in read.snapshots if s.contact_id == inside[0]["contact_id"])
    assert first.features == json.loads(inside[0]["features"])
    assert first.score == inside[0]["score"] and first.tier == inside[0]["tier"]


def test_unreadable_items_are_counted_not_fatal(model, pool):
    items = cohort(model, pool, 3, start=NOW - timedelta(days=1), end=NOW, seed=15)
    items[0]["features"] = "not json"
    del items[1]["score"]
    items[2]["probability"] = 7  # out of range
    read: SnapshotRead = parse_items(items)
    assert (len(read.snapshots), read.unreadable) == (0, 3)
