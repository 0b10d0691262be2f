"""`make bench`: runs every benchmark, prints one markdown table, writes the figures as JSON.

Each step runs one script in its own process (so timings do not share a warm interpreter)
and turns that script's JSON into rows: figure, value, unit, target, met. A step that fails
(a missing script, a timeout, no figures) becomes a failed row and the run exits 1.
Usage: python infra/bench/run_all.py [--out bench-results.json] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchkit import ROOT, Row, exit_status, markdown, run_script


def model_speed() -> list[Row]:
    data = run_script(["infra/bench/model_bench.py"], timeout=600)
    score, gbc = data["score"], data["gbc_predict_proba"]
    many, load = data["score_many"], data["load"]
    return [
        Row("model", "score() one lead with reasons, p50", score["p50_ms"], "ms"),
        Row("model", "score() one lead with reasons, p99", score["p99_ms"], "ms", "≤ 1 ms",
            score["p99_ms"] <= 1.0),
        Row("model", "sklearn GBC(200, depth 4) predict_proba one row, p99 (same run)",
            gbc["p99_ms"], "ms", "score() p99 ≤ this", score["p99_ms"] <= gbc["p99_ms"]),
        Row("model", "score_many without reasons", many["per_second"], "leads/s",
            "≥ 20,000", many["per_second"] >= 20_000),
        Row("model", "model load + imports, fresh process", load["load_and_imports_ms"], "ms",
            "≤ 500 ms", load["load_and_imports_ms"] <= 500),
    ]


def generality() -> list[Row]:
    """The training-quality table (issue 12 part 7): ours vs the better of GBC and logistic
    regression on each data set's benchmark split, no tolerance."""
    data = run_script(["infra/bench/generality.py"], timeout=1200)
    rows = []
    for r in data["results"]:
        name = f"{r['data']} (seed {r['seed']})"
        best_auc, best_brier = max(r["gbc_auc"], r["lr_auc"]), min(r["gbc_brier"], r["lr_brier"])
        rows += [
            Row("generality", f"{name}: AUC ours (GBC {r['gbc_auc']:.5f}, LR {r['lr_auc']:.5f})",
                round(r["ours_auc"], 5), "", f"≥ {best_auc:.5f}", r["ranks_at_least_as_well"]),
            Row("generality", f"{name}: Brier ours (GBC {r['gbc_brier']:.5f}, "
                f"LR {r['lr_brier']:.5f})", round(r["ours_brier"], 5), "", f"≤ {best_brier:.5f}",
                r["calibrates_at_least_as_well"]),
            Row("generality", f"{name}: train time ours (GBC {r['gbc_train_seconds']} s, "
                f"trees weight {r['ours_gbm_weight']:g})", r["ours_train_seconds"], "s"),
        ]
        if r["data"] == "bank-marketing":
            rows.append(Row("generality", f"{name}: AUC ours, issue 3 target",
                            round(r["ours_auc"], 4), "", f"≥ {data['bank_auc_target']}",
                            r["ours_auc"] >= data["bank_auc_target"]))
    return rows


def artifacts() -> list[Row]:
    build = ROOT / ".aws-sam" / "build"
    if not build.is_dir():
        raise RuntimeError("no .aws-sam/build: run `make build` first (make bench does)")
    data = _check_artifacts(build)
    rows = []
    for name, function in data["functions"].items():
        init_ms = function["import_ms"] + (function["model_ms"] or 0)
        target = 150 if function["carries_model"] else 250
        rows.append(Row("artifacts", f"{name} size (function + layers, unzipped)",
                        round(function["size_bytes"] / 2**20, 1), "MiB", f"≤ {target} MiB",
                        function["size_bytes"] / 2**20 <= target))
        rows.append(Row("artifacts", f"{name} cold init (imports + model load), this machine",
                        round(init_ms), "ms"))
    return rows


