"""A stateful, in-memory HubSpot CRM v3 emulator over real HTTP on 127.0.0.1.

It serves the contacts and properties endpoints leadscore uses with HubSpot's JSON shapes
(checked against HubSpot's OpenAPI files in tests), HubSpot's error bodies, per-client
request counting, HubSpot-style rate limits and injectable faults, and it sends signed
webhooks for contact changes as a HubSpot app would. The official `hubspot-api-client`
is its client: `HubSpot(access_token=token, host=emulator.url)`.

Admin endpoints under `/_emulator/` (no auth, never counted): `GET stats`, `POST faults`,
`POST reset`, `GET|POST contacts`, `GET|POST|PATCH|DELETE subscriptions` (PATCH `{"active",
"property_name"}` pauses or resumes; POST takes `format`:
`legacy` or `generic`), `POST event-ids` (`{"pool": N}`: reuse N event ids), `POST tokens`
(`{"client": name}`: a new private app with its own rate limit; returns its token), `POST
flush`. Stats include
`early_retries`: requests a client sent before a 429's Retry-After had passed. Contacts keep
HubSpot's `propertiesWithHistory` (one version per write), so writes can be counted per contact.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import hashlib
import json
import math
import re
import signal
import threading
import time
import uuid
from collections import Counter, defaultdict, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from leadscore_local import webhook_sender

# --------------------------------------------------------------------------- constants

CONTACT_OBJECT_TYPES = frozenset({"contacts", "contact", "0-1"})
MAX_BATCH_INPUTS = 100
# HubSpot answers a batch read asking for `propertiesWithHistory` with more inputs than this
# with 400 VALIDATION_ERROR (seen in the field: "The maximum number of inputs supported in a
# batch request for property histories is 50. Please reduce the number of items and try again").
MAX_HISTORY_BATCH_INPUTS = 50
MAX_PAGE_LIMIT = 100
MAX_SEARCH_LIMIT = 200
MAX_SEARCH_RESULTS = 10_000  # HubSpot's search never pages beyond 10,000 results
FIRST_CONTACT_ID = 101
FIRST_EVENT_ID = 101

# What GET/search return when no `properties` are asked for, and what they always add.
DEFAULT_PROPERTIES = ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate",
                      "lastname")
ALWAYS_RETURNED = ("createdate", "hs_object_id", "lastmodifieddate")
# Properties the search `query` string looks in (HubSpot's default searchable contact fields).
QUERY_SEARCHED = ("firstname", "lastname", "email", "phone", "company")

SEARCH_OPERATORS = frozenset({
    "EQ", "NEQ", "LT", "LTE", "GT", "GTE", "BETWEEN", "IN", "NOT_IN", "HAS_PROPERTY",
    "NOT_HAS_PROPERTY", "CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN",
})
WEBHOOK_TYPES = ("contact.creation", "contact.propertyChange", "contact.deletion",
                 "contact.privacyDeletion", "contact.merge")
# The generic format of apps on HubSpot's newer developer platform: `object.*` with the object
# in `objectTypeId`. HubSpot offers no generic privacy deletion (its generic-webhooks guide says
# to use the legacy `contact.privacyDeletion`), so a generic app subscribes to that one.
CONTACT_OBJECT_TYPE_ID = "0-1"
GENERIC_WEBHOOK_TYPES = ("object.creation", "object.propertyChange", "object.deletion",
                         "object.merge", "contact.privacyDeletion")
WEBHOOK_FORMATS = {"legacy": WEBHOOK_TYPES, "generic": GENERIC_WEBHOOK_TYPES}
# Not copied from the merged contact onto the primary one.
MERGE_SKIPPED = frozenset({"hs_object_id", "createdate", "lastmodifieddate"})

PROPERTY_TYPES = {  # type -> field types HubSpot accepts with it
    "string": {"text", "textarea", "html", "phonenumber", "file"},
    "number": {"number", "calculation_equation"},
    "bool": {"booleancheckbox", "calculation_equation"},
    "enumeration": {"select", "radio", "checkbox", "booleancheckbox", "calculation_equation"},
    "date": {"date"},
    "datetime": {"date"},
    "phone_number": {"phonenumber", "text"},
}
PROPERTY_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

FAULT_RETRY_AFTER_SECONDS = 1  # Retry-After of an injected 429
ERROR_CATEGORIES = {  # status -> HubSpot error category, for injected faults
    429: "RATE_LIMITS", 500: "INTERNAL_ERROR", 502: "BAD_GATEWAY",
    503: "SERVICE_UNAVAILABLE", 504: "GATEWAY_TIMEOUT",
}


# --------------------------------------------------------------------------- helpers

def _now_ms() -> int:
    return int(time.time() * 1000)


def _iso(ms: int) -> str:
    """HubSpot's timestamp format: 2019-10-30T03:30:17.883Z."""
    stamp = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def _to_ms(value: str) -> int | None:
    """Epoch milliseconds or ISO-8601 (date or datetime) to epoch ms; None if unparsable."""
    text = value.strip()
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def _correlation_id() -> str:
    return str(uuid.uuid4())


class HubSpotError(Exception):
    """An error answered with HubSpot's error body (`status`, `message`, `correlationId`...)."""

    def __init__(self, status: int, category: str, message: str, *,
                 errors: list[dict[str, Any]] | None = None,
                 context: Mapping[str, list[str]] | None = None,
                 headers: Mapping[str, str] | None = None,
                 extra: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.category = category
        self.message = message
        self.errors = errors
        self.context = context
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"status": "error", "message": self.message,
                                "correlationId": _correlation_id(), "category": self.category}
        if self.errors is not None:
            body["errors"] = self.errors
        if self.context is not None:
            body["context"] = dict(self.context)
        body.update(self.extra)
        return body


def _validation_error(message: str, **kwargs: Any) -> HubSpotError:
    return HubSpotError(400, "VALIDATION_ERROR", message, **kwargs)


def _not_found(message: str) -> HubSpotError:
    return HubSpotError(404, "OBJECT_NOT_FOUND", message)


# --------------------------------------------------------------------------- rate limits

# HubSpot's "API usage guidelines and limits": requests per 10 seconds per app, per day per
# account, by the account's subscription tier; an API limit increase raises the first to 250
# and adds 1,000,000 a day (at most two can be bought).
TIER_LIMITS = {"free": (100, 250_000), "starter": (100, 250_000),
               "professional": (190, 625_000), "enterprise": (190, 1_000_000)}


@dataclass(frozen=True)
class RateLimits:
    """HubSpot's rate limits: `max_requests` per `interval_seconds` for each app (each private
    app, i.e. each token, has its own), `daily` for the whole account (every app together),
    `search_per_second` per token on the search endpoints. Defaults: a Professional account."""

    max_requests: int = 190
    interval_seconds: float = 10.0
    search_per_second: int = 5
    daily: int = 625_000

    @classmethod
    def for_tier(cls, tier: str, limit_increases: int = 0, **overrides: Any) -> RateLimits:
        """The documented limits of a tier (`free`, `starter`, `professional`, `enterprise`),
        with 0-2 API limit increases."""
        if not 0 <= limit_increases <= 2:
            raise ValueError("HubSpot sells at most two API limit increases")
        per_app, daily = TIER_LIMITS[tier]
        if limit_increases:
            per_app, daily = 250, daily + 1_000_000 * limit_increases
        return cls(max_requests=per_app, daily=daily, **overrides)


class _Window:
    """A rolling window of request times: HubSpot's TEN_SECONDLY_ROLLING / SECONDLY policies."""

    def __init__(self, limit: int, seconds: float) -> None:
        self.limit = limit
        self.seconds = seconds
        self.times: deque[float] = deque()

    def _expire(self, now: float) -> None:
        while self.times and self.times[0] <= now - self.seconds:
            self.times.popleft()

    def full(self, now: float) -> bool:
        self._expire(now)
        return len(self.times) >= self.limit

    def add(self, now: float) -> None:
        self.times.append(now)

    def remaining(self, now: float) -> int:
        self._expire(now)
        return max(0, self.limit - len(self.times))

    def retry_after(self, now: float) -> int:
        """Whole seconds until the oldest request leaves the window (at least 1)."""
        self._expire(now)
        if not self.times:
            return 1
        return max(1, math.ceil(self.times[0] + self.seconds - now))


@dataclass
class _ClientLimits:
    rolling: _Window
    search: _Window


@dataclass
class _DailyUse:
    """The account's requests today (the daily limit is the account's, not an app's)."""

    day: date = field(default_factory=lambda: datetime.now(UTC).date())
    used: int = 0


# --------------------------------------------------------------------------- property definitions

def _option(value: str, label: str, order: int) -> dict[str, Any]:
    return {"label": label, "value": value, "displayOrder": order, "hidden": False,
            "description": ""}


def _options(values: Sequence[str | tuple[str, str]]) -> list[dict[str, Any]]:
    result = []
    for order, item in enumerate(values):
        value, label = item if isinstance(item, tuple) else (item, item)
        result.append(_option(value, label, order))
    return result


def _definition(name: str, label: str, type_: str, field_type: str, group: str, *,
                options: Sequence[str | tuple[str, str]] = (), description: str = "",
                hubspot_defined: bool = True, read_only_value: bool = False,
                read_only_definition: bool = False, stamp: str) -> dict[str, Any]:
    """A property in the shape of the Properties API's `Property`."""
    return {
        "name": name, "label": label, "type": type_, "fieldType": field_type,
        "description": description, "groupName": group, "options": _options(options),
        "displayOrder": -1, "calculated": False, "externalOptions": False,
        "hasUniqueValue": False, "hidden": False, "hubspotDefined": hubspot_defined,
        "formField": not read_only_value, "dataSensitivity": "non_sensitive",
        "modificationMetadata": {
            "archivable": not hubspot_defined, "readOnlyDefinition": read_only_definition,
            "readOnlyValue": read_only_value, "readOnlyOptions": False,
        },
        "createdAt": stamp, "updatedAt": stamp, "archived": False,
    }


