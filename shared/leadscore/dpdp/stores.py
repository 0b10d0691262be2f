"""What DPDP needs from stores it does not own: the score ledger today (`leadscore.scoring.ledger.
DynamoDBLedger` implements both protocols), the feature snapshots next. The wiring injects them,
so dpdp never imports the code that writes them.

No numpy/lightgbm here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Protocol


class ErasableStore(Protocol):
    """Records derived from contacts, keyed by contact id, that erasure must delete."""

    record_name: str  # how an erasure receipt names this store's record, e.g. "ledger"

    def delete_many(self, contact_ids: Sequence[str]) -> set[str]:
        """Deletes the records of these contacts; returns the ids that had one."""
        ...


class ScoredContacts(Protocol):
    """The contacts a store holds a score for, found by when they were scored: the consent
    sweep's ledger pass (everything scored before now) and the retention purge (before the
    cutoff)."""

    def scored_before(self, cutoff: datetime) -> Iterator[str]: ...


class ScoreRecords(ErasableStore, ScoredContacts, Protocol):
    """Both: what the DPDP jobs need of the score ledger."""
