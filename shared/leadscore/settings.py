"""Environment models, one per Lambda function (names in docs/CONTRACTS.md).

Each handler parses its model once per container; a missing or malformed variable fails the
cold start with a pydantic error naming the variable, instead of a KeyError deep in the logic.
Empty strings count as unset, because SAM/CloudFormation cannot omit a variable conditionally.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, field_validator

NonEmpty = Annotated[str, Field(min_length=1)]


def _comma_separated(value: object) -> object:
    if isinstance(value, str):
        return frozenset(item.strip() for item in value.split(",") if item.strip())
    return value


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
    # Token bucket per container (leadscore.hubspot.client.RequestBudget).
    hubspot_requests_per_second: PositiveFloat = 10.0


class IngestSettings(CommonSettings):
    hubspot_client_secret_secret: NonEmpty
    score_queue_url: NonEmpty
    webhook_public_url: str | None = None  # unset: rebuilt from the API Gateway event
    idempotency_table: str | None = None  # unset: no eventId dedupe (local runs, tests)
    # Properties whose changes lead to a re-score: the model's inputs (its features.toml
    # columns); the consent properties are always added.
    watched_properties: frozenset[str] = frozenset()

    _split_watched = field_validator("watched_properties", mode="before")(_comma_separated)

    @property
    def watched(self) -> frozenset[str]:
        return self.watched_properties | {self.consent_purposes_property,
                                          self.consent_updated_at_property}


class ScoreSettings(CommonSettings):
    hubspot_token_secret: NonEmpty
    ledger_table: NonEmpty
    model_dir: NonEmpty = "/opt/model"
    enrich_queue_url: str | None = None  # unset: enrichment is not queued
    hot_leads_topic_arn: str | None = None  # unset: no hot-lead alerts
    enrich_tiers: frozenset[str] = frozenset({"hot", "warm"})
    # A record failing on its last allowed receive goes to this DLQ with a `reason` attribute
    # (SQS's own redrive cannot add one); keep the count equal to the queue's maxReceiveCount.
    score_dlq_url: str | None = None
    score_queue_max_receive_count: PositiveInt = 5
    score_queue_url: str | None = None  # re-scores after losing a race to a newer event
    watched_properties: frozenset[str] = frozenset()  # checked against the model's inputs

    _split_tiers = field_validator("enrich_tiers", mode="before")(_comma_separated)
    _split_watched = field_validator("watched_properties", mode="before")(_comma_separated)


class ScoreApiSettings(CommonSettings):
    hubspot_client_secret_secret: NonEmpty
    score_api_key_secret: str | None = None  # unset: only HubSpot signatures are accepted
    model_dir: NonEmpty = "/opt/model"
    score_api_public_url: str | None = None  # unset: rebuilt from the API Gateway event


class ErasureSettings(_EnvModel):
    """What `leadscore.dpdp.erasure.eraser_from_env` needs (score, sweep, purge)."""

    erasure_receipts_table: NonEmpty
    erasure_receipt_key_secret: NonEmpty  # Secrets Manager id of the receipt hashing key
    audit_retention_days: PositiveInt = 1095  # how long receipts are kept (DynamoDB TTL)


class ConsentSweepSettings(CommonSettings, ErasureSettings):
    hubspot_token_secret: NonEmpty
    ledger_table: NonEmpty
    consent_sweep_cursor_parameter: str | None = None  # SSM name; unset: every run starts over


class RetentionPurgeSettings(CommonSettings, ErasureSettings):
    hubspot_token_secret: NonEmpty
    ledger_table: NonEmpty
    # Contacts with no consent and no activity for RETENTION_DAYS: "off" (default) ignores
    # them, "report" counts them (dry run), "delete" GDPR-deletes them in HubSpot.
    purge_inactive_contacts: Literal["off", "report", "delete"] = "off"