STANDARD_GROUPS = (
    ("contactinformation", "Contact information", 0),
    ("analyticsinformation", "Web analytics history", 1),
    ("emailinformation", "Email information", 2),
)

LIFECYCLE_STAGES = ("subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead",
                    "opportunity", "customer", "evangelist", "other")
ANALYTICS_SOURCES = ("ORGANIC_SEARCH", "PAID_SEARCH", "EMAIL_MARKETING", "SOCIAL_MEDIA",
                     "REFERRALS", "OTHER_CAMPAIGNS", "DIRECT_TRAFFIC", "OFFLINE", "PAID_SOCIAL",
                     "AI_REFERRALS")
EMPLOYEE_RANGES = ("1-5", "5-25", "25-50", "50-100", "100-500", "500-1000", "1000+")
CONSENT_PURPOSES = (("lead_scoring", "Lead scoring"), ("ai_enrichment", "AI enrichment"),
                    ("model_training", "Model training"))


def standard_properties(stamp: str, *, with_consent: bool = True) -> list[dict[str, Any]]:
    """The contact properties every portal has, plus leadscore's consent properties."""
    info, analytics = "contactinformation", "analyticsinformation"
    props = [
        _definition("email", "Email", "string", "text", info, stamp=stamp),
        _definition("firstname", "First Name", "string", "text", info, stamp=stamp),
        _definition("lastname", "Last Name", "string", "text", info, stamp=stamp),
        _definition("phone", "Phone Number", "string", "phonenumber", info, stamp=stamp),
        _definition("company", "Company Name", "string", "text", info, stamp=stamp),
        _definition("jobtitle", "Job Title", "string", "text", info, stamp=stamp),
        _definition("numemployees", "Number of Employees", "enumeration", "select", info,
                    options=EMPLOYEE_RANGES, stamp=stamp),
        _definition("country", "Country/Region", "string", "text", info, stamp=stamp),
        _definition("lifecyclestage", "Lifecycle Stage", "enumeration", "radio", info,
                    options=LIFECYCLE_STAGES, stamp=stamp),
        _definition("message", "Message", "string", "textarea", info, stamp=stamp),
        _definition("hs_object_id", "Record ID", "number", "number", info,
                    read_only_value=True, read_only_definition=True, stamp=stamp),
        _definition("createdate", "Create Date", "datetime", "date", info,
                    read_only_definition=True, stamp=stamp),
        _definition("lastmodifieddate", "Last Modified Date", "datetime", "date", info,
                    read_only_value=True, read_only_definition=True, stamp=stamp),
        # Written by HubSpot's tracking code in a real portal; writable here so that
        # synthetic history can be loaded through the API.
        _definition("hs_analytics_source", "Original Traffic Source", "enumeration", "select",
                    analytics, options=ANALYTICS_SOURCES, read_only_definition=True,
                    stamp=stamp),
        _definition("hs_analytics_num_visits", "Number of Sessions", "number", "number",
                    analytics, read_only_definition=True, stamp=stamp),
        _definition("hs_analytics_num_page_views", "Number of Pageviews", "number", "number",
                    analytics, read_only_definition=True, stamp=stamp),
        _definition("hs_analytics_last_visit_timestamp", "Time of Last Session", "datetime",
                    "date", analytics, read_only_definition=True, stamp=stamp),
        _definition("hs_email_optout", "Unsubscribed from all email", "bool", "booleancheckbox",
                    "emailinformation", options=(("true", "Yes"), ("false", "No")), stamp=stamp),
    ]
    if with_consent:
        props += [
            _definition("dpdp_consent_purposes", "DPDP consent purposes", "enumeration",
                        "checkbox", info, options=CONSENT_PURPOSES, hubspot_defined=False,
                        description="Purposes the person consented to (DPDP Act).",
                        stamp=stamp),
            _definition("dpdp_consent_updated_at", "DPDP consent updated at", "datetime",
                        "date", info, hubspot_defined=False,
                        description="When consent last changed.", stamp=stamp),
        ]
    return props


# --------------------------------------------------------------------------- contacts store

@dataclass
class _Contact:
    id: int
    properties: dict[str, str]
    created_ms: int
    updated_ms: int
    archived_ms: int | None = None
    # `propertiesWithHistory`: every write of a property appends a version (newest last here,
    # newest first when rendered, as HubSpot returns them), even one that repeats the value.
    history: dict[str, list[tuple[str, int]]] = field(default_factory=dict)

    def record(self, values: Mapping[str, str], at_ms: int) -> None:
        for name, value in values.items():
            self.history.setdefault(name, []).append((value, at_ms))

    @property
    def archived(self) -> bool:
        return self.archived_ms is not None


@dataclass(frozen=True)
class _Change:
    """One contact change, turned into webhook events by the emulator."""

    kind: str  # a WEBHOOK_TYPES value
    contact_id: int
    occurred_ms: int
    property_name: str | None = None
    property_value: str | None = None
    merged_ids: tuple[int, ...] = ()  # contact.merge: the contacts folded into contact_id
    properties_moved: int = 0


