"""LLM enrichment cost (issue 5): tokens and estimated USD per 1,000 scored leads at the default
settings, through the local stack with its Anthropic emulator.

    .venv/bin/python infra/bench/llm_cost_bench.py --out llm_cost.json [--contacts 400]

Synthetic leads (realistic job titles, sources, engagement and free-text messages from
`leadscore.synthetic`, consent as it is distributed there) are created in the HubSpot emulator;
the stack scores them, queues hot and warm leads with `ai_enrichment` consent (the default
EnrichTiers) and the enrich function calls the emulator with the real prompt, tool schema and
lead data, with the default models (fast first, escalation for hot or low-confidence leads).
Token counts come from the emulator (characters / 4, not the real tokenizer) and are priced
per model with `leadscore.enrichment.MODEL_PRICES`.

Two figures per 1,000 scored leads:
- `usd_per_1000_scored` prices tokens as the emulator reports them, including prompt-cache
  reads of the fixed prompt part;
- `usd_per_1000_scored_uncached` prices every cache write and read as plain input. The real
  API caches a prefix only above a per-model minimum (4,096 tokens on Haiku 4.5) and today's
  fixed prompt is shorter, so this conservative figure is the one checked against the target.

Loopback only; the stack stops when the script ends; every wait has a deadline. Prints a
summary; writes a flat JSON object of figures (and `target_usd_per_1000_scored`) to --out.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from hubspot import HubSpot

from leadscore.enrichment import DEFAULT_MODELS, TokenUsage, cost_usd
from leadscore_local.demo import create_contacts, new_leads, wait_until_settled
from leadscore_local.process import LocalStackProcess

ROOT = Path(__file__).resolve().parents[2]
TARGET_USD_PER_1000 = 0.50
READ_PROPERTIES = ["ai_lead_score", "ai_lead_tier", "ai_lead_summary", "dpdp_consent_purposes"]


def emulator_stats(anthropic_url: str) -> dict[str, Any]:
    with urllib.request.urlopen(anthropic_url + "/_emulator/stats", timeout=10) as response:
        return json.loads(response.read())


def read_back(client: HubSpot, ids: list[str]) -> dict[str, dict[str, str | None]]:
    from hubspot.crm.contacts import BatchReadInputSimplePublicObjectId

    found: dict[str, dict[str, str | None]] = {}
    for start in range(0, len(ids), 100):
        response = client.crm.contacts.batch_api.read(BatchReadInputSimplePublicObjectId(
            inputs=[{"id": i} for i in ids[start:start + 100]], properties=READ_PROPERTIES))
        found |= {c.id: c.properties for c in response.results}
    return found


def price(tokens: dict[str, int], model: str) -> tuple[float, float]:
    """(USD as reported, USD with every cached token priced as plain input)."""
    usage = TokenUsage(**tokens)
    plain = TokenUsage(input_tokens=usage.input_tokens + usage.cache_creation_input_tokens
                       + usage.cache_read_input_tokens, output_tokens=usage.output_tokens)
    reported, uncached = cost_usd(model, usage), cost_usd(model, plain)
    if reported is None or uncached is None:
        raise SystemExit(f"no price for model {model!r}: add it to MODEL_PRICES / LLM_PRICES")
    return reported, uncached


def run(contacts: int, seed: int, timeout: float) -> dict[str, Any]:
    started = time.monotonic()
    with LocalStackProcess(ROOT) as stack:
        client = HubSpot(access_token=stack.info["hubspot_token"],
                         host=stack.info["hubspot_url"])
        ids = create_contacts(client, new_leads(contacts, seed))
        stats = wait_until_settled(stack, timeout=timeout)
        results = read_back(client, ids)
        llm = emulator_stats(stack.info["anthropic_url"])
    elapsed = time.monotonic() - started

    scored = [p for p in results.values() if p.get("ai_lead_score")]
    enriched = [p for p in scored if p.get("ai_lead_summary")]
    tiers = {tier: sum(p.get("ai_lead_tier") == tier for p in scored)
             for tier in ("hot", "warm", "cold", "disqualified")}
    tokens = llm["tokens"]
    per_1000 = 1000 / max(1, len(scored))
    fast, strong = DEFAULT_MODELS["anthropic"]
    priced = {model: price(counts, model) for model, counts in llm["tokens_by_model"].items()}
    usd = sum(reported for reported, _ in priced.values())
    usd_uncached = sum(uncached for _, uncached in priced.values())
    return {
        "contacts_created": len(ids),
        "leads_scored": len(scored),
        "leads_enriched": len(enriched),
        **{f"leads_{tier}": count for tier, count in tiers.items()},
        "llm_calls": llm["requests"],
        "llm_calls_fast_model": llm["by_model"].get(fast, 0),
        "llm_calls_escalation_model": llm["by_model"].get(strong, 0),
        "enrich_dlq_messages": stats["dlqs"].get("EnrichDLQ", 0),
        "input_tokens_per_1000_scored": round(tokens["input_tokens"] * per_1000),
        "output_tokens_per_1000_scored": round(tokens["output_tokens"] * per_1000),
        "cache_write_tokens_per_1000_scored": round(
            tokens["cache_creation_input_tokens"] * per_1000),
        "cache_read_tokens_per_1000_scored": round(tokens["cache_read_input_tokens"] * per_1000),
        "usd_per_1000_scored": round(usd * per_1000, 4),
        "usd_per_1000_scored_uncached": round(usd_uncached * per_1000, 4),
        "usd_per_1000_scored_uncached_fast_model": round(
            priced.get(fast, (0.0, 0.0))[1] * per_1000, 4),
        "usd_per_1000_scored_uncached_escalation_model": round(
            priced.get(strong, (0.0, 0.0))[1] * per_1000, 4),
        "usd_per_enriched_lead": round(usd / max(1, len(enriched)), 6),
        "target_usd_per_1000_scored": TARGET_USD_PER_1000,
        "target_met": usd_uncached * per_1000 <= TARGET_USD_PER_1000,
        "elapsed_seconds": round(elapsed, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--contacts", type=int, default=400)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--timeout", type=float, default=240.0,
                        help="seconds to wait for the stack to score and enrich everything")
    args = parser.parse_args()
    figures = run(args.contacts, args.seed, args.timeout)
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"LLM enrichment cost at default settings ({figures['contacts_created']} synthetic "
          f"leads, local stack + Anthropic emulator)")
    print(f"  scored {figures['leads_scored']}, enriched {figures['leads_enriched']} "
          f"(hot {figures['leads_hot']}, warm {figures['leads_warm']}); "
          f"{figures['llm_calls']} LLM calls ({figures['llm_calls_fast_model']} fast, "
          f"{figures['llm_calls_escalation_model']} escalation)")
    print(f"  per 1,000 scored leads: {figures['input_tokens_per_1000_scored']:,} input, "
          f"{figures['output_tokens_per_1000_scored']:,} output, "
          f"{figures['cache_read_tokens_per_1000_scored']:,} cache-read tokens")
    print(f"  USD per 1,000 scored leads: {figures['usd_per_1000_scored']:.4f} with caching, "
          f"{figures['usd_per_1000_scored_uncached']:.4f} without "
          f"(target <= {TARGET_USD_PER_1000:.2f}: "
          f"{'met' if figures['target_met'] else 'NOT met'})")
    print(f"  of which fast model {figures['usd_per_1000_scored_uncached_fast_model']:.4f}, "
          f"escalation model {figures['usd_per_1000_scored_uncached_escalation_model']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
