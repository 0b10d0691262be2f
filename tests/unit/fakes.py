"""Fakes shared by the unit tests (the `kit` fixture hands them out too)."""

from __future__ import annotations

from pathlib import Path

import boto3

from leadscore.hubspot.client import Contact
from leadscore_local.cfn_yaml import load_template

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


class FakeHubSpot:
    """In-memory contacts with the HubSpotClient interface; records every call."""

    def __init__(self, contacts: dict[str, dict[str, str | None]] | None = None):
        self.contacts = {cid: dict(props) for cid, props in (contacts or {}).items()}
        self.reads: list[list[str]] = []
        self.updates: list[dict[str, dict[str, str]]] = []
        self.searches = 0
        self.read_error: Exception | None = None
        self.update_error: Exception | None = None

    def batch_read(self, ids, properties):
        ids, properties = list(ids), list(properties)
        self.reads.append(ids)
        if self.read_error:
            raise self.read_error
        return {cid: {p: self.contacts[cid].get(p) for p in properties}
                for cid in ids if cid in self.contacts}

    def batch_update(self, updates):
        updates = {cid: dict(props) for cid, props in updates.items()}
        self.updates.append(updates)
        if self.update_error:
            raise self.update_error
        for cid, props in updates.items():
            self.contacts[cid].update(props)

    def search(self, filter_groups, properties, after=None, limit=100):
        self.searches += 1
        wanted = filter_groups[0]["filters"][0]["propertyName"]
        matching = sorted((cid for cid, props in self.contacts.items() if props.get(wanted)),
                          key=int)
        start = int(after or 0)
        page = matching[start:start + limit]
        contacts = [Contact(id=cid, properties={p: self.contacts[cid].get(p) for p in properties})
                    for cid in page]
        return contacts, (str(start + limit) if start + limit < len(matching) else None)


def create_table(logical_id: str, name: str | None = None) -> str:
    """The DynamoDB table `logical_id` of template.yaml, keyed as there, in the active moto
    mock (named `name`, default the logical id); returns its name."""
    properties = load_template(TEMPLATE)["Resources"][logical_id]["Properties"]
    name = name or logical_id
    boto3.client("dynamodb").create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST", KeySchema=properties["KeySchema"],
        AttributeDefinitions=properties["AttributeDefinitions"])
    return name
