"""The whole AWS cost of scoring leads (issue 14, item 12), measured through the local stack and
priced at ap-south-1 list prices (aws_prices.py: the table, its sources and the date read).

    .venv/bin/python infra/bench/aws_cost_bench.py --out aws_cost.json [--contacts 1000]

Synthetic leads are created by HubSpot's batch create API and announced by the HubSpot emulator
as HubSpot does (`leadscore_local.import_scenario`), so they take the real flow as the stack
runs it: signed webhook → IngestFunction → ScoreQueue → ScoreFunction → hot/warm → EnrichQueue
→ EnrichFunction (Anthropic emulator) and HotLeadsTopic → SlackAlertQueue →
SlackNotifyFunction (Slack receiver). What is measured, per run, from the stack
(`leadscore_local.usage_meter`, on through LEADSCORE_LOCAL_USAGE_FILE):
- Lambda: invocations and billed duration per function (each invocation rounded up to 1 ms),
  memory from template.yaml. Duration here is a proxy: every function shares one process on
  this machine, and AWS's services answer over loopback;
- SQS: the functions' sends, and the receives (those that returned messages), deletes and
  visibility changes of the pollers standing in for Lambda's event source mappings, each 64 KB
  of payload a request;
- SNS publishes; DynamoDB read and write request units (item sizes from requests and
  responses; an update's size is a lower bound over 1 KB); Secrets Manager calls;
- HTTP API requests: the webhook deliveries HubSpot's emulator made;
- CloudWatch Logs: the bytes of the functions' JSON log lines and EMF metric lines in the
  stack's log; EMF custom metrics: the distinct metrics emitted (GET /metrics?detail=1).
Derived, and said so in the output: Lambda's own START/END/REPORT log lines per invocation,
the time HubSpot round trips from Mumbai would add (local HubSpot answers at once), X-Ray
traces (one per invocation: an upper bound of the default sampling), the idle long polling of
Lambda's SQS pollers (fixed, per month). The LLM's cost of the same run comes from the
Anthropic emulator's tokens (llm_cost_bench.price); the LLM answers with a realistic latency
(--llm-first-token-seconds, --llm-tokens-per-second), which the enrich function is billed for.

Prints a summary; writes JSON (figures, usage, prices with sources, assumptions) to --out.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict
from pathlib import Path
from typing import Any

from aws_prices import (
    MUMBAI,
    PRICE_LIST_QUOTES,
    PRICES,
    READ_ON,
    FunctionUsage,
    Usage,
    cost_by_service,
    fixed_monthly,
    per_thousand,
)
from benchkit import ROOT
from llm_cost_bench import price as llm_price
from llm_cost_bench import set_profile

from leadscore_local.import_scenario import run_import, settle
from leadscore_local.process import LocalStackProcess
from leadscore_local.template import functions, load_template
from leadscore_local.usage_meter import USAGE_FILE_SETTING

# Lambda writes these to CloudWatch Logs for every invocation (the XRAY line with tracing on).
PLATFORM_LINES = (
    "START RequestId: 6f1c0ad4-3b7e-4c9e-9e57-0c2b9a7c1d11 Version: $LATEST\n"
    "END RequestId: 6f1c0ad4-3b7e-4c9e-9e57-0c2b9a7c1d11\n"
    "REPORT RequestId: 6f1c0ad4-3b7e-4c9e-9e57-0c2b9a7c1d11\tDuration: 1234.56 ms\tBilled "
    "Duration: 1235 ms\tMemory Size: 1024 MB\tMax Memory Used: 180 MB\t\n"
    "XRAY TraceId: 1-6750a1b2-3c4d5e6f7a8b9c0d1e2f3a4b\tSegmentId: 1a2b3c4d5e6f7a8b\t"
    "Sampled: true\t\n")
HUBSPOT_ROUND_TRIP_SECONDS = 0.25  # assumption: ap-south-1 to HubSpot's US data centre
IDLE_POLLERS, LONG_POLL_SECONDS = 5, 20  # assumption: per event source mapping, while idle
SECONDS_PER_MONTH = 30 * 24 * 3600
# The stack's own SQS calls that Lambda's event source mappings make in AWS too.
POLLER_OPERATIONS = ("ReceiveMessage", "DeleteMessageBatch", "DeleteMessage",
                     "ChangeMessageVisibility", "ChangeMessageVisibilityBatch")


def read_usage(path: Path, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"the stack wrote no usage to {path}")
        time.sleep(0.2)
    return json.loads(path.read_text())


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=60) as response:
        return json.loads(response.read())


def requests_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, float]]:
    """"caller service Operation" -> counts made during the run."""
    delta = {}
    for key, counts in after["aws_requests"].items():
        old = before["aws_requests"].get(key, {})
        changed = {name: value - old.get(name, 0) for name, value in counts.items()}
        if changed.get("requests"):
            delta[key] = changed
    return delta


def total(requests: dict[str, dict[str, float]], service: str, field: str,
          callers: str = "app", operations: tuple[str, ...] = ()) -> float:
    """Sum of `field` over the service's requests: by the app (every caller but the stack's
    plumbing) or by the stack's pollers, optionally for some operations only."""
    found = 0.0
    for key, counts in requests.items():
        caller, svc, operation = key.split(" ")
        if svc != service or (operations and operation not in operations):
            continue
        if (callers == "app") == (caller != "stack"):
            found += counts.get(field, 0)
    return found


