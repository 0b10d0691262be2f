"""`leadscore local demo`: synthetic contacts into the HubSpot emulator, scores out of it.

The demo treats the stack as a black box: it starts `leadscore local up` in a subprocess,
creates contacts through the HubSpot API (the emulator then delivers signed
`contact.creation` webhooks to the ingest endpoint, as HubSpot does) and reads the scores
back through the API. It ends with what a rep sees for one hot lead: its `ai_*` properties
in HubSpot and the message the sales team got in Slack (the stack's Slack receiver).
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path

from hubspot import HubSpot
from hubspot.crm.contacts import BatchInputSimplePublicObjectBatchInputForCreate

from leadscore.cli.synthetic import generate_contacts
from leadscore_local.process import LocalStackProcess
from leadscore_local.slack_receiver import as_text

CONSENT_PROPERTY = "dpdp_consent_purposes"
SHOWN_PROPERTIES = ["ai_lead_score", "ai_lead_tier", "ai_lead_reasons", "ai_lead_summary",
                    "jobtitle", CONSENT_PROPERTY, "ai_lead_probability", "ai_lead_next_action",
                    "ai_lead_needs_review", "ai_lead_model_version", "ai_lead_scored_at"]
REP_VIEW = ["ai_lead_score", "ai_lead_probability", "ai_lead_tier", "ai_lead_reasons",
            "ai_lead_summary", "ai_lead_next_action", "ai_lead_needs_review",
            "ai_lead_model_version", "ai_lead_scored_at"]
RECORD_ID = re.compile(r"/record/0-1/(\d+)")


def new_leads(count: int, seed: int) -> list[dict[str, str]]:
    """Synthetic contacts as they look when created: no id yet, not converted yet."""
    leads = []
    # Anchored to today, so recency features look like fresh leads rather than old history.
    for contact in generate_contacts(count, seed, now=datetime.now(UTC)):
        properties = {k: v for k, v in contact.items() if k != "hs_object_id" and v != ""}
        properties["lifecyclestage"] = "lead"
        leads.append(properties)
    return leads


def create_contacts(client: HubSpot, leads: list[dict[str, str]]) -> list[str]:
    ids = []
    for start in range(0, len(leads), 100):
        batch = BatchInputSimplePublicObjectBatchInputForCreate(
            inputs=[{"properties": p, "associations": []} for p in leads[start:start + 100]]
        )
        ids += [c.id for c in client.crm.contacts.batch_api.create(batch).results]
    return ids


def read_contacts(client: HubSpot, ids: list[str]) -> dict[str, dict[str, str | None]]:
    from hubspot.crm.contacts import BatchReadInputSimplePublicObjectId

    found = {}
    for start in range(0, len(ids), 100):
        response = client.crm.contacts.batch_api.read(BatchReadInputSimplePublicObjectId(
            inputs=[{"id": i} for i in ids[start:start + 100]], properties=SHOWN_PROPERTIES,
        ))
        found |= {c.id: c.properties for c in response.results}
    return found


def wait_until_settled(stack: LocalStackProcess, timeout: float) -> dict:
    """Until webhooks are delivered, queues are empty and no batch is in flight."""
    deadline = time.monotonic() + timeout
    quiet_since = None
    while time.monotonic() < deadline:
        stats = stack.stats()
        idle = (not stats["busy"] and not any(stats["queues"].values())
                and stats["webhooks"].get("pending", 0) == 0)
        if idle:
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since > 1.5:
                return stats
        else:
            quiet_since = None
        time.sleep(0.25)
    raise TimeoutError(f"the local stack did not settle within {timeout:.0f} s: {stats}")


def run_demo(project_root: Path, contacts: int = 200, seed: int = 7) -> int:
    started = time.monotonic()
    with LocalStackProcess(project_root) as stack:
        client = HubSpot(access_token=stack.info["hubspot_token"], host=stack.info["hubspot_url"])
        leads = new_leads(contacts, seed)
        ids = create_contacts(client, leads)
        print(f"created {len(ids)} contacts in the HubSpot emulator; webhooks on their way…")
        stats = wait_until_settled(stack, timeout=100)
        results = read_contacts(client, ids)
        hot = {i for i, p in results.items() if p.get("ai_lead_tier") == "hot"}
        # Hot leads being enriched reach Slack once their LLM summary is on the contact.
        posts = wait_for_posts(stack, hot, timeout=120)
        results = read_contacts(client, ids)
    elapsed = time.monotonic() - started

    scored = {i: p for i, p in results.items() if p.get("ai_lead_score")}
    unconsented = [i for i, p in results.items()
                   if "lead_scoring" not in (p.get(CONSENT_PROPERTY) or "").split(";")]
    ranked = sorted(scored.items(), key=lambda item: -float(item[1]["ai_lead_score"]))

    print()
    print(f"{'rank':>4}  {'contact':>7}  {'score':>5}  {'tier':<12}  {'job title':<22}  "
          "top reasons")
    shown = ranked[:20] + ranked[-5:] if len(ranked) > 25 else ranked
    for rank, (contact_id, props) in enumerate(shown, start=1):
        if len(ranked) > 25 and rank == 21:
            print(f"{'…':>4}  ({len(ranked) - 25} more)")
        position = rank if rank <= 20 or len(ranked) <= 25 else len(ranked) - 25 + rank
        reasons = "; ".join((props.get("ai_lead_reasons") or "").splitlines()[:3])
        print(f"{position:>4}  {contact_id:>7}  {props['ai_lead_score']:>5}  "
              f"{props.get('ai_lead_tier') or '':<12}  {(props.get('jobtitle') or '-')[:22]:<22}  "
              f"{reasons}")
    tiers: dict[str, int] = {}
    for props in scored.values():
        tiers[props.get("ai_lead_tier") or "?"] = tiers.get(props.get("ai_lead_tier") or "?", 0) + 1
    summarised = sum(1 for p in scored.values() if p.get("ai_lead_summary"))
    wrongly_scored = [i for i in unconsented if i in scored]

    show_what_a_rep_sees(results, posts)
    print()
    print(json.dumps({
        "contacts": len(ids),
        "scored": len(scored),
        "skipped_for_consent": len(unconsented) - len(wrongly_scored),
        "tiers": tiers,
        "enriched": summarised,
        "slack_posts": len(posts),
        "hubspot_requests": stats["hubspot_requests"],
        "contacts_per_hubspot_request": round(len(scored) / max(1, stats["hubspot_requests"]), 1),
        "dlq_messages": sum(stats["dlqs"].values()),
        "errors": stats["errors"],
        "wall_time_seconds": round(elapsed, 1),
    }, indent=2))
    posted = sorted(posts)
    ok = (len(scored) + len(unconsented) == len(ids) and not wrongly_scored
          and not sum(stats["dlqs"].values()) and posted == sorted(hot))
    if not ok:
        print("demo FAILED: not every consented contact was scored, an unconsented one was, or "
              "the hot leads did not reach Slack once each")
    return 0 if ok else 1


def wait_for_posts(stack: LocalStackProcess, hot: set[str],
                   timeout: float) -> dict[str, dict]:
    """Contact id → the Slack message posted for it, once every hot lead has one (or at the
    timeout); a contact posted twice would show as a shortfall in the count."""
    deadline = time.monotonic() + timeout
    while True:
        payloads = [post["payload"] for post in stack.admin("GET", "/slack")["posts"]]
        posts = {RECORD_ID.search(p["text"]).group(1): p for p in payloads}
        if set(posts) >= hot or time.monotonic() > deadline:
            return posts if len(posts) == len(payloads) else {}
        time.sleep(1)


def show_what_a_rep_sees(results: dict[str, dict], posts: dict[str, dict]) -> None:
    """One hot lead with an LLM summary (else any hot lead): its properties, its Slack post."""
    hot = sorted((i for i in posts if i in results), key=lambda i: (
        not results[i].get("ai_lead_summary"), -int(results[i]["ai_lead_score"]), i))
    if not hot:
        return
    contact_id = hot[0]
    print()
    print(f"What a rep sees for contact {contact_id} — in HubSpot (AI lead scoring group):")
    for name in REP_VIEW:
        value = (results[contact_id].get(name) or "").replace("\n", "\n" + " " * 26)
        print(f"  {name:<22}  {value}")
    print()
    print("— and in the sales team's Slack channel:")
    for line in as_text(posts[contact_id]).splitlines():
        print(f"  | {line}")

