"""`leadscore hubspot export`: historical contacts → the labelled CSV `leadscore train` reads.

    HUBSPOT_TOKEN=... leadscore hubspot export --config features.toml --out contacts.csv
    leadscore train --data contacts.csv --config features.toml --out model/

The CSV has one row per contact that consented to `lead_scoring`, and the columns the
features.toml names (id, features, label) with HubSpot's internal property names as the
header, exactly like a CRM export. Contacts without that purpose — or with a consent value
we cannot read — are filtered out by the search itself and checked again here (fail closed),
so nothing about them is written.

`--as-of-days N` (a first model from history, without leaking the outcome into the features):
each contact's features are rebuilt as they were N days after it was created, from HubSpot's
property history (batch reads with `propertiesWithHistory`, 50 contacts per request, HubSpot's
limit), and the time is written to the `leadscore_as_of` column, from which `leadscore train`
ages datetime features per row. The label is positive if the contact reached a positive value
after that moment (up to now). Left out: contacts created less than N days ago, contacts
already positive N days after creation (their features would describe a customer, not a lead),
and contacts whose history starts later (imported with an older create date: HubSpot's versions
date from the import). A property HubSpot kept no version of by then is empty.

Paging: CRM search returns at most 10,000 results per query, so the export walks the
contacts in windows: each query asks for contacts with `hs_object_id` greater than the last
one seen, sorted by `hs_object_id`, and pages through it with `after` until it ends or hits
the cap; the next window starts after the last id. Pacing is the client's request budget:
the CLI gives it `REQUESTS_PER_SECOND`, below HubSpot's 5 search requests per second per
token; a 429 that still happens is retried by `HubSpotClient`.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import batched
from pathlib import Path
from typing import Any

from leadscore.cli.csv_files import AS_OF_COLUMN
from leadscore.dpdp.consent import DEFAULT_PURPOSES_PROPERTY, Purpose, consent_for
from leadscore.hubspot.client import (
    SEARCH_PAGE,
    SEARCH_REQUESTS_PER_SECOND,
    Contact,
    HubSpotClient,
    last_ascending_id,
)
from leadscore.hubspot.history import ContactHistory, PropertyVersion
from leadscore.model.config import FeatureConfig
from leadscore.timestamps import iso_millis

ID_PROPERTY = "hs_object_id"
SEARCH_WINDOW = 10_000  # HubSpot's search never pages beyond 10,000 results of one query
REQUESTS_PER_SECOND = SEARCH_REQUESTS_PER_SECOND  # an export is all searches


@dataclass
class ExportResult:
    written: int = 0  # contacts written to the CSV
    skipped_no_consent: int = 0  # returned by HubSpot but failing the local consent check
    requests: int = 0  # search requests made
    windows: int = 0  # queries of up to 10,000 results
    too_recent: int = 0  # --as-of-days: created less than N days ago
    converted_before: int = 0  # --as-of-days: already positive N days after creation
    no_history: int = 0  # --as-of-days: HubSpot keeps no version from that early


def export_columns(config: FeatureConfig) -> list[str]:
    """CSV header: the id column (the config's, else `hs_object_id`), every feature column
    and the label column."""
    return list(dict.fromkeys(
        [config.id or ID_PROPERTY, *config.properties, config.label.column]))


def export_contacts(
    client: HubSpotClient,
    config: FeatureConfig,
    out: Path,
    *,
    consent_property: str = DEFAULT_PURPOSES_PROPERTY,
    page_size: int = SEARCH_PAGE,
    window: int = SEARCH_WINDOW,
    progress: Callable[[ExportResult], object] | None = None,
    as_of_days: int | None = None,
    now: datetime | None = None,
) -> ExportResult:
    """Write every contact with the `lead_scoring` purpose to `out` (CSV, see
    `export_columns`), paced by `client`'s request budget. `progress` is called after each
    page. With `as_of_days`, features as they were that many days after each contact's
    creation (see the module docstring)."""
    columns = export_columns(config) + ([AS_OF_COLUMN] if as_of_days is not None else [])
    wanted = list(dict.fromkeys([*export_columns(config), ID_PROPERTY, consent_property]))
    result = ExportResult()
    contacts = _consenting_contacts_by_id(
        client.search, wanted, consent_property, page_size=page_size, window=window,
        result=result, progress=progress)
    if as_of_days is not None:
        contacts = _as_of(client, contacts, config, timedelta(days=as_of_days),
                          now or datetime.now(UTC), result)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    try:
        with partial.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns)
            for contact in contacts:
                if not consent_for(contact.properties, consent_property).may_score:
                    # The search filter should have excluded it: fail closed anyway.
                    result.skipped_no_consent += 1
                    continue
                values = {**contact.properties,
                          ID_PROPERTY: contact.properties.get(ID_PROPERTY) or contact.id}
                writer.writerow([values.get(column) or "" for column in columns])
                result.written += 1
    except BaseException:
        partial.unlink(missing_ok=True)  # never leave half an export behind
        raise
    partial.replace(out)
    return result


def _consenting_contacts_by_id(
    search: Callable[..., tuple[list[Contact], str | None]],
    properties: list[str],
    consent_property: str,
    *,
    page_size: int,
    window: int,
    result: ExportResult,
    progress: Callable[[ExportResult], object] | None,
) -> Iterator[Contact]:
    """Every contact the search's consent filter matches, in ascending id order: window
    after window of at most `window` results, each paged with `after`."""
    last_id: int | None = None
    while True:
        result.windows += 1
        seen, highest, after = 0, last_id, None
        while True:
            page, after = search(_filters(consent_property, last_id), properties, after=after,
                                 limit=page_size, sorts=[ID_PROPERTY])
            result.requests += 1
            # Keyset paging relies on the sort: never write a silently partial export.
            highest = last_ascending_id(page, highest or 0) if page else highest
            seen += len(page)
            yield from page
            if progress:
                progress(result)
            if after is None or seen + page_size > window:
                break
        if (after is None and seen + page_size <= window) or highest == last_id:
            return  # the query ended before the window's cap: nothing left
        last_id = highest  # the next window starts after the last id seen


def _as_of(client: HubSpotClient, contacts: Iterator[Contact], config: FeatureConfig,
           after_creation: timedelta, now: datetime, result: ExportResult) -> Iterator[Contact]:
    """The contacts with their features and label as of `after_creation` after they were
    created (property history, 50 contacts per read); consent stays as it is now."""
    label = config.label.column
    features = [column for column, _ in config.feature_columns]
    for page in batched(contacts, SEARCH_PAGE):
        histories = client.batch_read_history([c.id for c in page], [label, *features],
                                              [label, *features])
        for contact in page:
            found = histories.get(contact.id)
            if found is None or found.created_at is None:
                continue  # deleted meanwhile
            as_of = found.created_at + int(after_creation.total_seconds() * 1000)
            if as_of > now.timestamp() * 1000:
                result.too_recent += 1
                continue
            rebuilt = _rebuilt(found, config, features, as_of)
            if isinstance(rebuilt, str):
                setattr(result, rebuilt, getattr(result, rebuilt) + 1)
                continue
            yield Contact(contact.id, {**contact.properties, **rebuilt})


def _rebuilt(found: ContactHistory, config: FeatureConfig, features: Sequence[str],
             as_of: int) -> dict[str, str | None] | str:
    """The row's rebuilt values, or why it is left out."""
    label = config.label.column
    versions = found.history.get(label, [])
    if not any(v.timestamp <= as_of for column in (label, *features)
               for v in found.history.get(column, [])):
        return "no_history"  # e.g. imported with an older create date: history starts later
    if config.is_positive(_value_at(versions, as_of)):
        return "converted_before"
    converted = any(v.timestamp > as_of and config.is_positive(v.value) for v in versions)
    moment = datetime.fromtimestamp(as_of / 1000, UTC)
    return {**{column: _value_at(found.history.get(column, []), as_of) for column in features},
            label: config.label.positive[0] if converted else found.properties.get(label),
            AS_OF_COLUMN: iso_millis(moment)}


def _value_at(versions: Sequence[PropertyVersion], at_ms: int) -> str | None:
    """The value a property held at `at_ms`: its last version written by then (oldest first)."""
    value = None
    for version in versions:
        if version.timestamp > at_ms:
            break
        value = version.value
    return value


def _filters(consent_property: str, after_id: int | None) -> list[dict[str, Any]]:
    filters: list[dict[str, Any]] = [
        {"propertyName": consent_property, "operator": "IN",
         "values": [Purpose.LEAD_SCORING.value]},
    ]
    if after_id is not None:
        filters.append({"propertyName": ID_PROPERTY, "operator": "GT", "value": str(after_id)})
    return [{"filters": filters}]

