"""`leadscore backfill`: queue every existing consented contact for scoring.

Contacts are found with HubSpot's CRM search (consent pre-filter, ascending `hs_object_id`,
100 per page) and sent to the ScoreQueue as ordinary ScoreMessages, so the score function
does the work exactly as for webhooks: consent gate, one batch read and update per 100
contacts, ledger, alerts, within its own request budget.

Each page asks for ids greater than the last one queued, sorted by ascending id, instead of
following the search cursor: HubSpot's search stops at 10,000 results per query, and the last
id is all a checkpoint needs to resume. A page whose ids do not increase stops the backfill
with a clear error (paging on from its last id would skip contacts). The checkpoint file is
written after every page (atomically), so an interrupted backfill resumes where it stopped;
a page queued twice (a crash between sending and checkpointing) is only scored twice. Search
calls draw from a token bucket (`--requests-per-second`), below HubSpot's search limit of 5
requests per second.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from leadscore.dpdp.consent import Purpose
from leadscore.hubspot.client import (
    BATCH_LIMIT,
    SEARCH_REQUESTS_PER_SECOND,
    ContactSearch,
    last_ascending_id,
)
from leadscore.scoring.queues import BACKFILL, MessageQueue, ScoreMessage

DEFAULT_REQUESTS_PER_SECOND = SEARCH_REQUESTS_PER_SECOND  # a backfill is mostly searches


@dataclass
class Checkpoint:
    last_id: int = 0  # every consented contact with a lower or equal id has been queued
    queued: int = 0
    pages: int = 0
    complete: bool = False

    @classmethod
    def load(cls, path: Path) -> Checkpoint:
        if not path.exists():
            return cls()
        data = json.loads(path.read_text())
        return cls(**{k: data[k] for k in ("last_id", "queued", "pages", "complete")
                      if k in data})

    def save(self, path: Path) -> None:
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(json.dumps(asdict(self) | {"updated_at": time.time()}) + "\n")
        os.replace(temporary, path)  # a crash leaves the old checkpoint or the new one


def consented_after(purposes_property: str, last_id: int) -> list[dict[str, Any]]:
    """The search filter: `lead_scoring` among the consented purposes, id above `last_id`.
    The score function checks consent exactly; this only spares it the others."""
    return [{"filters": [
        {"propertyName": purposes_property, "operator": "IN",
         "values": [Purpose.LEAD_SCORING.value]},
        {"propertyName": "hs_object_id", "operator": "GT", "value": str(last_id)},
    ]}]


def backfill(
    *,
    hubspot: ContactSearch,
    queue: MessageQueue,
    checkpoint_path: Path,
    purposes_property: str,
    portal_id: int = 0,
    limit: int | None = None,
    clock: Callable[[], float] = time.time,
    echo: Callable[[str], None] = lambda _line: None,
) -> Checkpoint:
    """Queues consented contacts page by page from the checkpoint on; returns it. `limit`
    stops after about that many contacts (whole pages), leaving the checkpoint resumable."""
    checkpoint = Checkpoint.load(checkpoint_path)
    if checkpoint.complete:
        echo(f"checkpoint {checkpoint_path} says the backfill is complete "
             f"({checkpoint.queued} contacts); delete it to run again")
        return checkpoint
    queued_now = 0
    while limit is None or queued_now < limit:
        contacts, _ = hubspot.search(
            consented_after(purposes_property, checkpoint.last_id), [purposes_property],
            limit=BATCH_LIMIT, sorts=["hs_object_id"],
        )
        if not contacts:
            checkpoint.complete = True
            checkpoint.save(checkpoint_path)
            break
        last_id = last_ascending_id(contacts, checkpoint.last_id)  # before queuing any
        # occurred_at = now: newer than any event already applied, so the score is current.
        now_ms = int(clock() * 1000)
        queue.send([ScoreMessage(contact_id=c.id, event_id=0, subscription_type=BACKFILL,
                                 occurred_at=now_ms, portal_id=portal_id) for c in contacts])
        checkpoint.last_id = last_id
        checkpoint.queued += len(contacts)
        checkpoint.pages += 1
        queued_now += len(contacts)
        checkpoint.save(checkpoint_path)
        echo(f"queued {checkpoint.queued} contacts (last id {checkpoint.last_id})")
    return checkpoint
