"""Does the monthly retrain fit Lambda? And does the loop learn a portal's own pattern?

1. Retrain at 10k / 100k / 1M snapshot rows (`--sizes`): wall time per step and peak memory
   (ru_maxrss) of a fresh process doing what ModelRetrainFunction does after closing the
   outcome windows — read every snapshot through `SnapshotStore.scan_items` (a 4-segment
   parallel Scan, parsed by the real botocore client), build the labelled set, split by time,
   train the challenger with `leadscore.model.training.train` (each row aged from its first
   score), score the judged leads with champion and challenger. The snapshots are synthetic
   (a pool of 20,000 synthetic contacts, resampled, with this portal's conversion pattern).

   Where the Scan comes from, honestly: not moto (whose Scan is a Python loop over its own
   objects and says nothing about DynamoDB), but a local HTTP server answering DynamoDB's own
   wire format: pages cut at DynamoDB's 1 MB of data read, holding the projected attributes
   only, as DynamoDB returns them. So the read figure is the client's real cost — HTTP, JSON
   parsing, botocore's shape parsing of every attribute — without DynamoDB's service time
   and network latency, which are not measured here.
2. The end-to-end scenario (`leadscore_local.learning_drill`) against the local stack: AUC of
   champion and challenger on the judged leads, and of the promoted and shipped models on new
   leads.

Usage: python infra/bench/retrain_bench.py [--sizes 10000 100000 1000000] [--no-drill]
       [--out FILE]. Exits 1 if a size does not fit the retrain function's time and memory.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from benchkit import ROOT, Row, exit_status, markdown, write_figures

TABLE = "FeatureSnapshotTable"
POOL = 20_000  # distinct synthetic contacts the snapshots are resampled from
PAGE_BYTES = 1_000_000  # DynamoDB stops a Scan page at 1 MB of data read
SEGMENTS = 4  # what SnapshotStore.scan_items uses
SPREAD_DAYS = 90  # first scores spread over the last 90 days before the outcome windows
LAMBDA_TIMEOUT_S = 900
WATCHDOG_S = 45  # the retrain records its decision this long before the timeout
TEMPLATE_MEMORY_MB = 3008  # ModelRetrainFunction's MemorySize
LAMBDA_MAX_MEMORY_MB = 10_240
NOW = datetime(2026, 9, 1, tzinfo=UTC)


# ------------------------------------------------------------------- the DynamoDB stand-in


def _items(n: int, seed: int = 5) -> list[tuple[str, int]]:
    """(the item as DynamoDB returns it with SnapshotStore's projection, the full item's
    size in bytes) for `n` snapshots."""
    sys.path.insert(0, str(ROOT / "infra" / "local"))
    from leadscore.cli.synthetic import generate_contacts
    from leadscore.learning.snapshots import Snapshot
    from leadscore.model import load
    from leadscore_local.learning_drill import converts

    model = load(ROOT / "layers" / "model" / "model")
    pool = generate_contacts(min(n, POOL), seed, now=NOW)
    rng = random.Random(seed)
    first = NOW - timedelta(days=60 + SPREAD_DAYS)
    items = []
    for i in range(n):
        contact = dict(pool[i % len(pool)])
        contact["hs_analytics_num_visits"] = str(rng.randint(0, 60))
        at = first + timedelta(seconds=SPREAD_DAYS * 86_400 * i / n)
        converted = converts(contact, rng)
        snapshot = Snapshot.take(
            contact_id=str(10_000_000 + i), portal_id=1, scored_at=at,
            model_version=model.version, score=rng.randint(0, 100), probability=rng.random(),
            tier="warm", properties=contact, columns=model.properties, email_column="email",
            schema_hash=model.metadata["schema_hash"], retention_days=180)
        full = snapshot.item() | {"outcome": "positive" if converted else "negative",
                                  "outcome_at": snapshot.scored_at,
                                  "outcome_source": "webhook" if converted else "window",
                                  "outcome_checked_at": snapshot.scored_at}
        typed = {k: ({"N": str(v)} if isinstance(v, int | float) or type(v).__name__ ==
                     "Decimal" else {"S": v}) for k, v in full.items()}
        projected = {k: typed[k] for k in ("contact_id", "scored_at", "features", "outcome",
                                           "model_version")}
        items.append((json.dumps(projected, separators=(",", ":")),
                      len(json.dumps(typed, separators=(",", ":")))))
    return items


def _pages(items: list[tuple[str, int]]) -> list[list[bytes]]:
    """Scan pages per segment: each segment's items, cut where DynamoDB would cut (1 MB of
    data read), encoded as DynamoDB's JSON."""
    segments: list[list[bytes]] = []
    for segment in range(SEGMENTS):
        pages, page, size = [], [], 0
        mine = items[segment::SEGMENTS]
        for index, (projected, full_size) in enumerate(mine):
            page.append(projected)
            size += full_size
            if size >= PAGE_BYTES or index == len(mine) - 1:
                pages.append(page)
                page, size = [], 0
        encoded = []
        for number, page in enumerate(pages):
            more = (f',"LastEvaluatedKey":{{"contact_id":{{"S":"{number + 1}"}}}}'
                    if number + 1 < len(pages) else "")
            encoded.append((f'{{"Items":[{",".join(page)}],"Count":{len(page)},'
                            f'"ScannedCount":{len(page)}{more}}}').encode())
        segments.append(encoded)
    return segments


