"""Environment models, one per Lambda function (names in docs/CONTRACTS.md).

Each handler parses its model once per container; a missing or malformed variable fails the
cold start with a pydantic error naming the variable, instead of a KeyError deep in the logic.
Empty strings count as unset, because SAM/CloudFormation cannot omit a variable conditionally.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator

NonEmpty = Annotated[str, Field(min_length=1)]


class _EnvModel(BaseModel):
    model_config = ConfigDict(alias_generator=str.upper, populate_by_name=True, frozen=True,
                              extra="ignore")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        env = os.environ if environ is None else environ
        return cls.model_validate({k: v for k, v in env.items() if v != ""})


class CommonSettings(_EnvModel):
    """Variables every function understands (CONTRACTS.md, "Globals")."""

    stage: str = "dev"
    hubspot_base_url: NonEmpty = "https://api.hubapi.com"
    consent_purposes_property: NonEmpty = "dpdp_consent_purposes"
    consent_updated_at_property: NonEmpty = "dpdp_consent_updated_at"
    retention_days: PositiveInt = 180


class IngestSettings(CommonSettings):
    hubspot_client_secret_secret: NonEmpty
    score_queue_url: NonEmpty
    webhook_public_url: str | None = None  # unset: rebuilt from the API Gateway event
    idempotency_table: str | None = None  # unset: no eventId dedupe (local runs, tests)


class ScoreSettings(CommonSettings):
    hubspot_token_secret: NonEmpty
    ledger_table: NonEmpty
    model_dir: NonEmpty = "/opt/model"
    enrich_queue_url: str | None = None  # unset: enrichment is not queued
    hot_leads_topic_arn: str | None = None  # unset: no hot-lead alerts
    enrich_tiers: frozenset[str] = frozenset({"hot", "warm"})

    @field_validator("enrich_tiers", mode="before")
    @classmethod
    def _split_tiers(cls, value: object) -> object:
        if isinstance(value, str):
            return frozenset(t.strip() for t in value.split(",") if t.strip())
        return value


class ScoreApiSettings(CommonSettings):
    hubspot_client_secret_secret: NonEmpty
    model_dir: NonEmpty = "/opt/model"
    score_api_public_url: str | None = None  # unset: rebuilt from the API Gateway event


class ConsentSweepSettings(CommonSettings):
    hubspot_token_secret: NonEmpty
    ledger_table: NonEmpty


class RetentionPurgeSettings(CommonSettings):
    hubspot_token_secret: NonEmpty
    ledger_table: NonEmpty
