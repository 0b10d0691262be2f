"""What became of a scored lead: the outcome rules and the history path that never loses a label.

The rule comes from the model's features.toml: the lead is positive the first time its
`[label] column` takes one of the `[label] positive` values (default: `lifecyclestage` reaching
opportunity or customer), or one of the optional `[outcome] positive` signals; an `[outcome]
negative` signal (e.g. `hs_lead_status = UNQUALIFIED`) settles it negative early. Only changes
at or after the first score and within `OutcomeWindowDays` of it count; a lead with nothing
positive when the window closes is negative; one already positive when first scored is `prior`
(its score predicted nothing, so it is never trained or judged on).

Two capture paths write the same snapshot attributes (`leadscore.learning.snapshots`):
1. webhook (`leadscore.learning.capture`): the score pipeline re-reads a contact when a watched
   property changes and records the outcome it sees then;
2. history (`close_outcome_windows`, run by every retrain): the snapshots still without an
   outcome are read back from HubSpot with `propertiesWithHistory` (50 per request, HubSpot's
   limit) and settled from the property versions, so a lost or late webhook never loses a
   label. A lead whose window has closed is settled for good, so it is read only once.

No numpy/lightgbm here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from boto3.dynamodb.conditions import Attr
from pydantic import BaseModel

from leadscore.dpdp.consent import Purpose, consent_for
from leadscore.hubspot.history import HISTORY_BATCH_LIMIT, ContactHistory, PropertyVersion
from leadscore.learning.snapshots import (
    Outcome,
    OutcomeSource,
    OutcomeUpdate,
    SnapshotStore,
    parse_iso,
)
from leadscore.model.config import FeatureConfig
from leadscore.observability import count, logger

DEFAULT_WINDOW_DAYS = 60
TIME_MARGIN_SECONDS = 60.0
READ_CHUNK = 10 * HISTORY_BATCH_LIMIT  # contacts per round of reads and writes


def _values(values: Sequence[str]) -> frozenset[str]:
    return frozenset(value.strip().casefold() for value in values)


@dataclass(frozen=True)
class Settled:
    outcome: Outcome
    at: datetime
    source: OutcomeSource


@dataclass(frozen=True)
class OutcomeRules:
    """The outcome rule of one features.toml, with the window in days."""

    label_column: str
    positive: Mapping[str, frozenset[str]]  # column -> values (case-folded); the label included
    negative: Mapping[str, frozenset[str]]
    window_days: int = DEFAULT_WINDOW_DAYS

    @classmethod
    def from_config(cls, config: FeatureConfig,
                    window_days: int = DEFAULT_WINDOW_DAYS) -> OutcomeRules:
        positive = {config.label.column: _values(config.label.positive)}
        for column, values in config.outcome.positive.items():
            positive[column] = positive.get(column, frozenset()) | _values(values)
        negative = {column: _values(values) for column, values in config.outcome.negative.items()}
        return cls(config.label.column, positive, negative, window_days)

    @property
    def properties(self) -> list[str]:
        """The contact properties an outcome is read from (and whose changes must reach the
        score function: `WatchedProperties`, the app's webhook subscriptions)."""
        return list(dict.fromkeys([*self.positive, *self.negative]))

    def window_end(self, scored_at: datetime) -> datetime:
        return scored_at + timedelta(days=self.window_days)

    def current(self, properties: Mapping[str, str | None]) -> Outcome | None:
        """What the contact's current values say: positive wins over a negative signal."""
        if self._matches(self.positive, properties):
            return Outcome.POSITIVE
        if self._matches(self.negative, properties):
            return Outcome.NEGATIVE
        return None

    @staticmethod
    def _matches(rule: Mapping[str, frozenset[str]],
                 properties: Mapping[str, str | None]) -> bool:
        return any((properties.get(column) or "").strip().casefold() in values
                   for column, values in rule.items())

    def from_history(self, history: Mapping[str, Sequence[PropertyVersion]],
                     scored_at: datetime, now: datetime) -> Settled | None:
        """The outcome the property versions give a lead first scored at `scored_at`, as of
        `now`; None while its window is open and nothing settled it."""
        first_ms = int(scored_at.timestamp() * 1000)
        end = self.window_end(scored_at)
        end_ms = int(min(end, now).timestamp() * 1000)
        if any(_in_effect_at(history.get(column, ()), first_ms, values)
               for column, values in self.positive.items()):
            return Settled(Outcome.PRIOR, scored_at, OutcomeSource.HISTORY)
        positive = _first_change(history, self.positive, first_ms, end_ms)
        negative = _first_change(history, self.negative, first_ms, end_ms)
        if positive is not None and (negative is None or positive <= negative):
            return Settled(Outcome.POSITIVE, _moment(positive), OutcomeSource.HISTORY)
        if negative is not None:
            return Settled(Outcome.NEGATIVE, _moment(negative), OutcomeSource.HISTORY)
        if now >= end:
            return Settled(Outcome.NEGATIVE, end, OutcomeSource.WINDOW)
        return None


def _moment(epoch_ms: int) -> datetime:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC)