def _serve(n: int, ready) -> None:
    segments = _pages(_items(n))
    total = sum(len(page) for pages in segments for page in pages)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def do_POST(self) -> None:
            request = json.loads(self.rfile.read(int(self.headers["content-length"])))
            start = int(request.get("ExclusiveStartKey", {}).get("contact_id", {}).get("S", 0))
            body = segments[request.get("Segment", 0)][start]
            self.send_response(200)
            self.send_header("content-type", "application/x-amz-json-1.0")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ready.send((f"http://127.0.0.1:{server.server_address[1]}", total,
                sum(len(pages) for pages in segments)))
    server.serve_forever()


# ------------------------------------------------------------------- the measured process


def measure(n: int, endpoint: str) -> dict:
    """The retrain's steps after closing outcome windows, as RetrainJob runs them."""
    import os

    import boto3
    from botocore.config import Config

    os.environ.update(AWS_DEFAULT_REGION="ap-south-1", AWS_ACCESS_KEY_ID="x",
                      AWS_SECRET_ACCESS_KEY="x")
    from leadscore.learning.dataset import read_labelled, rows_and_times, time_split
    from leadscore.learning.gate import judge_models
    from leadscore.learning.outcomes import OutcomeRules
    from leadscore.learning.registry import layer_zip
    from leadscore.learning.snapshots import SnapshotStore
    from leadscore.model import load
    from leadscore.model.config import LabelledData
    from leadscore.model.scoring import CONFIG_FILE
    from leadscore.model.training import train

    seconds: dict[str, float] = {}
    started = time.perf_counter()

    def step(name: str) -> None:
        nonlocal started
        now = time.perf_counter()
        seconds[name] = round(now - started, 2)
        started = now

    champion_dir = ROOT / "layers" / "model" / "model"
    champion = load(champion_dir)
    config = champion.config
    config_text = (champion_dir / CONFIG_FILE).read_text()
    client = boto3.client("dynamodb", endpoint_url=endpoint, config=Config(
        max_pool_connections=SEGMENTS + 2, retries={"max_attempts": 1}, read_timeout=120))
    store = SnapshotStore(TABLE, dynamodb=boto3.resource("dynamodb", endpoint_url=endpoint),
                          client=client)
    baseline_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    step("load champion")
    labelled = read_labelled(store, config, OutcomeRules.from_config(config, 60), NOW)
    split = time_split(labelled.leads)
    step("read snapshots")
    rows, times = rows_and_times(split.train)
    out = Path(f"/tmp/retrain-bench-{n}-{os.getpid()}")
    train(LabelledData(rows=rows, name="bench", sha256="bench"), config, config_text, out,
          now=times, echo=lambda _line: None)
    challenger = load(out)
    step("train challenger")
    champion_figures, _ = judge_models(champion, split.judge)
    challenger_figures, _ = judge_models(challenger, split.judge)
    step("judge")
    layer = layer_zip(out)
    step("layer zip")
    return {"rows": n, "labelled": len(labelled.leads), "train_rows": len(split.train),
            "judge_rows": len(split.judge), "seconds": seconds,
            "total_seconds": round(sum(seconds.values()), 1),
            "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "baseline_mb": round(baseline_mb), "layer_kb": round(len(layer) / 1024),
            "read_items_per_second": round(n / seconds["read snapshots"]),
            "auc_champion": champion_figures.auc, "auc_challenger": challenger_figures.auc}


