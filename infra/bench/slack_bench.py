"""Hot leads to Slack through the local stack: how soon, how often, at what HubSpot cost.

Synthetic contacts (the demo's generator, consent as generated: some with `ai_enrichment`, so
their post waits for the LLM summary from the Anthropic emulator) are created through the
HubSpot API; the stack scores them, and SlackNotifyFunction posts each contact entering `hot`
to the stack's Slack receiver. Figures: hot leads and posts (one each), seconds from the score
(`ai_lead_scored_at`) to the post for leads posted at once and for leads that waited for their
summary (p50/p95; the local stack's, not Lambda's: one process, 1 s pacing), HubSpot reads by
the notifier per post (each alert delivery, a summary poll included, is one batch read: counted
from the notifier's log lines), and Slack's 429 answers (the receiver allows one post per
second).

    .venv/bin/python infra/bench/slack_bench.py [--contacts 300] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

from benchkit import ROOT, Row, exit_status, markdown, percentile, write_figures
from hubspot import HubSpot

from leadscore_local.demo import create_contacts, new_leads, read_contacts
from leadscore_local.process import LocalStackProcess

RECORD_ID = re.compile(r"/record/0-1/(\d+)")
NOTIFIER_OUTCOMES = ("Hot lead posted to Slack", "Hot lead already posted", "Hot lead not posted",
                     "Hot lead waits for its AI summary")


def _seconds(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start.replace("Z", "+00:00"))
            ).total_seconds()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=300)
    parser.add_argument("--seed", type=int, default=31)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    started = time.monotonic()

    with LocalStackProcess(ROOT) as stack:
        client = HubSpot(access_token=stack.info["hubspot_token"], host=stack.info["hubspot_url"])
        ids = create_contacts(client, new_leads(args.contacts, args.seed))
        deadline = time.monotonic() + args.timeout
        while True:
            contacts = read_contacts(client, ids)
            hot = {i for i, p in contacts.items() if p.get("ai_lead_tier") == "hot"}
            report = stack.admin("GET", "/slack")
            posted = Counter(RECORD_ID.search(p["payload"]["text"]).group(1)
                             for p in report["posts"])
            scored = sum(1 for p in contacts.values() if p.get("ai_lead_score"))
            if (hot and set(posted) >= hot and scored and not stack.stats()["busy"]) or (
                    time.monotonic() > deadline):
                break
            time.sleep(2)
        time.sleep(3)  # anything late (a second post would show here)
        report = stack.admin("GET", "/slack")
        log = stack.log_path.read_text(errors="replace") if stack.log_path else ""

    posts = {RECORD_ID.search(p["payload"]["text"]).group(1): p for p in report["posts"]}
    posted = Counter(RECORD_ID.search(p["payload"]["text"]).group(1) for p in report["posts"])
    waited, at_once = [], []
    for contact_id, post in posts.items():
        delay = _seconds(contacts[contact_id]["ai_lead_scored_at"], post["received_at"])
        (waited if "*AI fit summary*" in json.dumps(post["payload"]) else at_once).append(delay)
    reads = sum(1 for line in log.splitlines()
                if line.startswith("{") and any(f'"message":"{m}"' in line
                                                for m in NOTIFIER_OUTCOMES))
    once = bool(hot) and set(posted) == hot and set(posted.values()) == {1}
    rows = [
        Row("slack", f"hot leads among {args.contacts} synthetic contacts", len(hot), "",
            key="hot_leads"),
        Row("slack", "hot leads posted exactly once", "yes" if once else "no", "", "yes", once,
            key="posted_once"),
        Row("slack", "score → post, posted at once, p50", round(percentile(at_once, 50), 1),
            "s", key="posted_at_once_p50_s"),
        Row("slack", "score → post, posted at once, p95", round(percentile(at_once, 95), 1),
            "s", key="posted_at_once_p95_s"),
        Row("slack", f"score → post, waited for the LLM summary ({len(waited)}), p50",
            round(percentile(waited, 50), 1), "s", key="waited_for_summary_p50_s"),
        Row("slack", "score → post, waited for the LLM summary, p95",
            round(percentile(waited, 95), 1), "s", key="waited_for_summary_p95_s"),
        Row("slack", "HubSpot reads by the notifier per post", round(reads / max(1, len(posts)), 2),
            "", key="hubspot_reads_per_post"),
        Row("slack", "Slack 429 answers (receiver: one post per second)",
            int(report["answers"].get("429", 0)), "", key="slack_429"),
    ]
    print(markdown(rows))
    write_figures(args.out, rows, time.monotonic() - started)
    return exit_status(rows)


if __name__ == "__main__":
    sys.exit(main())
