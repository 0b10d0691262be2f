"""`leadscore local invoke <LogicalId> -e <event>`: one function, one event, local backends.

The counterpart of `sam local invoke` where Docker is not available: the function runs
in-process against moto, the HubSpot emulator (seeded with synthetic contacts so ids in
events/ resolve) and the Anthropic emulator.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

from hubspot import HubSpot

from leadscore_local.demo import create_contacts, new_leads
from leadscore_local.sample_events import SAMPLE_CLIENT_SECRET
from leadscore_local.stack import LocalStack, stdout_to_stderr
from leadscore_local.webhook_sender import sign_v3

SEEDED_CONTACTS = 20


def sample_contacts() -> list[dict[str, str]]:
    """The contacts the events in events/ name: created first in a fresh HubSpot emulator, they
    get its first ids (101, 102, ...; see sample_events)."""
    return new_leads(SEEDED_CONTACTS, seed=1)


def resign_webhook(event: dict[str, Any], url: str, client_secret: str) -> dict[str, Any]:
    """A recorded signature is stale after 5 minutes: sign the event's body again, now.

    Only events genuinely signed with the sample secret are re-signed, so a forged sample
    stays forged.
    """
    event = copy.deepcopy(event)
    headers = event.get("headers", {})
    recorded = headers.get("x-hubspot-signature-v3")
    body = event.get("body") or ""
    recorded_uri = f"https://{event['requestContext']['domainName']}{event['rawPath']}"
    expected = sign_v3(SAMPLE_CLIENT_SECRET, "POST", recorded_uri, body.encode(),
                       int(headers.get("x-hubspot-request-timestamp", "0")))
    if recorded != expected:
        return event
    timestamp = str(int(time.time() * 1000))
    headers["x-hubspot-request-timestamp"] = timestamp
    headers["x-hubspot-signature-v3"] = sign_v3(
        client_secret, "POST", url, body.encode(), int(timestamp)
    )
    return event


def invoke_once(project_root: Path, logical_id: str, event: dict[str, Any],
                resign: bool = True) -> Any:
    stack = LocalStack(project_root)
    with stdout_to_stderr():
        try:
            info = stack.start(event_sources=False)
            if logical_id not in stack.runtime.specs:
                raise ValueError(f"no function {logical_id!r} in template.yaml; "
                                 f"choose from {sorted(stack.runtime.specs)}")
            client = HubSpot(access_token=info.hubspot_token, host=info.hubspot_url)
            create_contacts(client, sample_contacts())
            if resign and logical_id in ("IngestFunction", "ScoreApiFunction"):
                url = info.webhook_url if logical_id == "IngestFunction" else info.score_api_url
                event = resign_webhook(event, url, info.hubspot_client_secret)
            result = stack.runtime.invoke(logical_id, event)
        finally:
            stack.stop()
    return json.loads(json.dumps(result, default=str))
