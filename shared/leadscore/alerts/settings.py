"""The slack_notify function's environment (docs/CONTRACTS.md, "Environment variables").

No numpy/lightgbm here.
"""

from __future__ import annotations

from pydantic import Field, PositiveInt, field_validator

from leadscore.settings import CommonSettings, NonEmpty, comma_separated


class SlackNotifySettings(CommonSettings):
    hubspot_token_secret: NonEmpty
    # Secrets Manager id of the Slack incoming-webhook URL; a value that is not a URL (the
    # generated placeholder) means nothing is sent.
    slack_webhook_url_secret: NonEmpty
    # Alerts waiting for their LLM summary are queued again here, delayed.
    slack_alert_queue_url: str | None = None
    # Records that finally fail go to this DLQ with a `reason` attribute; keep the count equal
    # to SlackAlertQueue's maxReceiveCount.
    slack_alert_dlq_url: str | None = None
    slack_alert_queue_max_receive_count: PositiveInt = 5
    idempotency_table: str | None = None  # one post per (contact, scored_at); unset: no dedupe
    enrich_tiers: frozenset[str] = frozenset({"hot", "warm"})  # as the score function's
    llm_provider: str = "off"  # as the enrich function's: "off" = no summary will come
    slack_summary_wait_seconds: int = Field(default=600, ge=0, le=3600)
    hubspot_app_url: NonEmpty = "https://app.hubspot.com"
    hubspot_portal_id: PositiveInt | None = None  # for alerts without one (backfill)
    # At most this many of the app's HubSpot requests per second per container: re-reading
    # hot leads while their summary is written must not take the slots scoring needs.
    slack_hubspot_requests_per_second: float = Field(default=1.0, gt=0, le=10)

    _split_tiers = field_validator("enrich_tiers", mode="before")(comma_separated)
