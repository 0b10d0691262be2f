"""Timestamps as HubSpot and leadscore's own records write them.

No numpy/lightgbm here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

# Local-only: the local stack sets it so a test can run a schedule at a simulated time. The
# template never declares it (tests/unit/test_template.py), so deployed functions cannot be told.
SIMULATED_CLOCK_SETTING = "LEADSCORE_LOCAL_SIMULATED_CLOCK"


def iso_millis(moment: datetime) -> str:
    """`YYYY-MM-DDTHH:MM:SS.sssZ` in UTC: what HubSpot datetime properties, the ledger and the
    erasure receipts store; sorts lexicographically in time order."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_hubspot_datetime(value: str | None) -> datetime | None:
    """A HubSpot datetime value: ISO-8601 (naive = UTC), or epoch milliseconds when it was
    written that way; None when empty or unreadable."""
    text = (value or "").strip()
    try:
        if text.isdigit():
            return datetime.fromtimestamp(int(text) / 1000, tz=UTC)
        parsed = datetime.fromisoformat(text)
    except (ValueError, OverflowError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def scheduled_time(event: Mapping[str, Any] | None,
                   environ: Mapping[str, str] | None = None) -> datetime:
    """"Now" for a scheduled job: the real clock. Only where the local-only setting
    SIMULATED_CLOCK_SETTING is "1" does the event's `time` (ISO-8601) stand in for it: in a
    deployed function a caller-supplied `time` would let anyone allowed to invoke the retention
    purge erase everything early."""
    env = os.environ if environ is None else environ
    raw = event.get("time") if isinstance(event, Mapping) else None
    if env.get(SIMULATED_CLOCK_SETTING) == "1" and isinstance(raw, str):
        try:
            moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            moment = None
        if moment is not None:
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return datetime.now(UTC)
