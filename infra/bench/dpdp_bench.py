"""DPDP job figures through the local stack (issue 6): the daily consent sweep and retention
purge over a portal of scored contacts.

    .venv/bin/python infra/bench/dpdp_bench.py --out dpdp.json [--contacts 2000]

Seeds N contacts in the HubSpot emulator without webhooks, each already scored (`ai_*`
properties set, a ledger item in the stack's LedgerTable): 10% have withdrawn all consent,
10% withdrew `ai_enrichment` but still carry an LLM summary, the rest consent to both; half
were scored 200 days ago, half 10 days ago. Then:

1. `POST /schedules/ConsentSweepFunction/run`: wall time, contacts examined per second,
   HubSpot requests (the stack's `hubspot_requests`) per 1,000 contacts examined, and whether
   it erased exactly the withdrawn ones (every `ai_*` cleared, ledger item and receipt).
2. `POST /schedules/RetentionPurgeFunction/run` at the real time: the same figures, and whether
   exactly the contacts past RETENTION_DAYS (180) lost their data.

The sweep examines every scored contact daily, so its HubSpot cost per contact decides how
large a portal one run covers (900 s Lambda timeout less the ledger pass's reserve, searches
paced at 4/s); a larger one is swept over several days (the sweep's cursor).
Prints a markdown table; writes JSON to --out: `figures` (figure name -> value), `targets`
and `rows` (benchkit.Row: figure, value, unit, target, met, key).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
from benchkit import ROOT, Row, emulator, exit_status, markdown, write_figures

from leadscore.dpdp.sweep import LEDGER_PASS_RESERVE_SECONDS, TIME_MARGIN_SECONDS
from leadscore.hubspot.client import (
    DEFAULT_REQUESTS_PER_SECOND,
    SEARCH_PAGE,
    SEARCH_REQUESTS_PER_SECOND,
)
from leadscore.hubspot.properties import AI_PROPERTIES
from leadscore.scoring.ledger import DynamoDBLedger, LedgerEntry
from leadscore.timestamps import iso_millis
from leadscore_local.process import LocalStackProcess

PROP = "dpdp_consent_purposes"
LAMBDA_TIMEOUT_SECONDS = 900


class Bench:
    def __init__(self, stack: LocalStackProcess):
        self.stack = stack
        self.info = stack.info
        self.now = datetime.now(UTC)

    def emulator(self, method: str, action: str, payload: Any = None) -> Any:
        return emulator(self.info["hubspot_url"], method, action, payload)

    def aws(self, kind: str, service: str) -> Any:
        return getattr(boto3, kind)(service, region_name="ap-south-1",
                                    endpoint_url=self.info["aws_endpoint_url"],
                                    aws_access_key_id="x", aws_secret_access_key="x")

    def table(self, part: str) -> str:
        [name] = [t for t in self.aws("client", "dynamodb").list_tables()["TableNames"]
                  if part in t]
        return name

    def seed(self, n: int) -> dict[str, dict[str, Any]]:
        """Contacts by id with their consent and age; ledger items to match."""
        plan, rows = [], []
        for i in range(n):
            consent = ("" if i % 10 == 0 else "lead_scoring" if i % 10 == 1
                       else "lead_scoring;ai_enrichment")
            old = i % 2 == 0
            scored_at = self.now - timedelta(days=200 if old else 10)
            rows.append({
                "email": f"bench{i}@dpdp-bench.example.in", "firstname": f"Bench{i}",
                "jobtitle": "Head of Sales", "country": "India", PROP: consent,
                "ai_lead_score": "72", "ai_lead_tier": "warm", "ai_lead_probability": "0.41",
                "ai_lead_reasons": "Visited pricing page", "ai_lead_model_version": "bench",
                "ai_lead_scored_at": iso_millis(scored_at),
                "ai_lead_summary": "Fits the ideal customer profile",
                "ai_lead_next_action": "Call this week",
            })
            plan.append({"consent": consent, "old": old, "scored_at": scored_at})
        ids: list[str] = []
        for start in range(0, n, 500):
            ids += self.emulator("POST", "contacts", {"contacts": rows[start:start + 500],
                                                      "announce": False})["ids"]
        ledger = DynamoDBLedger(self.table("Ledger"), self.aws("resource", "dynamodb"))
        ledger.put_many(LedgerEntry.for_score(
            contact_id=cid, score=72, probability=0.41, tier="warm", model_version="bench",
            scored_at=p["scored_at"], retention_days=180) for cid, p in zip(ids, plan,
                                                                               strict=True))
        return dict(zip(ids, plan, strict=True))

    def ledger_ids(self) -> set[str]:
        dynamodb = self.aws("client", "dynamodb")
        found: set[str] = set()
        for page in dynamodb.get_paginator("scan").paginate(TableName=self.table("Ledger")):
            found.update(item["contact_id"]["S"] for item in page["Items"])
        return found

    def receipts(self) -> int:
        return self.aws("client", "dynamodb").scan(TableName=self.table("ErasureReceipts"),
                                                   Select="COUNT")["Count"]

    def contacts(self) -> dict[str, dict[str, str]]:
        return {c["id"]: c["properties"] for c in self.emulator("GET", "contacts")["results"]}

    def run(self, logical_id: str, at: datetime | None = None) -> tuple[dict, float, int]:
        before = self.stack.stats()["hubspot_requests"]
        started = time.perf_counter()
        result = self.stack.admin("POST", f"/schedules/{logical_id}/run",
                                  {"time": at.isoformat()} if at else {})["result"]
        seconds = time.perf_counter() - started
        return result, seconds, self.stack.stats()["hubspot_requests"] - before


def sweep_rows(bench: Bench, plan: dict[str, dict[str, Any]]) -> list[Row]:
    receipts_before = bench.receipts()
    result, seconds, requests = bench.run("ConsentSweepFunction")
    withdrawn = {cid for cid, p in plan.items() if not p["consent"]}
    enrichment_gone = {cid for cid, p in plan.items() if p["consent"] == "lead_scoring"}
    contacts, ledger = bench.contacts(), bench.ledger_ids()
    exact = (
        all(not any(contacts[cid].get(p) for p in AI_PROPERTIES) for cid in withdrawn)
        and all(not contacts[cid].get("ai_lead_summary") and contacts[cid].get("ai_lead_score")
                for cid in enrichment_gone)
        and all(contacts[cid].get("ai_lead_summary") for cid in set(plan) - withdrawn
                - enrichment_gone)
        and ledger == set(plan) - withdrawn
        and bench.receipts() - receipts_before == len(withdrawn) + len(enrichment_gone)
    )
    examined = result["examined"] + result["ledger_checked"]
    per_1000 = requests / examined * 1000
    # One run's reach: the time the sweep gives its search pass, at this run's pace and at the
    # client's pacing (searches at 4/s, the other requests at the default 10/s).
    searches = math.ceil(result["examined"] / SEARCH_PAGE) + 1  # the last one finds nothing
    paced_seconds = (searches / SEARCH_REQUESTS_PER_SECOND
                     + (requests - searches) / DEFAULT_REQUESTS_PER_SECOND)
    window = LAMBDA_TIMEOUT_SECONDS - TIME_MARGIN_SECONDS - LEDGER_PASS_RESERVE_SECONDS
    reach = min(window * examined / seconds, window * examined / paced_seconds)
    return [
        Row("sweep", "consent sweep: contacts examined", examined, "contacts"),
        Row("sweep", "consent sweep: wall time", round(seconds, 2), "s"),
        Row("sweep", "consent sweep: contacts examined per second", round(examined / seconds),
            "contacts/s"),
        Row("sweep", "consent sweep: HubSpot requests", requests, "requests"),
        # Searches are 5 per 1,000; the rest clears this bench's (very high) 20% withdrawals.
        Row("sweep", "consent sweep: HubSpot requests per 1,000 contacts examined",
            round(per_1000, 1), "requests"),
        Row("sweep", "consent sweep: contacts one 900 s run covers (estimate)", round(reach),
            "contacts", "≥ 100,000", reach >= 100_000),
        Row("sweep", "consent sweep erased exactly the withdrawn (with receipts)",
            "yes" if exact else "no", "", "yes", exact),
    ]


def purge_rows(bench: Bench, plan: dict[str, dict[str, Any]]) -> list[Row]:
    receipts_before = bench.receipts()
    held = bench.ledger_ids()
    result, seconds, requests = bench.run("RetentionPurgeFunction", bench.now)
    expired = {cid for cid in held if plan[cid]["old"]}
    contacts, ledger = bench.contacts(), bench.ledger_ids()
    exact = (
        ledger == held - expired
        and all(not any(contacts[cid].get(p) for p in AI_PROPERTIES) for cid in expired)
        and all(contacts[cid].get("ai_lead_score") for cid in held - expired)
        and bench.receipts() - receipts_before == len(expired)
    )
    return [
        Row("purge", "retention purge: ledger items past the period", result["expired"],
            "items"),
        Row("purge", "retention purge: wall time", round(seconds, 2), "s"),
        Row("purge", "retention purge: items erased per second",
            round(len(expired) / seconds), "items/s"),
        Row("purge", "retention purge: HubSpot requests per 1,000 items erased",
            round(requests / max(len(expired), 1) * 1000, 1), "requests", "≤ 40",
            requests / max(len(expired), 1) * 1000 <= 40),
        Row("purge", "retention purge removed exactly what is past 180 days (with receipts)",
            "yes" if exact else "no", "", "yes", exact),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--contacts", type=int, default=2000)
    args = parser.parse_args()

    started = time.monotonic()
    with LocalStackProcess(ROOT) as stack:
        bench = Bench(stack)
        print(f"== seeding {args.contacts} scored contacts", file=sys.stderr, flush=True)
        plan = bench.seed(args.contacts)
        print("== consent sweep", file=sys.stderr, flush=True)
        rows = sweep_rows(bench, plan)
        print("== retention purge", file=sys.stderr, flush=True)
        rows += purge_rows(bench, plan)
    print(markdown(rows))
    write_figures(args.out, rows, time.monotonic() - started)
    return exit_status(rows)


if __name__ == "__main__":
    sys.exit(main())