def log_bytes(log_path: Path, offset: int) -> tuple[int, int]:
    """(bytes of the functions' JSON and EMF lines, bytes of anything else) written since."""
    with open(log_path, "rb") as log:
        log.seek(offset)
        lines = log.read().splitlines(keepends=True)
    structured = sum(len(line) for line in lines if line.lstrip().startswith(b"{"))
    return structured, sum(len(line) for line in lines) - structured


def distinct_metrics(points: list[dict[str, Any]]) -> int:
    return len({(p.get("namespace"), p["name"], json.dumps(p.get("dimensions"), sort_keys=True))
                for p in points})


def template_counts(template: dict[str, Any]) -> dict[str, int]:
    kinds = [resource.get("Type") for resource in template.get("Resources", {}).values()]
    return {"alarms": kinds.count("AWS::CloudWatch::Alarm"),
            "dashboards": kinds.count("AWS::CloudWatch::Dashboard"),
            "secrets": kinds.count("AWS::SecretsManager::Secret")}


def architectures(template: dict[str, Any]) -> dict[str, str]:
    default = template.get("Globals", {}).get("Function", {}).get("Architectures", ["x86_64"])
    return {name: (resource.get("Properties", {}).get("Architectures") or default)[0]
            for name, resource in template.get("Resources", {}).items()
            if resource.get("Type") == "AWS::Serverless::Function"}


