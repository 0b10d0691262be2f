"""Feature snapshots as the learning loop's ScoreFunction writes them (docs/CONTRACTS.md,
"FeatureSnapshotTable"), made by scoring contacts with a model: what the monitoring tests and
benchmarks seed the table with until that writer exists in the same tree.

Also the "never seen" population of the monitoring tests: contacts from a channel and a
country the default model never saw, engaged far beyond any lead it was trained on.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from leadscore.model.features import email_domain, parse_timestamp
from leadscore.timestamps import iso_millis

TTL_GRACE_DAYS = 7
# Real HubSpot values the synthetic generator (and so the default model) never produces.
UNSEEN_SOURCE = "PAID_SOCIAL"
UNSEEN_COUNTRY = "Japan"


def snapshot_features(model: Any, contact: Mapping[str, str | None]) -> dict[str, str | None]:
    """The model's input properties as stored: every features.toml column, the e-mail reduced
    to its domain (`@gmail.com`), as the contract says."""
    features: dict[str, str | None] = {}
    email_column = model.config.features.email
    for column, _ in model.config.feature_columns:
        value = contact.get(column)
        if column == email_column and value:
            domain = email_domain(value)
            value = f"@{domain}" if domain else None
        features[column] = value
    return features


def outcome_of(model: Any, contact: Mapping[str, str | None], scored_at: datetime,
               now: datetime, window_days: int, rng: random.Random) -> tuple[str | None,
                                                                          datetime | None]:
    """(outcome, outcome_at) as the learning loop would have recorded it by `now`: a
    converted contact converts at a random moment within the window; the others are negative
    once the window has closed; pending (None) until then."""
    if model.config.is_positive(contact.get(model.config.label.column)):
        converted_at = scored_at + timedelta(days=rng.uniform(0.5, window_days - 0.5))
        if converted_at <= now:
            return "positive", converted_at
    closes = scored_at + timedelta(days=window_days)
    return ("negative", closes) if closes <= now else (None, None)


def snapshot_items(model: Any, contacts: Sequence[Mapping[str, str | None]],
                   scored_at: Sequence[datetime], *, portal_id: int, now: datetime | None = None,
                   window_days: int = 60, retention_days: int = 180, seed: int = 0,
                   id_column: str = "hs_object_id") -> list[dict[str, Any]]:
    """One FeatureSnapshotTable item per contact, scored by `model` as of its `scored_at`;
    outcomes as known at `now` (none without it)."""
    results = model.score_many(list(contacts), with_reasons=False, now=list(scored_at))
    rng = random.Random(seed)
    items = []
    for contact, result, at in zip(contacts, results, scored_at, strict=True):
        item: dict[str, Any] = {
            "contact_id": str(contact[id_column]),
            "portal_id": portal_id,
            "scored_at": iso_millis(at),
            "scored_day": at.date().isoformat(),
            "model_version": model.version,
            "score": result.score,
            "probability": Decimal(str(result.probability)),
            "tier": result.tier,
            "features": json.dumps(snapshot_features(model, contact), sort_keys=True),
            "schema_hash": model.metadata["schema_hash"],
            "expires_at": int((at + timedelta(days=retention_days + TTL_GRACE_DAYS)).timestamp()),
        }
        if now is not None:
            outcome, outcome_at = outcome_of(model, contact, at, now, window_days, rng)
            if outcome is not None and outcome_at is not None:
                item |= {"outcome": outcome, "outcome_at": iso_millis(outcome_at),
                         "outcome_source": "webhook" if outcome == "positive" else "window"}
        items.append(item)
    return items


def as_of(model: Any, contacts: Sequence[Mapping[str, str]], generated_at: datetime,
          times: Sequence[datetime]) -> list[dict[str, str]]:
    """Contacts generated as of `generated_at`, each moved to its own moment in `times`: the
    model's datetime columns shift with it, so a lead scored on Monday did not visit on
    Tuesday."""
    moved = []
    for contact, at in zip(contacts, times, strict=True):
        copy = dict(contact)
        for column in model.config.features.datetime:
            seconds = parse_timestamp(copy.get(column))
            if seconds is not None:
                shifted = datetime.fromtimestamp(seconds, UTC) + (at - generated_at)
                copy[column] = iso_millis(shifted)
        moved.append(copy)
    return moved


def spread(count: int, start: datetime, end: datetime, seed: int = 0) -> list[datetime]:
    """`count` moments spread at random over [start, end)."""
    rng = random.Random(seed)
    span = (end - start).total_seconds()
    return sorted(start + timedelta(seconds=rng.uniform(0, span)) for _ in range(count))


def never_seen(contacts: Iterable[Mapping[str, str]], seed: int = 0) -> list[dict[str, str]]:
    """The same contacts arriving from a channel and a country the model never saw, each with
    25-40 times the visits and page views (an engagement level beyond any training lead)."""
    rng = random.Random(seed)
    shifted = []
    for contact in contacts:
        factor = rng.uniform(25, 40)
        visits = int(int(contact.get("hs_analytics_num_visits") or 0) * factor) + 200
        views = int(int(contact.get("hs_analytics_num_page_views") or 0) * factor) + visits
        shifted.append({**contact, "hs_analytics_source": UNSEEN_SOURCE,
                        "country": UNSEEN_COUNTRY, "hs_analytics_num_visits": str(visits),
                        "hs_analytics_num_page_views": str(views)})
    return shifted


def put_items(table: Any, items: Iterable[Mapping[str, Any]]) -> int:
    """Writes items with a boto3 Table's batch writer; returns how many."""
    written = 0
    with table.batch_writer(overwrite_by_pkeys=["contact_id"]) as batch:
        for item in items:
            batch.put_item(Item=dict(item))
            written += 1
    return written
