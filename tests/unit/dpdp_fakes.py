"""In-memory HubSpot, ledger and receipt store for the DPDP unit tests (consent sweep,
retention purge, erasure). The HubSpot fake evaluates the search filters leadscore sends
(HAS_PROPERTY, NOT_HAS_PROPERTY, LT/GT on ids and datetimes, OR-ed groups) the way HubSpot
does, so a wrong filter or paging bug shows up as a missed contact."""

from __future__ import annotations

from datetime import UTC, datetime

from fakes import FakeHubSpot

from leadscore.hubspot.client import Contact
from leadscore.scoring.ledger import LedgerState


def _ms(value: str) -> float | None:
    if value.isdigit():
        return float(value)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp() * 1000


class SearchableHubSpot(FakeHubSpot):
    """FakeHubSpot whose search honours the filters and records them; also a GdprDeleter."""

    def __init__(self, contacts: dict[str, dict[str, str | None]] | None = None):
        super().__init__(contacts)
        self.searches: list[list[dict]] = []  # type: ignore[assignment]  # the filter groups
        self.sorts: list[list[str]] = []
        self.gdpr_deleted: list[str] = []
        self.ignores_sorts = False  # True: pages come in descending id order, sort or not

    # --- HubSpotClient search ----------------------------------------------------------------

    def search(self, filter_groups, properties, after=None, limit=100, sorts=()):
        self.searches.append([dict(g) for g in filter_groups])
        self.sorts.append(list(sorts))
        # HubSpot orders by the sort asked for (leadscore's loops ask for ascending ids) and
        # promises nothing without one.
        ascending = list(sorts) == ["hs_object_id"] and not self.ignores_sorts
        matching = sorted((cid for cid, props in self.contacts.items()
                           if any(self._group(cid, props, g) for g in filter_groups)),
                          key=int, reverse=not ascending)
        start = int(after or 0)
        page = matching[start:start + limit]
        contacts = [Contact(id=cid, properties={p: self.contacts[cid].get(p) for p in properties})
                    for cid in page]
        return contacts, (str(start + limit) if start + limit < len(matching) else None)

    # --- GdprDeleter -----------------------------------------------------------------------

    def gdpr_delete(self, contact_id):
        if contact_id not in self.contacts:
            return False
        del self.contacts[contact_id]
        self.gdpr_deleted.append(contact_id)
        return True

    # ---------------------------------------------------------------------------------------

    @staticmethod
    def _group(cid, props, group) -> bool:
        for spec in group["filters"]:
            name, operator = spec["propertyName"], spec["operator"]
            stored = cid if name == "hs_object_id" else (props.get(name) or None)
            if operator == "HAS_PROPERTY":
                ok = stored is not None
            elif operator == "NOT_HAS_PROPERTY":
                ok = stored is None
            elif operator in ("LT", "GT"):
                mine = _ms(stored) if stored is not None else None
                wanted = _ms(spec["value"])
                ok = (mine is not None and wanted is not None
                      and (mine < wanted if operator == "LT" else mine > wanted))
            else:
                raise AssertionError(f"operator {operator} not expected")
            if not ok:
                return False
        return True


class MemoryLedger:
    """`DynamoDBLedger`'s DPDP side (an `ErasableStore` and `ScoredContacts`) over
    {contact_id: scored_at}."""

    record_name = "ledger"

    def __init__(self, scored: dict[str, datetime] | None = None):
        self.scored = dict(scored or {})
        self.deleted: list[str] = []

    def states(self, contact_ids):
        return {cid: LedgerState() for cid in contact_ids if cid in self.scored}

    def delete_many(self, contact_ids):
        held = set(self.states(contact_ids))
        for cid in sorted(held):
            self.deleted.append(cid)
            self.scored.pop(cid, None)
        return held

    def scored_before(self, cutoff):
        return iter([cid for cid, at in self.scored.items() if at < cutoff])


class MemoryReceipts:
    def __init__(self):
        self.receipts = []

    def put_many(self, receipts):
        self.receipts.extend(receipts)

    def by_subject(self, eraser, contact_id):
        subject = eraser.subject(contact_id)
        return [r for r in self.receipts if r.subject == subject]
