"""`leadscore hubspot setup`: creates the `ai_lead_scoring` property group and the contact
properties leadscore uses (`leadscore.hubspot.properties`), and the consent properties if the
portal lacks them.

Idempotent: an existing property is updated in place (label, description, options) only where
it differs from its definition, never duplicated. `refresh_descriptions` is the part the score
function runs when it loads a model: it brings existing `ai_*` properties up to date with the
model's descriptions (tier thresholds) and creates nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hubspot import HubSpot
from hubspot.crm.properties import (
    Option,
    OptionInput,
    PropertyCreate,
    PropertyGroupCreate,
    PropertyGroupUpdate,
    PropertyUpdate,
)
from hubspot.crm.properties.exceptions import ApiException, NotFoundException

from leadscore.hubspot.properties import (
    AI_PROPERTY_SPECS,
    GROUP_LABEL,
    GROUP_NAME,
    PropertySpec,
)

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
    """In the order given (hot → disqualified), each with its description."""
    descriptions = spec.option_descriptions or ("",) * len(spec.options)
    return [
        OptionInput(label=value.replace("_", " ").capitalize(), value=value, display_order=i,
                    hidden=False, description=description)
        for i, (value, description) in enumerate(zip(spec.options, descriptions, strict=True))
    ]


def _option_key(option: Option | OptionInput) -> tuple:
    return (option.value, option.label, option.display_order, bool(option.hidden),
            option.description or "")


def is_current(existing: Any, spec: PropertySpec) -> bool:
    """Whether a property read from HubSpot already has the spec's label, description, group
    and options (in order). Options are compared only where the spec defines them: HubSpot
    gives a checkbox its own Yes/No."""
    wanted = [_option_key(option) for option in _options(spec)]
    found = sorted((_option_key(option) for option in existing.options or []),
                   key=lambda key: key[2])
    return (existing.label == spec.label and (existing.description or "") == spec.description
            and existing.group_name == GROUP_NAME and (not wanted or found == wanted))


def _update(props: Any, spec: PropertySpec, **request: Any) -> None:
    props.core_api.update("contacts", spec.name, PropertyUpdate(
        label=spec.label, description=spec.description, group_name=GROUP_NAME,
        options=_options(spec) or None,
    ), **request)


def ensure_properties(
    client: HubSpot,
    purposes_property: str = "dpdp_consent_purposes",
    updated_at_property: str = "dpdp_consent_updated_at",
    echo: Callable[[str], None] = lambda _line: None,
    specs: Sequence[PropertySpec] = AI_PROPERTY_SPECS,
) -> SetupReport:
    """Create the group and every property, or bring them up to date; safe to run any number
    of times. `specs` are the `ai_*` properties described for the model in use
    (`leadscore.hubspot.properties.ai_property_specs`)."""
    props = client.crm.properties
    report = SetupReport()

    try:
        group = props.groups_api.get_by_name("contacts", GROUP_NAME)
        if group.label != GROUP_LABEL:
            props.groups_api.update("contacts", GROUP_NAME,
                                    PropertyGroupUpdate(label=GROUP_LABEL))
            report.updated.append(f"group {GROUP_NAME}")
        else:
            report.kept.append(f"group {GROUP_NAME}")
    except NotFoundException:
        props.groups_api.create(
            "contacts", PropertyGroupCreate(name=GROUP_NAME, label=GROUP_LABEL, display_order=-1)
        )
        report.created.append(f"group {GROUP_NAME}")

    existing = {p.name: p for p in props.core_api.get_all("contacts").results}
    for spec in specs:
        if spec.name not in existing:
            _create(props, spec, GROUP_NAME)
            report.created.append(spec.name)
        elif is_current(existing[spec.name], spec):
            report.kept.append(spec.name)
        else:
            _update(props, spec)
            report.updated.append(spec.name)

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


def refresh_descriptions(client: HubSpot, specs: Sequence[PropertySpec],
                         timeout: float | None = None) -> list[str]:
    """Updates the existing properties among `specs` that differ from their definition (one
    read of the portal's contact properties, one update per stale property); creates nothing.
    Returns the names updated."""
    props = client.crm.properties
    request = {"_request_timeout": timeout} if timeout else {}
    existing = {p.name: p for p in props.core_api.get_all("contacts", **request).results}
    stale = [spec for spec in specs if spec.name in existing
             and not is_current(existing[spec.name], spec)]
    for spec in stale:
        _update(props, spec, **request)
    return [spec.name for spec in stale]


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