def _in_effect_at(versions: Sequence[PropertyVersion], at_ms: int,
                  values: frozenset[str]) -> bool:
    """Whether the value the property held at `at_ms` (its last version written by then) is
    one of `values`."""
    current = None
    for version in versions:  # oldest first
        if version.timestamp > at_ms:
            break
        current = version.value
    return current is not None and current.strip().casefold() in values


def _first_change(history: Mapping[str, Sequence[PropertyVersion]],
                  rule: Mapping[str, frozenset[str]], from_ms: int, until_ms: int) -> int | None:
    """The earliest version in (from_ms, until_ms] taking one of the rule's values."""
    times = [version.timestamp for column, values in rule.items()
             for version in history.get(column, ())
             if from_ms < version.timestamp <= until_ms
             and version.value.strip().casefold() in values]
    return min(times, default=None)


# --------------------------------------------------------------------------- the history path


class ContactHistories(Protocol):
    """`leadscore.hubspot.client.HubSpotClient.batch_read_history`."""

    def batch_read_history(self, ids: Sequence[str], properties: Sequence[str],
                           with_history: Sequence[str]) -> dict[str, ContactHistory]: ...


class ClosingResult(BaseModel):
    """What `close_outcome_windows` did (counts only)."""

    pending: int = 0  # snapshots without an outcome when the run started
    checked: int = 0  # read back from HubSpot
    positive: int = 0
    negative: int = 0
    prior: int = 0
    still_open: int = 0  # window open and nothing settled yet
    not_in_hubspot: int = 0  # deleted meanwhile (their erasure is the deletion webhook's)
    consent_gone: int = 0  # consent no longer covers training: snapshot erased, not labelled
    complete: bool = True  # False: stopped for time; the rest next run
    withdrawn_ids: list[str] = []  # the snapshots to erase (handed to the caller's eraser)


@dataclass
class OutcomeCloser:
    """The history path over a snapshot store. `training_purpose` is the consent purpose the
    `TrainingConsentPurpose` parameter may require besides `lead_scoring` (`model_training`)."""

    store: SnapshotStore
    hubspot: ContactHistories
    rules: OutcomeRules
    purposes_property: str = "dpdp_consent_purposes"
    training_purpose: str | None = None
    seconds_left: Callable[[], float] = field(default=lambda: float("inf"))

    def close(self, now: datetime, *, include_open: bool = False) -> ClosingResult:
        """Settles the snapshots without an outcome whose window has closed by `now` (with
        `include_open`, also the open ones something already settled: a retrain reads them
        all)."""
        result = ClosingResult()
        pending: list[tuple[str, datetime]] = []
        for item in self.store.scan_items(projection=["contact_id", "scored_at"],
                                          condition=Attr("outcome").not_exists()):
            result.pending += 1
            scored_at = parse_iso(item["scored_at"]["S"])
            if include_open or self.rules.window_end(scored_at) <= now:
                pending.append((item["contact_id"]["S"], scored_at))
        pending.sort(key=lambda entry: entry[1])  # oldest first: their windows closed first
        wanted = [*self.rules.properties, self.purposes_property]
        for start in range(0, len(pending), READ_CHUNK):
            if self.seconds_left() < TIME_MARGIN_SECONDS:
                result.complete = False
                break
            chunk = dict(pending[start:start + READ_CHUNK])
            found = self.hubspot.batch_read_history(list(chunk), wanted, self.rules.properties)
            updates = self._settle(chunk, found, now, result)
            self.store.record_outcomes(updates)
        count("OutcomesFromHistory", result.positive + result.negative + result.prior)
        logger.info("Outcome windows closed", extra=result.model_dump(exclude={"withdrawn_ids"}))
        return result

    def _settle(self, chunk: Mapping[str, datetime], found: Mapping[str, ContactHistory],
                now: datetime, result: ClosingResult) -> list[OutcomeUpdate]:
        updates = []
        for contact_id, scored_at in chunk.items():
            contact = found.get(contact_id)
            if contact is None:
                result.not_in_hubspot += 1
                continue
            result.checked += 1
            if not self.may_train(contact.properties):
                result.consent_gone += 1
                result.withdrawn_ids.append(contact_id)
                continue
            settled = self.rules.from_history(contact.history, scored_at, now)
            if settled is None:
                result.still_open += 1
                continue
            setattr(result, settled.outcome.value, getattr(result, settled.outcome.value) + 1)
            updates.append(OutcomeUpdate(contact_id, settled.outcome, settled.at, settled.source,
                                         checked_at=now))
        return updates

    def may_train(self, properties: Mapping[str, str | None]) -> bool:
        return consent_allows_training(properties, self.purposes_property, self.training_purpose)


def consent_allows_training(properties: Mapping[str, str | None], purposes_property: str,
                            training_purpose: str | None) -> bool:
    """`lead_scoring` consent (fail closed: malformed is no), plus `training_purpose` (the
    `model_training` purpose) where the operator requires it."""
    decision = consent_for(properties, purposes_property)
    if not decision.may_score:
        return False
    return not training_purpose or Purpose(training_purpose) in decision.purposes