def run(contacts: int, seed: int, timeout: float, first_token: float,
        tokens_per_second: float) -> dict[str, Any]:
    template = load_template(ROOT / "template.yaml")
    memory = {spec.logical_id: spec.memory_mb for spec in functions(template, ROOT)}
    arch = architectures(template)
    with tempfile.TemporaryDirectory() as tmp:
        usage_file = Path(tmp) / "usage.json"
        with LocalStackProcess(ROOT, env={USAGE_FILE_SETTING: str(usage_file)}) as stack:
            anthropic = stack.info["anthropic_url"]
            set_profile(anthropic, {
                "first_token_seconds": first_token,
                "output_tokens_per_second": tokens_per_second})
            settle(stack, 120)
            time.sleep(1)  # the usage file is written every half second
            before, llm_before = read_usage(usage_file), get_json(anthropic + "/_emulator/stats")
            metrics_before = len(stack.admin("GET", "/metrics?detail=1"))
            offset = stack.log_path.stat().st_size
            outcome = run_import(stack, contacts, seed, timeout)
            time.sleep(1)
            after, llm_after = read_usage(usage_file), get_json(anthropic + "/_emulator/stats")
            points = stack.admin("GET", "/metrics?detail=1")[metrics_before:]
            slack_posts = len(stack.admin("GET", "/slack")["posts"])
            structured_bytes, other_bytes = log_bytes(stack.log_path, offset)

    requests = requests_delta(before, after)
    ran = {name: {field: value - before["lambda"].get(name, {}).get(field, 0)
                  for field, value in counts.items()}
           for name, counts in after["lambda"].items()}
    ran = {name: counts for name, counts in ran.items() if counts["invocations"]}
    round_trip_ms = {name: n * HUBSPOT_ROUND_TRIP_SECONDS * 1000
                     for name, n in outcome.by_function.items()}
    invocations = sum(counts["invocations"] for counts in ran.values())
    platform_bytes = len(PLATFORM_LINES.encode()) * invocations
    usage = Usage(
        functions={name: FunctionUsage(counts["invocations"],
                                       counts["billed_ms"] + round_trip_ms.get(name, 0),
                                       memory[name], arch[name])
                   for name, counts in ran.items()},
        http_api_requests=outcome.deliveries,
        sqs_requests=total(requests, "sqs", "chunks")
        + total(requests, "sqs", "chunks", "stack", POLLER_OPERATIONS)
        - total(requests, "sqs", "empty", "stack", ("ReceiveMessage",)),  # idle: fixed cost
        sns_publishes=total(requests, "sns", "chunks"),
        dynamodb_read_units=total(requests, "dynamodb", "read_units"),
        dynamodb_write_units=total(requests, "dynamodb", "write_units"),
        log_bytes=structured_bytes + platform_bytes,
        secrets_manager_calls=int(total(requests, "secretsmanager", "requests")),
        xray_traces=invocations,
    )
    by_service = cost_by_service(usage)
    aws_usd = sum(by_service.values())
    tokens = {model: {name: value - llm_before["tokens_by_model"].get(model, {}).get(name, 0)
                      for name, value in counts.items()}
              for model, counts in llm_after["tokens_by_model"].items()}
    llm_usd = sum(llm_price(counts, model)[0] for model, counts in tokens.items())
    scored = outcome.scored
    polled_queues = sum(len(spec.sqs_sources) for spec in functions(template, ROOT))
    monthly = fixed_monthly(distinct_metrics(points), **template_counts(template),
                            idle_sqs_requests=polled_queues * IDLE_POLLERS
                            * SECONDS_PER_MONTH / LONG_POLL_SECONDS)
    return {
        "contacts": outcome.contacts, "consented": outcome.consented, "scored": scored,
        "enriched": outcome.enriched, "slack_posts": slack_posts,
        "dead_lettered": outcome.dead_lettered, "seconds": outcome.seconds,
        "usd_per_1000_scored_aws": round(per_thousand(aws_usd, scored), 5),
        "usd_per_1000_contacts_aws": round(per_thousand(aws_usd, outcome.contacts), 5),
        "usd_per_1000_scored_by_service": {
            service: round(per_thousand(usd, scored), 6) for service, usd in by_service.items()},
        "usd_per_1000_scored_llm": round(per_thousand(llm_usd, scored), 5),
        "usd_per_1000_scored_total": round(per_thousand(aws_usd + llm_usd, scored), 5),
        "fixed_usd_per_month": {name: round(usd, 2) for name, usd in monthly.items()},
        "fixed_usd_per_month_total": round(sum(monthly.values()), 2),
        "usage": {
            "lambda": {name: {**counts, "memory_mb": memory[name], "architecture": arch[name],
                              "hubspot_requests": outcome.by_function.get(name, 0),
                              "derived_hubspot_round_trip_ms": round_trip_ms.get(name, 0)}
                       for name, counts in ran.items()},
            "aws_requests": requests,
            "http_api_requests": outcome.deliveries, "webhook_events": outcome.events,
            "log_bytes_functions": structured_bytes, "log_bytes_derived_platform": platform_bytes,
            "log_bytes_other_not_counted": other_bytes,
            "custom_metrics": distinct_metrics(points), "llm_tokens_by_model": tokens,
        },
        "prices": {name: asdict(price) for name, price in PRICES.items()},
        "prices_read_on": READ_ON, "prices_quoted_from": PRICE_LIST_QUOTES,
        "assumptions": {
            "lambda_duration": "measured in-process on this machine (all functions share one "
                               "Python process on 2 shared cores; AWS services over loopback): "
                               "a proxy, likely above Lambda's for CPU work and below it for "
                               "network waits other than the LLM's and HubSpot's",
            "hubspot_round_trip_seconds": HUBSPOT_ROUND_TRIP_SECONDS,
            "llm_latency": {"first_token_seconds": first_token,
                            "output_tokens_per_second": tokens_per_second,
                            "source": "Claude 3.5 Haiku on Anthropic's API as benchmarked by "
                                      "artificialanalysis.ai (about 68 tokens/s, 0.8 s to the "
                                      "first token); Haiku 5.5 is likely faster"},
            "xray": "one trace per invocation (upper bound; default sampling records the first "
                    "request each second and 5 % of the rest)",
            "platform_log_bytes_per_invocation": len(PLATFORM_LINES.encode()),
            "idle_sqs_polling": f"{IDLE_POLLERS} long polls of {LONG_POLL_SECONDS} s at a time "
                                f"per event source mapping ({polled_queues} of them)",
            "not_included": "cold-start INIT time (a few per deploy and scale-out, ~0.5 s each "
                            "at make bench's artifacts step); KMS (AWS-managed keys by default); "
                            "storage (DynamoDB, logs) and data transfer; free tiers",
        },
    }


