"""The learning loop end to end against a running local stack, over HTTP only: what
tests/e2e/test_learning_loop.py asserts and infra/bench/retrain_bench.py reports.

1. `LEADS` synthetic leads (consented, lifecycle stage `lead`) are created through HubSpot's
   API; the emulator's webhooks get them scored by the shipped model, which takes a feature
   snapshot of each.
2. Outcomes follow a pattern the shipped model cannot know: this portal sells to education and
   engineering teams, so students, interns, teachers, engineers and analysts convert (80 %) and
   everyone else rarely (5 %) — the synthetic training data rewards nearly the opposite.
   Converted leads move to lifecycle stage `customer` through HubSpot's API (the webhook
   capture path records them); the rest never do (negative when their window closes).
3. The retrain runs through `POST /schedules/ModelRetrainFunction/run` at a simulated clock
   100 days later: outcome windows close, a challenger trains, the gate judges, it promotes.
4. `NEW_LEADS` new leads from the same pattern are created and scored: by the promoted model if
   there was a promotion. Their AUC against the pattern's outcomes is measured for the model
   that scored them (read back from HubSpot) and for the shipped model (the same properties
   scored locally with layers/model/model), on the same leads.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hubspot.crm.contacts import (
    BatchInputSimplePublicObjectBatchInput,
    BatchInputSimplePublicObjectBatchInputForCreate,
    BatchReadInputSimplePublicObjectId,
    SimplePublicObjectBatchInput,
    SimplePublicObjectBatchInputForCreate,
)

from leadscore.cli.synthetic import generate_contacts
from leadscore.model import load
from leadscore.model.backtest import roc_auc
from leadscore_local.fault_drills import hubspot_sdk, settle, wait_for
from leadscore_local.process import LocalStackProcess

LEADS = 800
NEW_LEADS = 400
SIMULATED_DAYS_LATER = 100
CONVERTING_TITLES = frozenset({"student", "intern", "teacher", "engineer", "software engineer",
                               "analyst"})
# What a lead is created with: the model's inputs, identifying fields, consent; no `ai_*`.
CREATED = ("email", "firstname", "lastname", "jobtitle", "numemployees", "country",
           "hs_analytics_source", "hs_analytics_num_visits", "hs_analytics_num_page_views",
           "hs_analytics_last_visit_timestamp", "hs_email_optout")
SCORED = ["ai_lead_score", "ai_lead_probability", "ai_lead_model_version"]


def converts(lead: dict[str, str], rng: random.Random) -> bool:
    """This portal's pattern (hidden from the shipped model)."""
    fits = " ".join((lead.get("jobtitle") or "").split()).casefold() in CONVERTING_TITLES
    return rng.random() < (0.8 if fits else 0.05)


def leads(n: int, seed: int, prefix: str) -> list[tuple[dict[str, str], bool]]:
    """(properties to create, converts) for `n` fresh synthetic leads."""
    rng = random.Random(seed)
    out = []
    for contact in generate_contacts(n, seed, now=datetime.now(UTC)):
        properties = {name: contact[name] for name in CREATED if contact.get(name)}
        properties["email"] = f"{prefix}.{properties['email']}"  # unique across the runs
        properties |= {"lifecyclestage": "lead", "dpdp_consent_purposes": "lead_scoring"}
        out.append((properties, converts(contact, rng)))
    return out


@dataclass
class DrillResult:
    leads: int = 0
    converted: int = 0
    decision: dict[str, Any] = field(default_factory=dict)
    shipped_version: str = ""
    new_leads: int = 0
    new_converted: int = 0
    new_versions: list[str] = field(default_factory=list)  # ai_lead_model_version of new leads
    auc_promoted: float | None = None  # AUC of the new leads' scores from the model in use
    auc_shipped: float | None = None  # the shipped model on the same new leads
    seconds: dict[str, float] = field(default_factory=dict)


class LearningDrill:
    def __init__(self, stack: LocalStackProcess, root: Path):
        self.stack = stack
        self.hubspot = hubspot_sdk(stack)
        self.shipped = load(root / "layers" / "model" / "model")

    def create(self, batch: list[tuple[dict[str, str], bool]]) -> list[str]:
        api = self.hubspot.crm.contacts.batch_api
        ids = []
        for start in range(0, len(batch), 100):
            created = api.create(BatchInputSimplePublicObjectBatchInputForCreate(inputs=[
                SimplePublicObjectBatchInputForCreate(properties=properties)
                for properties, _ in batch[start:start + 100]]))
            by_email = {c.properties["email"]: c.id for c in created.results}
            ids += [by_email[properties["email"]] for properties, _ in batch[start:start + 100]]
        return ids

    def scored(self, ids: list[str]) -> dict[str, dict[str, str]]:
        """ai_* properties of these contacts, once every one of them has a score."""
        def read() -> dict[str, dict[str, str]] | None:
            found: dict[str, dict[str, str]] = {}
            for start in range(0, len(ids), 100):
                page = self.hubspot.crm.contacts.batch_api.read(BatchReadInputSimplePublicObjectId(
                    inputs=[{"id": cid} for cid in ids[start:start + 100]], properties=SCORED))
                found |= {c.id: c.properties for c in page.results}
            done = all(found.get(cid, {}).get("ai_lead_score") for cid in ids)
            return found if done else None
        return wait_for(read, timeout=300, interval=2)

    def convert(self, ids: list[str]) -> None:
        api = self.hubspot.crm.contacts.batch_api
        for start in range(0, len(ids), 100):
            api.update(BatchInputSimplePublicObjectBatchInput(inputs=[
                SimplePublicObjectBatchInput(id=cid, properties={"lifecyclestage": "customer"})
                for cid in ids[start:start + 100]]))

    def retrain(self, at: datetime) -> dict[str, Any]:
        return self.stack.admin("POST", "/schedules/ModelRetrainFunction/run",
                                {"time": at.isoformat()}, timeout=900)["result"]

    def run(self, *, leads_n: int = LEADS, new_n: int = NEW_LEADS, seed: int = 12) -> DrillResult:
        import time

        result = DrillResult(shipped_version=self.shipped.version)
        started = time.monotonic()
        batch = leads(leads_n, seed, f"drill{seed}")
        ids = self.create(batch)
        self.scored(ids)
        settle(self.stack)
        result.seconds["create and score"] = round(time.monotonic() - started, 1)
        result.leads = len(ids)
        converted = [cid for cid, (_, yes) in zip(ids, batch, strict=True) if yes]
        result.converted = len(converted)
        self.convert(converted)
        settle(self.stack, quiet=2.5)

        started = time.monotonic()
        result.decision = self.retrain(datetime.now(UTC) + timedelta(days=SIMULATED_DAYS_LATER))
        result.seconds["retrain"] = round(time.monotonic() - started, 1)

        new_batch = leads(new_n, seed + 1, f"drill{seed}new")
        new_ids = self.create(new_batch)
        new_scores = self.scored(new_ids)
        settle(self.stack)
        labels = [int(yes) for _, yes in new_batch]
        result.new_leads, result.new_converted = len(new_ids), sum(labels)
        result.new_versions = sorted({new_scores[cid]["ai_lead_model_version"]
                                      for cid in new_ids})
        in_use = [float(new_scores[cid]["ai_lead_probability"]) for cid in new_ids]
        shipped, _ = self.shipped.predict([properties for properties, _ in new_batch])
        result.auc_promoted = round(roc_auc(labels, in_use), 4)
        result.auc_shipped = round(roc_auc(labels, shipped), 4)
        return result