class _Portal:
    """The CRM state of one portal: properties, groups, contacts. Callers hold `lock`."""

    def __init__(self, *, with_consent_properties: bool) -> None:
        self.lock = threading.RLock()
        self._with_consent = with_consent_properties
        self.salt = uuid.uuid4().hex  # the order of unsorted search results, per emulator
        self.clear()

    def clear(self) -> None:
        stamp = _iso(_now_ms())
        self.groups: dict[str, dict[str, Any]] = {
            name: {"name": name, "label": label, "displayOrder": order, "archived": False}
            for name, label, order in STANDARD_GROUPS
        }
        self.properties: dict[str, dict[str, Any]] = {
            p["name"]: p for p in standard_properties(stamp, with_consent=self._with_consent)
        }
        self.contacts: dict[int, _Contact] = {}
        self.next_id = FIRST_CONTACT_ID
        # gdpr-delete by an unknown email blocks the address from future use (HubSpot docs).
        self.blocked_emails: set[str] = set()

    # ---------------------------------------------------------------- property values
    def live_property(self, name: str) -> dict[str, Any] | None:
        definition = self.properties.get(name)
        return definition if definition and not definition["archived"] else None

    def _normalise(self, name: str, raw: Any) -> tuple[str | None, dict | None]:
        """Validated stored form of one value, or a HubSpot per-property error."""
        definition = self.live_property(name)
        if definition is None:
            return None, _property_error(name, "PROPERTY_DOESNT_EXIST",
                                         f'Property "{name}" does not exist')
        if definition["modificationMetadata"]["readOnlyValue"]:
            return None, _property_error(
                name, "READ_ONLY_VALUE",
                f"{name} is a read only property; its value cannot be set.")
        if raw is None:
            return "", None
        if isinstance(raw, bool):
            value = "true" if raw else "false"
        else:
            value = raw if isinstance(raw, str) else json.dumps(raw)
        if value == "":
            return "", None  # an empty string clears the property, as in HubSpot
        kind = definition["type"]
        if name == "email":
            if not EMAIL.match(value.strip()):
                return None, _property_error(name, "INVALID_EMAIL",
                                             f"Email address {value} is invalid")
            return value.strip().lower(), None
        if kind == "number":
            try:
                number = float(value)
            except ValueError:
                number = math.nan
            if not math.isfinite(number):
                return None, _property_error(name, "INVALID_LONG",
                                             f"{value} was not a valid number.")
            return value.strip(), None
        if kind == "bool":
            if value.strip().lower() not in ("true", "false"):
                return None, _property_error(name, "INVALID_BOOLEAN",
                                             f"{value} was not a valid boolean.")
            return value.strip().lower(), None
        if kind in ("datetime", "date"):
            ms = _to_ms(value)
            if ms is None:
                return None, _property_error(name, "INVALID_DATE",
                                             f"{value} was not a valid date or datetime.")
            if kind == "date":
                if ms % 86_400_000:
                    return None, _property_error(
                        name, "INVALID_DATE",
                        f"{value} is at {_iso(ms)[11:]} UTC, not midnight!")
                return _iso(ms)[:10], None
            return _iso(ms), None
        if kind == "enumeration":
            allowed = [o["value"] for o in definition["options"]]
            chosen = value.split(";") if definition["fieldType"] == "checkbox" else [value]
            for item in chosen:
                if item not in allowed:
                    return None, _property_error(
                        name, "INVALID_OPTION",
                        f"{item} was not one of the allowed options: [{', '.join(allowed)}]")
            return value, None
        return value, None

    def check(self, values: Any) -> tuple[dict[str, str], list[dict[str, Any]]]:
        """Normalised values of one write and the per-property problems found."""
        if not isinstance(values, Mapping):
            raise _validation_error("Invalid input JSON: `properties` must be an object")
        clean: dict[str, str] = {}
        problems: list[dict[str, Any]] = []
        for name, raw in values.items():
            value, problem = self._normalise(str(name), raw)
            if problem:
                problems.append(problem)
            else:
                clean[str(name)] = value or ""
        return clean, problems

    def validate_all(self, writes: Sequence[Any]) -> list[dict[str, str]]:
        """Every write of a request, normalised; one 400 listing every problem, as HubSpot
        rejects a whole batch when any value is invalid."""
        checked = [self.check(values) for values in writes]
        problems = [problem for _, found in checked for problem in found]
        if problems:
            raise _property_values_error(problems)
        return [clean for clean, _ in checked]

    def validate(self, values: Any) -> dict[str, str]:
        return self.validate_all([values])[0]

    # ---------------------------------------------------------------- lookups
    def find(self, key: str, id_property: str | None, *, archived: bool = False) -> _Contact | None:
        if id_property in (None, "", "hs_object_id"):
            try:
                contact = self.contacts.get(int(key))
            except (TypeError, ValueError):
                return None
        elif id_property == "email":
            wanted = str(key).strip().lower()
            contact = next((c for c in self.contacts.values()
                            if c.properties.get("email") == wanted and c.archived == archived),
                           None)
        else:
            raise _validation_error(
                f"{id_property} is not a unique identifier property for contacts")
        if contact is None or contact.archived != archived:
            return None
        return contact

    def check_email_free(self, email: str | None, for_contact: int | None = None) -> None:
        """409 when another live contact has `email`; 400 when the address was GDPR-blocked."""
        if not email:
            return
        if email in self.blocked_emails:
            raise _validation_error(
                f"{email} was permanently deleted (GDPR) and cannot be used again")
        owner = next((c for c in self.contacts.values()
                      if not c.archived and c.properties.get("email") == email), None)
        if owner is not None and owner.id != for_contact:
            raise HubSpotError(409, "CONFLICT", f"Contact already exists. Existing ID: {owner.id}")

    # ---------------------------------------------------------------- writes
    def create(self, values: Mapping[str, str]) -> tuple[_Contact, list[_Change]]:
        """Create from validated values; raises 409 when the email is taken."""
        self.check_email_free(values.get("email"))
        now = _now_ms()
        created = _to_ms(values["createdate"]) if values.get("createdate") else now
        contact_id = self.next_id
        self.next_id += 1
        props = {k: v for k, v in values.items() if v != ""}
        props.update({"hs_object_id": str(contact_id), "createdate": _iso(created),
                      "lastmodifieddate": _iso(now)})
        contact = _Contact(contact_id, props, created, now)
        contact.record(props, now)
        self.contacts[contact_id] = contact
        changes = [_Change("contact.creation", contact_id, now)]
        changes += [_Change("contact.propertyChange", contact_id, now, name, value)
                    for name, value in sorted(props.items())]
        return contact, changes

    def update(self, contact: _Contact, values: Mapping[str, str]) -> list[_Change]:
        self.check_email_free(values.get("email"), contact.id)
        now = _now_ms()
        contact.record(values, now)
        changes = []
        for name, value in values.items():
            if contact.properties.get(name, "") == value:
                continue  # HubSpot fires no propertyChange when nothing changed
            if value == "":
                contact.properties.pop(name, None)
            else:
                contact.properties[name] = value
            changes.append(_Change("contact.propertyChange", contact.id, now, name, value))
        if changes:
            contact.updated_ms = now
            contact.properties["lastmodifieddate"] = _iso(now)
        return changes

    def archive(self, contact: _Contact) -> list[_Change]:
        now = _now_ms()
        contact.archived_ms = now
        contact.updated_ms = now
        return [_Change("contact.deletion", contact.id, now)]

    def merge(self, primary: _Contact, other: _Contact) -> list[_Change]:
        """`other` is folded into `primary`: its values fill the primary's empty properties and
        it stops existing on its own. Announced as `contact.merge` (HubSpot's payload, with the
        primary as the surviving object) plus the primary's property changes."""
        moved = {name: value for name, value in other.properties.items()
                 if name not in MERGE_SKIPPED and value and not primary.properties.get(name)}
        del self.contacts[other.id]  # first: its e-mail address moves to the primary
        changes = self.update(primary, moved)
        changes.append(_Change("contact.merge", primary.id, _now_ms(), merged_ids=(other.id,),
                               properties_moved=len(moved)))
        return changes

    def purge(self, contact: _Contact) -> list[_Change]:
        del self.contacts[contact.id]
        return [_Change("contact.privacyDeletion", contact.id, _now_ms())]

    # ---------------------------------------------------------------- rendering
    def render(self, contact: _Contact, requested: Iterable[str] | None,
               with_history: Iterable[str] = ()) -> dict[str, Any]:
        """A SimplePublicObject; requested-but-unset properties are null, as HubSpot returns.
        `with_history` names properties returned under `propertiesWithHistory` too."""
        if requested is None:
            names: Iterable[str] = [n for n in contact.properties if self.live_property(n)]
        else:
            wanted = set(requested) | set(ALWAYS_RETURNED)
            names = [n for n in wanted if self.live_property(n)]
        body: dict[str, Any] = {
            "id": str(contact.id),
            "properties": {n: contact.properties.get(n) for n in sorted(names)},
            "createdAt": _iso(contact.created_ms),
            "updatedAt": _iso(contact.updated_ms),
            "archived": contact.archived,
        }
        if contact.archived_ms is not None:
            body["archivedAt"] = _iso(contact.archived_ms)
        history = {name: [{"value": value, "timestamp": _iso(at), "sourceType": "API"}
                          for value, at in reversed(contact.history.get(name, []))]
                   for name in with_history if self.live_property(name)}
        if history:
            body["propertiesWithHistory"] = history
        return body

    def dump(self) -> list[dict[str, Any]]:
        return [self.render(c, None) for c in sorted(self.contacts.values(), key=lambda c: c.id)]

    # ---------------------------------------------------------------- search
    def search(self, request: Mapping[str, Any]) -> dict[str, Any]:
        limit = _int_field(request, "limit", 10)
        after = _int_field(request, "after", 0)
        if not 0 <= limit <= MAX_SEARCH_LIMIT:
            raise _validation_error(
                f"limit must be between 0 and {MAX_SEARCH_LIMIT}, got {limit}")
        if after < 0 or after + limit > MAX_SEARCH_RESULTS:
            raise _validation_error(
                f"The search API returns at most {MAX_SEARCH_RESULTS} results; "
                f"after={after} with limit={limit} is beyond that")
        groups = request.get("filterGroups") or []
        if not isinstance(groups, list):
            raise _validation_error("Invalid input JSON: filterGroups must be an array")
        for group in groups:
            for f in (group or {}).get("filters") or []:
                if f.get("operator") not in SEARCH_OPERATORS:
                    raise _validation_error(
                        f"Unknown filter operator {f.get('operator')!r}; "
                        f"use one of {sorted(SEARCH_OPERATORS)}")
                if not f.get("propertyName"):
                    raise _validation_error("Every filter needs a propertyName")
        query = str(request.get("query") or "").strip().lower()

        matches = [c for c in self.contacts.values() if not c.archived
                   and (not groups or any(self._group_matches(c, g) for g in groups))
                   and (not query or self._query_matches(c, query))]
        # Without a sort HubSpot promises no order: never id order here, so nothing comes to
        # rely on it (a stable shuffle, so offset paging stays consistent).
        matches.sort(key=lambda c: hashlib.sha256(f"{self.salt}:{c.id}".encode()).digest())
        for sort in reversed(_sorts(request.get("sorts") or [])):
            name, descending = sort
            present = [c for c in matches if c.properties.get(name)]
            absent = [c for c in matches if not c.properties.get(name)]
            present.sort(key=lambda c, n=name: self._sort_key(n, c.properties[n]),
                         reverse=descending)
            matches = present + absent  # unset values sort last either way

        page = matches[after:after + limit]
        requested = _string_list(request.get("properties")) or DEFAULT_PROPERTIES
        body: dict[str, Any] = {"total": len(matches),
                                "results": [self.render(c, requested) for c in page]}
        if after + limit < len(matches) and after + limit < MAX_SEARCH_RESULTS:
            body["paging"] = {"next": {"after": str(after + limit)}}
        return body

    def _group_matches(self, contact: _Contact, group: Mapping[str, Any]) -> bool:
        return all(self._filter_matches(contact, f) for f in group.get("filters") or [])

    def _filter_matches(self, contact: _Contact, spec: Mapping[str, Any]) -> bool:
        operator, name = spec["operator"], spec["propertyName"]
        stored = contact.properties.get(name) or None
        if operator == "HAS_PROPERTY":
            return stored is not None
        if operator == "NOT_HAS_PROPERTY":
            return stored is None
        value = "" if spec.get("value") is None else str(spec.get("value"))
        values = [str(v) for v in spec.get("values") or []]
        if operator in ("EQ", "NEQ"):
            equal = stored is not None and self._equals(name, stored, value)
            return equal if operator == "EQ" else not equal
        if operator in ("IN", "NOT_IN"):
            inside = stored is not None and any(self._equals(name, stored, v) for v in values)
            return inside if operator == "IN" else not inside
        if operator in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
            contains = stored is not None and _contains_token(stored, value)
            return contains if operator == "CONTAINS_TOKEN" else not contains
        if stored is None:
            return False
        mine = self._sort_key(name, stored)
        low = self._sort_key(name, value)
        high = self._sort_key(name, str(spec.get("highValue", "")))
        try:
            return {
                "LT": lambda: mine < low, "LTE": lambda: mine <= low,
                "GT": lambda: mine > low, "GTE": lambda: mine >= low,
                "BETWEEN": lambda: low <= mine <= high,
            }[operator]()
        except TypeError:  # comparing a number with text: no match, as HubSpot
            return False

    def _equals(self, name: str, stored: str, wanted: str) -> bool:
        definition = self.live_property(name) or {}
        if definition.get("fieldType") == "checkbox":  # multi-checkbox: matches any option
            return wanted.lower() in {part.lower() for part in stored.split(";")}
        return self._sort_key(name, stored) == self._sort_key(name, wanted)

    def _sort_key(self, name: str, value: str) -> Any:
        kind = (self.live_property(name) or {}).get("type")
        if kind == "number":
            try:
                return float(value)
            except ValueError:
                return value.lower()
        if kind in ("datetime", "date"):
            ms = _to_ms(value)
            return value.lower() if ms is None else float(ms)
        return value.lower()

    def _query_matches(self, contact: _Contact, query: str) -> bool:
        tokens: set[str] = set()
        for name in QUERY_SEARCHED:
            text = (contact.properties.get(name) or "").lower()
            tokens |= {text, *re.split(r"[^0-9a-z]+", text)}
        return all(any(t.startswith(term) for t in tokens if t) for term in query.split())


def _property_error(name: str, code: str, message: str) -> dict[str, Any]:
    return {"isValid": False, "message": message, "error": code, "name": name,
            "localizedErrorMessage": message}


def _property_values_error(problems: list[dict[str, Any]]) -> HubSpotError:
    """HubSpot's 400 for bad property values: the details are JSON inside `message`."""
    return _validation_error(
        "Property values were not valid: " + json.dumps(problems, separators=(",", ":")),
        errors=[{"message": p["message"], "code": p["error"],
                 "context": {"propertyName": [p["name"]]}} for p in problems],
    )


