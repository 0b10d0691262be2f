"""ModelRetrainFunction as its Lambda runs it: settings from the environment, the HubSpot token
from Secrets Manager, "now" from `scheduled_time` (the real clock outside the local stack),
the champion from the model layer (`MODEL_DIR`), then the retrain job. Everything is built per
run: it runs once a month.

The promoter's stack step is CloudFormation (`StackTarget` on `STACK_NAME`), or the local
stack's admin API where only the local stack set `LEADSCORE_LOCAL_PROMOTION_URL`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from leadscore.dpdp.erasure import eraser_from_env
from leadscore.hubspot.client import HubSpotClient, shared_budget
from leadscore.learning.gate import GatePolicy
from leadscore.learning.outcomes import OutcomeCloser, OutcomeRules
from leadscore.learning.promotion import LocalStackTarget, Promoter, StackTarget
from leadscore.learning.registry import ArtifactStore
from leadscore.learning.retrain import RetrainJob, RetrainPolicy
from leadscore.learning.settings import RetrainSettings
from leadscore.learning.shadow_pointer import SsmShadowPointer
from leadscore.learning.snapshots import SnapshotStore
from leadscore.model.scoring import load
from leadscore.settings import get_secret
from leadscore.timestamps import scheduled_time


def check_model(directory: Path) -> str:
    """Loads a model directory and scores an empty contact; its version."""
    model = load(directory)
    model.score({})
    return model.version


class ModelRetrainFunction:
    """The seams tests replace: how the HubSpot client and the stack target are made."""

    def __init__(self) -> None:
        self.hubspot_client_factory: Callable[..., Any] = HubSpotClient
        self.target_factory: Callable[[RetrainSettings], Any] = _target

    def promoter(self, settings: RetrainSettings) -> Promoter | None:
        target = self.target_factory(settings)
        if target is None:
            return None
        return Promoter(artifacts=ArtifactStore(settings.model_artifacts_bucket), target=target,
                        layer_name=settings.model_layer_name, check_model=check_model)

    def handle(self, event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
        settings = RetrainSettings.from_env()
        hubspot = self.hubspot_client_factory(
            get_secret(settings.hubspot_token_secret), settings.hubspot_base_url,
            budget=shared_budget(settings.hubspot_requests_per_second))
        store = SnapshotStore(settings.feature_snapshot_table)
        seconds_left = lambda: context.get_remaining_time_in_millis() / 1000  # noqa: E731
        champion_dir = Path(settings.model_dir)
        rules = OutcomeRules.from_config(load(champion_dir).config, settings.outcome_window_days)
        job = RetrainJob(
            store=store,
            closer=OutcomeCloser(store=store, hubspot=hubspot, rules=rules,
                                 purposes_property=settings.consent_purposes_property,
                                 training_purpose=settings.training_consent_purpose,
                                 seconds_left=lambda: seconds_left() - 300),
            artifacts=ArtifactStore(settings.model_artifacts_bucket),
            champion_dir=champion_dir,
            policy=RetrainPolicy(
                min_positives=settings.retrain_min_positives,
                min_negatives=settings.retrain_min_negatives,
                gate=GatePolicy(auc_tolerance=settings.promotion_auc_tolerance,
                                brier_tolerance=settings.promotion_brier_tolerance),
                promotion=settings.model_promotion),
            promoter=self.promoter(settings),
            snapshot_eraser=eraser_from_env(hubspot=hubspot, stores=[store]),
            seconds_left=seconds_left,
            shadow_pointer=(SsmShadowPointer(settings.shadow_challenger_parameter)
                            if settings.shadow_challenger_parameter else None))
        # The monthly schedule, a model alarm (ModelAlarmRetrainRule) or an operator.
        trigger = {"aws.events": "schedule", "aws.cloudwatch": "model_alarm"}.get(
            str(event.get("source")), str(event.get("trigger") or "manual"))
        return job.run(scheduled_time(event), trigger=trigger).model_dump(mode="json")


def _target(settings: RetrainSettings) -> Any:
    if settings.leadscore_local_promotion_url:
        return LocalStackTarget(settings.leadscore_local_promotion_url)
    if settings.stack_name:
        return StackTarget(settings.stack_name)
    return None
