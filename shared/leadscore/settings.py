"""What every function reads from its environment: the base of the per-function settings models,
the variables all functions share, and secrets.

Each function parses its settings model (in its domain: `scoring.settings`,
`enrichment.settings`, `dpdp.settings`) once per container; a missing or malformed variable
fails the cold start with a pydantic error naming the variable, instead of a KeyError deep in
the logic. Empty strings count as unset, because SAM/CloudFormation cannot omit a variable
conditionally. Names and meanings: docs/CONTRACTS.md, "Environment variables".

No numpy/lightgbm here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Self

from aws_lambda_powertools.utilities import parameters
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt

NonEmpty = Annotated[str, Field(min_length=1)]
SECRET_MAX_AGE_SECONDS = 300  # rotated secrets are picked up within five minutes


def comma_separated(value: object) -> object:
    """A pydantic "before" validator: `"a, b,"` → frozenset({"a", "b"})."""
    if isinstance(value, str):
        return frozenset(item.strip() for item in value.split(",") if item.strip())
    return value


def get_secret(secret_id: str) -> str:
    """A Secrets Manager value (SecretString), cached per container for SECRET_MAX_AGE_SECONDS."""
    return parameters.get_secret(secret_id, max_age=SECRET_MAX_AGE_SECONDS)


class EnvModel(BaseModel):
    """An environment model: field `foo_bar` is variable `FOO_BAR`."""

    model_config = ConfigDict(alias_generator=str.upper, populate_by_name=True, frozen=True,
                              extra="ignore")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        env = os.environ if environ is None else environ
        return cls.model_validate({k: v for k, v in env.items() if v != ""})


class CommonSettings(EnvModel):
    """Variables every function understands (CONTRACTS.md, "Globals")."""

    stage: str = "dev"
    hubspot_base_url: NonEmpty = "https://api.hubapi.com"
    consent_purposes_property: NonEmpty = "dpdp_consent_purposes"
    consent_updated_at_property: NonEmpty = "dpdp_consent_updated_at"
    retention_days: PositiveInt = 180
    # The whole app's HubSpot request budget (leadscore.hubspot.shared_budget), per second.
    hubspot_requests_per_second: PositiveFloat = 8.0
