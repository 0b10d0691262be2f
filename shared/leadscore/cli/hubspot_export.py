"""`leadscore hubspot export`: historical contacts → the labelled CSV `leadscore train` reads.

    HUBSPOT_TOKEN=... leadscore hubspot export --config features.toml --out contacts.csv
    leadscore train --data contacts.csv --config features.toml --out model/

The CSV has one row per contact that consented to `lead_scoring`, and the columns the
features.toml names (id, features, label) with HubSpot's internal property names as the
header, exactly like a CRM export. Contacts without that purpose — or with a consent value
we cannot read — are filtered out by the search itself and checked again here (fail closed),
so nothing about them is written.

Paging: CRM search returns at most 10,000 results per query, so the export walks the
contacts in windows: each query asks for contacts with `hs_object_id` greater than the last
one seen, sorted by `hs_object_id`, and pages through it with `after` until it ends or hits
the cap; the next window starts after the last id. Pacing is the client's request budget:
the CLI gives it `REQUESTS_PER_SECOND`, below HubSpot's 5 search requests per second per
token; a 429 that still happens is retried by `HubSpotClient`.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from leadscore.dpdp.consent import DEFAULT_PURPOSES_PROPERTY, Purpose, consent_for
from leadscore.hubspot.client import (
    SEARCH_PAGE,
    SEARCH_REQUESTS_PER_SECOND,
    Contact,
    HubSpotClient,
    last_ascending_id,
)
from leadscore.model.config import FeatureConfig

ID_PROPERTY = "hs_object_id"
SEARCH_WINDOW = 10_000  # HubSpot's search never pages beyond 10,000 results of one query
REQUESTS_PER_SECOND = SEARCH_REQUESTS_PER_SECOND  # an export is all searches


@dataclass
class ExportResult:
    written: int = 0  # contacts written to the CSV
    skipped_no_consent: int = 0  # returned by HubSpot but failing the local consent check
    requests: int = 0  # search requests made
    windows: int = 0  # queries of up to 10,000 results


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
) -> ExportResult:
    """Write every contact with the `lead_scoring` purpose to `out` (CSV, see
    `export_columns`), paced by `client`'s request budget. `progress` is called after each
    page."""
    columns = export_columns(config)
    wanted = list(dict.fromkeys([*columns, ID_PROPERTY, consent_property]))
    result = ExportResult()
    contacts = _consenting_contacts_by_id(
        client.search, wanted, consent_property, page_size=page_size, window=window,
        result=result, progress=progress)
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


def _filters(consent_property: str, after_id: int | None) -> list[dict[str, Any]]:
    filters: list[dict[str, Any]] = [
        {"propertyName": consent_property, "operator": "IN",
         "values": [Purpose.LEAD_SCORING.value]},
    ]
    if after_id is not None:
        filters.append({"propertyName": ID_PROPERTY, "operator": "GT", "value": str(after_id)})
    return [{"filters": filters}]

