"""The two daily DPDP jobs as their scheduled Lambdas run them (ConsentSweepFunction,
RetentionPurgeFunction): settings from the environment, the HubSpot token and the receipt key
from Secrets Manager, "now" from `scheduled_time` (the real clock
outside the local stack), then the sweep or the purge.

One place for the wiring both share, so the handlers stay a few lines.
No numpy/lightgbm here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from leadscore.dpdp.erasure import Eraser, eraser_from_env
from leadscore.dpdp.retention import RetentionPurge
from leadscore.dpdp.settings import ConsentSweepSettings, RetentionPurgeSettings
from leadscore.dpdp.stores import ScoreRecords
from leadscore.dpdp.sweep import SsmSweepCursor, sweep_withdrawn_consent
from leadscore.hubspot.client import GdprDeleter, HubSpotClient, shared_budget
from leadscore.observability import logger
from leadscore.settings import get_secret
from leadscore.timestamps import scheduled_time

LedgerFactory = Callable[[str], ScoreRecords]  # table name -> the score ledger
# The feature snapshots of the learning loop (None where the stack has none), handed in like the
# ledger: dpdp does not import the code that writes them.
SnapshotsFactory = Callable[[], ScoreRecords | None]


@dataclass(frozen=True)
class _Wiring:
    token: str
    hubspot: Any  # HubSpotClient, or what the caller's factory made
    ledger: ScoreRecords
    eraser: Eraser
    snapshots: ScoreRecords | None


def _wire(settings: ConsentSweepSettings | RetentionPurgeSettings,
          hubspot_client_factory: Callable[..., Any], ledger_factory: LedgerFactory,
          snapshots_factory: SnapshotsFactory) -> _Wiring:
    token = get_secret(settings.hubspot_token_secret)
    hubspot = hubspot_client_factory(token, settings.hubspot_base_url,
                                     budget=shared_budget(settings.hubspot_requests_per_second))
    ledger = ledger_factory(settings.ledger_table)
    snapshots = snapshots_factory()
    stores = [ledger, *([snapshots] if snapshots else [])]
    return _Wiring(token, hubspot, ledger, eraser_from_env(hubspot=hubspot, stores=stores),
                   snapshots)


def _seconds_left(context: LambdaContext) -> Callable[[], float]:
    return lambda: context.get_remaining_time_in_millis() / 1000


class ConsentSweepFunction:
    """ConsentSweepFunction: everything is built per run (it runs once a day). The score ledger
    comes from `ledger_factory` (the handler passes `leadscore.scoring.ledger.DynamoDBLedger`:
    dpdp does not import scoring); `hubspot_client_factory` is the seam tests replace."""

    def __init__(self, *, ledger_factory: LedgerFactory,
                 snapshots_factory: SnapshotsFactory = lambda: None) -> None:
        self.ledger_factory = ledger_factory
        self.snapshots_factory = snapshots_factory
        self.hubspot_client_factory: Callable[..., Any] = HubSpotClient

    def handle(self, event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
        settings = ConsentSweepSettings.from_env()
        wired = _wire(settings, self.hubspot_client_factory, self.ledger_factory,
                      self.snapshots_factory)
        result = sweep_withdrawn_consent(
            hubspot=wired.hubspot, ledger=wired.ledger, eraser=wired.eraser,
            purposes_property=settings.consent_purposes_property, now=scheduled_time(event),
            seconds_left=_seconds_left(context),
            cursor=SsmSweepCursor(settings.consent_sweep_cursor_parameter)
            if settings.consent_sweep_cursor_parameter else None)
        logger.info("Consent sweep done", extra=result.model_dump())
        return result.model_dump()


class RetentionPurgeFunction:
    """RetentionPurgeFunction: everything is built per run (it runs once a day). The score
    ledger comes from `ledger_factory`, as for the sweep; the HubSpot client and GDPR deleter
    factories are the seams tests replace."""

    def __init__(self, *, ledger_factory: LedgerFactory,
                 snapshots_factory: SnapshotsFactory = lambda: None) -> None:
        self.ledger_factory = ledger_factory
        self.snapshots_factory = snapshots_factory
        self.hubspot_client_factory: Callable[..., Any] = HubSpotClient
        self.gdpr_deleter_factory: Callable[..., Any] = GdprDeleter

    def handle(self, event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
        settings = RetentionPurgeSettings.from_env()
        wired = _wire(settings, self.hubspot_client_factory, self.ledger_factory,
                      self.snapshots_factory)
        mode = settings.purge_inactive_contacts
        purge = RetentionPurge(
            ledger=wired.ledger, hubspot=wired.hubspot, eraser=wired.eraser,
            retention_days=settings.retention_days,
            purposes_property=settings.consent_purposes_property, inactive_mode=mode,
            deleter=self.gdpr_deleter_factory(wired.token, settings.hubspot_base_url)
            if mode == "delete" else None,
            seconds_left=_seconds_left(context),
            expiring=[(wired.snapshots, eraser_from_env(hubspot=wired.hubspot,
                                                        stores=[wired.snapshots]))]
            if wired.snapshots else [])
        result = purge.run(scheduled_time(event))
        # Candidate ids (report mode) are HubSpot record ids, never names or addresses.
        logger.info("Retention purge done", extra=result.model_dump())
        return result.model_dump()
