"""Property history as `HubSpotClient.batch_read_history` returns it: every version HubSpot
keeps of the properties asked for, oldest first, with HubSpot's own timestamps (the learning
loop reads outcomes from them; the Slack notifier whether a summary followed a score)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from typing import Any

# With `propertiesWithHistory` HubSpot refuses more than 50 inputs per batch read (400,
# "The maximum number of inputs supported in a batch request for property histories is 50").
HISTORY_BATCH_LIMIT = 50


@dataclass(frozen=True)
class PropertyVersion:
    """One value a property held, from `propertiesWithHistory`; `timestamp` is epoch ms."""

    value: str
    timestamp: int


@dataclass(frozen=True)
class ContactHistory:
    """A contact's current properties and, for the properties asked for, every version
    HubSpot keeps (oldest first)."""

    id: str
    properties: dict[str, str | None]
    created_at: int | None  # epoch ms
    history: dict[str, list[PropertyVersion]]


def contact_history(obj: Any, wanted: list[str], history_of: list[str]) -> ContactHistory:
    """A batch read's result object (hubspot-api-client's `SimplePublicObjectWithHistory`)."""
    versions = obj.properties_with_history or {}
    return ContactHistory(
        id=str(obj.id),
        properties={name: (obj.properties or {}).get(name) for name in wanted},
        created_at=_epoch_ms(obj.created_at),
        history={name: sorted((PropertyVersion(v.value or "", at)
                               for v in versions.get(name) or []
                               if (at := _epoch_ms(v.timestamp)) is not None),
                              key=lambda version: version.timestamp)
                 for name in history_of},
    )


def _epoch_ms(moment: Any) -> int | None:
    """A datetime the SDK parsed (naive = UTC) as epoch milliseconds."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)
