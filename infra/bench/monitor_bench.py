"""Model monitoring figures (issue 13): the daily monitor over 10,000 and 100,000 stored leads,
the shadow challenger's cost per lead, and how noisy the alarmed figures are without any change.

    .venv/bin/python infra/bench/monitor_bench.py --out monitor.json [--sizes 10000 100000]

1. Monitor, through the local stack: N feature snapshots of the contract's shape (synthetic
   leads scored by the shipped model, first scored over the last 7 days) are written to the
   stack's FeatureSnapshotTable, then `POST /schedules/ModelMonitorFunction/run`: wall time,
   HubSpot requests (the stack's `hubspot_requests`; the learning loop's outcome capture, not
   in this tree, would add its own), leads read. Peak memory: `measure()` over the same table
   in a process of its own (its maximum RSS, model and libraries included), next to the
   function's MemorySize.
2. Shadow challenger: `ShadowChallenger.score` with the shipped model as challenger on batches
   of 100 first-time leads (the score function's batch), then `SnapshotShadowRecorder.record`
   beside their snapshots on the local stack (8 parallel conditional UpdateItems): each per lead,
   and the whole shadow work per batch (p50, p99) against SHADOW_MAX_MILLISECONDS.
3. Noise: the largest feature PSI of windows of leads like the training ones (no drift at all)
   at 200 and 1,000 leads (MonitorMinLeads is 200), and how often the conversion alarm would
   fire on cohorts whose true rate is the training rate (binomial draws, 1,000, 3,000 and 7,000
   final outcomes; the monitor emits the rate only from about 6,100: leadscore.monitoring.accuracy).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
from benchkit import ROOT, Row, exit_status, markdown, percentile, write_figures

from leadscore.cli.synthetic import generate_contacts
from leadscore.model import load
from leadscore.model.reference import Reference
from leadscore.monitoring.accuracy import ALARM_SIGMAS, conversion_change_error
from leadscore.monitoring.drift import window_drift
from leadscore.monitoring.settings import ShadowSettings
from leadscore.monitoring.shadow import MODEL_FILES, ChallengerRef, ShadowChallenger
from leadscore.monitoring.snapshots import parse_items
from leadscore.observability import metrics
from leadscore_local.cfn_yaml import load_template
from leadscore_local.process import LocalStackProcess
from leadscore_local.snapshot_seed import as_of, snapshot_items, spread

MODEL_DIR = ROOT / "layers/model/model"
TEMPLATE = load_template(ROOT / "template.yaml")
MEMORY_MB = TEMPLATE["Resources"]["ModelMonitorFunction"]["Properties"]["MemorySize"]
SHADOW_BUDGET_MS = ShadowSettings().shadow_max_milliseconds  # SHADOW_MAX_MILLISECONDS' default
PEAK_MEMORY_SNIPPET = """
import json, resource, sys, time
from datetime import datetime
import boto3
from leadscore.model import load
from leadscore.monitoring.monitor import measure
from leadscore.monitoring.snapshots import DynamoDBSnapshots
endpoint, table, model_dir, now = sys.argv[1:5]
dynamodb = boto3.resource("dynamodb", endpoint_url=endpoint, region_name="ap-south-1",
                          aws_access_key_id="x", aws_secret_access_key="x")
started = time.perf_counter()
result = measure(load(model_dir), DynamoDBSnapshots(table, dynamodb),
                 datetime.fromisoformat(now))
