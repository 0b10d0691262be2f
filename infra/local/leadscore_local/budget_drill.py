"""Several processes calling HubSpot at once, as several Lambda containers do: does the app stay
under its rate limit? (issue 14, item 4)

`run_drill` starts moto's server and the HubSpot emulator (with a tier's documented limits),
then `processes` child processes, each a `HubSpotClient` on the same app token making
`requests_each` batch reads as fast as its budget lets it: with the app-wide budget in
DynamoDB (`shared=True`, what the Lambdas use) or one token bucket per process at the same rate
(`shared=False`, what they used before). It reports what the emulator saw: requests, 429s, the
busiest rolling 10 s, and the wall time. Used by tests/integration/test_request_budget_drill.py
and infra/bench/budget_bench.py; never shipped.

    python -m leadscore_local.budget_drill --processes 4 --requests 30 [--per-process]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

import boto3

from leadscore_local.hubspot_emulator import HubSpotEmulator, RateLimits
from leadscore_local.moto_speedups import MotoServerProcess

TABLE = "HubSpotBudgetTable"
TOKEN = "pat-local-budget-drill"
APP = "app"


@dataclass
class DrillResult:
    shared: bool
    processes: int
    requests_each: int
    per_second: int
    tier_limit_per_10s: int
    requests: int  # as the emulator counted them, retries included
    rate_limited: int  # 429s the emulator answered
    busiest_10s: int  # most requests admitted in any rolling 10 s
    seconds: float


def run_drill(*, processes: int = 4, requests_each: int = 30, per_second: int = 8,
              shared: bool = True, tier: str = "starter") -> DrillResult:
    limits = RateLimits.for_tier(tier, search_per_second=100)
    moto = MotoServerProcess()
    moto.start()
    try:
        host, port = moto.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        boto3.client("dynamodb", endpoint_url=endpoint, region_name="ap-south-1",
                     aws_access_key_id="local", aws_secret_access_key="local").create_table(
            TableName=TABLE, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "slot", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "slot", "AttributeType": "S"}])
        with HubSpotEmulator(tokens={TOKEN: APP}, rate_limit=limits) as emulator:
            env = {**os.environ, "AWS_ENDPOINT_URL": endpoint, "AWS_DEFAULT_REGION": "ap-south-1",
                   "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
                   "HUBSPOT_REQUESTS_PER_SECOND": str(per_second)}
            if shared:
                env["HUBSPOT_BUDGET_TABLE"] = TABLE
            else:
                env.pop("HUBSPOT_BUDGET_TABLE", None)
            started = time.monotonic()
            children = [subprocess.Popen(
                [sys.executable, "-m", "leadscore_local.budget_drill", "--worker", emulator.url,
                 str(requests_each)], env=env, stdout=subprocess.DEVNULL)
                for _ in range(processes)]
            for child in children:
                if child.wait(timeout=600) != 0:
                    raise RuntimeError("a drill worker failed")
            seconds = time.monotonic() - started
            stats = emulator.stats()
            busiest = emulator.busiest_window(APP)
    finally:
        moto.stop()
    return DrillResult(shared=shared, processes=processes, requests_each=requests_each,
                       per_second=per_second, tier_limit_per_10s=limits.max_requests,
                       requests=stats["requests"].get(APP, 0),
                       rate_limited=stats["rate_limited"].get(APP, 0), busiest_10s=busiest,
                       seconds=round(seconds, 1))


def _worker(url: str, requests_each: int) -> int:
    from leadscore.hubspot.client import HubSpotClient

    client = HubSpotClient(TOKEN, url)  # draws from shared_budget(), as the Lambdas' do
    for _ in range(requests_each):
        client.batch_read(["1"], ["email"])
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m leadscore_local.budget_drill")
    parser.add_argument("--worker", nargs=2, metavar=("URL", "REQUESTS"))
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--per-second", type=int, default=8)
    parser.add_argument("--per-process", action="store_true",
                        help="one token bucket per process instead of the app-wide budget")
    args = parser.parse_args(argv)
    if args.worker:
        return _worker(args.worker[0], int(args.worker[1]))
    result = run_drill(processes=args.processes, requests_each=args.requests,
                       per_second=args.per_second, shared=not args.per_process)
    print(json.dumps(asdict(result)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
