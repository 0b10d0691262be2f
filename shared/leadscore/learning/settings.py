"""ModelRetrainFunction's environment (docs/CONTRACTS.md, "Environment variables").

No numpy/lightgbm here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt

from leadscore.dpdp.settings import ErasureSettings
from leadscore.settings import CommonSettings, NonEmpty

# Local-only: the local stack sets it to its admin API, which stands in for CloudFormation.
# template.yaml never declares it (tests/unit/test_template.py).
LOCAL_PROMOTION_SETTING = "LEADSCORE_LOCAL_PROMOTION_URL"


class RetrainSettings(CommonSettings, ErasureSettings):
    hubspot_token_secret: NonEmpty
    feature_snapshot_table: NonEmpty
    model_artifacts_bucket: NonEmpty
    model_dir: NonEmpty = "/opt/model"  # the champion: the model layer in use
    model_layer_name: NonEmpty  # the layer promotions publish versions of
    stack_name: str | None = None  # the stack whose ModelLayerArn a promotion changes
    outcome_window_days: PositiveInt = 60
    training_consent_purpose: Literal["model_training"] | None = None
    retrain_min_positives: PositiveInt = 100
    retrain_min_negatives: PositiveInt = 100
    promotion_auc_tolerance: float = Field(default=0.005, ge=0, le=1)
    promotion_brier_tolerance: float = Field(default=0.005, ge=0, le=1)
    model_promotion: Literal["auto", "manual"] = "auto"
    # ShadowChallengerParameter (SSM name): the retrain points it at a candidate it did not
    # promote, or `none` after a promotion; unset = left alone.
    shadow_challenger_parameter: str | None = None
    leadscore_local_promotion_url: str | None = None
