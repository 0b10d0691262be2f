"""Events lost under faults (issue 7): every fault drill of `leadscore_local.fault_drills`, in
larger variants than the e2e tests, against one `leadscore local up` subprocess.

    .venv/bin/python infra/bench/fault_bench.py --out faults.json [--scale 1.0]

Each drill seeds contacts in the HubSpot emulator, injects its faults through the stack's
`POST /faults` (HubSpot 429/5xx/timeouts, LLM 429/529/500/timeouts/malformed output,
DynamoDB throttling, a ScoreFunction crash mid-batch), or puts poison on ScoreQueue, or
delivers duplicate and late webhooks, then counts per contact from HubSpot's property history:
applied once, applied more than once, dead-lettered with a reason, lost.

Loopback only, bounded (about 3 minutes at --scale 1 on a 2-core machine). Prints a
markdown table; writes JSON to --out: `figures` (stable key -> value), `targets` and `rows`
(benchkit.Row: figure, value, unit, target, met, key). Exits 1 when an event was lost or
applied twice.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from benchkit import ROOT, Row, exit_status, markdown, write_figures

from leadscore_local.fault_drills import SCENARIOS, FaultDrills, Outcome
from leadscore_local.process import LocalStackProcess

# Per-scenario sizes at --scale 1 (the e2e tests use the drills' smaller defaults).
SIZES: dict[str, dict[str, int]] = {
    "hubspot_429_burst": {"contacts": 150, "faults": 8},
    "hubspot_5xx": {"contacts": 150, "faults": 6},
    "hubspot_timeouts": {"contacts": 40, "faults": 2},
    "llm_faults": {"contacts": 8, "faults": 1},
    "dynamodb_throttling": {"contacts": 150, "ingest_faults": 3, "faults": 8},
    "poison_messages": {"good": 40, "poison": 10},
    "duplicates_and_out_of_order": {"contacts": 100, "copies": 4},
    "score_crash_mid_batch": {"contacts": 150, "crashes": 2},
}


def scaled(scale: float) -> dict[str, dict[str, int]]:
    return {name: {k: max(1, round(v * scale)) if k != "copies" else v for k, v in size.items()}
            for name, size in SIZES.items()}


def rows_for(outcomes: list[Outcome]) -> list[Row]:
    rows = []
    for o in outcomes:
        rows.append(Row(
            "faults", f"{o.scenario}: {o.events_accepted} events, {o.faults_fired} faults fired "
            f"→ {o.applied_once} applied once, {o.dead_lettered} in a DLQ with a reason "
            f"({o.seconds} s)", o.lost + o.applied_more_than_once + o.dead_lettered_without_reason,
            "lost/twice/reasonless", "0", o.holds, key=f"faults_{o.scenario}_violations"))
    lost = sum(o.lost + o.dead_lettered_without_reason for o in outcomes)
    twice = sum(o.applied_more_than_once for o in outcomes)
    rows.append(Row("faults", "events lost under faults (all drills)", lost, "", "0", lost == 0,
                    key="events_lost_under_faults"))
    rows.append(Row("faults", "contacts applied more than once under faults", twice, "", "0",
                    twice == 0, key="applied_twice_under_faults"))
    rows.append(Row("faults", "events accepted during the drills",
                    sum(o.events_accepted for o in outcomes), "", key="fault_events_accepted"))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies the drill sizes")
    parser.add_argument("--only", nargs="*", choices=SCENARIOS, help="run these drills only")
    args = parser.parse_args()

    started = time.monotonic()
    outcomes: list[Outcome] = []
    with LocalStackProcess(ROOT) as stack:
        drills = FaultDrills(stack)
        sizes = scaled(args.scale)
        for name in args.only or SCENARIOS:
            print(f"== {name} {sizes[name]}", file=sys.stderr, flush=True)
            outcome = drills.run([name], sizes)[0]
            print(json.dumps(outcome.as_dict()), file=sys.stderr, flush=True)
            outcomes.append(outcome)
    rows = rows_for(outcomes)
    print(markdown(rows))
    write_figures(args.out, rows, time.monotonic() - started)
    return exit_status(rows)


if __name__ == "__main__":
    sys.exit(main())
