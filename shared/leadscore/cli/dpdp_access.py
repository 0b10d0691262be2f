"""`leadscore dpdp access --contact-id ID`: everything one stack holds or derived about a person,
and who received their data — the answer to a request under the right of access (DPDP Act
s. 11: a summary of the personal data processed and of the processing, and the identities of
the Data Processors it was shared with, with a description of what was shared).

Read, never written: the `ai_lead_*` properties on the HubSpot contact with their history
(every value and when it was set: HubSpot keeps earlier values after erasure clears them),
the consent the stack relies on, the contact's item in each store of derived data keyed by
contact id (`ACCESS_STORES`), its erasure receipts (found through the receipt key), and the
processors: HubSpot and AWS always, each LLM provider and model from the disclosure record.

The output is the person's own data: give it to them through the channel your request process
verified, and do not paste it into tickets or chats.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from leadscore.cli.stack_view import StackView
from leadscore.dpdp.erasure import OUTSIDE_SCOPE, DynamoDBReceipts, subject_hash
from leadscore.hubspot.properties import AI_PROPERTIES, AI_PROPERTY_SPECS

# Stores of derived data keyed by contact id: template logical id -> the name in the answer.
ACCESS_STORES: dict[str, str] = {
    "LedgerTable": "score_ledger",
    "DisclosuresTable": "disclosures",
    # The learning loop's point-in-time inputs, score, outcome (and a shadow challenger's score).
    "FeatureSnapshotTable": "feature_snapshot",
}
CONSENT_PROPERTIES = ("ConsentPurposesProperty", "dpdp_consent_purposes"), (
    "ConsentUpdatedAtProperty", "dpdp_consent_updated_at")
PROPERTY_MEANING = {spec.name: spec.description for spec in AI_PROPERTY_SPECS}


def plain(value: Any) -> Any:
    """DynamoDB values as JSON ones (Decimal → int/float, sets → sorted lists)."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return sorted(plain(v) for v in value)
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def _iso(moment: Any) -> str | None:
    if moment is None:
        return None
    if isinstance(moment, datetime):
        return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return str(moment)


def hubspot_section(view: StackView, contact_id: str) -> dict[str, Any]:
    """The contact's derived properties with their history, and its consent values."""
    from hubspot import HubSpot
    from hubspot.crm.contacts.exceptions import NotFoundException

    consent = [view.parameters.get(parameter) or default
               for parameter, default in CONSENT_PROPERTIES]
    client = HubSpot(access_token=view.token(), host=view.hubspot_url)
    try:
        contact = client.crm.contacts.basic_api.get_by_id(
            contact_id, properties=[*AI_PROPERTIES, *consent],
            properties_with_history=list(AI_PROPERTIES))
    except NotFoundException:
        return {"found": False, "note": "HubSpot has no contact with this id (deleted, or "
                                        "never created)"}
    values = contact.properties or {}
    history = contact.properties_with_history or {}
    derived: dict[str, Any] = {}
    for name in AI_PROPERTIES:
        versions = [{"value": version.value, "set_at": _iso(version.timestamp)}
                    for version in history.get(name) or []]
        if values.get(name) in (None, "") and not any(v["value"] for v in versions):
            continue
        derived[name] = {"meaning": PROPERTY_MEANING.get(name, ""), "value": values.get(name),
                         "history": versions}
    return {"found": True, "consent": {name: values.get(name) for name in consent},
            "derived_properties": derived}


def stores_section(view: StackView, contact_id: str) -> dict[str, Any]:
    dynamodb = view.resource("dynamodb")
    found: dict[str, Any] = {}
    for logical_id, name in ACCESS_STORES.items():
        table = view.physical(logical_id)
        if table is None:
            found[name] = {"note": f"this stack has no {logical_id}"}
            continue
        item = dynamodb.Table(table).get_item(Key={"contact_id": str(contact_id)},
                                              ConsistentRead=True).get("Item")
        found[name] = plain(item) if item else None
    return found


def erasures_section(view: StackView, contact_id: str,
                     key_secret: str | None = None) -> list[dict[str, Any]] | None:
    """The contact's erasure receipts; None when the receipt key is unknown (the receipts
    name people only by its keyed hash)."""
    table = view.physical("ErasureReceiptsTable")
    secret = key_secret or view.physical("ErasureReceiptKeySecret")
    if not table:
        return []
    if not secret:
        return None
    key = view.client("secretsmanager").get_secret_value(SecretId=secret)["SecretString"]
    receipts = DynamoDBReceipts(table, view.resource("dynamodb")).for_subject(
        subject_hash(key.encode(), contact_id))
    return [{**{k: plain(v) for k, v in receipt.items() if k not in ("subject", "expires_at")},
             "not_reached": [OUTSIDE_SCOPE.get(code, code)
                             for code in receipt.get("outside_scope") or []]}
            for receipt in receipts]


def processors_section(view: StackView, disclosures: Any) -> list[dict[str, Any]]:
    """Who holds or received the person's data: the CRM, this stack's cloud, each LLM."""
    processors: list[dict[str, Any]] = [
        {"processor": "HubSpot, Inc.", "role": "the CRM: holds the contact and the ai_lead_* "
         "properties leadscore writes (your account's HubSpot data centre)"},
        {"processor": "Amazon Web Services", "role": "runs leadscore: reads the contact from "
         "HubSpot, scores it, keeps the score ledger, queues and logs",
         "region": view.region},
    ]
    entries = (disclosures or {}).get("disclosures") or {}
    for entry in sorted(entries.values(), key=lambda e: str(e.get("first_at", ""))):
        processors.append({key: plain(entry.get(key)) for key in (
            "processor", "model", "endpoint", "region", "routing", "purpose", "fields",
            "first_at", "last_at", "count")})
    return processors


def grievance_contact(view: StackView) -> dict[str, str] | None:
    contact = {key: view.parameters.get(f"GrievanceOfficer{key.title()}", "")
               for key in ("name", "email", "phone")}
    return contact if any(contact.values()) else None


def access_report(view: StackView, contact_id: str, *, key_secret: str | None = None,
                  now: datetime | None = None) -> dict[str, Any]:
    """What the stack holds or derived about `contact_id`, and who received it. `key_secret`
    names the receipt key's secret when the stack does not (e.g. retained from a deleted
    stack)."""
    stores = stores_section(view, contact_id)
    hubspot = hubspot_section(view, contact_id)
    erasures = erasures_section(view, contact_id, key_secret)
    report: dict[str, Any] = {
        "contact_id": str(contact_id),
        "stack": view.name,
        "generated_at": _iso(now or datetime.now(UTC)),
        "hubspot": hubspot,
        "stores": stores,
        "erasures": erasures,
        "processors": processors_section(view, stores.get("disclosures")),
        "notes": [
            "Derived properties list every value HubSpot kept with the time it was set: "
            "clearing a property (erasure) leaves its earlier values in this history until "
            "the contact itself is deleted.",
            "Queued work (ScoreQueue, EnrichQueue and their DLQs) and the function logs name "
            "contact ids only; logs are kept LogRetentionDays (`leadscore dpdp affected` "
            "searches them).",
        ],
    }
    if erasures is None:
        report["notes"].append("Erasure receipts not searched: the receipt key's secret is "
                               "unknown (pass --key-secret <ErasureReceiptKeySecretArn>).")
    if contact := grievance_contact(view):
        report["grievance_officer"] = contact
    return report
