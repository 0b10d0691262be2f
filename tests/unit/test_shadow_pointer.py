"""The retrain job sets ScoreFunction's shadow challenger (ShadowChallengerParameter): the
candidate it did not promote (passed under manual promotion, rejected), `none` after a
promotion, unchanged when refused or failed; a failure to set it never changes the decision.
The value learning writes is the one monitoring's `ChallengerRef.parse` reads."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError
from learning_fakes import BUCKET, NOW, seed_snapshots
from test_retrain import (  # noqa: F401  (aws, store: fixtures, the learning loop's moto stack)
    FIRST_SCORED,
    SHIPPED,
    RecordingTarget,
    aws,
    job,
    seeded,
    shuffled_outcomes,
    store,
    synthetic_world_leads,
)

from leadscore.learning.registry import ArtifactStore, candidate_prefix
from leadscore.learning.retrain import RetrainPolicy
from leadscore.learning.shadow_pointer import SsmShadowPointer, shadow_value
from leadscore.model import load
from leadscore.monitoring.shadow import MODEL_FILES, ChallengerRef, SsmS3Challengers
from leadscore.observability import metrics

PARAMETER = "/leadscore/test/model/shadow-challenger"
PREVIOUS = shadow_value("20260101T000000Z-previous")


@pytest.fixture
def ssm(aws):  # noqa: F811
    client = boto3.client("ssm")
    client.put_parameter(Name=PARAMETER, Value=PREVIOUS, Type="String")
    return client


def current(ssm) -> str:
    return ssm.get_parameter(Name=PARAMETER)["Parameter"]["Value"]


def pointer() -> SsmShadowPointer:
    return SsmShadowPointer(PARAMETER)


def test_the_value_learning_writes_is_the_one_the_score_function_reads():
    ref = ChallengerRef.parse(shadow_value("20260301T040000Z-ab12cd"))
    assert ref == ChallengerRef(version="20260301T040000Z-ab12cd",
                                prefix="candidates/20260301T040000Z-ab12cd/")
    assert ref.prefix == candidate_prefix(ref.version)
    assert ChallengerRef.parse(shadow_value(None)) is None


def test_a_passed_candidate_becomes_the_shadow_challenger_and_can_be_fetched(
        store, ssm, tmp_path):  # noqa: F811
    decision = job(store, tmp_path, leads=seeded(store), target=RecordingTarget(),
                   policy=RetrainPolicy(promotion="manual"), shadow_pointer=pointer()).run(NOW)
    assert decision.result == "passed", decision.reason
    ref = ChallengerRef.parse(current(ssm))
    assert ref.version == decision.challenger_version
    # The score function finds the candidate's files where the artifact store wrote them.
    into = tmp_path / "fetched"
    into.mkdir()
    SsmS3Challengers(PARAMETER, BUCKET).fetch(ref, into)
    assert sorted(p.name for p in into.iterdir()) == sorted(MODEL_FILES)
    assert load(into).version == decision.challenger_version


def test_a_promoted_candidate_sets_the_shadow_challenger_to_none(store, ssm, tmp_path):  # noqa: F811
    decision = job(store, tmp_path, leads=seeded(store), target=RecordingTarget(),
                   shadow_pointer=pointer()).run(NOW)
    assert decision.result == "promoted", decision.reason
    assert current(ssm) == "none" and ChallengerRef.parse(current(ssm)) is None


def test_a_rejected_candidate_becomes_the_shadow_challenger(store, ssm, tmp_path):  # noqa: F811
    leads = synthetic_world_leads()
    seed_snapshots(store, leads, first_scored=FIRST_SCORED)

    decision = job(store, tmp_path, leads=leads, target=RecordingTarget(),
                   trainer=shuffled_outcomes, shadow_pointer=pointer()).run(NOW)
    assert decision.result == "rejected", decision.reason
    assert ChallengerRef.parse(current(ssm)).version == decision.challenger_version


def test_a_refused_retrain_leaves_the_shadow_challenger_unchanged(store, ssm, tmp_path):  # noqa: F811
    seeded(store, n=60)
    decision = job(store, tmp_path, target=RecordingTarget(), shadow_pointer=pointer()).run(NOW)
    assert decision.result == "refused", decision.reason
    assert current(ssm) == PREVIOUS


def test_a_failed_retrain_leaves_the_shadow_challenger_unchanged(store, ssm, tmp_path):  # noqa: F811
    def crash(*args, **kwargs):
        raise RuntimeError("boom")

    decision = job(store, tmp_path, leads=seeded(store), target=RecordingTarget(),
                   trainer=crash, shadow_pointer=pointer()).run(NOW)
    assert decision.result == "failed"
    assert current(ssm) == PREVIOUS


class DeniedSsm:
    def put_parameter(self, **kwargs):
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "denied"}},
                          "PutParameter")


def test_an_ssm_failure_keeps_the_decision_and_is_counted(store, ssm, tmp_path):  # noqa: F811
    decision = job(store, tmp_path, leads=seeded(store), target=RecordingTarget(),
                   policy=RetrainPolicy(promotion="manual"),
                   shadow_pointer=SsmShadowPointer(PARAMETER, ssm=DeniedSsm())).run(NOW)
    assert decision.result == "passed" and not decision.operator_action
    assert decision.reason.startswith(f"challenger {decision.challenger_version} passed")
    assert "shadow challenger not set" in decision.reason and "ClientError" in decision.reason
    assert metrics.metric_set["ShadowChallengerNotSet"]["Value"] == [1.0]
    assert ArtifactStore(BUCKET).decision(decision.challenger_version).reason == decision.reason
    assert current(ssm) == PREVIOUS


def test_without_a_parameter_nothing_is_set(store, ssm, tmp_path):  # noqa: F811
    decision = job(store, tmp_path, leads=seeded(store), target=RecordingTarget()).run(NOW)
    assert decision.result == "promoted"
    assert current(ssm) == PREVIOUS and "ShadowChallengerNotSet" not in metrics.metric_set



def test_a_promotion_by_hand_resets_the_shadow_challenger_or_says_it_did_not(capsys):
    from leadscore.cli.model_cli import _after_change
    from leadscore.cli.model_commands import ModelStack

    class Pointer:
        def __init__(self, error: Exception | None = None) -> None:
            self.values: list[str | None] = []
            self.error = error

        def set(self, version: str | None) -> None:
            if self.error:
                raise self.error
            self.values.append(version)

    def stack(pointer: Pointer) -> ModelStack:
        return ModelStack(artifacts=None, target=None, layer_name="layer", lambda_client=None,
                          retrain=lambda at: {}, shadow=pointer)

    working = Pointer()
    assert _after_change(stack(working), "done") == 0
    assert working.values == [None] and "shadow challenger: none" in capsys.readouterr().out
    assert _after_change(stack(working), "failed") == 1 and working.values == [None]

    broken = Pointer(RuntimeError("AccessDenied on ssm:PutParameter"))
    assert _after_change(stack(broken), "done") == 1
    out = capsys.readouterr().out
    assert "the model changed, but the shadow challenger was not reset" in out
    assert "AccessDenied" in out