print(json.dumps({"seconds": time.perf_counter() - started, "read": result.snapshots_read,
                  "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


class Bench:
    def __init__(self, stack: LocalStackProcess):
        self.stack, self.info = stack, stack.info
        self.model = load(MODEL_DIR)
        self.now = datetime.now(UTC)
        self.dynamodb = boto3.resource("dynamodb", region_name="ap-south-1",
                                       endpoint_url=self.info["aws_endpoint_url"],
                                       aws_access_key_id="x", aws_secret_access_key="x")
        self.table_name = self.info["resources"]["FeatureSnapshotTable"]["Ref"]

    def leads(self, count: int, seed: int, start: datetime, end: datetime) -> list[dict]:
        pool = generate_contacts(min(count, 20_000), seed=seed, now=self.now)
        rng = random.Random(seed)
        contacts = [dict(rng.choice(pool), hs_object_id=f"{seed}-{i}") for i in range(count)]
        times = spread(count, start, end, seed)
        return snapshot_items(self.model, as_of(self.model, contacts, self.now, times), times,
                              portal_id=seed)

    def seed(self, items: list[dict]) -> float:
        """Writes the items with a few parallel batch writers; returns the seconds taken."""
        started = time.perf_counter()

        def write(chunk: list[dict]) -> None:
            table = self.dynamodb.Table(self.table_name)
            with table.batch_writer() as batch:
                for item in chunk:
                    batch.put_item(Item=item)

        size = max(1, len(items) // 8)
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(write, [items[i:i + size] for i in range(0, len(items), size)]))
        return time.perf_counter() - started

    def clear(self) -> None:
        table = self.dynamodb.Table(self.table_name)
        keys = [item["contact_id"] for page in _scan(table) for item in page]
        with table.batch_writer() as batch:
            for key in keys:
                batch.delete_item(Key={"contact_id": key})

    def run_monitor(self) -> tuple[dict[str, Any], float]:
        request = urllib.request.Request(
            f"{self.info['admin_url']}/schedules/ModelMonitorFunction/run",
            data=json.dumps({"time": self.now.isoformat()}).encode(), method="POST",
            headers={"content-type": "application/json"})
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=1800) as response:
            answer = json.loads(response.read())
        return answer["result"], time.perf_counter() - started

    def peak_memory(self) -> dict[str, float]:
        done = subprocess.run(
            [sys.executable, "-c", PEAK_MEMORY_SNIPPET, self.info["aws_endpoint_url"],
             self.table_name, str(MODEL_DIR), self.now.isoformat()],
            capture_output=True, text=True, timeout=1800, check=True, cwd=ROOT)
        return json.loads(done.stdout.strip().splitlines()[-1])

    def monitor_rows(self, size: int, with_memory: bool) -> list[Row]:
        self.clear()
        items = self.leads(size, seed=size, start=self.now - timedelta(days=7), end=self.now)
        seconds = self.seed(items)
        print(f"seeded {size:,} snapshots in {seconds:.0f} s", file=sys.stderr, flush=True)
        before = self.stack.stats()["hubspot_requests"]
        result, wall = self.run_monitor()
        requests = self.stack.stats()["hubspot_requests"] - before
        label = f"{size:,} leads in the window"
        rows = [
            Row("monitor", f"monitor: stored leads read ({label})", result["snapshots_read"],
                "leads", f"{size:,}", result["snapshots_read"] == size, key=f"read_{size}"),
            Row("monitor", f"monitor wall time, {label} (local stack, moto)", round(wall, 1),
                "s", "≤ 900 s (Timeout)", wall <= 900, key=f"wall_{size}"),
            Row("monitor", f"monitor HubSpot requests, {label}", requests, "",
                key=f"hubspot_{size}"),
        ]
        if with_memory:
            memory = self.peak_memory()
            rows.append(Row("monitor", f"monitor peak memory, {label} (own process)",
                            round(memory["max_rss_mb"]), "MiB", f"≤ {MEMORY_MB} MiB (MemorySize)",
                            memory["max_rss_mb"] <= MEMORY_MB, key=f"memory_{size}"))
        return rows

    def shadow_rows(self) -> list[Row]:
        """The score function's shadow work per batch of 100 first-time leads: scoring with
        the challenger, then recording beside the snapshots (on the local stack's moto)."""
        from leadscore.monitoring.shadow import SnapshotShadowRecorder

        challenger = _local_challenger(self.model.version)
        self.clear()
        items = self.leads(3000, seed=5, start=self.now - timedelta(hours=1), end=self.now)
        self.seed(items)
        leads = [(item["contact_id"], json.loads(item["features"])) for item in items]
        challenger.score(leads[:100])  # warm-up (the challenger was loaded by refresh())
        recorder = SnapshotShadowRecorder(self.table_name, boto3.client(
            "dynamodb", region_name="ap-south-1", endpoint_url=self.info["aws_endpoint_url"],
            aws_access_key_id="x", aws_secret_access_key="x"))
        scoring_ms, recording_ms, recorded = [], [], 0
        for start in range(0, len(leads), 100):
            started = time.perf_counter()
            results = challenger.score(leads[start:start + 100])
            scored = time.perf_counter()
            recorded += recorder.record(results)
            scoring_ms.append((scored - started) * 1000)
            recording_ms.append((time.perf_counter() - scored) * 1000)
            metrics.clear_metrics()  # what a function would flush; not this script's output
        total_ms = [a + b for a, b in zip(scoring_ms, recording_ms, strict=True)]
        scoring_p99 = percentile(scoring_ms, 99)
        # Recording runs against moto here: its latency says nothing about DynamoDB's, so the
        # budget is judged on the scoring only and the recording is shown as measured.
        return [
            Row("shadow", "shadow scoring cost per lead (batches of 100, p50)",
                round(statistics.median(scoring_ms) * 10, 1), "µs", key="shadow_score_us"),
            Row("shadow", "shadow scoring, one batch of 100 first-time leads, p99",
                round(scoring_p99, 1), "ms", f"≤ {SHADOW_BUDGET_MS:g} ms (pauses above)",
                scoring_p99 <= SHADOW_BUDGET_MS, key="shadow_score_batch_p99_ms"),
            Row("shadow", f"shadow recording cost per lead (8 parallel UpdateItem on the local "
                          f"stack's moto, not DynamoDB; {recorded:,} of {len(leads):,} recorded)",
                round(statistics.median(recording_ms) * 10, 1), "µs", key="shadow_record_us"),
            Row("shadow", "shadow work (scoring + recording on moto) per batch of 100, p50",
                round(statistics.median(total_ms), 1), "ms", key="shadow_batch_p50_ms"),
            Row("shadow", "shadow work (scoring + recording on moto) per batch of 100, p99",
                round(percentile(total_ms, 99), 1), "ms", key="shadow_batch_p99_ms"),
        ]


def _scan(table: Any):
    kwargs: dict[str, Any] = {"ProjectionExpression": "contact_id"}
    while True:
        page = table.scan(**kwargs)
        yield page["Items"]
        if "LastEvaluatedKey" not in page:
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


class _DirectorySource:
    def __init__(self, version: str):
        self.version = version

    def current(self) -> ChallengerRef:
        return ChallengerRef(version=self.version, prefix=f"candidates/{self.version}/")

    def fetch(self, ref: ChallengerRef, into: Path) -> None:
        for name in MODEL_FILES:
            (into / name).write_bytes((MODEL_DIR / name).read_bytes())


def _local_challenger(version: str) -> ShadowChallenger:
    shadow = ShadowChallenger(_DirectorySource(version), None, max_milliseconds=1e9,
                              pause_seconds=600, background=False,
                              workdir=Path(tempfile.mkdtemp(prefix="shadow-bench-")))
    shadow.refresh()
    return shadow


def noise_rows() -> list[Row]:
    model = load(MODEL_DIR)
    reference = Reference.from_metadata(model.metadata)
    now = datetime(2026, 3, 1, tzinfo=UTC)
    pool = generate_contacts(20_000, seed=123, now=now)
    rows = []
    for size in (200, 1000):
        worst = []
        for draw in range(50):
            rng = random.Random(draw)
            contacts = [dict(c, hs_object_id=str(i)) for i, c in enumerate(rng.sample(pool, size))]
            times = spread(size, now - timedelta(days=7), now, draw)
            leads = parse_items(snapshot_items(model, as_of(model, contacts, now, times), times,
                                               portal_id=1)).snapshots
            drift = window_drift(model, reference, leads, days=7,
                                 scored_from=now - timedelta(days=7), scored_to=now, min_leads=1)
            worst.append(drift.max_psi)
        p95 = percentile(worst, 95)
        rows.append(Row("noise", f"largest feature PSI of {size:,} ordinary leads (no drift), "
                                 "p95 of 50 windows", round(p95, 3), "", "< 0.25", p95 < 0.25,
                        key=f"psi_noise_{size}"))
    rate = model.metadata["metrics"]["positive_rate"]
    rng = random.Random(7)
    for size in (1000, 3000, 7000):
        # the monitor emits ConversionRate only where the alarm's 10 % is ≥ ALARM_SIGMAS errors
        emitted = ALARM_SIGMAS * conversion_change_error(rate, size) <= 0.10
        fired = sum(abs(sum(rng.random() < rate for _ in range(size)) / size / rate - 1) > 0.10
                    for _ in range(2000))
        rows.append(Row("noise", f"a 10 % conversion threshold crossed with no real change, "
                                 f"{size:,} final outcomes at {100 * rate:.1f} % (2,000 simulated "
                                 f"days; {'emitted' if emitted else 'not emitted: too few'})",
                        round(100 * fired / 2000, 1), "% of days",
                        "≤ 1 % where emitted" if emitted else "",
                        100 * fired / 2000 <= 1 if emitted else None,
                        key=f"conversion_noise_{size}"))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    args = parser.parse_args()
    started = time.monotonic()
    rows: list[Row] = []
    with LocalStackProcess(ROOT) as stack:
        bench = Bench(stack)
        for size in args.sizes:
            rows += bench.monitor_rows(size, with_memory=size == max(args.sizes))
        rows += bench.shadow_rows()
    rows += noise_rows()
    print(markdown(rows))
    write_figures(args.out, rows, time.monotonic() - started)
    return exit_status(rows)


if __name__ == "__main__":
    sys.exit(main())