def _contains_token(stored: str, wanted: str) -> bool:
    text, pattern = stored.lower(), wanted.lower()
    tokens = {text, *re.split(r"[\s;,]+", text), *re.split(r"[^0-9a-z]+", text)}
    if "*" in pattern:
        return any(fnmatch.fnmatchcase(t, pattern) for t in tokens if t)
    return pattern in tokens


SORT_DIRECTIONS = ("ASCENDING", "DESCENDING")


def _sorts(raw: Any) -> list[tuple[str, bool]]:
    """Sorts in the documented form, `{"propertyName": ..., "direction": "ASCENDING" |
    "DESCENDING"}` (HubSpot's search guide); anything else (a bare property name, as the SDK's
    type suggests) is a 400, as HubSpot's JSON reader answers a string where it wants an
    object."""
    if not isinstance(raw, list):
        raise _validation_error("Invalid input JSON: sorts must be an array of objects")
    result = []
    for index, item in enumerate(raw):
        if not isinstance(item, Mapping):
            raise _validation_error(
                f"Invalid input JSON: sorts[{index}] must be an object like "
                '{"propertyName": "createdate", "direction": "DESCENDING"}, '
                f"not {json.dumps(item)}")
        name = item.get("propertyName")
        direction = item.get("direction", "ASCENDING")
        if not isinstance(name, str) or not name:
            raise _validation_error(f"Invalid input JSON: sorts[{index}].propertyName is required")
        if direction not in SORT_DIRECTIONS:
            raise _validation_error(
                f"Invalid input JSON: sorts[{index}].direction must be one of "
                f"{list(SORT_DIRECTIONS)}, not {json.dumps(direction)}")
        result.append((name, direction == "DESCENDING"))
    return result


def _int_field(request: Mapping[str, Any], name: str, default: int) -> int:
    raw = request.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise _validation_error(f"Invalid input JSON: {name} must be an integer") from None


def _string_list(raw: Any) -> list[str]:
    """Property names from a JSON array or repeated/comma-separated query values."""
    if raw is None:
        return []
    items = raw if isinstance(raw, list) else [raw]
    return [part.strip() for item in items for part in str(item).split(",") if part.strip()]


# --------------------------------------------------------------------------- webhooks

@dataclass
class _WebhookApp:
    """A HubSpot app's webhook settings: one target URL, one subscription per event type
    (and per property for propertyChange), each with its own id."""

    target_url: str
    client_secret: str
    app_id: int
    portal_id: int
    subscriptions: list[dict[str, Any]]


@dataclass
class _Delivery:
    app: _WebhookApp
    events: list[dict[str, Any]]
    attempt: int = 0
    due: float = 0.0


class _WebhookDispatcher:
    """Background delivery: batches of ≤100 events per target, retried with backoff.

    Like HubSpot, it retries connection failures, timeouts, 5xx and 429 answers and gives
    up on other 4xx; every retry re-signs the batch and increments `attemptNumber`.
    """

    def __init__(self, *, max_attempts: int, backoff_seconds: float,
                 timeout_seconds: float) -> None:
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.timeout_seconds = timeout_seconds
        self._cond = threading.Condition()
        self._queue: deque[tuple[_WebhookApp, dict[str, Any]]] = deque()
        self._retries: list[_Delivery] = []
        self._in_flight = 0
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._counters: Counter[str] = Counter()
        self._last_error: str | None = None

    def start(self) -> None:
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="hubspot-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout_seconds + 1)
            self._thread = None

    def enqueue(self, app: _WebhookApp, events: list[dict[str, Any]]) -> None:
        with self._cond:
            self._queue.extend((app, e) for e in events)
            self._cond.notify_all()

    def clear(self) -> None:
        with self._cond:
            self._queue.clear()
            self._retries.clear()
            self._counters.clear()
            self._last_error = None
            self._cond.notify_all()

    def snapshot(self) -> dict[str, Any]:
        """Counters; `pending` = events queued, waiting for a retry, or being sent now."""
        with self._cond:
            return {
                "pending": (len(self._queue) + sum(len(d.events) for d in self._retries)
                            + self._in_flight),
                "delivered": self._counters["delivered"], "failed": self._counters["failed"],
                "webhook_requests": self._counters["requests"],
                "webhook_retries": self._counters["retries"],
                "webhook_last_error": self._last_error,
            }

    def flush(self, timeout: float) -> bool:
        """Wait until every event is delivered or given up on; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._retries or self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def _next(self, now: float) -> _Delivery | float | None:
        """The next delivery due, else the seconds until one is due (None: nothing)."""
        due = [d for d in self._retries if d.due <= now]
        if due:
            delivery = min(due, key=lambda d: d.due)
            self._retries.remove(delivery)
            return delivery
        if self._queue:
            app = self._queue[0][0]
            events = []
            # One request carries up to 100 events for the same target, in queue order.
            kept: deque[tuple[_WebhookApp, dict[str, Any]]] = deque()
            while self._queue:
                item = self._queue.popleft()
                if item[0] is app and len(events) < webhook_sender.MAX_EVENTS_PER_REQUEST:
                    events.append(item[1])
                else:
                    kept.append(item)
            self._queue = kept
            return _Delivery(app, events)
        if self._retries:
            return max(0.0, min(d.due for d in self._retries) - now)
        return None

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._stopping:
                        return
                    job = self._next(time.monotonic())
                    if isinstance(job, _Delivery):
                        break
                    self._cond.wait(job)
                self._in_flight += len(job.events)
            outcome = self._send(job)
            with self._cond:
                self._in_flight -= len(job.events)
                self._settle(job, outcome)
                self._cond.notify_all()

    def _send(self, job: _Delivery) -> int | str:
        """HTTP status, or the connection error's text."""
        events = [{**e, "attemptNumber": job.attempt} for e in job.events]
        try:
            status, _ = webhook_sender.deliver(job.app.target_url, events,
                                               job.app.client_secret,
                                               timeout=self.timeout_seconds)
        except OSError as error:
            return f"{type(error).__name__}: {error}"
        return status

    def _settle(self, job: _Delivery, outcome: int | str) -> None:
        self._counters["requests"] += 1
        if isinstance(outcome, int) and 200 <= outcome < 300:
            self._counters["delivered"] += len(job.events)
            return
        self._last_error = f"{job.app.target_url}: {outcome}"
        retryable = isinstance(outcome, str) or outcome == 429 or outcome >= 500
        if retryable and job.attempt + 1 < self.max_attempts:
            job.attempt += 1
            job.due = time.monotonic() + self.backoff_seconds * 2 ** (job.attempt - 1)
            self._retries.append(job)
            self._counters["retries"] += 1
        else:
            self._counters["failed"] += len(job.events)


# --------------------------------------------------------------------------- routes

# (method, path template as in HubSpot's OpenAPI files, operation)
ROUTES: tuple[tuple[str, str, str], ...] = (
    ("GET", "/crm/v3/objects/contacts", "list_contacts"),
    ("POST", "/crm/v3/objects/contacts", "create_contact"),
    ("POST", "/crm/v3/objects/contacts/batch/read", "batch_read"),
    ("POST", "/crm/v3/objects/contacts/batch/create", "batch_create"),
    ("POST", "/crm/v3/objects/contacts/batch/update", "batch_update"),
    ("POST", "/crm/v3/objects/contacts/batch/archive", "batch_archive"),
    ("POST", "/crm/v3/objects/contacts/search", "search"),
    ("POST", "/crm/v3/objects/contacts/gdpr-delete", "gdpr_delete"),
    ("POST", "/crm/v3/objects/contacts/merge", "merge_contacts"),
    ("GET", "/crm/v3/objects/contacts/{contactId}", "get_contact"),
    ("PATCH", "/crm/v3/objects/contacts/{contactId}", "update_contact"),
    ("DELETE", "/crm/v3/objects/contacts/{contactId}", "archive_contact"),
    ("GET", "/crm/v3/properties/{objectType}/groups", "list_groups"),
    ("POST", "/crm/v3/properties/{objectType}/groups", "create_group"),
    ("GET", "/crm/v3/properties/{objectType}/groups/{groupName}", "get_group"),
    ("PATCH", "/crm/v3/properties/{objectType}/groups/{groupName}", "update_group"),
    ("GET", "/crm/v3/properties/{objectType}", "list_properties"),
    ("POST", "/crm/v3/properties/{objectType}", "create_property"),
    ("GET", "/crm/v3/properties/{objectType}/{propertyName}", "get_property"),
    ("PATCH", "/crm/v3/properties/{objectType}/{propertyName}", "update_property"),
    ("DELETE", "/crm/v3/properties/{objectType}/{propertyName}", "archive_property"),
)
SEARCH_OPERATIONS = frozenset({"search"})  # the separately rate-limited search endpoints


def _compile(template: str) -> re.Pattern[str]:
    pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
    return re.compile(f"^{pattern}$")


_COMPILED = [(method, _compile(template), template, op) for method, template, op in ROUTES]


