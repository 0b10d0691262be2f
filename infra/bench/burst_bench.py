"""HubSpot integration figures through the local stack (issue 4): a webhook burst, duplicate
deliveries, and the synchronous score API.

    .venv/bin/python infra/bench/burst_bench.py --out burst.json

1. Burst: 2,000 contacts consenting to `lead_scoring` (not `ai_enrichment`, so every HubSpot
   request counted is the score path's) are seeded in the HubSpot emulator without webhooks,
   then 2,000 `contact.creation` events go to the ingest endpoint in 20 signed deliveries of
   100 (a few in flight at once, as HubSpot sends them). Figures: ingest acknowledgement
   p50/p99, whether every contact was scored, webhook-to-score p50/p95 (`ai_lead_scored_at`
   minus the moment its delivery was sent), and contacts scored per HubSpot API request
   (`GET /stats` `hubspot_requests`, cross-checked with the ScoreFunction's `HubSpotRequests`
   metric from the stack's log), with the emulator's per-route breakdown.
2. Duplicates: one event delivered twice, another ten times, all copies at once (copies
   answered 5xx are re-sent, as HubSpot retries): score writes counted at the emulator.
3. score_api: warm p50/p99 through the local HTTP front, authenticated with the API key.

Loopback only; the stack stops itself when the script ends, and every wait has a deadline.
Prints a markdown table; writes JSON to --out: `figures` (stable key -> value), `targets`
(key -> target) and `rows` (benchkit.Row: figure, value, unit, target, met, key).
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
from benchkit import (
    ROOT,
    Row,
    emulator,
    exit_status,
    markdown,
    percentile,
    slack_off,
    write_figures,
)

from leadscore_local.demo import new_leads
from leadscore_local.process import LocalStackProcess
from leadscore_local.webhook_sender import encode_events, signed_headers

PORTAL_ID = 62515
SCORE_ROUTES = ("POST /crm/v3/objects/contacts/batch/read",
                "POST /crm/v3/objects/contacts/batch/update")


def post(url: str, body: bytes, headers: dict[str, str], timeout: float = 30) -> int:
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


class Bench:
    def __init__(self, stack: LocalStackProcess):
        self.stack = stack
        self.info = stack.info
        # next() on a count is atomic, so deliveries sent from several threads never share an id.
        self.event_ids = itertools.count(5_000_001)

    # ------------------------------------------------------------------ helpers
    def emulator(self, method: str, action: str, payload: Any = None) -> Any:
        return emulator(self.info["hubspot_url"], method, action, payload)

    def seed(self, leads: list[dict[str, str]]) -> list[str]:
        ids: list[str] = []
        for start in range(0, len(leads), 500):
            ids += self.emulator("POST", "contacts", {"contacts": leads[start:start + 500],
                                                      "announce": False})["ids"]
        return ids

    def creation_event(self, contact_id: str) -> dict[str, Any]:
        return {"eventId": next(self.event_ids), "subscriptionId": 1, "portalId": PORTAL_ID,
                "appId": 54321, "occurredAt": int(time.time() * 1000),
                "subscriptionType": "contact.creation", "attemptNumber": 0,
                "objectId": int(contact_id), "changeFlag": "CREATED", "changeSource": "CRM"}

    def deliver(self, events: list[dict[str, Any]], retries: int = 6) -> tuple[int, float]:
        """Signed POST as HubSpot sends it, re-sent on 5xx; (final status, first-try ms)."""
        url, secret = self.info["webhook_url"], self.info["hubspot_client_secret"]
        first_ms = 0.0
        status = 0
        for attempt in range(retries):
            body = encode_events([{**e, "attemptNumber": attempt} for e in events])
            started = time.perf_counter()
            status = post(url, body, signed_headers(url, body, secret, int(time.time() * 1000)))
            if attempt == 0:
                first_ms = (time.perf_counter() - started) * 1000
            if status < 500:
                break
            time.sleep(0.3 * 2**attempt)
        return status, first_ms

    def wait_scored(self, sent_at: dict[str, float], timeout: float) -> dict[str, float]:
        """Webhook-to-score seconds (`ai_lead_scored_at` minus the moment the contact's delivery
        was sent) of the sent contacts scored within `timeout`."""
        deadline = time.monotonic() + timeout
        scored: dict[str, str] = {}
        while time.monotonic() < deadline:
            scored = {c["id"]: c["properties"]["ai_lead_scored_at"]
                      for c in self.emulator("GET", "contacts")["results"]
                      if c["id"] in sent_at and c["properties"].get("ai_lead_scored_at")}
            if len(scored) == len(sent_at):
                break
            time.sleep(1.0)
        return {cid: datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp() - sent_at[cid]
                for cid, at in scored.items()}

    def settle(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        quiet_since = None
        stats: dict[str, Any] = {}
        while time.monotonic() < deadline:
            stats = self.stack.stats()
            idle = (not stats["busy"] and not any(stats["queues"].values())
                    and not stats["webhooks"].get("pending"))
            if idle:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since > 2.5:  # longer than a batching window
                    return stats
            else:
                quiet_since = None
            time.sleep(0.25)
        raise TimeoutError(f"the local stack did not settle within {timeout:.0f} s")

    def operations(self) -> dict[str, int]:
        return self.emulator("GET", "stats")["operations"].get("functions", {})

    def score_function_requests(self) -> int:
        """Sum of the ScoreFunction's `HubSpotRequests` EMF metric in the stack's log."""
        total = 0
        for line in (self.stack.log_path.read_text(errors="replace").splitlines()
                     if self.stack.log_path else []):
            if '"HubSpotRequests"' not in line or not line.startswith("{"):
                continue
            try:
                value = json.loads(line).get("HubSpotRequests", 0)
            except ValueError:
                continue
            total += int(sum(value) if isinstance(value, list) else value)
        return total

    # ------------------------------------------------------------------ the figures
    def burst(self, contacts: int, deliveries: int, concurrency: int, seed: int) -> list[Row]:
        leads = new_leads(contacts, seed)
        for lead in leads:
            # Scoring only: the figure is the score path's requests, and /stats counts every
            # function's (enrichment's writes are the enrich function's own, measured apart).
            lead["dpdp_consent_purposes"] = "lead_scoring"
        ids = self.seed(leads)
        # One delivery first, so the burst meets warm functions (a cold start is reported
        # on its own row: it is a container's first request, not the burst's).
        status, cold_ms = self.deliver([self.creation_event(ids[0])])
        if status != 200:
            raise RuntimeError(f"warm-up delivery answered {status}")
        self.settle(30)
        ops_before, score_requests_before = self.operations(), self.score_function_requests()
        stats_before = self.stack.stats()["hubspot_requests"]
        per_delivery = -(-len(ids) // deliveries)
        batches = [ids[i:i + per_delivery] for i in range(0, len(ids), per_delivery)]
        sent_at: dict[str, float] = {}
        lock = threading.Lock()

        def send(batch: list[str]) -> tuple[int, float]:
            events = [self.creation_event(cid) for cid in batch]
            with lock:
                now = time.time()
                sent_at.update(dict.fromkeys(batch, now))
            return self.deliver(events)

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            answers = list(pool.map(send, batches))
        acks = [ms for _, ms in answers]
        statuses = sorted({status for status, _ in answers})

        scored = self.wait_scored(sent_at, timeout=180)
        scored_seconds = time.monotonic() - started
        latencies = list(scored.values())
        stats = self.settle(240)
        ops_after = self.operations()
        delta = {route: ops_after.get(route, 0) - ops_before.get(route, 0) for route in ops_after}
        delta = {route: n for route, n in delta.items() if n}
        all_requests = stats["hubspot_requests"] - stats_before
        score_requests = self.score_function_requests() - score_requests_before
        per_request = len(scored) / max(1, all_requests)
        return [
            Row("burst", f"deliveries answered (statuses {statuses})", len(answers), "",
                f"{len(batches)} × 200", statuses == [200], key="deliveries_answered"),
            Row("burst", "ingest ack, first delivery (cold start)", round(cold_ms, 1), "ms",
                key="ingest_ack_cold_ms"),
            Row("burst", "ingest ack p50", round(statistics.median(acks), 1), "ms",
                key="ingest_ack_p50_ms"),
            Row("burst", "ingest ack p99", round(percentile(acks, 99), 1), "ms", "≤ 200 ms",
                percentile(acks, 99) <= 200, key="ingest_ack_p99_ms"),
            Row("burst", "contacts scored", len(scored), f"of {len(ids)}", "all",
                len(scored) == len(ids), key="contacts_scored"),
            Row("burst", "burst fully scored after", round(scored_seconds, 1), "s",
                key="burst_scored_seconds"),
            Row("burst", "webhook-to-score p50", round(statistics.median(latencies), 2)
                if latencies else "n/a", "s", key="webhook_to_score_p50_s"),
            Row("burst", "webhook-to-score p95", round(percentile(latencies, 95), 2)
                if latencies else "n/a", "s", key="webhook_to_score_p95_s"),
            Row("burst", "HubSpot requests (/stats hubspot_requests)", all_requests,
                key="hubspot_requests"),
            Row("burst", "contacts scored per HubSpot request (/stats)", round(per_request, 1),
                "", "≥ 40", per_request >= 40, key="contacts_per_hubspot_request"),
            Row("burst", "HubSpot requests, ScoreFunction's HubSpotRequests metric",
                score_requests, key="score_function_hubspot_requests"),
            Row("burst", "requests by route",
                "; ".join(f"{route} {n}" for route, n in sorted(delta.items()))),
            Row("burst", "DLQ messages", sum(stats["dlqs"].values()), "", "0",
                not sum(stats["dlqs"].values()), key="dlq_messages"),
        ]

    def duplicates(self, copies: int) -> Row:
        lead = new_leads(1, 1000 + copies)[0]
        lead["dpdp_consent_purposes"] = "lead_scoring"  # no enrichment writes in the count
        [contact_id] = self.seed([lead])
        self.settle(30)
        before = self.operations().get(SCORE_ROUTES[1], 0)
        event = self.creation_event(contact_id)
        with ThreadPoolExecutor(max_workers=copies) as pool:
            statuses = list(pool.map(lambda _i: self.deliver([event])[0], range(copies)))
        self.settle(60)
        writes = self.operations().get(SCORE_ROUTES[1], 0) - before
        return Row("duplicates", f"score writes for one event delivered {copies}× at once "
                   f"(answers {sorted(set(statuses))})", writes, "", "1", writes == 1,
                   key=f"score_writes_{copies}x")

    def score_api(self, requests: int, warmup: int) -> list[Row]:
        secrets = boto3.client("secretsmanager", region_name="ap-south-1",
                               endpoint_url=self.info["aws_endpoint_url"],
                               aws_access_key_id="local", aws_secret_access_key="local")
        key = secrets.get_secret_value(
            SecretId="leadscore-local/ScoreApiKeySecret")["SecretString"]
        lead = new_leads(1, 99)[0] | {"dpdp_consent_purposes": "lead_scoring"}
        body = json.dumps({"properties": lead}).encode()
        headers = {"content-type": "application/json", "x-api-key": key}
        timings = []
        for i in range(warmup + requests):
            started = time.perf_counter()
            status = post(self.info["score_api_url"], body, headers)
            if status != 200:
                raise RuntimeError(f"POST /score answered {status}")
            if i >= warmup:
                timings.append((time.perf_counter() - started) * 1000)
        return [
            Row("score_api", f"POST /score p50 (warm, {requests} requests)",
                round(statistics.median(timings), 1), "ms", key="score_api_p50_ms"),
            Row("score_api", "POST /score p99 (warm)", round(percentile(timings, 99), 1), "ms",
                "≤ 300 ms", percentile(timings, 99) <= 300, key="score_api_p99_ms"),
        ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--contacts", type=int, default=2000)
    parser.add_argument("--deliveries", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=4,
                        help="deliveries in flight at once")
    parser.add_argument("--score-api-requests", type=int, default=200)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()

    started = time.monotonic()
    rows: list[Row] = []
    with LocalStackProcess(ROOT) as stack:
        slack_off(stack)  # the score path's figures: no Slack posts, no Slack HubSpot reads
        bench = Bench(stack)
        print("== burst", file=sys.stderr, flush=True)
        rows += bench.burst(args.contacts, args.deliveries, args.concurrency, args.seed)
        print("== duplicates", file=sys.stderr, flush=True)
        rows += [bench.duplicates(2), bench.duplicates(10)]
        print("== score_api", file=sys.stderr, flush=True)
        rows += bench.score_api(args.score_api_requests, warmup=20)
    print(markdown(rows))
    write_figures(args.out, rows, time.monotonic() - started)
    return exit_status(rows)


if __name__ == "__main__":
    sys.exit(main())
