"""`leadscore dpdp report` and `leadscore dpdp lookup`: what the erasure receipts show.

The report counts erasures (one receipt per contact and erasure) by reason and by day, ISO week
or month: the figures a data-protection officer shows a Data Protection Board. The lookup
answers one data principal's question ("was my data erased, when, why?"): it hashes the
contact id with the receipt key, the only way to find a contact's receipts.

Receipts carry no personal data (see leadscore.dpdp.erasure), so neither does the output.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

from leadscore.dpdp.erasure import OUTSIDE_SCOPE, ErasureReason

Period = Literal["day", "week", "month"]


def period_of(erased_at: str, period: Period) -> str:
    """`2026-06-01` (day), `2026-W23` (ISO week) or `2026-06` (month) of a receipt time."""
    moment = datetime.fromisoformat(erased_at.replace("Z", "+00:00"))
    if period == "day":
        return moment.strftime("%Y-%m-%d")
    if period == "month":
        return moment.strftime("%Y-%m")
    year, week, _ = moment.isocalendar()
    return f"{year}-W{week:02d}"


class DpdpReport(BaseModel):
    period: Period
    since: str | None = None  # ISO, inclusive
    until: str | None = None  # ISO, exclusive
    counts: dict[str, dict[str, int]] = {}  # period → reason → erasures
    totals: dict[str, int] = {}  # reason → erasures
    total: int = 0
    enrichment_only: int = 0  # of which only the LLM-written properties were cleared
    ledger_records_deleted: int = 0
    hubspot_contacts_deleted: int = 0  # inactive contacts GDPR-deleted by the purge

    def table(self) -> str:
        """A fixed-width table: one row per period, one column per reason seen, and totals."""
        reasons = [r.value for r in ErasureReason if r.value in self.totals]
        window = f"{self.since or 'first receipt'} .. {self.until or 'now'}"
        if not self.total:
            return f"No erasure receipts in {window}."
        width = max(len(r) for r in reasons) + 2
        head = f"{self.period:<10}" + "".join(f"{r:>{width}}" for r in reasons) + f"{'total':>8}"
        lines = [f"Erasures by reason per {self.period} ({window})", head, "-" * len(head)]
        for key in sorted(self.counts):
            row = self.counts[key]
            lines.append(f"{key:<10}" + "".join(f"{row.get(r, 0):>{width}}" for r in reasons)
                         + f"{sum(row.values()):>8}")
        lines.append("-" * len(head))
        lines.append(f"{'total':<10}" + "".join(f"{self.totals[r]:>{width}}" for r in reasons)
                     + f"{self.total:>8}")
        lines.append(f"{self.enrichment_only} of them cleared only LLM-written properties; "
                     f"{self.ledger_records_deleted} ledger records deleted; "
                     f"{self.hubspot_contacts_deleted} HubSpot contacts GDPR-deleted.")
        return "\n".join(lines)


def build_report(receipts: Iterable[Mapping[str, Any]], period: Period = "month", *,
                 since: datetime | None = None, until: datetime | None = None) -> DpdpReport:
    """Counts receipts (items of ErasureReceiptsTable, already filtered to the window)."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    totals: Counter[str] = Counter()
    enrichment_only = ledger = contacts = 0
    for item in receipts:
        reason = str(item["reason"])
        counts[period_of(str(item["erased_at"]), period)][reason] += 1
        totals[reason] += 1
        enrichment_only += item.get("scope") == "enrichment"
        records = item.get("records") or ()
        ledger += "ledger" in records
        contacts += "hubspot_contact" in records
    return DpdpReport(
        period=period, since=since.isoformat() if since else None,
        until=until.isoformat() if until else None,
        counts={key: dict(value) for key, value in counts.items()}, totals=dict(totals),
        total=sum(totals.values()), enrichment_only=enrichment_only,
        ledger_records_deleted=ledger, hubspot_contacts_deleted=contacts)


def describe_receipt(item: Mapping[str, Any]) -> str:
    """One line per receipt for `dpdp lookup`, and one per thing it could not reach."""
    erased = list(item.get("hubspot_properties") or []) + [
        f"{record} record" for record in item.get("records") or []]
    lines = [f"{item['erased_at']}  {item['reason']} ({item.get('scope', 'all')}): "
             f"{', '.join(erased) if erased else 'nothing was held'}"]
    lines += [f"    not reached: {OUTSIDE_SCOPE.get(code, code)}"
              for code in item.get("outside_scope") or []]
    return "\n".join(lines)
