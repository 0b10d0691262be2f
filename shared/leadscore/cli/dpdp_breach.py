"""`leadscore dpdp affected --since T --until T`: whose personal data a stack held or processed
in a time window — the list a personal data breach notice goes to (DPDP Rules, r. 7: each
affected Data Principal without delay, the Board within 72 hours).

Evidence, each naming contacts by HubSpot id only:
- logs: every contact id the functions logged in the window (`CONTACT_ID_KEYS` of the JSON
  entries), from the stack's CloudWatch log groups or from files (`--log-file`: the local
  stack's log, or an export);
- the score ledger: contacts scored in the window, and contacts whose record existed during
  it (first scored before its end and not erased since);
- disclosures: contacts whose data went to an LLM provider during the window;
- erasure receipts: erasures in the window, counted by reason (receipts name nobody; `dpdp
  lookup` checks one id against them).
The result is ids and evidence; the notice itself goes through the channels your CRM holds
(a HubSpot list built from the ids, for instance).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from leadscore.cli.stack_view import StackView
from leadscore.dpdp.erasure import DynamoDBReceipts
from leadscore.timestamps import iso_millis

# Log keys whose values are HubSpot contact ids (a string or a list of them).
CONTACT_ID_KEYS = frozenset({
    "contact_id", "contact_ids", "failed_contact_ids", "scored_contact_ids",
    "skipped_contact_ids", "not_found", "stale", "failed", "inactive_ids"})
POWERTOOLS_TIME_FORMAT = "%Y-%m-%d %H:%M:%S,%f%z"


def entry_time(entry: Mapping[str, Any]) -> datetime | None:
    raw = entry.get("timestamp")
    if isinstance(raw, (int, float)):
        return datetime.fromtimestamp(raw / 1000, tz=UTC)
    if isinstance(raw, str):
        for parse in (lambda t: datetime.strptime(t, POWERTOOLS_TIME_FORMAT),
                      lambda t: datetime.fromisoformat(t.replace("Z", "+00:00"))):
            try:
                moment = parse(raw)
            except ValueError:
                continue
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return None


def contact_ids_in(entry: Mapping[str, Any]) -> set[str]:
    found: set[str] = set()
    for key in CONTACT_ID_KEYS & entry.keys():
        value = entry[key]
        values = value if isinstance(value, list) else [value]
        found.update(str(v) for v in values if isinstance(v, (str, int)) and str(v).isdigit())
    return found


def json_entries(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """The JSON objects among log lines (other lines, and EMF metric blobs, are skipped)."""
    for line in lines:
        start = line.find("{")
        if start < 0:
            continue
        try:
            entry = json.loads(line[start:])
        except ValueError:
            continue
        if isinstance(entry, dict) and "_aws" not in entry:
            yield entry


class Evidence:
    """contact id -> what puts it in the window."""

    def __init__(self) -> None:
        self.by_contact: dict[str, set[str]] = defaultdict(set)

    def add(self, contact_ids: Iterable[str], what: str) -> None:
        for contact_id in contact_ids:
            self.by_contact[str(contact_id)].add(what)


def from_log_entries(evidence: Evidence, entries: Iterable[Mapping[str, Any]], source: str,
                     since: datetime, until: datetime) -> int:
    """Adds the contact ids of entries logged in [since, until); returns how many were read."""
    read = 0
    for entry in entries:
        moment = entry_time(entry)
        if moment is None or not since <= moment < until:
            continue
        read += 1
        evidence.add(contact_ids_in(entry), f"logged by {source}")
    return read


def from_cloudwatch(view: StackView, evidence: Evidence, since: datetime,
                    until: datetime) -> dict[str, int]:
    """Every log group of the stack, read with FilterLogEvents over the window."""
    logs = view.client("logs")
    counts: dict[str, int] = {}
    for logical_id, group in sorted(view.of_type_prefix("LogGroup").items()):
        entries: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"logGroupName": group,
                                  "startTime": int(since.timestamp() * 1000),
                                  "endTime": int(until.timestamp() * 1000) - 1}
        while True:
            page = logs.filter_log_events(**kwargs)
            for event in page.get("events", []):
                # CloudWatch's ingestion time stands in for an entry that carries none.
                for entry in json_entries([event["message"]]):
                    entry.setdefault("timestamp", event["timestamp"])
                    entries.append(entry)
            if not page.get("nextToken"):
                break
            kwargs["nextToken"] = page["nextToken"]
        source = logical_id.removesuffix("LogGroup")
        counts[group] = from_log_entries(evidence, entries, source, since, until)
    return counts


def from_log_files(evidence: Evidence, paths: Iterable[Path], since: datetime,
                   until: datetime) -> dict[str, int]:
    counts = {}
    for path in paths:
        with path.open(errors="replace") as lines:
            counts[str(path)] = from_log_entries(evidence, json_entries(lines), path.name,
                                                 since, until)
    return counts


def _scan(table: Any) -> Iterator[dict[str, Any]]:
    kwargs: dict[str, Any] = {}
    while True:
        page = table.scan(**kwargs)
        yield from page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def from_stores(view: StackView, evidence: Evidence, since: datetime,
                until: datetime) -> None:
    start, end = iso_millis(since), iso_millis(until)
    dynamodb = view.resource("dynamodb")
    if ledger := view.physical("LedgerTable"):
        for item in _scan(dynamodb.Table(ledger)):
            first = str(item.get("first_scored_at") or item.get("scored_at", ""))
            latest = str(item.get("scored_at", ""))
            if start <= latest < end:
                evidence.add([item["contact_id"]], "scored in the window (score ledger)")
            if first and first < end:
                evidence.add([item["contact_id"]], "score held during the window (score ledger)")
    if disclosures := view.physical("DisclosuresTable"):
        for item in _scan(dynamodb.Table(disclosures)):
            for entry in (item.get("disclosures") or {}).values():
                if str(entry.get("first_at", "")) < end and str(entry.get("last_at", "")) >= start:
                    evidence.add([item["contact_id"]],
                                  f"data sent to {entry.get('processor')} "
                                  f"({entry.get('model')}) during the window")


def erasures_in_window(view: StackView, since: datetime, until: datetime) -> dict[str, int]:
    table = view.physical("ErasureReceiptsTable")
    if not table:
        return {}
    receipts = DynamoDBReceipts(table, view.resource("dynamodb")).scan(since=since, until=until)
    return dict(Counter(str(receipt["reason"]) for receipt in receipts))


def affected_report(view: StackView | None, since: datetime, until: datetime, *,
                    log_files: Iterable[Path] = (),
                    cloudwatch: bool = True) -> dict[str, Any]:
    if until <= since:
        raise ValueError("--until must be after --since")
    evidence = Evidence()
    logs_read: dict[str, int] = {}
    if view is not None and cloudwatch:
        logs_read |= from_cloudwatch(view, evidence, since, until)
    logs_read |= from_log_files(evidence, log_files, since, until)
    erased: dict[str, int] = {}
    if view is not None:
        from_stores(view, evidence, since, until)
        erased = erasures_in_window(view, since, until)
    contacts = [{"contact_id": cid, "evidence": sorted(found)}
                for cid, found in sorted(evidence.by_contact.items(),
                                         key=lambda item: (len(item[0]), item[0]))]
    return {
        "window": {"since": iso_millis(since), "until": iso_millis(until)},
        "contacts": contacts,
        "affected": len(contacts),
        "log_entries_read": logs_read,
        "erasures_in_window": erased,
        "notes": [
            "Contacts are HubSpot record ids: build the notification list from them in your "
            "CRM (e.g. a static list imported by Record ID) and notify each without delay.",
            "Erasure receipts name nobody; erasures in the window are counted by reason, and "
            "`leadscore dpdp lookup --contact-id` checks one person.",
        ],
    }