def _check_artifacts(build: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "artifacts.json"
        subprocess.run([sys.executable, "infra/build/check_artifacts.py", str(build), "--json",
                        str(out)], cwd=ROOT, check=True, timeout=300, stdin=subprocess.DEVNULL,
                       stdout=sys.stderr)
        return json.loads(out.read_text())


def llm_cost() -> list[Row]:
    data = run_script(["infra/bench/llm_cost_bench.py"], timeout=600)
    per = "per 1,000 scored leads"
    return [
        Row("llm", f"LLM input tokens {per}", data["input_tokens_per_1000_scored"], "tokens"),
        Row("llm", f"LLM cache-read tokens {per}", data["cache_read_tokens_per_1000_scored"],
            "tokens"),
        Row("llm", f"LLM output tokens {per}", data["output_tokens_per_1000_scored"], "tokens"),
        # target_met is the script's own check: the steady-state figure when the cached prefix
        # reaches the models' caching minimum, the uncached one otherwise.
        Row("llm", f"LLM estimated cost {per}, steady state (cache reads at cache price)",
            data["usd_per_1000_scored"], "USD", f"≤ {data['target_usd_per_1000_scored']}",
            bool(data["target_met"])),
        Row("llm", f"LLM estimated cost {per}, no caching at all (context)",
            data["usd_per_1000_scored_uncached"], "USD"),
        Row("llm", f"LLM estimated cost {per}, cold cache on every call (context)",
            data["usd_per_1000_scored_cold_cache"], "USD"),
        Row("llm", "LLM answers invalid / refused on the fast model (the emulator's profile)",
            f"{data['invalid_answers_fast_model']} / {data['refusals_fast_model']} of "
            f"{data['calls_fast_model']}"),
        Row("llm", "LLM calls to the escalation model after the fast one",
            data["calls_escalation_model_after_fast"]),
        Row("llm", "LLM cost assumptions", llm_assumptions(data["assumptions"])),
    ]


def llm_assumptions(assumed: dict[str, Any]) -> str:
    """The LLM figure's assumptions in one table cell (the JSON has them in full)."""
    profile, leads = assumed["answer_profile"], assumed["synthetic_leads"]
    prices = "; ".join(f"{model} ${price['input']}/${price['output']}/${price['cache_read']} "
                       "in/out/cache-read per Mtok"
                       for model, price in assumed["prices_usd_per_million_tokens"].items())
    return (f"answers {profile['invalid_share']:.1%} invalid, {profile['refusal_share']:.1%} "
            f"refused, {profile['low_confidence_share']:.0%} low confidence, strings "
            f"{profile['answer_length']:.0%} of cap; tokens = characters / 4; {prices} "
            f"(MODEL_PRICES); leads {leads['consent_ai_enrichment_share']:.0%} with "
            f"ai_enrichment consent, tiers " + ", ".join(
                f"{tier} {share:.0%}" for tier, share in leads["tier_mix_of_scored"].items())
            + "; warm 5-minute prompt cache")


def aws_cost() -> list[Row]:
    """The whole AWS cost of scoring leads (issue 14 item 12) beside the LLM's, same run."""
    data = run_script(["infra/bench/aws_cost_bench.py"], timeout=1800)
    per = "per 1,000 scored leads"
    regions = {"Lambda": "lambda_request", "API Gateway (HTTP API)": "http_api_request",
               "SQS": "sqs_request", "SNS": "sns_publish", "DynamoDB": "dynamodb_write_unit",
               "CloudWatch Logs": "logs_ingested_gb", "Secrets Manager": "secrets_manager_call",
               "X-Ray": "xray_trace"}
    rows = [Row("aws", f"{data['contacts']} contacts through the whole flow: scored / "
                f"dead-lettered", f"{data['scored']} / {data['dead_lettered']}", "",
                f"{data['consented']} / 0", data["scored"] == data["consented"]
                and data["dead_lettered"] == 0)]
    for service, usd in data["usd_per_1000_scored_by_service"].items():
        region = data["prices"][regions[service]]["region"]
        note = "" if region == "ap-south-1" else " (us-east-1 price: no Mumbai figure found)"
        rows.append(Row("aws", f"AWS {service} {per}{note}", f"{usd:.6f}", "USD"))
    return [
        *rows,
        Row("aws", f"AWS in total {per} (ap-south-1 list prices read "
            f"{data['prices_read_on']}; Lambda duration measured locally)",
            data["usd_per_1000_scored_aws"], "USD"),
        Row("aws", f"LLM {per}, same run (warm prompt cache)", data["usd_per_1000_scored_llm"],
            "USD"),
        Row("aws", f"AWS + LLM {per}", data["usd_per_1000_scored_total"], "USD"),
        Row("aws", "AWS fixed cost per month at any volume (metrics, alarms, dashboards, "
            "secrets, idle SQS polling)", data["fixed_usd_per_month_total"], "USD"),
    ]


def script_rows(script: str, timeout: float) -> Callable[[], list[Row]]:
    """A step for a script that already reports table rows (benchkit.Row's fields)."""
    def step() -> list[Row]:
        if not (ROOT / script).is_file():
            raise RuntimeError(f"{script} is missing")
        return [Row(**row) for row in run_script([script], timeout)["rows"]]
    return step


STEPS: dict[str, Callable[[], list[Row]]] = {
    "artifacts": artifacts,
    "model": model_speed,
    "generality": generality,
    "training": script_rows("infra/bench/training_scale.py", timeout=3600),
    "reasons": script_rows("infra/bench/reasons_bench.py", timeout=600),
    "llm": llm_cost,
    "aws": aws_cost,
    "dpdp": script_rows("infra/bench/dpdp_bench.py", timeout=600),
    "burst": script_rows("infra/bench/burst_bench.py", timeout=600),
    "load": script_rows("infra/bench/load_bench.py", timeout=600),
    "slack": script_rows("infra/bench/slack_bench.py", timeout=900),
    "faults": script_rows("infra/bench/fault_bench.py", timeout=600),
    "import": script_rows("infra/bench/import_bench.py", timeout=1800),
    "sam_invoke": script_rows("infra/bench/sam_invoke_bench.py", timeout=1200),
    # retrain at 10k / 100k / 1M snapshots, then the end-to-end learning scenario
    "retrain": script_rows("infra/bench/retrain_bench.py", timeout=3 * 3600),
    "monitor": script_rows("infra/bench/monitor_bench.py", timeout=3600),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path,
                        default=Path(os.environ.get("BENCH_OUT", "bench-results.json")))
    parser.add_argument("--only", nargs="*", choices=sorted(STEPS), help="run only these steps")
    args = parser.parse_args()
    rows: list[Row] = []
    started = time.monotonic()
    for name in args.only or STEPS:
        print(f"== {name}", file=sys.stderr, flush=True)
        step_started = time.monotonic()
        try:
            rows += STEPS[name]()
        except (RuntimeError, OSError, KeyError, subprocess.SubprocessError) as error:
            # One broken step must not cost the others' figures; it still fails the run.
            print(f"!! {name} failed: {error!r}", file=sys.stderr, flush=True)
            rows.append(Row(name, f"{name} step failed: {error}", "error", met=False))
        print(f"== {name} took {time.monotonic() - step_started:.0f} s", file=sys.stderr,
              flush=True)
    table = markdown(rows)
    print(table)
    args.out.write_text(json.dumps({
        "seconds": round(time.monotonic() - started, 1),
        "machine": {"cpus": os.cpu_count()},
        "rows": [asdict(row) for row in rows],
    }, indent=2) + "\n")
    print(f"\n{len(rows)} figures in {time.monotonic() - started:.0f} s → {args.out}",
          file=sys.stderr)
    return exit_status(rows)


if __name__ == "__main__":
    sys.exit(main())
