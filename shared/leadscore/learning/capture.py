"""The score pipeline's one learning-loop step (`SnapshotStep.record`), called per batch right
after the scores are written to HubSpot and before the ledger records them:

- a lead scored for the first time (no ledger item before) gets its point-in-time snapshot,
  if its consent covers training (`lead_scoring`, plus `model_training` where
  `TrainingConsentPurpose` requires it); one already converted gets outcome `prior`;
- a lead scored again records the outcome its current values show (the webhook capture path:
  a change of `lifecyclestage` or an `[outcome]` signal is a watched property, so it reaches
  this function), if the change happened within the outcome window of its first score;
- a lead whose consent no longer covers training loses its snapshot (with a receipt).

A snapshot that cannot be written fails that contact (SQS retries it; the ledger is written
only after, so the retry still sees a first score). An outcome that cannot be written is only
counted: the history path (`leadscore.learning.outcomes`) reads it back later anyway.

No numpy/lightgbm here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from leadscore.dpdp.erasure import ContactEraser, ErasureReason
from leadscore.learning.outcomes import DEFAULT_WINDOW_DAYS, OutcomeRules, consent_allows_training
from leadscore.learning.snapshots import (
    Outcome,
    OutcomeSource,
    OutcomeUpdate,
    Snapshot,
    SnapshotStore,
)
from leadscore.observability import count, logger


@dataclass(frozen=True)
class ScoredLead:
    """A contact the pipeline just scored and wrote to HubSpot."""

    contact_id: str
    portal_id: int
    occurred_at: int  # epoch ms of the newest event this score applies
    properties: Mapping[str, str | None]  # what the pipeline read from HubSpot
    score: int
    probability: float
    tier: str
    first_score: bool  # no ledger item before this score


@dataclass
class SnapshotStep:
    store: SnapshotStore
    rules: OutcomeRules
    model_version: str
    columns: Sequence[str]  # the model's input properties
    email_column: str | None
    schema_hash: str
    retention_days: int
    purposes_property: str = "dpdp_consent_purposes"
    training_purpose: str | None = None
    eraser: ContactEraser | None = None  # erases from the snapshot store only

    @classmethod
    def for_model(cls, model: Any, store: SnapshotStore, *, retention_days: int,
                  window_days: int = DEFAULT_WINDOW_DAYS, **kwargs: Any) -> SnapshotStep:
        """The step for a loaded `leadscore.model.LeadModel` (its features.toml gives the
        columns, the e-mail column and the outcome rule)."""
        config = model.config
        return cls(store=store, rules=OutcomeRules.from_config(config, window_days),
                   model_version=model.version, columns=list(model.properties),
                   email_column=config.features.email,
                   schema_hash=model.metadata.get("schema_hash", ""),
                   retention_days=retention_days, **kwargs)

    @property
    def properties(self) -> list[str]:
        """What the pipeline must read from HubSpot besides the model's inputs and consent."""
        return self.rules.properties

    def record(self, leads: Sequence[ScoredLead], scored_at: datetime) -> dict[str, str]:
        """Snapshots, outcomes and withdrawals for one batch; returns the contacts that must be
        retried, with why."""
        allowed = {lead.contact_id for lead in leads if consent_allows_training(
            lead.properties, self.purposes_property, self.training_purpose)}
        first = [lead for lead in leads if lead.first_score and lead.contact_id in allowed]
        writes = self.store.put_first([self._snapshot(lead, scored_at) for lead in first])
        count("SnapshotsTaken", len(writes.taken))
        count("SnapshotWriteFailures", len(writes.failed))
        again = [lead for lead in leads if lead.contact_id in allowed and (
            not lead.first_score or lead.contact_id in writes.existed)]
        self._record_outcomes(again, scored_at)
        failed = {cid: f"Feature snapshot not written: {error}"
                  for cid, error in writes.failed.items()}
        withdrawn = [lead.contact_id for lead in leads
                     if lead.contact_id not in allowed and not lead.first_score]
        try:
            self._forget(withdrawn, scored_at)
        except Exception as error:  # retried with the contact, like any erasure
            failed |= dict.fromkeys(withdrawn,
                                    f"Feature snapshot not erased: {type(error).__name__}")
        return failed

    def _snapshot(self, lead: ScoredLead, scored_at: datetime) -> Snapshot:
        converted = self.rules.current(lead.properties) is Outcome.POSITIVE
        return Snapshot.take(
            contact_id=lead.contact_id, portal_id=lead.portal_id, scored_at=scored_at,
            model_version=self.model_version, score=lead.score, probability=lead.probability,
            tier=lead.tier, properties=lead.properties, columns=self.columns,
            email_column=self.email_column, schema_hash=self.schema_hash,
            retention_days=self.retention_days,
            outcome=Outcome.PRIOR if converted else None)

    def _record_outcomes(self, leads: Sequence[ScoredLead], scored_at: datetime) -> None:
        window = timedelta(days=self.rules.window_days)
        updates = []
        for lead in leads:
            outcome = self.rules.current(lead.properties)
            if outcome is None:
                continue
            changed = datetime.fromtimestamp(lead.occurred_at / 1000, UTC)
            updates.append(OutcomeUpdate(
                lead.contact_id, outcome, changed, OutcomeSource.WEBHOOK, checked_at=scored_at,
                # Within the window of the first score, and not before it.
                scored_from=changed - window, scored_until=changed))
        try:
            recorded = self.store.record_outcomes(updates)
        except (BotoCoreError, ClientError) as error:
            count("OutcomeWriteFailures", len(updates))
            logger.warning("Outcomes not recorded; the retrain reads them from HubSpot's history",
                           extra={"error": type(error).__name__})
            return
        count("OutcomesFromWebhooks", len(recorded))

    def _forget(self, contact_ids: list[str], now: datetime) -> None:
        """Consent still covers scoring but no longer training: erase the snapshot only."""
        if not contact_ids or self.eraser is None:
            return
        held = sorted(self.store.held(contact_ids))
        if held:
            self.eraser.erase(held, ErasureReason.TRAINING_CONSENT_WITHDRAWN,
                              clear_hubspot=False, now=now)
