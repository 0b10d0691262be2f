"""The two daily DPDP jobs as their scheduled Lambdas run them (ConsentSweepFunction,
RetentionPurgeFunction): settings from the environment, the HubSpot token and the receipt key
from Secrets Manager, "now" from the schedule event, then the sweep or the purge.

One place for the wiring both share, so the handlers stay a few lines.
No numpy/lightgbm here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import boto3
from aws_lambda_powertools.utilities import parameters

from leadscore.dpdp.consent import SweepResult, sweep_withdrawn_consent
from leadscore.dpdp.erasure import SECRET_MAX_AGE_SECONDS, Eraser, eraser_from_env
from leadscore.dpdp.retention import GdprDeleter, PurgeResult, RetentionPurge, scheduled_time
from leadscore.hubspot.client import HubSpotClient, shared_budget
from leadscore.observability import logger
from leadscore.scoring.ledger import DynamoDBLedger
from leadscore.settings import ConsentSweepSettings, RetentionPurgeSettings

SecondsLeft = Callable[[], float]


class SsmSweepCursor:
    """The consent sweep's resume point in an SSM String parameter (a contact id number; "0"
    or missing: from the first contact). A position only: no data about that contact."""

    def __init__(self, name: str, *, ssm: Any | None = None):
        self.name = name
        self._ssm = ssm or boto3.client("ssm")

    def load(self) -> int:
        try:
            value = self._ssm.get_parameter(Name=self.name)["Parameter"]["Value"]
        except self._ssm.exceptions.ParameterNotFound:
            return 0
        return int(value) if value.isdigit() else 0  # unreadable: sweep everything again

    def save(self, after_id: int) -> None:
        self._ssm.put_parameter(Name=self.name, Value=str(after_id), Type="String",
                                Overwrite=True)


@dataclass(frozen=True)
class _Wiring:
    token: str
    hubspot: Any  # HubSpotClient, or what the caller's factory made
    ledger: DynamoDBLedger
    eraser: Eraser


def _wire(settings: ConsentSweepSettings | RetentionPurgeSettings,
          hubspot_client_factory: Callable[..., Any]) -> _Wiring:
    token = parameters.get_secret(settings.hubspot_token_secret, max_age=SECRET_MAX_AGE_SECONDS)
    hubspot = hubspot_client_factory(token, settings.hubspot_base_url,
                                     budget=shared_budget(settings.hubspot_requests_per_second))
    ledger = DynamoDBLedger(settings.ledger_table)
    return _Wiring(token, hubspot, ledger, eraser_from_env(hubspot=hubspot, ledger=ledger))


def run_consent_sweep(event: Mapping[str, Any], seconds_left: SecondsLeft, *,
                      hubspot_client_factory: Callable[..., Any] = HubSpotClient) -> SweepResult:
    settings = ConsentSweepSettings.from_env()
    wired = _wire(settings, hubspot_client_factory)
    result = sweep_withdrawn_consent(
        hubspot=wired.hubspot, ledger=wired.ledger, eraser=wired.eraser,
        purposes_property=settings.consent_purposes_property, now=scheduled_time(event),
        seconds_left=seconds_left,
        cursor=SsmSweepCursor(settings.consent_sweep_cursor_parameter)
        if settings.consent_sweep_cursor_parameter else None)
    logger.info("Consent sweep done", extra=result.model_dump())
    return result


def run_retention_purge(event: Mapping[str, Any], seconds_left: SecondsLeft, *,
                        hubspot_client_factory: Callable[..., Any] = HubSpotClient,
                        gdpr_deleter_factory: Callable[..., Any] = GdprDeleter) -> PurgeResult:
    settings = RetentionPurgeSettings.from_env()
    wired = _wire(settings, hubspot_client_factory)
    mode = settings.purge_inactive_contacts
    purge = RetentionPurge(
        ledger=wired.ledger, hubspot=wired.hubspot, eraser=wired.eraser,
        retention_days=settings.retention_days,
        purposes_property=settings.consent_purposes_property, inactive_mode=mode,
        deleter=gdpr_deleter_factory(wired.token, settings.hubspot_base_url)
        if mode == "delete" else None,
        seconds_left=seconds_left)
    result = purge.run(scheduled_time(event))
    # Candidate ids (report mode) are HubSpot record ids, never names or addresses.
    logger.info("Retention purge done", extra=result.model_dump())
    return result
