"""The retrain job against moto (snapshots, artifacts bucket, Lambda layers) with the shipped
model as champion and real training: promoted, passed (manual), rejected, refused for each kind
of bad data, failed (crash, timeout, promotion) — always with a decision record, never leaving
the model functions without a working model."""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import boto3
import pytest
from learning_fakes import (
    BUCKET,
    NOW,
    SHIPPED_MODEL,
    HistoryHubSpot,
    learning_tables,
    pattern_leads,
    seed_snapshots,
)
from moto import mock_aws

from leadscore.learning.outcomes import OutcomeCloser, OutcomeRules
from leadscore.learning.promotion import Promoter, PromotionError
from leadscore.learning.registry import ArtifactStore, Decision
from leadscore.learning.retrain import RetrainJob, RetrainPolicy
from leadscore.learning.snapshots import SnapshotStore
from leadscore.learning.wiring import check_model
from leadscore.model import load
from leadscore.model.config import LabelledData
from leadscore.model.training import train

SHIPPED = load(SHIPPED_MODEL)
FIRST_SCORED = NOW - timedelta(days=120)


@dataclass
class RecordingTarget:
    """Stands in for the stack: which layer the model functions use."""

    layer_arn: str = ""
    calls: list[str] = field(default_factory=list)
    refuse: str | None = None

    def current(self) -> str:
        return self.layer_arn

    def point_to(self, layer_arn, source, seconds_left):
        if self.refuse:
            raise PromotionError(self.refuse)
        self.calls.append(layer_arn)
        self.layer_arn = layer_arn


@pytest.fixture
def aws(aws_env, monkeypatch):
    with mock_aws():
        learning_tables(monkeypatch)
        yield


@pytest.fixture
def store(aws) -> SnapshotStore:
    return SnapshotStore("FeatureSnapshotTable")


def job(store, tmp_path, *, leads=(), target=None, policy=None, **kwargs) -> RetrainJob:
    hubspot = HistoryHubSpot({str(i): dict(props) for i, (props, _) in enumerate(leads, 1)})
    artifacts = ArtifactStore(BUCKET)
    return RetrainJob(
        store=store,
        closer=OutcomeCloser(store=store, hubspot=hubspot,
                             rules=OutcomeRules.from_config(SHIPPED.config, 60)),
        artifacts=artifacts, champion_dir=SHIPPED_MODEL, policy=policy or RetrainPolicy(),
        promoter=Promoter(artifacts=artifacts, target=target, layer_name="leadscore-model-test",
                          check_model=check_model) if target else None,
        workdir=tmp_path, **kwargs)


def seeded(store, n=600, seed=21, **kwargs):
    leads = pattern_leads(n, seed)
    seed_snapshots(store, leads, first_scored=FIRST_SCORED, **kwargs)
    return leads


def runs() -> list[Decision]:
    return ArtifactStore(BUCKET).decisions()


def test_a_better_challenger_is_promoted_and_everything_is_recorded(store, tmp_path):
    leads = seeded(store)
    target = RecordingTarget()
    decision = job(store, tmp_path, leads=leads, target=target).run(NOW)

    assert decision.result == "promoted", decision.reason
    assert decision.challenger.auc > decision.champion.auc  # this portal's pattern is learnt
    assert decision.gate.passed and decision.champion_version == SHIPPED.version
    assert decision.data.labelled == 600 and decision.data.judge_rows == 300
    [layer] = target.calls
    assert layer.startswith("arn:aws:lambda:ap-south-1:")
    assert ":layer:leadscore-model-test:" in layer
    assert decision.promotion.layer_version_arn == layer and decision.promotion.status == "done"

    artifacts = ArtifactStore(BUCKET)
    assert [d.run_id for d in runs()] == [decision.run_id]
    assert artifacts.decision(decision.challenger_version).result == "promoted"
    html = artifacts.report(decision.challenger_version).decode()
    assert "Champion vs challenger" in html and "<script" not in html
    assert artifacts.version_of_layer(layer) == decision.challenger_version
    # The layer holds the challenger, as /opt/model.
    import io
    import zipfile

    names = zipfile.ZipFile(io.BytesIO(artifacts.layer_bytes(decision.challenger_version)))
    assert sorted(names.namelist()) == ["model/features.toml", "model/metadata.json",
                                        "model/model.txt"]


def test_manual_promotion_records_a_passed_candidate(store, tmp_path):
    leads = seeded(store)
    target = RecordingTarget()
    decision = job(store, tmp_path, leads=leads, target=target,
                   policy=RetrainPolicy(promotion="manual")).run(NOW)
    assert decision.result == "passed" and target.calls == []
    assert f"leadscore model promote --version {decision.challenger_version}" in decision.reason


def synthetic_world_leads() -> list[tuple[dict, bool]]:
    """1,000 synthetic contacts with the outcomes the shipped model was trained to rank."""
    from leadscore.cli.synthetic import generate_contacts

    return [(contact | {"lifecyclestage": "lead"}, SHIPPED.config.is_positive(
        contact["lifecyclestage"])) for contact in generate_contacts(1000, 22, now=NOW)]


def shuffled_outcomes(data: LabelledData, *args, **kwargs):
    """`train` on the leads with their outcomes shuffled: no better than chance."""
    labels = [row["lifecyclestage"] for row in data.rows]
    random.Random(0).shuffle(labels)
    for row, label in zip(data.rows, labels, strict=True):
        row["lifecyclestage"] = label
    return train(data, *args, **kwargs)


