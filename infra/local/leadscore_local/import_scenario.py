"""An import into HubSpot, end to end: how many HubSpot requests the functions spend per
contact (issue 14, item 7).

Synthetic leads are created through HubSpot's batch create API (100 per call, as an import or a
sync tool does) by an app of their own; the HubSpot emulator announces every creation to the
stack's webhook subscription as HubSpot does — a `contact.creation` event, and a
`contact.propertyChange` event for each subscribed property the new contact has — in deliveries
of up to 100 events. The functions score (and, where consented, enrich) them; the outcome
counts the HubSpot requests the functions made (`/stats`, by route and by function) against the
contacts created. Used by infra/bench/import_bench.py and tests/e2e/test_import.py; never
shipped.
"""

from __future__ import annotations

import json
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from typing import Any

from hubspot import HubSpot
from hubspot.crm.contacts import BatchInputSimplePublicObjectBatchInputForCreate

from leadscore_local.demo import new_leads
from leadscore_local.process import LocalStackProcess

FUNCTIONS_CLIENT = "functions"  # the emulator's name for the functions' token


@dataclass
class ImportOutcome:
    contacts: int = 0
    consented: int = 0  # with `lead_scoring`
    scored: int = 0
    enriched: int = 0  # `ai_lead_summary` written
    events: int = 0  # webhook events the emulator delivered
    deliveries: int = 0  # webhook requests the emulator sent
    hubspot_requests: int = 0  # by the functions (`/stats` hubspot_requests)
    by_route: dict[str, int] = field(default_factory=dict)
    by_function: dict[str, int] = field(default_factory=dict)
    dead_lettered: int = 0
    seconds: float = 0.0  # from the first create call until the stack settled

    @property
    def contacts_per_request(self) -> float:
        return self.contacts / max(1, self.hubspot_requests)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"contacts_per_request": round(self.contacts_per_request, 1)}


def emulator_api(stack: LocalStackProcess, method: str, action: str) -> Any:
    request = urllib.request.Request(f"{stack.info['hubspot_url']}/_emulator/{action}",
                                     method=method)
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def settle(stack: LocalStackProcess, timeout: float, quiet: float = 3.0) -> dict[str, Any]:
    """Until nothing is pending (webhooks, queues, a batch) for `quiet` seconds (longer than
    the ScoreQueue's 2 s batching window)."""
    deadline = time.monotonic() + timeout
    quiet_since = None
    while time.monotonic() < deadline:
        stats = stack.stats()
        idle = (not stats["busy"] and not any(stats["queues"].values())
                and not stats["webhooks"]["pending"])
        if idle:
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since >= quiet:
                return stats
        else:
            quiet_since = None
        time.sleep(0.25)
    raise TimeoutError(f"the local stack did not settle within {timeout:.0f} s")


def run_import(stack: LocalStackProcess, contacts: int = 2000, seed: int = 7,
               timeout: float = 900) -> ImportOutcome:
    settle(stack, 120)
    hubspot = HubSpot(access_token=stack.observer_token(), host=stack.info["hubspot_url"])
    before, emulator_before = stack.stats(), emulator_api(stack, "GET", "stats")
    leads = new_leads(contacts, seed)
    started = time.monotonic()
    ids: list[str] = []
    for start in range(0, len(leads), 100):
        created = hubspot.crm.contacts.batch_api.create(
            BatchInputSimplePublicObjectBatchInputForCreate(inputs=[
                {"properties": lead, "associations": []} for lead in leads[start:start + 100]]))
        ids += [c.id for c in created.results]
    after = settle(stack, timeout)
    seconds = time.monotonic() - started
    emulator_after = emulator_api(stack, "GET", "stats")
    wanted = set(ids)
    rows = [c for c in emulator_api(stack, "GET", "contacts")["results"] if c["id"] in wanted]
    routes_before = emulator_before["operations"].get(FUNCTIONS_CLIENT, {})
    routes_after = emulator_after["operations"].get(FUNCTIONS_CLIENT, {})
    functions_before = before["hubspot_requests_by_function"]
    return ImportOutcome(
        contacts=len(ids),
        consented=sum("lead_scoring" in (lead.get("dpdp_consent_purposes") or "").split(";")
                      for lead in leads),
        scored=sum(bool(c["properties"].get("ai_lead_scored_at")) for c in rows),
        enriched=sum(bool(c["properties"].get("ai_lead_summary")) for c in rows),
        events=emulator_after["delivered"] - emulator_before["delivered"],
        deliveries=emulator_after["webhook_requests"] - emulator_before["webhook_requests"],
        hubspot_requests=after["hubspot_requests"] - before["hubspot_requests"],
        by_route={route: n - routes_before.get(route, 0) for route, n in routes_after.items()
                  if n - routes_before.get(route, 0)},
        by_function={name: n - functions_before.get(name, 0)
                     for name, n in after["hubspot_requests_by_function"].items()
                     if n - functions_before.get(name, 0)},
        dead_lettered=sum(after["dlqs"].values()) - sum(before["dlqs"].values()),
        seconds=round(seconds, 1),
    )
