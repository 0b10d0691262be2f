"""Creates the `ai_lead_scoring` property group and the contact properties leadscore uses.

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

GROUP_NAME = "ai_lead_scoring"
GROUP_LABEL = "AI lead scoring"
CONSENT_GROUP_NAME = "contactinformation"
TIERS = ("hot", "warm", "cold", "disqualified")
CONSENT_PURPOSES = ("lead_scoring", "ai_enrichment")


@dataclass(frozen=True)
class PropertySpec:
    name: str
    label: str
    type: str
    field_type: str
    description: str
    options: tuple[str, ...] = field(default_factory=tuple)


# The properties leadscore writes (DESIGN.md, "HubSpot contact properties").
AI_PROPERTIES: tuple[PropertySpec, ...] = (
    PropertySpec("ai_lead_score", "AI lead score", "number", "number",
                 "0-100: how this lead ranks against historical leads; "
                 "higher converts more often."),
    PropertySpec("ai_lead_probability", "AI conversion probability", "number", "number",
                 "Calibrated probability (0-1) that this lead converts."),
    PropertySpec("ai_lead_tier", "AI lead tier", "enumeration", "select",
                 "Tier from configurable score thresholds.", TIERS),
    PropertySpec("ai_lead_reasons", "AI score reasons", "string", "textarea",
                 "The top factors behind the score."),
    PropertySpec("ai_lead_model_version", "AI model version", "string", "text",
                 "Which model produced the score."),
    PropertySpec("ai_lead_scored_at", "AI scored at", "datetime", "date",
                 "When the score was written."),
    PropertySpec("ai_lead_summary", "AI fit summary", "string", "textarea",
                 "LLM-written fit summary."),
    PropertySpec("ai_lead_next_action", "AI next action", "string", "text",
                 "LLM-recommended next step."),
    PropertySpec("ai_lead_needs_review", "AI needs review", "bool", "booleancheckbox",
                 "Low confidence, or the model and the LLM disagree."),
    PropertySpec("ai_lead_review_reason", "AI review reason", "string", "text",
                 "Why the lead needs review."),
)

AI_PROPERTY_NAMES: tuple[str, ...] = tuple(spec.name for spec in AI_PROPERTIES)


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
    for spec in AI_PROPERTIES:
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
"""