def size_rows(n: int) -> list[Row]:
    ready_in, ready_out = multiprocessing.Pipe(duplex=False)
    server = multiprocessing.get_context("fork").Process(target=_serve, args=(n, ready_out),
                                                         daemon=True)
    generated = time.monotonic()
    server.start()
    try:
        endpoint, wire_bytes, pages = ready_in.recv()
        generated = time.monotonic() - generated
        done = subprocess.run([sys.executable, __file__, "--measure", str(n), endpoint],
                              capture_output=True, text=True, timeout=3 * 3600, cwd=ROOT)
        if done.returncode != 0:
            raise RuntimeError(f"measuring {n:,} rows failed: {done.stderr[-2000:]}")
        figures = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        server.terminate()
        server.join(10)
    label = f"{n:,} snapshots"
    fits_time = figures["total_seconds"] <= LAMBDA_TIMEOUT_S - WATCHDOG_S - 60
    fits_memory = figures["peak_mb"] <= TEMPLATE_MEMORY_MB
    key = f"retrain_{n}"
    print(f"{label}: generated and encoded in {generated:.0f} s", file=sys.stderr)
    return [
        Row("retrain", f"retrain at {label}: wall time (read + train + judge), this machine",
            figures["total_seconds"], "s", f"≤ {LAMBDA_TIMEOUT_S - WATCHDOG_S - 60} s",
            fits_time, key=f"{key}_seconds"),
        Row("retrain", f"retrain at {label}: peak memory (ru_maxrss)", figures["peak_mb"],
            "MB", f"≤ {TEMPLATE_MEMORY_MB} MB", fits_memory, key=f"{key}_peak_mb"),
        Row("retrain", f"retrain at {label}: seconds per step",
            ", ".join(f"{k} {v}" for k, v in figures["seconds"].items()), key=f"{key}_steps"),
        Row("retrain", f"retrain at {label}: Scan read + parse (botocore, DynamoDB wire "
            f"format, {pages} pages of ≤ 1 MB, {wire_bytes / 1e6:.0f} MB on the wire)",
            figures["read_items_per_second"], "items/s", key=f"{key}_read_items_per_s"),
        Row("retrain", f"retrain at {label}: judged AUC champion → challenger",
            f"{figures['auc_champion']} → {figures['auc_challenger']}",
            key=f"{key}_auc"),
    ]


def drill_rows() -> list[Row]:
    sys.path.insert(0, str(ROOT / "infra" / "local"))
    from leadscore_local.learning_drill import LearningDrill
    from leadscore_local.process import LocalStackProcess

    with LocalStackProcess(ROOT) as stack:
        result = LearningDrill(stack, ROOT).run()
    decision = result.decision
    champion, challenger = decision.get("champion") or {}, decision.get("challenger") or {}
    return [
        Row("learning", "end-to-end scenario: retrain decision (local stack, simulated clock "
            "+100 days)", decision["result"], "", "promoted", decision["result"] == "promoted",
            key="drill_result"),
        Row("learning", f"end-to-end scenario: AUC on the {decision['data']['judge_rows']} "
            "judged leads, champion (shipped)", champion.get("auc"), key="drill_auc_champion"),
        Row("learning", "end-to-end scenario: AUC on the judged leads, challenger",
            challenger.get("auc"), "", "> champion",
            (challenger.get("auc") or 0) > (champion.get("auc") or 1), key="drill_auc_challenger"),
        Row("learning", f"end-to-end scenario: AUC on {result.new_leads} new leads, scored by "
            "the promoted model", result.auc_promoted, "", "> shipped",
            (result.auc_promoted or 0) > (result.auc_shipped or 1), key="drill_auc_promoted"),
        Row("learning", "end-to-end scenario: AUC on the same new leads, shipped model",
            result.auc_shipped, key="drill_auc_shipped"),
        Row("learning", f"end-to-end scenario: retrain run in the local stack "
            f"({result.leads} leads)", result.seconds.get("retrain"), "s",
            key="drill_retrain_seconds"),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--no-drill", action="store_true")
    parser.add_argument("--measure", nargs=2, metavar=("ROWS", "ENDPOINT"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(int(args.measure[0]), args.measure[1])))
        return 0
    started = time.monotonic()
    rows: list[Row] = []
    for n in args.sizes:
        rows += size_rows(n)
    if not args.no_drill:
        rows += drill_rows()
    print(markdown(rows))
    if args.out:
        write_figures(args.out, rows, time.monotonic() - started)
    return exit_status(rows)


if __name__ == "__main__":
    sys.exit(main())