def test_a_worse_challenger_is_rejected_and_kept_as_a_candidate(store, tmp_path):
    # The shipped model's own world (synthetic conversions), where it ranks well; the
    # challenger learns from shuffled outcomes and ranks no better than chance.
    leads = synthetic_world_leads()
    seed_snapshots(store, leads, first_scored=FIRST_SCORED)

    target = RecordingTarget()
    decision = job(store, tmp_path, leads=leads, target=target, trainer=shuffled_outcomes).run(NOW)
    assert decision.result == "rejected", decision.reason
    assert not decision.gate.passed and target.calls == []
    assert "worse" in decision.reason
    assert ArtifactStore(BUCKET).decision(decision.challenger_version).result == "rejected"


def test_no_outcomes_yet_is_refused_with_the_reason(store, tmp_path):
    leads = pattern_leads(300, 23)
    seed_snapshots(store, leads, first_scored=NOW - timedelta(days=10), outcome=False)
    decision = job(store, tmp_path, leads=leads, target=RecordingTarget()).run(NOW)
    assert decision.result == "refused" and not decision.operator_action
    assert "too few labelled leads: 0 converted and 0 not" in decision.reason
    assert "inside their 60-day window" in decision.reason and decision.challenger_version is None


def test_too_few_positives_is_refused(store, tmp_path):
    leads = [(props, converted and index < 40) for index, (props, converted)
             in enumerate(pattern_leads(600, 24))]
    seed_snapshots(store, leads, first_scored=FIRST_SCORED)
    decision = job(store, tmp_path, leads=leads).run(NOW)
    assert decision.result == "refused" and "at least 100 and 100 needed" in decision.reason


def test_all_leads_positive_needs_an_operator(store, tmp_path):
    leads = [(props, True) for props, _ in pattern_leads(150, 25)]
    seed_snapshots(store, leads, first_scored=FIRST_SCORED)
    decision = job(store, tmp_path, leads=leads).run(NOW)
    assert decision.result == "refused" and decision.operator_action
    assert "all 150 labelled leads converted: check the outcome rule" in decision.reason


def test_a_features_toml_change_between_versions_is_refused(store, tmp_path):
    # Snapshots taken by an older model that did not read job title or country.
    columns = [c for c in SHIPPED.properties if c not in ("jobtitle", "country")]
    leads = seeded(store, columns=columns, model_version="20240101-oldmodel")
    decision = job(store, tmp_path, leads=leads).run(NOW)
    assert decision.result == "refused" and decision.operator_action
    assert "country missing from 100%" in decision.reason
    assert "jobtitle missing from 100%" in decision.reason
    assert "20240101-oldmodel" in decision.reason


def test_erased_contacts_are_not_trained_on(store, tmp_path):
    leads = seeded(store)
    store.delete_many([str(i) for i in range(1, 101)])  # erased (withdrawal, deletion, purge)
    decision = job(store, tmp_path, leads=leads, target=RecordingTarget()).run(NOW)
    assert decision.data.snapshots == 500 and decision.data.labelled == 500


def test_a_retrain_that_times_out_records_why_and_never_promotes(store, tmp_path):
    leads = seeded(store)
    training = []

    def slow(*args, **kwargs):
        training.append(True)  # from here on Lambda's 15 minutes are nearly up
        deadline = time.monotonic() + 20
        while not runs() and time.monotonic() < deadline:  # the watchdog records the decision
            time.sleep(0.2)
        return train(*args, **kwargs)

    target = RecordingTarget()
    decision = job(store, tmp_path, leads=leads, target=target, trainer=slow,
                   seconds_left=lambda: 10.0 if training else 900.0).run(NOW)
    assert decision.result == "failed" and decision.operator_action
    assert decision.reason.startswith("timed out during train challenger with 600 labelled")
    assert target.calls == []  # the model in use stays
    [recorded] = runs()  # written once, by the watchdog, while the training still ran
    assert recorded.result == "failed" and recorded.reason == decision.reason
    assert decision.promotion is None


def test_a_crash_is_recorded_and_alarms(store, tmp_path):
    leads = seeded(store)

    def broken(*args, **kwargs):
        raise MemoryError("out of memory")

    target = RecordingTarget()
    decision = job(store, tmp_path, leads=leads, target=target, trainer=broken).run(NOW)
    assert decision.result == "failed" and decision.operator_action
    assert decision.reason == "train challenger: MemoryError: out of memory"
    assert target.calls == [] and runs()[0].result == "failed"


def test_a_failed_promotion_keeps_the_model_in_use(store, tmp_path):
    leads = seeded(store)
    target = RecordingTarget(refuse="stack leadscore is busy (UPDATE_IN_PROGRESS)")
    decision = job(store, tmp_path, leads=leads, target=target).run(NOW)
    assert decision.result == "failed" and decision.operator_action
    assert "passed the gate but was not promoted: stack leadscore is busy" in decision.reason
    assert f"{SHIPPED.version} stays in use" in decision.reason
    assert target.layer_arn == ""
    [record] = ArtifactStore(BUCKET).promotions()
    assert record.status == "failed"


def test_the_decision_is_json_an_operator_can_read(store, tmp_path):
    seeded(store, n=150)
    decision = job(store, tmp_path).run(NOW)
    body = json.loads(boto3.client("s3").get_object(
        Bucket=BUCKET, Key=f"runs/{decision.run_id}.json")["Body"].read())
    assert body["result"] == decision.result and body["reason"] == decision.reason
    assert set(body["seconds"]) >= {"load champion", "close outcome windows", "read snapshots"}
    assert Path(tmp_path).exists()
