"""The shadow challenger: which one (the SSM value), loading it off the batch's path, scoring
first-time leads beside the model, the latency budget, recording beside the snapshot (moto),
and the score pipeline's hook (first scores only, after the write-back, never in HubSpot)."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import boto3
import pytest
from fakes import create_table
from moto import mock_aws
from test_scoring_service import Recorder, contact, message, pipeline

from leadscore.cli.synthetic import generate_contacts
from leadscore.model import load
from leadscore.monitoring.shadow import (
    MODEL_FILES,
    ChallengerRef,
    ShadowChallenger,
    ShadowResult,
    SnapshotShadowRecorder,
    SsmS3Challengers,
    shadow_challenger_from_env,
)

ROOT = Path(__file__).resolve().parents[2]
MODEL_DIR = ROOT / "layers/model/model"
VERSION = load(MODEL_DIR).version


def ref(version: str = VERSION) -> ChallengerRef:
    return ChallengerRef(version=version, prefix=f"candidates/{version}/")


class DirectorySource:
    """Challengers from a local model directory, with switches for the failure cases."""

    def __init__(self, current: ChallengerRef | None = None, directory: Path = MODEL_DIR):
        self.value, self.directory = current or ref(), directory
        self.fetches, self.error = 0, None
        self.release = threading.Event()
        self.release.set()

    def current(self):
        if self.error:
            raise self.error
        return self.value

    def fetch(self, ref, into):
        self.release.wait(10)
        self.fetches += 1
        for name in MODEL_FILES:
            shutil.copy(self.directory / name, into / name)


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def challenger(tmp_path, source=None, *, budget_ms=1000.0, background=False, clock=None,
               recorder=None):
    return ShadowChallenger(source or DirectorySource(), recorder, max_milliseconds=budget_ms,
                            pause_seconds=600, workdir=tmp_path / "shadow",
                            background=background, clock=clock or Clock())


LEADS = [(str(i), c) for i, c in enumerate(generate_contacts(30, seed=8), start=1)]


@pytest.fixture(autouse=True)
def no_metrics_left_over():
    """Shadow scoring adds to the shared Powertools metric set; no test sees another's."""
    from leadscore.observability import metrics

    metrics.clear_metrics()
    yield
    metrics.clear_metrics()


# --------------------------------------------------------------------------- which one


@pytest.mark.parametrize("value", ["none", "", " NONE "])
def test_none_means_no_challenger(value):
    assert ChallengerRef.parse(value) is None


@pytest.mark.parametrize("value", [
    '{"version": "v1", "prefix": "models/v1/"}',  # outside candidates/
    '{"version": "v1", "prefix": "candidates/../secrets/"}',
    '{"version": "v1"}', "v1", '{"version": "", "prefix": "candidates/v1/"}'])
def test_anything_else_than_a_candidate_is_refused_with_a_reason(value):
    with pytest.raises(ValueError, match="shadow challenger parameter"):
        ChallengerRef.parse(value)


# --------------------------------------------------------------------------- scoring


def test_scores_like_the_challenger_model_without_reasons(tmp_path):
    shadow = challenger(tmp_path)
    results = shadow.score(LEADS)
    expected = load(MODEL_DIR).score_many([c for _, c in LEADS], with_reasons=False)
    assert list(results) == [cid for cid, _ in LEADS]
    assert [(r.score, r.tier, r.version) for r in results.values()] == [
        (e.score, e.tier, VERSION) for e in expected]
    shadow.score(LEADS)
    assert shadow.source.fetches == 1  # once per version and container


def test_loading_never_blocks_a_batch(tmp_path):
    source = DirectorySource()
    source.release.clear()  # the download hangs
    shadow = challenger(tmp_path, source, background=True)
    assert shadow.score(LEADS) == {}  # returned at once: no challenger yet
    source.release.set()
    shadow.wait(10)
    assert len(shadow.score(LEADS)) == len(LEADS)


def test_a_new_version_replaces_the_old_one_and_none_retires_it(tmp_path):
    clock = Clock()
    source = DirectorySource()
    shadow = challenger(tmp_path, source, clock=clock)
    assert shadow.score(LEADS)
    source.value = None
    clock.now += 301  # the parameter is read again after REFRESH_SECONDS
    assert shadow.score(LEADS) == {} and shadow.model is None


def test_failures_keep_what_was_loaded_and_are_counted(tmp_path, capsys):
    from leadscore.observability import metrics

    clock = Clock()
    source = DirectorySource()
    shadow = challenger(tmp_path, source, clock=clock)
    assert shadow.score(LEADS)
    source.error = RuntimeError("SSM throttled")
    clock.now += 301
    assert shadow.score(LEADS)  # the loaded challenger goes on
    source.error, source.value = None, ref("another-version")
    clock.now += 301
    assert shadow.score(LEADS)  # the files hold VERSION, not "another-version": refused
    assert shadow.model.version == VERSION
    metrics.flush_metrics()
    assert '"ShadowLoadFailures":[1.0,1.0]' in capsys.readouterr().out


class SlowRecorder:
    def __init__(self, clock):
        self.clock, self.batches = clock, 0

    def record(self, results):
        time.sleep(0.02)  # 20 ms of writes
        self.batches += 1
        return len(results)


def test_a_batch_over_budget_pauses_the_challenger(tmp_path):
    clock = Clock()
    recorder = SlowRecorder(clock)
    shadow = challenger(tmp_path, budget_ms=10, clock=clock, recorder=recorder)
    shadow.record(shadow.score(LEADS))  # its recording alone is over the 10 ms budget
    assert recorder.batches == 1  # that batch is still recorded
    assert shadow.score(LEADS) == {}  # the next ones are not scored
    clock.now += 601  # SHADOW_PAUSE_SECONDS later
    assert shadow.score(LEADS)


