"""Training sets from feature snapshots: the labelled leads, the time split, and rows in the
shape `leadscore.model.training.train` and `LeadModel.predict` take.

A lead is labelled once its outcome is positive or negative AND its outcome window has closed
(`scored_at + OutcomeWindowDays <= now`). Waiting for the window keeps the base rate honest:
positives settle within days, negatives only when the window closes, so recent leads would
otherwise look far better converting than they are. Leads reached before their first score
(`prior`) are never used.

Rows are the snapshot's features (HubSpot strings as the model saw them) plus the label column
(the config's first positive value, or empty); each row's reference time for datetime ages is
its own first score (point in time), returned alongside.

No numpy here (the model code does the numbers).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from leadscore.learning.outcomes import OutcomeRules
from leadscore.learning.snapshots import Outcome, SnapshotStore, parse_iso
from leadscore.model.config import FeatureConfig

JUDGE_DAYS = 30  # judge on the newest 30 days of labelled leads ...
JUDGE_SHARE = 0.2  # ... or the newest 20 %, whichever is larger ...
MAX_JUDGE_SHARE = 0.5  # ... but never more than half: the challenger needs data to learn from
# The e-mail feature reads only the domain; snapshots keep `@domain`, which the feature parser
# needs as an address. This local part is a placeholder, never a person's.
EMAIL_PLACEHOLDER = "lead"
SNAPSHOT_ATTRIBUTES = ["contact_id", "scored_at", "features", "outcome", "model_version"]


@dataclass(slots=True)
class LabelledLead:
    contact_id: str
    scored_at: datetime
    row: dict[str, str | None]  # features + label column, ready for training and scoring
    positive: bool
    model_version: str  # the model whose snapshot this is (for mismatch messages)


@dataclass
class LabelledSet:
    """The labelled leads, oldest first, and what the rest of the snapshots were."""

    leads: list[LabelledLead] = field(default_factory=list)
    snapshots: int = 0  # items read
    pending: int = 0  # no outcome yet
    prior: int = 0  # converted before the first score: excluded
    window_open: int = 0  # settled, but their window has not closed yet: not used yet

    @property
    def positives(self) -> int:
        return sum(lead.positive for lead in self.leads)

    @property
    def negatives(self) -> int:
        return len(self.leads) - self.positives


def read_labelled(store: SnapshotStore, config: FeatureConfig, rules: OutcomeRules,
                  now: datetime) -> LabelledSet:
    """Every matured labelled lead in the store, as training rows (one parallel Scan)."""
    found = LabelledSet()
    label = label_values(config)
    window = timedelta(days=rules.window_days)
    for item in store.scan_items(projection=SNAPSHOT_ATTRIBUTES):
        found.snapshots += 1
        outcome = item.get("outcome", {}).get("S")
        if outcome is None:
            found.pending += 1
            continue
        if outcome == Outcome.PRIOR:
            found.prior += 1
            continue
        scored_at = parse_iso(item["scored_at"]["S"])
        if scored_at + window > now:
            found.window_open += 1
            continue
        positive = outcome == Outcome.POSITIVE
        found.leads.append(LabelledLead(
            contact_id=item["contact_id"]["S"], scored_at=scored_at,
            row=training_row(json.loads(item["features"]["S"]), config, label[positive],
                             item["contact_id"]["S"]),
            positive=positive, model_version=item.get("model_version", {}).get("S", "")))
    found.leads.sort(key=lambda lead: (lead.scored_at, lead.contact_id))
    return found


def label_values(config: FeatureConfig) -> dict[bool, str]:
    """The label cell of a positive and of a negative row, as `config.is_positive` reads them."""
    return {True: config.label.positive[0], False: ""}


def training_row(features: dict[str, Any], config: FeatureConfig, label: str,
                 contact_id: str) -> dict[str, str | None]:
    """A snapshot's features as a row of a HubSpot export: the e-mail domain as an address the
    feature parser reads, the id column, the label column. Built in place (a million rows)."""
    email = config.features.email
    if email and isinstance(features.get(email), str) and features[email].startswith("@"):
        features[email] = EMAIL_PLACEHOLDER + features[email]
    if config.id:
        features[config.id] = contact_id
    features[config.label.column] = label
    return features


@dataclass(frozen=True)
class Split:
    train: Sequence[LabelledLead]
    judge: Sequence[LabelledLead]

    @property
    def judged_from(self) -> datetime | None:
        return self.judge[0].scored_at if self.judge else None


def time_split(leads: Sequence[LabelledLead], *, judge_days: int = JUDGE_DAYS,
               judge_share: float = JUDGE_SHARE,
               max_judge_share: float = MAX_JUDGE_SHARE) -> Split:
    """Train on the older leads, judge on the newest: those first scored in the last
    `judge_days` before the newest labelled lead, or the newest `judge_share`, whichever is
    more — at most `max_judge_share`. `leads` must be oldest first."""
    n = len(leads)
    if not n:
        return Split([], [])
    cutoff = leads[-1].scored_at - timedelta(days=judge_days)
    by_days = sum(1 for lead in leads if lead.scored_at > cutoff)
    size = min(max(by_days, math.ceil(judge_share * n)), math.floor(max_judge_share * n))
    return Split(leads[:n - size], leads[n - size:])


def missing_columns(leads: Iterable[LabelledLead], columns: Sequence[str]) -> dict[str, float]:
    """Share of leads whose snapshot has no value recorded for each column at all (the column
    was not an input of the model that took it), for the columns where that happens."""
    absent = dict.fromkeys(columns, 0)
    total = 0
    for lead in leads:
        total += 1
        for column in columns:
            if column not in lead.row:
                absent[column] += 1
    return {column: n / total for column, n in absent.items() if n and total}


def rows_and_times(leads: Sequence[LabelledLead]) -> tuple[list[Mapping[str, str | None]],
                                                            list[datetime]]:
    return [lead.row for lead in leads], [lead.scored_at for lead in leads]