def print_summary(figures: dict[str, Any]) -> None:
    prices = figures["prices"]
    region = {"Lambda": "lambda_gb_second_x86_64", "API Gateway (HTTP API)": "http_api_request",
              "SQS": "sqs_request", "SNS": "sns_publish", "DynamoDB": "dynamodb_write_unit",
              "CloudWatch Logs": "logs_ingested_gb", "Secrets Manager": "secrets_manager_call",
              "X-Ray": "xray_trace"}
    print(f"AWS cost of scoring leads: {figures['contacts']} synthetic contacts, "
          f"{figures['scored']} scored, {figures['enriched']} enriched, "
          f"{figures['slack_posts']} Slack posts, {figures['dead_lettered']} dead-lettered "
          f"({figures['seconds']} s through the local stack)")
    print(f"USD per 1,000 scored leads, ap-south-1 list prices read {figures['prices_read_on']}:")
    for service, usd in figures["usd_per_1000_scored_by_service"].items():
        where = prices[region[service]]["region"]
        print(f"  {service:<24} {usd:>10.6f}" + ("" if where == MUMBAI else f"   [{where}]"))
    print(f"  {'AWS in total':<24} {figures['usd_per_1000_scored_aws']:>10.5f}  "
          f"({figures['usd_per_1000_contacts_aws']:.5f} per 1,000 contacts created)")
    print(f"  {'LLM (same run)':<24} {figures['usd_per_1000_scored_llm']:>10.5f}  "
          "(warm prompt cache; llm_cost_bench.py prints its assumptions)")
    print(f"  {'AWS + LLM':<24} {figures['usd_per_1000_scored_total']:>10.5f}")
    print(f"Fixed, per month whatever the volume (free tiers left out): "
          f"USD {figures['fixed_usd_per_month_total']:.2f}")
    for name, usd in figures["fixed_usd_per_month"].items():
        print(f"  {name:<30} {usd:>8.2f}")
    usage = figures["usage"]
    print("Measured (per run):")
    for name, counts in usage["lambda"].items():
        print(f"  {name}: {counts['invocations']} invocations, {counts['billed_ms']:,.0f} ms "
              f"billed at {counts['memory_mb']} MB (+{counts['derived_hubspot_round_trip_ms']:,.0f}"
              f" ms derived for {counts['hubspot_requests']} HubSpot round trips)")
    print(f"  logs: {usage['log_bytes_functions']:,} bytes of function output, "
          f"+{usage['log_bytes_derived_platform']:,} derived for Lambda's START/END/REPORT; "
          f"{usage['custom_metrics']} distinct EMF metrics; {usage['http_api_requests']} webhook "
          f"deliveries")
    print("Assumptions:")
    for name, value in figures["assumptions"].items():
        print(f"  {name}: {value}")
    print(f"Prices: {figures['prices_quoted_from']}; per price in the JSON (`prices`).")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--contacts", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--llm-first-token-seconds", type=float, default=0.8)
    parser.add_argument("--llm-tokens-per-second", type=float, default=70)
    args = parser.parse_args()
    figures = run(args.contacts, args.seed, args.timeout, args.llm_first_token_seconds,
                  args.llm_tokens_per_second)
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    print_summary(figures)
    return 0 if figures["dead_lettered"] == 0 and figures["scored"] == figures["consented"] \
        else 1


if __name__ == "__main__":
    sys.exit(main())
