"""How the slack_notify Lambda is assembled from its environment: `SlackNotifyFunction`.

Made once per container by `functions/slack_notify/app.py`; it builds its parts on first use
and keeps them for the container's life (the Slack client keeps its pacing across
invocations). The webhook URL is re-read through the secrets cache on every invocation, so
putting it in the secret takes effect within minutes. `hubspot_client_factory` and `secret`
are the seams tests replace.

No numpy/lightgbm here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache, lru_cache, partial
from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from leadscore.alerts.notifier import (
    DeferredAlerts,
    HotLeadNotifier,
    NotifierConfig,
    PostOnce,
)
from leadscore.alerts.settings import SlackNotifySettings
from leadscore.alerts.slack import SlackWebhook, webhook_url
from leadscore.hubspot.client import Budget, HubSpotClient, RequestBudget, shared_budget
from leadscore.messaging import DeadLetters
from leadscore.observability import hubspot_usage, tracer
from leadscore.settings import get_secret


@tracer.capture_method
def record_handler(record: SQSRecord, notifier: HotLeadNotifier) -> None:
    notifier.handle(record.body, record.message_id,
                    int(record.attributes.approximate_receive_count or 1))


@dataclass(frozen=True)
class _Outputs:
    deferrals: DeferredAlerts | None
    dead_letters: DeadLetters | None
    once: PostOnce | None


@dataclass(frozen=True)
class CappedBudget:
    """The app-wide HubSpot budget, of which this process takes at most `cap`'s rate."""

    shared: Budget
    cap: RequestBudget

    def acquire(self) -> float:
        return self.cap.acquire() + self.shared.acquire()

    def pause(self, seconds: float) -> None:
        self.shared.pause(seconds)
        self.cap.pause(seconds)

    def observe(self, headers: Mapping[str, str] | None) -> None:
        self.shared.observe(headers)


class SlackNotifyFunction:
    """SlackNotifyFunction (SlackAlertQueue batches; partial batch failures are redelivered)."""

    def __init__(self) -> None:
        self.hubspot_client_factory: Callable[..., Any] = HubSpotClient
        self.secret: Callable[[str], str] = get_secret
        self.settings = cache(SlackNotifySettings.from_env)
        self.outputs = cache(self._outputs)
        self._hubspot = lru_cache(maxsize=1)(self._hubspot_client)  # new on token rotation
        self._slack = lru_cache(maxsize=1)(SlackWebhook)  # one per URL: keeps the pacing
        self.processor = BatchProcessor(event_type=EventType.SQS)

    def _outputs(self) -> _Outputs:
        settings = self.settings()
        return _Outputs(
            deferrals=DeferredAlerts(settings.slack_alert_queue_url)
            if settings.slack_alert_queue_url else None,
            dead_letters=DeadLetters(settings.slack_alert_dlq_url,
                                     settings.slack_alert_queue_max_receive_count)
            if settings.slack_alert_dlq_url else None,
            once=PostOnce(settings.idempotency_table) if settings.idempotency_table else None,
        )

    def _hubspot_client(self, token: str) -> Any:
        settings = self.settings()
        return self.hubspot_client_factory(
            token, settings.hubspot_base_url,
            budget=CappedBudget(shared_budget(settings.hubspot_requests_per_second),
                                RequestBudget(settings.slack_hubspot_requests_per_second)))

    def notifier(self) -> HotLeadNotifier:
        settings, outputs = self.settings(), self.outputs()
        url = webhook_url(self.secret(settings.slack_webhook_url_secret))
        return HotLeadNotifier(
            hubspot=self._hubspot(self.secret(settings.hubspot_token_secret)),
            config=NotifierConfig(
                purposes_property=settings.consent_purposes_property,
                enrich_tiers=settings.enrich_tiers,
                llm_enabled=settings.llm_provider != "off",
                summary_wait_seconds=settings.slack_summary_wait_seconds,
                hubspot_app_url=settings.hubspot_app_url,
                default_portal_id=settings.hubspot_portal_id),
            slack=self._slack(url) if url else None,
            deferrals=outputs.deferrals, dead_letters=outputs.dead_letters, once=outputs.once,
        )

    def handle(self, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        notifier = self.notifier()
        with hubspot_usage(notifier.hubspot):
            notifier.prefetch(record.get("body", "") for record in event.get("Records", []))
            return process_partial_response(
                event=event, record_handler=partial(record_handler, notifier=notifier),
                processor=self.processor, context=context)
