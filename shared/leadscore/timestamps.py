"""Timestamps as HubSpot and leadscore's own records write them.

No numpy/lightgbm here.
"""

from __future__ import annotations

from datetime import UTC, datetime


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
