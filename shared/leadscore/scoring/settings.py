"""The environments of the ingest, score and score_api functions (docs/CONTRACTS.md).

No numpy/lightgbm here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import PositiveInt, field_validator

from leadscore.settings import CommonSettings, NonEmpty, comma_separated


class IngestSettings(CommonSettings):
    hubspot_client_secret_secret: NonEmpty
    score_queue_url: NonEmpty
    webhook_public_url: str | None = None  # unset: rebuilt from the API Gateway event
    idempotency_table: str | None = None  # unset: no eventId dedupe (local runs, tests)
    # Properties whose changes lead to a re-score: the model's inputs (its features.toml
    # columns); the consent properties are always added.
    watched_properties: frozenset[str] = frozenset()

    _split_watched = field_validator("watched_properties", mode="before")(comma_separated)

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
    # How long a message may keep waiting for HubSpot (429/5xx) before it is dead-lettered.
    score_max_wait_minutes: PositiveInt = 24 * 60
    watched_properties: frozenset[str] = frozenset()  # checked against the model's inputs
    # Bring the ai_* property descriptions in line with the model loaded (tier thresholds).
    keep_property_descriptions_current: bool = False
    # The learning loop (leadscore.learning): unset table = no snapshots, no outcomes.
    feature_snapshot_table: str | None = None
    outcome_window_days: PositiveInt = 60
    training_consent_purpose: Literal["model_training"] | None = None

    _split_tiers = field_validator("enrich_tiers", mode="before")(comma_separated)
    _split_watched = field_validator("watched_properties", mode="before")(comma_separated)


class ScoreApiSettings(CommonSettings):
    hubspot_client_secret_secret: NonEmpty
    score_api_key_secret: str | None = None  # unset: only HubSpot signatures are accepted
    model_dir: NonEmpty = "/opt/model"
    score_api_public_url: str | None = None  # unset: rebuilt from the API Gateway event
