"""Sustained webhook load through the local stack (issue 7 part 2): a steady stream of signed
HubSpot deliveries for a fixed time, beside burst_bench.py's one-off 2,000-event burst.

    .venv/bin/python infra/bench/load_bench.py --out load.json [--seconds 120] [--rate 50]

`rate × seconds` contacts consenting to `lead_scoring` are seeded in the HubSpot emulator
without webhooks; then one `contact.creation` event per contact goes to the ingest endpoint,
`--per-delivery` events a delivery, deliveries started on a fixed schedule (open loop: a slow
answer does not slow the offered rate; a few deliveries may be in flight). Afterwards the stack
is given a bounded time to finish. Figures: offered events/s, ingest ack p50/p99, webhook-to-
score p50/p95 over the whole stream and over its last quarter (a rate the stack cannot keep up
with shows as a growing latency), contacts scored = contacts sent, DLQ messages, events lost.

The default rate, 50 events/s (6,000 events in 2 minutes), is half of what this stack held on
a 2-core machine shared with other work: 30-second trials at 40 and 100 events/s both kept
webhook-to-score flat (p95 2.9 s and 4.8 s, the same in the stream's last quarter, all scored
within 5 s of its end), but at 100/s the ingest ack p99 passed 200 ms (233 ms), the local
stack's one Python process being the limit, not the design.

Loopback only; bounded in count (rate × seconds events) and time (every wait has a deadline);
the stack stops when the script ends. Prints a markdown table; writes JSON to --out like the
other scripts (benchkit.write_figures).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchkit import ROOT, Row, exit_status, markdown, percentile, slack_off, write_figures
from burst_bench import Bench

from leadscore_local.demo import new_leads
from leadscore_local.process import LocalStackProcess


def sustained(bench: Bench, seconds: float, rate: float, per_delivery: int, seed: int,
              drain_timeout: float) -> list[Row]:
    leads = new_leads(round(rate * seconds) + 1, seed)  # the first one warms the functions
    for lead in leads:
        lead["dpdp_consent_purposes"] = "lead_scoring"  # the score path only
    ids = bench.seed(leads)
    status, _ = bench.deliver([bench.creation_event(ids[0])])
    if status != 200:
        raise RuntimeError(f"warm-up delivery answered {status}")
    bench.settle(30)
    ids = ids[1:]
    batches = [ids[i:i + per_delivery] for i in range(0, len(ids), per_delivery)]
    interval = per_delivery / rate
    sent_at: dict[str, float] = {}
    lock = threading.Lock()

    def send(batch: list[str]) -> tuple[int, float]:
        events = [bench.creation_event(cid) for cid in batch]
        with lock:
            sent_at.update(dict.fromkeys(batch, time.time()))
        return bench.deliver(events)

    started = time.monotonic()
    futures = []
    with ThreadPoolExecutor(max_workers=8) as pool:
        for n, batch in enumerate(batches):
            time.sleep(max(0.0, started + n * interval - time.monotonic()))
            futures.append(pool.submit(send, batch))
        sending_seconds = time.monotonic() - started
        answers = [future.result() for future in futures]
    offered = len(ids) / sending_seconds
    acks = [ms for _, ms in answers]
    statuses = sorted({status for status, _ in answers})

    latency = bench.wait_scored(sent_at, drain_timeout)
    drained_after = time.monotonic() - started - sending_seconds
    stats = bench.settle(120)
    last_quarter_from = min(sent_at.values()) + 0.75 * sending_seconds
    late = [s for cid, s in latency.items() if sent_at[cid] >= last_quarter_from]
    values = list(latency.values())
    dlq = sum(stats["dlqs"].values())
    lost = len(ids) - len(latency)  # in a DLQ or nowhere: either way not scored

    def rounded(xs: list[float], pct: float) -> float | str:
        return round(percentile(xs, pct), 2) if xs else "n/a"

    return [
        Row("load", f"sustained stream: events sent over {sending_seconds:.0f} s "
            f"({len(batches)} deliveries of ≤ {per_delivery})", len(ids), "events",
            key="events_sent"),
        Row("load", "offered rate", round(offered, 1), "events/s", key="offered_events_per_s"),
        Row("load", f"deliveries answered (statuses {statuses})", len(answers), "",
            "all 200", statuses == [200], key="deliveries_answered"),
        Row("load", "ingest ack p50 (sustained)", round(statistics.median(acks), 1), "ms",
            key="ingest_ack_p50_ms"),
        Row("load", "ingest ack p99 (sustained)", round(percentile(acks, 99), 1), "ms",
            "≤ 200 ms", percentile(acks, 99) <= 200, key="ingest_ack_p99_ms"),
        Row("load", "webhook-to-score p50 (sustained)", rounded(values, 50), "s",
            key="webhook_to_score_p50_s"),
        Row("load", "webhook-to-score p95 (sustained)", rounded(values, 95), "s",
            key="webhook_to_score_p95_s"),
        Row("load", "webhook-to-score p95, last quarter of the stream", rounded(late, 95), "s",
            key="webhook_to_score_p95_last_quarter_s"),
        Row("load", "all scored after the stream ended", round(drained_after, 1), "s",
            key="drained_after_s"),
        Row("load", "contacts scored (sustained)", len(latency), f"of {len(ids)} sent", "all",
            len(latency) == len(ids), key="contacts_scored"),
        Row("load", "DLQ messages (sustained)", dlq, "", "0", dlq == 0, key="dlq_messages"),
        Row("load", "events lost (sustained: sent, never scored)", lost, "", "0",
            lost == 0, key="events_lost"),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--seconds", type=float, default=120, help="length of the stream")
    parser.add_argument("--rate", type=float, default=50, help="events per second offered")
    parser.add_argument("--per-delivery", type=int, default=10, help="events per delivery")
    parser.add_argument("--drain-timeout", type=float, default=120,
                        help="seconds to wait after the stream for every contact's score")
    parser.add_argument("--seed", type=int, default=23)
    args = parser.parse_args()

    started = time.monotonic()
    with LocalStackProcess(ROOT) as stack:
        slack_off(stack)  # the score path's figures: no Slack posts, no Slack HubSpot reads
        print(f"== sustained: {args.rate:g} events/s for {args.seconds:g} s", file=sys.stderr,
              flush=True)
        rows = sustained(Bench(stack), args.seconds, args.rate, args.per_delivery, args.seed,
                         args.drain_timeout)
    print(markdown(rows))
    write_figures(args.out, rows, time.monotonic() - started)
    return exit_status(rows)


if __name__ == "__main__":
    sys.exit(main())
