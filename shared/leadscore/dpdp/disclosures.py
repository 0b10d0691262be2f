"""Which processors received a contact's data: the record behind the right of access's "the
identities of all other Data Fiduciaries and Data Processors with whom the personal data has
been shared ... along with a description of the personal data so shared" (DPDP Act s. 11(1)(b)).

`DisclosuresTable` holds one item per contact (pk `contact_id`): a map of disclosures keyed by
`provider|model`, each with the processor, endpoint, region and routing, the purpose, the
fields sent (names, never values), the first and last time and how many times. Nothing in it
is personal data beyond the contact id: it says where the data went, not what it was. Keyed
by provider and model, an item stays small however often a lead is enriched (each delivery
would otherwise add an entry to a list that only grows).

The enrich function records a disclosure right before each LLM request that carries lead data
(`DynamoDBDisclosures.add`): a request whose record could not be written is not sent. Erasure
deletes the item with the contact's other derived records (`leadscore.dpdp.stores.
ContactKeyedTable`); DynamoDB TTL on `expires_at` is the backstop.

No numpy/lightgbm here.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import boto3
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict

from leadscore.timestamps import iso_millis

RECORD_NAME = "disclosures"  # how an erasure receipt names this store's record
TTL_GRACE_DAYS = 7  # as the ledger's: retention erases first, TTL is the backstop


class Disclosure(BaseModel):
    """One processor that received a contact's data for one purpose."""

    model_config = ConfigDict(frozen=True)

    processor: str  # who: "Anthropic PBC (Anthropic API)", "Amazon Web Services (Bedrock)"
    provider: str  # leadscore's LLM_PROVIDER: anthropic | bedrock
    model: str
    endpoint: str  # the host the request went to
    region: str | None = None  # the AWS region called (Bedrock); None: the provider's own
    routing: str  # where the request may be processed, in words
    purpose: str = "ai_enrichment"
    fields: tuple[str, ...] = ()  # which fields were sent (names, never values)

    @property
    def key(self) -> str:
        return f"{self.provider}|{self.model}"


_CONDITION_FAILED = "ConditionalCheckFailedException"


class DynamoDBDisclosures:
    """`DisclosuresTable`: pk `contact_id`; `disclosures` map; TTL `expires_at`."""

    def __init__(self, table_name: str, dynamodb: Any | None = None):
        self._table = (dynamodb or boto3.resource("dynamodb")).Table(table_name)

    def add(self, contact_id: str, disclosure: Disclosure, *, now: datetime,
            retention_days: int) -> None:
        """Records that `disclosure` happens now; the item expires (TTL backstop) with the
        contact's other derived data. Three conditional updates cover an entry that exists, a
        map without the entry and no item yet; each retried after a concurrent writer changed
        what it expected."""
        at = iso_millis(now)
        expires_at = int((now + timedelta(days=retention_days + TTL_GRACE_DAYS)).timestamp())
        entry = disclosure.model_dump(mode="json") | {
            "fields": list(disclosure.fields), "first_at": at, "last_at": at, "count": 1}
        names = {"#d": "disclosures", "#k": disclosure.key}
        attempts = [
            ("SET #d.#k.last_at = :at, #d.#k.#n = #d.#k.#n + :one, #d.#k.#f = :fields, "
             "expires_at = :exp", "attribute_exists(#d.#k)",
             {"#n": "count", "#f": "fields"},
             {":at": at, ":one": 1, ":fields": list(disclosure.fields)}),
            ("SET #d.#k = :entry, expires_at = :exp",
             "attribute_exists(#d) AND attribute_not_exists(#d.#k)", {}, {":entry": entry}),
            ("SET #d = :map, expires_at = :exp", "attribute_not_exists(#d)", {},
             {":map": {disclosure.key: entry}}),
        ]
        for _ in range(3):  # the item can change shape between two attempts, rarely twice
            for update, condition, extra_names, values in attempts:
                used = {k: v for k, v in (names | extra_names).items() if k in update + condition}
                try:
                    self._table.update_item(
                        Key={"contact_id": str(contact_id)}, UpdateExpression=update,
                        ConditionExpression=condition, ExpressionAttributeNames=used,
                        ExpressionAttributeValues=values | {":exp": expires_at})
                    return
                except ClientError as error:
                    if error.response["Error"]["Code"] != _CONDITION_FAILED:
                        raise
        raise RuntimeError("disclosure not recorded: the item kept changing")

    def for_contact(self, contact_id: str) -> list[dict[str, Any]]:
        """The contact's disclosures, oldest first."""
        item = self._table.get_item(Key={"contact_id": str(contact_id)},
                                    ConsistentRead=True).get("Item") or {}
        found = list((item.get("disclosures") or {}).values())
        return sorted(found, key=lambda entry: str(entry.get("first_at", "")))