@dataclass
class _Request:
    client: str
    params: dict[str, str]
    query: dict[str, list[str]]
    body: Any

    def flag(self, name: str) -> bool:
        return (self.query.get(name) or ["false"])[-1].lower() == "true"

    def one(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None


@dataclass
class _Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def _batch_inputs(body: Any) -> list[Any]:
    if not isinstance(body, Mapping) or not isinstance(body.get("inputs"), list):
        raise _validation_error("Invalid input JSON: `inputs` must be an array")
    inputs = body["inputs"]
    if len(inputs) > MAX_BATCH_INPUTS:
        raise _validation_error(
            f"Too many inputs: this endpoint accepts at most {MAX_BATCH_INPUTS} inputs "
            f"per request, got {len(inputs)}",
            context={"maxInputs": [str(MAX_BATCH_INPUTS)], "inputs": [str(len(inputs))]},
        )
    return inputs


def _batch_reply(results: list[dict[str, Any]], missing: list[str], started: int,
                 ok_status: int = 200) -> _Reply:
    body: dict[str, Any] = {"status": "COMPLETE", "results": results,
                            "startedAt": _iso(started), "completedAt": _iso(_now_ms())}
    if not missing:
        return _Reply(ok_status, body)
    body["numErrors"] = 1
    body["errors"] = [{
        "status": "error", "category": "OBJECT_NOT_FOUND",
        "message": "Could not get some CONTACT objects, they may be deleted or not exist. "
                   "Check that ids are valid.",
        "context": {"ids": missing}, "errors": [], "links": {},
    }]
    return _Reply(207, body)


# --------------------------------------------------------------------------- the emulator

class HubSpotEmulator:
    """HubSpot CRM v3 (contacts, properties, groups) plus webhooks, on 127.0.0.1.

    tokens: private-app access token -> client name; requests are counted, rate-limited
      and fault-injected per client name. Any other token gets 401.
    client_secret / app_id / portal_id: defaults for webhook subscriptions.
    rate_limit: per-client limits (None disables them).
    timeout_seconds: how long an injected "timeout" fault stalls before answering 504.
    """

    def __init__(
        self,
        port: int = 0,
        *,
        tokens: Mapping[str, str] | None = None,
        client_secret: str = "local-client-secret",
        app_id: int = 54321,
        portal_id: int = 62515,
        rate_limit: RateLimits | None = RateLimits(),
        timeout_seconds: float = 3.0,
        seed_consent_properties: bool = True,
        change_source: str = "INTEGRATION",
        webhook_max_attempts: int = 4,
        webhook_backoff_seconds: float = 0.5,
        webhook_timeout_seconds: float = webhook_sender.DEFAULT_TIMEOUT_SECONDS,
        host: str = "127.0.0.1",
        event_id_pool: int | None = None,
    ) -> None:
        self.tokens = dict(tokens or {"pat-local-emulator": "default"})
        self.client_secret = client_secret
        self.app_id = app_id
        self.portal_id = portal_id
        self.rate_limit = rate_limit
        self.timeout_seconds = timeout_seconds
        self.change_source = change_source
        self._host, self._port = host, port
        self._portal = _Portal(with_consent_properties=seed_consent_properties)
        self._dispatcher = _WebhookDispatcher(
            max_attempts=webhook_max_attempts, backoff_seconds=webhook_backoff_seconds,
            timeout_seconds=webhook_timeout_seconds,
        )
        self._apps: list[_WebhookApp] = []
        self._next_subscription_id = 1
        self._next_event_id = FIRST_EVENT_ID - 1
        # Event ids cycle through this many values when set (HubSpot does not promise unique
        # eventIds; this proves consumers do not rely on it). None: every event a new id.
        self.event_id_pool = event_id_pool
        self._meter = threading.Lock()  # counters, limits and faults
        self._requests: Counter[str] = Counter()
        self._operations: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self._rate_limited: Counter[str] = Counter()
        self._faults_served: Counter[str] = Counter()
        # Whether clients honour Retry-After: when each client may call again after a 429,
        # and how many requests came sooner.
        self._retry_not_before: dict[str, float] = {}
        self._early_retries: Counter[str] = Counter()
        self._unauthorized = 0
        # client -> pending faults: (status or "timeout", Retry-After seconds of a 429 or None)
        self._faults: defaultdict[str, deque[tuple[int | str, int | None]]] = defaultdict(deque)
        self._limits: dict[str, _ClientLimits] = {}
        self._daily = _DailyUse()
        # When each client's admitted requests came (the newest 100,000): `busiest_window`.
        self._admitted: defaultdict[str, deque[float]] = defaultdict(
            lambda: deque(maxlen=100_000))
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> HubSpotEmulator:
        handler = type("HubSpotEmulatorHandler", (_Handler,), {"emulator": self})
        self._server = ThreadingHTTPServer((self._host, self._port), handler)
        self._server.daemon_threads = True
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
            name="hubspot-emulator", daemon=True,
        )
        self._thread.start()
        self._dispatcher.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # releases handlers stalled by a "timeout" fault
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._dispatcher.stop()

    def __enter__(self) -> HubSpotEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the emulator is not running; call start() first")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # ---------------------------------------------------------------- test/admin controls
    def stats(self) -> dict[str, Any]:
        """Request counts per client and webhook delivery counters."""
        with self._meter:
            meter = {
                "requests": dict(self._requests),
                "operations": {c: dict(ops) for c, ops in self._operations.items()},
                "unauthorized": self._unauthorized,
                "rate_limited": dict(self._rate_limited),
                "faults_served": dict(self._faults_served),
                "early_retries": dict(self._early_retries),
                "faults_pending": {c: len(q) for c, q in self._faults.items() if q},
            }
        with self._portal.lock:
            live = sum(1 for c in self._portal.contacts.values() if not c.archived)
            archived = len(self._portal.contacts) - live
        return {**meter, "contacts": live, "archived_contacts": archived,
                **self._dispatcher.snapshot()}

    def inject_fault(self, client: str, status: int | str, count: int = 1,
                     retry_after: int | None = FAULT_RETRY_AFTER_SECONDS) -> None:
        """The next `count` requests from `client` fail: an HTTP status (429, 500, 502, 503,
        504) with HubSpot's error body, or "timeout" (stall `timeout_seconds`, then 504).
        A 429 carries `Retry-After: retry_after`, or no Retry-After at all when it is None."""
        if status != "timeout" and not (isinstance(status, int) and 400 <= status <= 599):
            raise ValueError(f"fault must be an HTTP error status or 'timeout', not {status!r}")
        with self._meter:
            self._faults[client].extend([(status, retry_after)] * count)

    def reset(self) -> None:
        """Back to a fresh portal: no contacts, standard properties, zeroed counters, no
        pending faults or webhooks. Tokens and webhook subscriptions are kept."""
        with self._portal.lock:
            self._portal.clear()
        with self._meter:
            self._requests.clear()
            self._operations.clear()
            self._rate_limited.clear()
            self._faults_served.clear()
            self._retry_not_before.clear()
            self._early_retries.clear()
            self._faults.clear()
            self._limits.clear()
            self._admitted.clear()
            self._daily = _DailyUse()
            self._unauthorized = 0
        self._dispatcher.clear()

    def busiest_window(self, client: str, seconds: float | None = None) -> int:
        """The most requests of `client` admitted within any `seconds` (default: the rate
        limit's interval): what HubSpot's rolling window would have seen at its fullest."""
        if seconds is None:
            seconds = self.rate_limit.interval_seconds if self.rate_limit else 10.0
        with self._meter:
            times = sorted(self._admitted.get(client, ()))
        busiest, start = 0, 0
        for end, moment in enumerate(times):
            while times[start] <= moment - seconds:
                start += 1
            busiest = max(busiest, end - start + 1)
        return busiest

    def add_app(self, client: str) -> str:
        """A new private app in this portal: its token, counted and limited as `client`.
        Each app has its own per-10-second limit, as in HubSpot; the daily one is shared."""
        token = f"pat-local-{client}-{uuid.uuid4().hex[:12]}"
        with self._meter:
            self.tokens[token] = client
        return token

    def contacts(self, include_archived: bool = True) -> list[dict[str, Any]]:
        """Every contact with all its properties (a dump for tests; not an API call)."""
        with self._portal.lock:
            return [c for c in self._portal.dump() if include_archived or not c["archived"]]

    def create_contacts(self, properties: Sequence[Mapping[str, Any]], *,
                        change_source: str = "CRM", announce: bool = True) -> list[str]:
        """Contacts created as a rep would in the HubSpot UI: uncounted, but validated and
        announced to webhook subscribers like any other creation. `announce=False` seeds
        them silently, for tests and benchmarks that deliver the webhooks themselves."""
        with self._portal.lock:
            ids, changes = [], []
            for values in self._portal.validate_all(properties):
                contact, created = self._portal.create(values)
                ids.append(str(contact.id))
                changes += created
            if announce:
                self._announce(changes, change_source)
        return ids

    def subscribe(self, target_url: str, types: Iterable[str] | None = None,
                  property_names: Iterable[str] = (), *, client_secret: str | None = None,
                  app_id: int | None = None, portal_id: int | None = None,
                  webhook_format: str = "legacy") -> dict[str, Any]:
        """Send webhooks for contact changes to `target_url`, as a HubSpot app does, in the
        `legacy` format (`contact.*`) or the `generic` one (`object.*`, objectTypeId 0-1)."""
        if webhook_format not in WEBHOOK_FORMATS:
            raise ValueError(f"webhook_format must be one of {sorted(WEBHOOK_FORMATS)}")
        offered = WEBHOOK_FORMATS[webhook_format]
        types, names = list(offered if types is None else types), list(property_names)
        unknown = sorted(set(types) - set(offered))
        if unknown:
            raise ValueError(f"unsupported subscription types {unknown} for the "
                             f"{webhook_format} format; use {offered}")
        if any(_subscribed_kind(t) == "contact.propertyChange" for t in types) and not names:
            raise ValueError("propertyChange needs property_names (one subscription "
                             "per property, as in HubSpot)")
        with self._portal.lock:
            subscriptions = []
            created = _iso(_now_ms())
            for event_type in types:
                changes_property = _subscribed_kind(event_type) == "contact.propertyChange"
                for name in (names if changes_property else [None]):
                    subscription = {"id": self._next_subscription_id, "eventType": event_type,
                                    "active": True, "createdAt": created}
                    if event_type.startswith("object."):
                        subscription["objectTypeId"] = CONTACT_OBJECT_TYPE_ID
                    if name is not None:
                        subscription["propertyName"] = name
                    subscriptions.append(subscription)
                    self._next_subscription_id += 1
            app = _WebhookApp(
                target_url=target_url,
                client_secret=self.client_secret if client_secret is None else client_secret,
                app_id=self.app_id if app_id is None else app_id,
                portal_id=self.portal_id if portal_id is None else portal_id,
                subscriptions=subscriptions,
            )
            self._apps.append(app)
        return self._describe(app)

    def set_subscriptions_active(self, active: bool, property_name: str | None = None) -> int:
        """Pauses (or resumes) every subscription, or those of one property; returns how many."""
        with self._portal.lock:
            matching = [sub for app in self._apps for sub in app.subscriptions
                        if property_name is None or sub.get("propertyName") == property_name]
            for sub in matching:
                sub["active"] = active
            return len(matching)

    def subscriptions(self) -> list[dict[str, Any]]:
        with self._portal.lock:
            return [self._describe(app) for app in self._apps]

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until queued webhooks are delivered (or given up on); False on timeout."""
        return self._dispatcher.flush(timeout)

    @staticmethod
    def _describe(app: _WebhookApp) -> dict[str, Any]:
        return {"targetUrl": app.target_url, "appId": app.app_id, "portalId": app.portal_id,
                "subscriptions": [dict(s) for s in app.subscriptions]}

    def _announce(self, changes: Iterable[_Change], change_source: str) -> None:
        """Turn contact changes into webhook events for every matching subscription.
        Called with the portal lock held, so event ids follow the order of changes."""
        changes = list(changes)
        for app in self._apps:
            events = []
            for change in changes:
                for sub in app.subscriptions:
                    if _subscribed_kind(sub["eventType"]) != change.kind or not sub["active"]:
                        continue
                    if change.property_name is not None and (
                            sub.get("propertyName") != change.property_name):
                        continue
                    events.append(self._event(app, sub, change, change_source))
            if events:
                self._dispatcher.enqueue(app, events)

    def _event(self, app: _WebhookApp, sub: Mapping[str, Any], change: _Change,
               change_source: str) -> dict[str, Any]:
        self._next_event_id += 1
        event_id = self._next_event_id
        if self.event_id_pool:  # HubSpot: eventId "is not guaranteed to be unique"
            event_id = FIRST_EVENT_ID + (event_id - FIRST_EVENT_ID) % self.event_id_pool
        event: dict[str, Any] = {
            "eventId": event_id, "subscriptionId": sub["id"],
            "portalId": app.portal_id, "appId": app.app_id, "occurredAt": change.occurred_ms,
            "subscriptionType": sub["eventType"], "attemptNumber": 0,
            "objectId": change.contact_id, "changeSource": change_source,
        }
        if "objectTypeId" in sub:
            event["objectTypeId"] = sub["objectTypeId"]
        if change.kind == "contact.propertyChange":
            event["propertyName"] = change.property_name
            event["propertyValue"] = change.property_value
        elif change.kind == "contact.creation":
            event["changeFlag"] = "CREATED"
        elif change.kind == "contact.merge":
            event.update(changeFlag="MERGED", primaryObjectId=change.contact_id,
                         mergedObjectIds=list(change.merged_ids), newObjectId=change.contact_id,
                         numberOfPropertiesMoved=change.properties_moved)
        else:
            event["changeFlag"] = "DELETED"
        return event

    # ---------------------------------------------------------------- request pipeline
    def _authenticate(self, header: str | None) -> str:
        token = header[7:].strip() if header and header.lower().startswith("bearer ") else None
        client = self.tokens.get(token) if token else None
        if client is None:
            with self._meter:
                self._unauthorized += 1
            raise HubSpotError(
                401, "INVALID_AUTHENTICATION",
                "Authentication credentials not found. This API supports OAuth 2.0 "
                "authentication and you can find more details at "
                "https://developers.hubspot.com/docs/methods/auth/oauth-overview",
            )
        return client

    def _admit(self, client: str, method: str, template: str, operation: str) -> dict[str, str]:
        """Count the request, apply injected faults and rate limits; returns rate headers."""
        with self._meter:
            self._requests[client] += 1
            self._operations[client][f"{method} {template}"] += 1
            fault, fault_retry_after = (self._faults[client].popleft() if self._faults[client]
                                        else (None, None))
            if fault is not None:
                self._faults_served[client] += 1
            limits = self._client_limits(client)
            now = time.monotonic()
            if now < self._retry_not_before.get(client, 0.0):
                self._early_retries[client] += 1
            if fault == 429 and fault_retry_after is not None:
                self._retry_not_before[client] = now + fault_retry_after
            headers = self._rate_headers(limits, now)
            if fault is None and limits is not None:
                self._enforce(client, limits, now, operation in SEARCH_OPERATIONS, headers)
                limits.rolling.add(now)
                self._admitted[client].append(now)
                if operation in SEARCH_OPERATIONS:
                    limits.search.add(now)
                self._daily.used += 1
                headers = self._rate_headers(limits, now)
        if fault == "timeout":
            self._stopping.wait(self.timeout_seconds)
            raise HubSpotError(504, "GATEWAY_TIMEOUT", "The upstream service timed out.",
                               headers={**headers, "Connection": "close"})
        if fault is not None:
            raise self._fault_error(int(fault), headers, fault_retry_after)
        return headers

    def _client_limits(self, client: str) -> _ClientLimits | None:
        if self.rate_limit is None:
            return None
        limits = self._limits.get(client)
        if limits is None:
            limits = _ClientLimits(
                rolling=_Window(self.rate_limit.max_requests, self.rate_limit.interval_seconds),
                search=_Window(self.rate_limit.search_per_second, 1.0),
            )
            self._limits[client] = limits
        today = datetime.now(UTC).date()
        if self._daily.day != today:
            self._daily = _DailyUse(today)
        return limits

    def _rate_headers(self, limits: _ClientLimits | None, now: float) -> dict[str, str]:
        if limits is None or self.rate_limit is None:
            return {}
        return {
            "X-HubSpot-RateLimit-Max": str(self.rate_limit.max_requests),
            "X-HubSpot-RateLimit-Remaining": str(limits.rolling.remaining(now)),
            "X-HubSpot-RateLimit-Interval-Milliseconds":
                str(int(self.rate_limit.interval_seconds * 1000)),
            "X-HubSpot-RateLimit-Daily": str(self.rate_limit.daily),
            "X-HubSpot-RateLimit-Daily-Remaining":
                str(max(0, self.rate_limit.daily - self._daily.used)),
        }

    def _enforce(self, client: str, limits: _ClientLimits, now: float, search: bool,
                 headers: dict[str, str]) -> None:
        """429 as HubSpot sends it when a policy is exhausted (rejected calls don't count)."""
        assert self.rate_limit is not None
        if self._daily.used >= self.rate_limit.daily:
            midnight = datetime.combine(self._daily.day + timedelta(days=1), datetime.min.time(),
                                        tzinfo=UTC)
            wait = max(1, math.ceil((midnight - datetime.now(UTC)).total_seconds()))
            policy, retry_after, message = "DAILY", wait, "You have reached your daily limit."
        elif limits.rolling.full(now):
            policy, retry_after = "TEN_SECONDLY_ROLLING", limits.rolling.retry_after(now)
            message = "You have reached your ten_secondly_rolling limit."
        elif search and limits.search.full(now):
            policy, retry_after = "SECONDLY", limits.search.retry_after(now)
            message = "You have reached your secondly limit."
        else:
            return
        self._rate_limited[client] += 1
        self._retry_not_before[client] = now + retry_after
        raise HubSpotError(
            429, "RATE_LIMITS", message,
            headers={**headers, "Retry-After": str(retry_after)},
            extra={"errorType": "RATE_LIMIT", "policyName": policy,
                   "groupName": f"publicapi:private-app:{self.portal_id}:{client}"},
        )

    def _fault_error(self, status: int, headers: dict[str, str],
                     retry_after: int | None) -> HubSpotError:
        if status == 429:
            wait = {} if retry_after is None else {"Retry-After": str(retry_after)}
            return HubSpotError(
                429, "RATE_LIMITS", "You have reached your ten_secondly_rolling limit.",
                headers={**headers, **wait, "X-HubSpot-RateLimit-Remaining": "0"},
                extra={"errorType": "RATE_LIMIT", "policyName": "TEN_SECONDLY_ROLLING"},
            )
        category = ERROR_CATEGORIES.get(status, "INTERNAL_ERROR" if status >= 500 else
                                        "VALIDATION_ERROR")
        return HubSpotError(status, category, "internal error" if status == 500 else
                            f"The request failed with HTTP {status}.", headers=headers)

    def handle_api(self, method: str, path: str, query: dict[str, list[str]],
                   authorization: str | None, body: bytes) -> _Reply:
        client = self._authenticate(authorization)
        route = None
        allowed = False
        for route_method, pattern, template, operation in _COMPILED:
            match = pattern.match(path)
            if match:
                allowed = True
                if route_method == method:
                    params = {k: unquote(v) for k, v in match.groupdict().items()}
                    route = (template, operation, params)
                    break
        if route is None:
            with self._meter:
                self._requests[client] += 1
            if allowed:
                raise HubSpotError(405, "VALIDATION_ERROR", f"{method} is not allowed on {path}")
            raise HubSpotError(404, "OBJECT_NOT_FOUND", f"No API route matches {method} {path}")
        template, operation, params = route
        headers = self._admit(client, method, template, operation)
        try:
            request = _Request(client, params, query, _parse_json(body))
            reply = getattr(self, f"_op_{operation}")(request)
        except HubSpotError as error:
            error.headers = {**headers, **error.headers}
            raise
        reply.headers = {**headers, **reply.headers}
        return reply

    # ---------------------------------------------------------------- contacts operations
    def _op_create_contact(self, req: _Request) -> _Reply:
        values = req.body.get("properties") if isinstance(req.body, Mapping) else None
        with self._portal.lock:
            clean = self._portal.validate(values if values is not None else {})
            contact, changes = self._portal.create(clean)
            self._announce(changes, self.change_source)
            return _Reply(201, self._portal.render(contact, None))

    def _op_get_contact(self, req: _Request) -> _Reply:
        with self._portal.lock:
            contact = self._portal.find(req.params["contactId"], req.one("idProperty"),
                                        archived=req.flag("archived"))
            if contact is None:
                raise _not_found("resource not found")
            requested = _string_list(req.query.get("properties")) or DEFAULT_PROPERTIES
            return _Reply(200, self._portal.render(
                contact, requested, _string_list(req.query.get("propertiesWithHistory"))))

    def _op_update_contact(self, req: _Request) -> _Reply:
        values = req.body.get("properties") if isinstance(req.body, Mapping) else None
        with self._portal.lock:
            clean = self._portal.validate(values if values is not None else {})
            contact = self._portal.find(req.params["contactId"], req.one("idProperty"))
            if contact is None:
                raise _not_found("resource not found")
            self._announce(self._portal.update(contact, clean), self.change_source)
            return _Reply(200, self._portal.render(contact, None))

    def _op_archive_contact(self, req: _Request) -> _Reply:
        with self._portal.lock:
            contact = self._portal.find(req.params["contactId"], None)
            if contact is not None:  # archiving an unknown id is a no-op 204, as in HubSpot
                self._announce(self._portal.archive(contact), self.change_source)
        return _Reply(204)

    def _op_list_contacts(self, req: _Request) -> _Reply:
        limit = min(max(1, int(req.one("limit") or 10)), MAX_PAGE_LIMIT)
        after = int(req.one("after") or 0)
        archived = req.flag("archived")
        requested = _string_list(req.query.get("properties")) or DEFAULT_PROPERTIES
        with self._portal.lock:
            chosen = sorted((c for c in self._portal.contacts.values()
                             if c.archived == archived and c.id >= after), key=lambda c: c.id)
            body: dict[str, Any] = {
                "results": [self._portal.render(c, requested) for c in chosen[:limit]]}
            if len(chosen) > limit:
                cursor = str(chosen[limit].id)
                body["paging"] = {"next": {"after": cursor, "link": f"{self.url}/crm/v3/"
                                           f"objects/contacts?after={cursor}&limit={limit}"}}
            return _Reply(200, body)

    def _op_batch_read(self, req: _Request) -> _Reply:
        started = _now_ms()
        inputs = _batch_inputs(req.body)
        id_property = req.body.get("idProperty")
        requested = _string_list(req.body.get("properties")) or DEFAULT_PROPERTIES
        with_history = _string_list(req.body.get("propertiesWithHistory"))
        if with_history and len(inputs) > MAX_HISTORY_BATCH_INPUTS:
            raise _validation_error(
                "The maximum number of inputs supported in a batch request for property "
                f"histories is {MAX_HISTORY_BATCH_INPUTS}. Please reduce the number of items "
                "and try again")
        keys = list(dict.fromkeys(str((i or {}).get("id", "")) for i in inputs))
        with self._portal.lock:
            results, missing = [], []
            for key in keys:
                contact = self._portal.find(key, id_property, archived=req.flag("archived"))
                if contact is None:
                    missing.append(key)
                else:
                    results.append(self._portal.render(contact, requested, with_history))
        return _batch_reply(results, missing, started)

    def _op_batch_create(self, req: _Request) -> _Reply:
        started = _now_ms()
        inputs = _batch_inputs(req.body)
        with self._portal.lock:
            clean = self._portal.validate_all(
                [(item or {}).get("properties") or {} for item in inputs])
            emails = [c["email"] for c in clean if c.get("email")]
            duplicated = sorted({e for e in emails if emails.count(e) > 1})
            if duplicated:
                raise _validation_error(f"Duplicate emails found in batch input: {duplicated}")
            for values in clean:  # all or nothing: check conflicts before creating any
                self._portal.check_email_free(values.get("email"))
            results, changes = [], []
            for values in clean:
                contact, created = self._portal.create(values)
                results.append(self._portal.render(contact, None))
                changes += created
            self._announce(changes, self.change_source)
        return _batch_reply(results, [], started, ok_status=201)

    def _op_batch_update(self, req: _Request) -> _Reply:
        started = _now_ms()
        inputs = _batch_inputs(req.body)
        ids = [str((i or {}).get("id", "")) for i in inputs]
        duplicated = sorted({i for i in ids if ids.count(i) > 1})
        if duplicated:
            raise _validation_error(
                f"Duplicate IDs found in batch input: {duplicated}. IDs must be unique")
        with self._portal.lock:
            clean = self._portal.validate_all(
                [(item or {}).get("properties") or {} for item in inputs])
            results, missing, changes = [], [], []
            for item, key, values in zip(inputs, ids, clean, strict=True):
                contact = self._portal.find(key, item.get("idProperty"))
                if contact is None:
                    missing.append(key)
                    continue
                changes += self._portal.update(contact, values)
                results.append(self._portal.render(contact, None))
            self._announce(changes, self.change_source)
        return _batch_reply(results, missing, started)

    def _op_batch_archive(self, req: _Request) -> _Reply:
        inputs = _batch_inputs(req.body)
        with self._portal.lock:
            changes = []
            for item in inputs:
                contact = self._portal.find(str((item or {}).get("id", "")), None)
                if contact is not None:
                    changes += self._portal.archive(contact)
            self._announce(changes, self.change_source)
        return _Reply(204)

    def _op_search(self, req: _Request) -> _Reply:
        if not isinstance(req.body, Mapping):
            raise _validation_error("Invalid input JSON: the search request must be an object")
        with self._portal.lock:
            return _Reply(200, self._portal.search(req.body))

    def _op_gdpr_delete(self, req: _Request) -> _Reply:
        body = req.body if isinstance(req.body, Mapping) else {}
        if not body.get("objectId"):
            raise _validation_error("Invalid input JSON: objectId is required")
        id_property = body.get("idProperty")
        with self._portal.lock:
            contact = self._portal.find(str(body["objectId"]), id_property)
            if contact is None:
                contact = self._portal.find(str(body["objectId"]), id_property, archived=True)
            if contact is None:
                if id_property == "email":
                    self._portal.blocked_emails.add(str(body["objectId"]).strip().lower())
                    return _Reply(204)
                raise _not_found("resource not found")
            self._announce(self._portal.purge(contact), self.change_source)
        return _Reply(204)

    def _op_merge_contacts(self, req: _Request) -> _Reply:
        body = req.body if isinstance(req.body, Mapping) else {}
        if not body.get("primaryObjectId") or not body.get("objectIdToMerge"):
            raise _validation_error(
                "Invalid input JSON: primaryObjectId and objectIdToMerge are required")
        with self._portal.lock:
            primary = self._portal.find(str(body["primaryObjectId"]), None)
            other = self._portal.find(str(body["objectIdToMerge"]), None)
            if primary is None or other is None:
                raise _not_found("resource not found")
            if primary.id == other.id:
                raise _validation_error("A contact cannot be merged with itself")
            self._announce(self._portal.merge(primary, other), self.change_source)
            return _Reply(200, self._portal.render(primary, None))

    # ---------------------------------------------------------------- properties operations
    @staticmethod
    def _check_object_type(req: _Request) -> None:
        if req.params["objectType"] not in CONTACT_OBJECT_TYPES:
            raise _validation_error(
                f"Unable to infer object type from: {req.params['objectType']} "
                "(this emulator serves contacts only)")

    def _op_list_properties(self, req: _Request) -> _Reply:
        self._check_object_type(req)
        archived = req.flag("archived")
        with self._portal.lock:
            results = [dict(p) for p in self._portal.properties.values()
                       if p["archived"] == archived]
        return _Reply(200, {"results": results})

    def _op_get_property(self, req: _Request) -> _Reply:
        self._check_object_type(req)
        with self._portal.lock:
            definition = self._portal.properties.get(req.params["propertyName"])
            if definition is None or definition["archived"] != req.flag("archived"):
                raise _not_found(f"Property {req.params['propertyName']} does not exist")
            return _Reply(200, dict(definition))

    def _op_create_property(self, req: _Request) -> _Reply:
        self._check_object_type(req)
        body = req.body if isinstance(req.body, Mapping) else {}
        missing = [k for k in ("name", "label", "type", "fieldType", "groupName") if
                   not body.get(k)]
        if missing:
            raise _validation_error(f"Invalid input JSON: missing required fields {missing}")
        name = str(body["name"])
        if not PROPERTY_NAME.match(name):
            raise _validation_error(
                f"Property name {name!r} is invalid: use lowercase letters, digits and "
                "underscores, starting with a letter")
        stamp = _iso(_now_ms())
        with self._portal.lock:
            existing = self._portal.properties.get(name)
            if existing is not None and not existing["archived"]:
                raise HubSpotError(409, "CONFLICT", f"A property named '{name}' already exists.")
            definition = _definition(name, str(body["label"]), "string", "text", "",
                                     hubspot_defined=False, stamp=stamp)
            definition.update({"displayOrder": -1, "formField": True})
            self._apply_property_fields(definition, body)
            self._portal.properties[name] = definition
            return _Reply(201, dict(definition), {
                "Location": f"{self.url}/crm/v3/properties/contacts/{name}"})

    def _op_update_property(self, req: _Request) -> _Reply:
        self._check_object_type(req)
        body = req.body if isinstance(req.body, Mapping) else {}
        with self._portal.lock:
            definition = self._portal.live_property(req.params["propertyName"])
            if definition is None:
                raise _not_found(f"Property {req.params['propertyName']} does not exist")
            if definition["modificationMetadata"]["readOnlyDefinition"]:
                raise _validation_error(
                    f"Property {definition['name']} is a read-only HubSpot property and "
                    "cannot be modified")
            changed = dict(definition)
            self._apply_property_fields(changed, body)
            changed["updatedAt"] = _iso(_now_ms())
            self._portal.properties[definition["name"]] = changed
            return _Reply(200, dict(changed))

    def _op_archive_property(self, req: _Request) -> _Reply:
        self._check_object_type(req)
        with self._portal.lock:
            definition = self._portal.live_property(req.params["propertyName"])
            if definition is None:
                raise _not_found(f"Property {req.params['propertyName']} does not exist")
            if not definition["modificationMetadata"]["archivable"]:
                raise _validation_error(
                    f"Property {definition['name']} is a HubSpot default property and "
                    "cannot be archived")
            stamp = _iso(_now_ms())
            definition.update({"archived": True, "archivedAt": stamp, "updatedAt": stamp})
        return _Reply(204)

    def _apply_property_fields(self, definition: dict[str, Any], body: Mapping[str, Any]) -> None:
        """Validate and copy PropertyCreate/PropertyUpdate fields onto a definition."""
        for key in ("label", "description", "displayOrder", "hidden", "formField",
                    "groupName", "type", "fieldType", "hasUniqueValue", "calculationFormula",
                    "numberDisplayHint", "textDisplayHint", "showCurrencySymbol",
                    "dataSensitivity", "externalOptions", "referencedObjectType"):
            if body.get(key) is not None:
                definition[key] = body[key]
        kind, field_type = definition["type"], definition["fieldType"]
        if kind not in PROPERTY_TYPES:
            raise _validation_error(
                f"Invalid property type {kind!r}; use one of {sorted(PROPERTY_TYPES)}")
        if field_type not in PROPERTY_TYPES[kind]:
            raise _validation_error(
                f"fieldType {field_type!r} is not valid for a {kind} property; use one of "
                f"{sorted(PROPERTY_TYPES[kind])}")
        group = self._portal.groups.get(str(definition["groupName"]))
        if group is None or group["archived"]:
            raise _validation_error(f"Property group {definition['groupName']} does not exist")
        if body.get("options") is not None:
            options = body["options"]
            if not isinstance(options, list) or not all(
                    isinstance(o, Mapping) and o.get("label") and o.get("value") is not None
                    for o in options):
                raise _validation_error("Invalid input JSON: every option needs label and value")
            values = [str(o["value"]) for o in options]
            if len(set(values)) != len(values):
                raise _validation_error(f"Duplicate option values: {values}")
            definition["options"] = [
                {"label": str(o["label"]), "value": str(o["value"]),
                 "displayOrder": int(o.get("displayOrder", i)), "hidden": bool(o.get("hidden")),
                 "description": str(o.get("description") or "")}
                for i, o in enumerate(options)]
        if kind == "bool" and not definition["options"]:
            definition["options"] = _options((("true", "Yes"), ("false", "No")))

    # ---------------------------------------------------------------- property groups
    def _op_list_groups(self, req: _Request) -> _Reply:
        self._check_object_type(req)
        with self._portal.lock:
            results = [dict(g) for g in self._portal.groups.values() if not g["archived"]]
        return _Reply(200, {"results": results})

    def _op_get_group(self, req: _Request) -> _Reply:
        self._check_object_type(req)
        with self._portal.lock:
            group = self._portal.groups.get(req.params["groupName"])
            if group is None or group["archived"]:
                raise _not_found(f"Property group {req.params['groupName']} does not exist")
            return _Reply(200, dict(group))

    def _op_create_group(self, req: _Request) -> _Reply:
        self._check_object_type(req)
        body = req.body if isinstance(req.body, Mapping) else {}
        if not body.get("name") or not body.get("label"):
            raise _validation_error("Invalid input JSON: name and label are required")
        name = str(body["name"])
        if not PROPERTY_NAME.match(name):
            raise _validation_error(f"Property group name {name!r} is invalid")
        with self._portal.lock:
            existing = self._portal.groups.get(name)
            if existing is not None and not existing["archived"]:
                raise HubSpotError(409, "CONFLICT",
                                   f"A property group named '{name}' already exists.")
            group = {"name": name, "label": str(body["label"]),
                     "displayOrder": int(body.get("displayOrder", -1)), "archived": False}
            self._portal.groups[name] = group
            return _Reply(201, dict(group), {
                "Location": f"{self.url}/crm/v3/properties/contacts/groups/{name}"})

    def _op_update_group(self, req: _Request) -> _Reply:
        self._check_object_type(req)
        body = req.body if isinstance(req.body, Mapping) else {}
        with self._portal.lock:
            group = self._portal.groups.get(req.params["groupName"])
            if group is None or group["archived"]:
                raise _not_found(f"Property group {req.params['groupName']} does not exist")
            if body.get("label") is not None:
                group["label"] = str(body["label"])
            if body.get("displayOrder") is not None:
                group["displayOrder"] = int(body["displayOrder"])
            return _Reply(200, dict(group))

    # ---------------------------------------------------------------- admin API
    def handle_admin(self, method: str, path: str, body: bytes) -> _Reply:
        action = path.removeprefix("/_emulator/").strip("/")
        payload = _parse_json(body) or {}
        if (method, action) == ("GET", "stats"):
            return _Reply(200, self.stats())
        if (method, action) == ("POST", "faults"):
            status = payload.get("status")
            self.inject_fault(str(payload.get("client", "")),
                              status if status == "timeout" else int(status),
                              int(payload.get("count", 1)),
                              payload.get("retry_after", FAULT_RETRY_AFTER_SECONDS))
            return _Reply(200, {"faults_pending": self.stats()["faults_pending"]})
        if (method, action) == ("POST", "reset"):
            self.reset()
            return _Reply(200, {"reset": True})
        if (method, action) == ("GET", "contacts"):
            return _Reply(200, {"results": self.contacts()})
        if (method, action) == ("POST", "contacts"):
            ids = self.create_contacts(payload.get("contacts") or [],
                                       announce=bool(payload.get("announce", True)))
            return _Reply(201, {"ids": ids})
        if (method, action) == ("GET", "subscriptions"):
            return _Reply(200, {"results": self.subscriptions()})
        if (method, action) == ("POST", "subscriptions"):
            app = self.subscribe(
                payload["target_url"], payload.get("types"),
                payload.get("property_names") or (), client_secret=payload.get("client_secret"),
                app_id=payload.get("app_id"), portal_id=payload.get("portal_id"),
                webhook_format=payload.get("format", "legacy"))
            return _Reply(201, app)
        if (method, action) == ("PATCH", "subscriptions"):
            # HubSpot's webhooks API pauses a subscription with {"active": false}: while paused,
            # its changes are never announced (a lost webhook, for tests of the safety nets).
            return _Reply(200, {"updated": self.set_subscriptions_active(
                bool(payload.get("active", True)), payload.get("property_name"))})
        if (method, action) == ("DELETE", "subscriptions"):
            with self._portal.lock:
                removed, self._apps = len(self._apps), []
            return _Reply(200, {"removed_apps": removed})
        if (method, action) == ("POST", "event-ids"):
            pool = payload.get("pool")
            self.event_id_pool = int(pool) if pool else None
            return _Reply(200, {"pool": self.event_id_pool})
        if (method, action) == ("POST", "tokens"):
            return _Reply(201, {"token": self.add_app(str(payload["client"]))})
        if (method, action) == ("POST", "flush"):
            return _Reply(200, {"drained": self.flush(float(payload.get("timeout", 10)))})
        return _Reply(404, {"message": f"no admin endpoint {method} {path}"})


def _subscribed_kind(event_type: str) -> str:
    """The contact change a subscription's eventType stands for (`object.x` -> `contact.x`:
    this emulator serves contacts only)."""
    family, _, action = event_type.partition(".")
    return f"contact.{action}" if family == "object" else event_type


def _parse_json(body: bytes) -> Any:
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise _validation_error(f"Invalid input JSON on line 1: {error}") from None


class _Handler(BaseHTTPRequestHandler):
    """HTTP plumbing only: parse, hand to the emulator, write the reply."""

    emulator: HubSpotEmulator
    protocol_version = "HTTP/1.1"  # keep-alive, like the SDK's connection pool expects
    timeout = 30  # idle keep-alive connections release their thread
    server_version = "HubSpotEmulator/1.0"

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def _dispatch(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        split = urlsplit(self.path)
        try:
            if split.path.startswith("/_emulator/"):
                reply = self.emulator.handle_admin(method, split.path, body)
            else:
                reply = self.emulator.handle_api(
                    method, split.path, parse_qs(split.query, keep_blank_values=True),
                    self.headers.get("Authorization"), body)
        except HubSpotError as error:
            reply = _Reply(error.status, error.body(), error.headers)
        except (KeyError, TypeError, ValueError) as error:  # malformed input
            reply = _Reply(400, HubSpotError(400, "VALIDATION_ERROR",
                                             f"Invalid input: {error!r}").body())
        except Exception as error:  # an emulator bug: answer it rather than drop the socket
            reply = _Reply(500, HubSpotError(500, "INTERNAL_ERROR",
                                             f"emulator error: {error!r}").body())
        self._write(reply)

    def _write(self, reply: _Reply) -> None:
        payload = b"" if reply.body is None else json.dumps(
            reply.body, separators=(",", ":")).encode()
        self.send_response(reply.status)
        if payload:
            self.send_header("Content-Type", "application/json;charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("X-HubSpot-Correlation-Id", _correlation_id())
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if reply.headers.get("Connection") == "close":
            self.close_connection = True
        self.end_headers()
        if payload:
            with contextlib.suppress(OSError):  # the client may have given up (timeouts)
                self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests and the local stack print their own summaries."""


# --------------------------------------------------------------------------- standalone

def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m leadscore_local.hubspot_emulator",
        description="Run the HubSpot emulator until SIGINT/SIGTERM; prints one JSON line.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", action="append", default=[], metavar="TOKEN=CLIENT",
                        help="an accepted access token and the client name it counts under")
    parser.add_argument("--client-secret", default="local-client-secret")
    parser.add_argument("--no-rate-limit", action="store_true")
    args = parser.parse_args(argv)

    tokens = dict(item.split("=", 1) for item in args.token) or {
        "pat-local-" + uuid.uuid4().hex[:12]: "default"}
    emulator = HubSpotEmulator(args.port, tokens=tokens, client_secret=args.client_secret,
                               rate_limit=None if args.no_rate_limit else RateLimits())
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with emulator:
        print(json.dumps({"url": emulator.url, "tokens": tokens,
                          "client_secret": args.client_secret,
                          "admin_url": f"{emulator.url}/_emulator"}), flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