def test_a_batch_within_budget_goes_on(tmp_path):
    recorder = SlowRecorder(Clock())
    shadow = challenger(tmp_path, budget_ms=10_000, recorder=recorder)
    for _ in range(3):
        shadow.record(shadow.score(LEADS))
    assert recorder.batches == 3


def test_a_scoring_error_is_swallowed(tmp_path):
    shadow = challenger(tmp_path)
    shadow.score(LEADS)

    class Broken:
        version = "broken"

        def score_many(self, rows, with_reasons=True):
            raise RuntimeError("boom")

    shadow.model = Broken()
    assert shadow.score(LEADS) == {}


# --------------------------------------------------------------------------- AWS parts


@pytest.fixture
def aws(aws_env, monkeypatch):
    with mock_aws():
        create_table("FeatureSnapshotTable")
        boto3.client("s3").create_bucket(
            Bucket="artifacts", CreateBucketConfiguration={"LocationConstraint": "ap-south-1"})
        boto3.client("ssm").put_parameter(Name="/leadscore/test/model/shadow-challenger",
                                          Value="none", Type="String")
        yield


def test_challenger_from_ssm_and_s3(aws, tmp_path):
    for name in MODEL_FILES:
        boto3.client("s3").upload_file(str(MODEL_DIR / name), "artifacts",
                                       f"candidates/{VERSION}/{name}")
    source = SsmS3Challengers("/leadscore/test/model/shadow-challenger", "artifacts")
    assert source.current() is None
    boto3.client("ssm").put_parameter(Name="/leadscore/test/model/shadow-challenger",
                                      Value=ref().model_dump_json(), Overwrite=True)
    shadow = challenger(tmp_path, source)
    assert len(shadow.score(LEADS)) == len(LEADS)


def test_recorded_on_the_first_scores_snapshot_only(aws):
    table = boto3.resource("dynamodb").Table("FeatureSnapshotTable")
    table.put_item(Item={"contact_id": "1", "scored_at": "2026-01-01T00:00:00.000Z"})
    table.put_item(Item={"contact_id": "2", "shadow_version": "older", "shadow_score": 5})
    result = ShadowResult(version="v2", score=77, probability=0.4321, tier="warm")
    recorded = SnapshotShadowRecorder("FeatureSnapshotTable").record(
        {"1": result, "2": result, "3": result})
    assert recorded == 1
    item = table.get_item(Key={"contact_id": "1"})["Item"]
    assert (item["shadow_version"], item["shadow_score"], item["shadow_tier"]) == (
        "v2", 77, "warm")
    assert float(item["shadow_probability"]) == 0.4321
    assert table.get_item(Key={"contact_id": "2"})["Item"]["shadow_version"] == "older"
    assert "Item" not in table.get_item(Key={"contact_id": "3"})  # no snapshot, none made


def test_no_parameter_no_challenger(aws, monkeypatch):
    monkeypatch.delenv("SHADOW_CHALLENGER_PARAMETER", raising=False)
    assert shadow_challenger_from_env() is None
    monkeypatch.setenv("SHADOW_CHALLENGER_PARAMETER", "/leadscore/test/model/shadow-challenger")
    monkeypatch.setenv("MODEL_ARTIFACTS_BUCKET", "artifacts")
    monkeypatch.setenv("FEATURE_SNAPSHOT_TABLE", "FeatureSnapshotTable")
    assert isinstance(shadow_challenger_from_env(), ShadowChallenger)


# --------------------------------------------------------------------------- the pipeline


class FakeShadow:
    def __init__(self):
        self.scored, self.recorded = [], []

    def score(self, leads):
        self.scored.append([cid for cid, _ in leads])
        return {cid: ShadowResult(version="challenger", score=1, probability=0.01,
                                  tier="disqualified") for cid, _ in leads}

    def record(self, results):
        self.recorded.append(dict(results))


def test_pipeline_shadow_scores_first_scores_after_the_write_back(kit, fake_model):
    hubspot = kit.FakeHubSpot({"1": contact(9), "2": contact(6), "3": contact(2, consent="")})
    recorder, shadow = Recorder(), FakeShadow()
    run = pipeline(hubspot, fake_model, recorder, shadow=shadow)
    result = run.run([message(1), message(2), message(3)])
    assert result.scored == ["1", "2"]
    assert shadow.scored == [["1", "2"]]  # consented first scores only
    assert list(shadow.recorded[0]) == ["1", "2"]
    # HubSpot and every output carry the model's scores only
    assert {u["ai_lead_model_version"] for u in hubspot.updates[0].values()} == {"test-model-1"}
    assert all(m.model_version == "test-model-1" for m in recorder.enrich)

    run.run([message(1, event_id=5)])  # a re-score is not a first score
    assert shadow.scored[-1] == []


def test_pipeline_records_no_shadow_for_contacts_whose_write_failed(kit, fake_model):
    from leadscore.hubspot.client import HubSpotBatchError

    hubspot = kit.FakeHubSpot({"1": contact(9), "2": contact(6)})
    hubspot.update_error = HubSpotBatchError("batch update", ["2"])
    shadow = FakeShadow()
    pipeline(hubspot, fake_model, Recorder(), shadow=shadow).run([message(1), message(2)])
    assert shadow.scored == [["1"]]
