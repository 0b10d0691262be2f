"""`leadscore hubspot setup`: creates the `ai_lead_scoring` property group and the contact
properties leadscore uses (`leadscore.hubspot.properties`), and the consent properties if the
portal lacks them.

Idempotent: existing properties are updated in place (labels, options), never duplicated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from hubspot import HubSpot
from hubspot.crm.properties import (
    OptionInput,
    PropertyCreate,
    PropertyGroupCreate,
    PropertyGroupUpdate,
    PropertyUpdate,
)
from hubspot.crm.properties.exceptions import ApiException, NotFoundException

from leadscore.hubspot.properties import AI_PROPERTY_SPECS, GROUP_LABEL, GROUP_NAME, PropertySpec

CONSENT_GROUP_NAME = "contactinformation"
CONSENT_PURPOSES = ("lead_scoring", "ai_enrichment", "model_training")


def consent_properties(
    purposes_property: str, updated_at_property: str
) -> tuple[PropertySpec, ...]:
    """The consent properties leadscore reads; created only when the portal lacks them."""
    return (
        PropertySpec(purposes_property, "DPDP consent purposes", "enumeration", "checkbox",
                     "Purposes the person consented to (DPDP Act).", CONSENT_PURPOSES),
        PropertySpec(updated_at_property, "DPDP consent updated at", "datetime", "date",
                     "When consent last changed."),
    )


@dataclass
class SetupReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


def _options(spec: PropertySpec) -> list[OptionInput]:
    return [
        OptionInput(label=value.replace("_", " ").capitalize(), value=value, display_order=i,
                    hidden=False)
        for i, value in enumerate(spec.options)
    ]


def ensure_properties(
    client: HubSpot,
    purposes_property: str = "dpdp_consent_purposes",
    updated_at_property: str = "dpdp_consent_updated_at",
    echo: Callable[[str], None] = lambda _line: None,
) -> SetupReport:
    """Create or update the group and every property; safe to run any number of times."""
    props = client.crm.properties
    report = SetupReport()

    try:
        props.groups_api.get_by_name("contacts", GROUP_NAME)
        props.groups_api.update("contacts", GROUP_NAME, PropertyGroupUpdate(label=GROUP_LABEL))
        report.updated.append(f"group {GROUP_NAME}")
    except NotFoundException:
        props.groups_api.create(
            "contacts", PropertyGroupCreate(name=GROUP_NAME, label=GROUP_LABEL, display_order=-1)
        )
        report.created.append(f"group {GROUP_NAME}")

    existing = {p.name for p in props.core_api.get_all("contacts").results}
    for spec in AI_PROPERTY_SPECS:
        if spec.name in existing:
            props.core_api.update("contacts", spec.name, PropertyUpdate(
                label=spec.label, description=spec.description, group_name=GROUP_NAME,
                options=_options(spec) or None,
            ))
            report.updated.append(spec.name)
        else:
            _create(props, spec, GROUP_NAME)
            report.created.append(spec.name)

    # Consent properties belong to the customer's consent process: create if absent, never edit.
    for spec in consent_properties(purposes_property, updated_at_property):
        if spec.name in existing:
            report.kept.append(spec.name)
        else:
            _create(props, spec, CONSENT_GROUP_NAME)
            report.created.append(spec.name)

    for kind, names in (("created", report.created), ("updated", report.updated),
                        ("kept", report.kept)):
        if names:
            echo(f"{kind}: {', '.join(names)}")
    return report


def _create(props, spec: PropertySpec, group: str) -> None:
    try:
        props.core_api.create("contacts", PropertyCreate(
            name=spec.name, label=spec.label, type=spec.type, field_type=spec.field_type,
            group_name=group, description=spec.description, options=_options(spec),
        ))
    except ApiException as exc:
        raise RuntimeError(f"could not create property {spec.name}: HTTP {exc.status}") from exc


WEBHOOK_SUBSCRIPTIONS_HELP = """\
Configure these webhook subscriptions in your HubSpot app (Settings → Webhooks), target URL =
the WebhookUrl output of the stack:
  contact.creation
  contact.deletion
  contact.privacyDeletion
  contact.merge
  contact.propertyChange  for each property in your features.toml (the WatchedProperties
                          parameter) and for {purposes}; never for ai_lead_* (ignored anyway)
  contact.propertyChange  for the outcome properties the learning loop reads: the [label]
                          column (lifecyclestage by default) and every [outcome] signal
                          column of features.toml (list them in WatchedProperties too). A
                          missed outcome webhook is not lost (the monthly retrain reads
                          HubSpot's property history), but it arrives later.
"""
