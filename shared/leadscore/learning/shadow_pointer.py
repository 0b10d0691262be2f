"""Which candidate ScoreFunction runs as its shadow challenger: the SSM parameter
`SHADOW_CHALLENGER_PARAMETER` (ShadowChallengerParameter), set by the retrain job.

The value is the one `leadscore.monitoring.shadow.ChallengerRef.parse` reads: `none`, or
`{"version": V, "prefix": "candidates/V/"}` where the prefix is the candidate's in
ModelArtifactsBucket (`registry.candidate_prefix`, the one `ArtifactStore.save_candidate`
writes). Learning does not import monitoring (docs/ARCHITECTURE.md), so the shape is written
here and tests/unit/test_shadow_pointer.py round-trips it through `ChallengerRef.parse`.

No numpy/lightgbm here.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

import boto3
from botocore.config import Config

from leadscore.learning.registry import candidate_prefix

NO_CHALLENGER = "none"
# A retrain must not wait long on SSM (the decision is recorded after it).
AWS_CONFIG = Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 2})


def shadow_value(version: str | None) -> str:
    """The parameter's value naming this candidate (None: no challenger)."""
    if version is None:
        return NO_CHALLENGER
    return json.dumps({"version": version, "prefix": candidate_prefix(version)},
                      separators=(",", ":"))


class ShadowPointer(Protocol):
    def set(self, version: str | None) -> None:
        """Makes this candidate the shadow challenger (None: none); raises on failure."""


class SsmShadowPointer:
    def __init__(self, parameter: str, ssm: Any = None):
        self.parameter = parameter
        self._ssm = ssm or boto3.client("ssm", config=AWS_CONFIG)

    def set(self, version: str | None) -> None:
        self._ssm.put_parameter(Name=self.parameter, Value=shadow_value(version),
                                Type="String", Overwrite=True)
