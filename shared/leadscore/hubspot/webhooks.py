"""HubSpot webhook requests: the event model, body decoding and v3 signature verification.

Used by the ingest function (app webhooks) and by score_api (workflow "send a webhook" calls),
which HubSpot signs the same way: `X-HubSpot-Signature-v3` is
base64(HMAC-SHA256(client secret, method + URI + body + timestamp)) and
`X-HubSpot-Request-Timestamp` is epoch milliseconds. The URI is the public URL HubSpot called,
which API Gateway does not hand us verbatim behind custom domains or stage mappings, so it is
configurable (`WEBHOOK_PUBLIC_URL`, `SCORE_API_PUBLIC_URL`) and otherwise rebuilt from the event.

No numpy/lightgbm here: this module ships to the ingest function.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from hubspot.utils.signature import Signature
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

SIGNATURE_HEADER = "x-hubspot-signature-v3"
TIMESTAMP_HEADER = "x-hubspot-request-timestamp"
MAX_TIMESTAMP_SKEW_MS = 5 * 60 * 1000  # HubSpot: reject requests older than 5 minutes
# HubSpot sends at most 100 events per request (~300 bytes each); 1 MiB leaves room for
# propertyChange events carrying long values while bounding what we decode and hash.
MAX_BODY_BYTES = 1024 * 1024
MAX_EVENTS_PER_REQUEST = 100

# HubSpot decodes these percent-encodings in the URI before signing (request-validation docs).
_SIGNED_URI_DECODINGS = {
    "%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$", "%27": "'",
    "%28": "(", "%29": ")", "%2A": "*", "%2C": ",", "%3B": ";",
}
_SIGNED_URI_PATTERN = re.compile("|".join(_SIGNED_URI_DECODINGS), re.IGNORECASE)


CONTACT_OBJECT_TYPE_ID = "0-1"  # HubSpot's objectTypeId for contacts
# What happens to a contact in the events leadscore reads (`contact.<action>`, or
# `object.<action>` with objectTypeId 0-1 from apps on HubSpot's newer developer platform).
CONTACT_ACTIONS = frozenset({"creation", "restore", "merge", "propertyChange", "deletion",
                             "privacyDeletion"})


class SkipReason(StrEnum):
    """Why an event of a delivery was set aside (the `reason` of `WebhookEventsSkipped`)."""

    MALFORMED = "malformed"  # not an object, or a field of the wrong type or missing
    NO_OBJECT_ID = "no_object_id"  # names no contact (e.g. an association change)
    OTHER_OBJECT_TYPE = "other_object_type"  # about a company, deal, ticket, ...
    UNSUPPORTED_TYPE = "unsupported_type"  # a contact event leadscore does not handle


class WebhookEvent(BaseModel):
    """One element of a HubSpot webhook batch; fields HubSpot may add later are ignored.

    Both of HubSpot's formats: `contact.creation` & co., and the generic `object.creation` &
    co. whose `objectTypeId` says which object (`0-1`: a contact). `kind` gives both in the
    `contact.*` vocabulary. Merge events add `primaryObjectId`, `mergedObjectIds` and
    `newObjectId` (the contact that exists after the merge; usually the primary, but HubSpot
    may create a new one) and may omit `objectId`; association changes carry no `objectId`.
    `eventId` is not unique (HubSpot says so): `key` is what identifies an event.
    """

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True,
                              extra="ignore")

    event_id: int
    subscription_id: int
    portal_id: int
    app_id: int
    occurred_at: int
    subscription_type: str = Field(min_length=1)
    attempt_number: int
    object_id: int | None = None
    object_type_id: str | None = None
    change_flag: str | None = None
    change_source: str | None = None
    source_id: str | None = None
    property_name: str | None = None
    property_value: str | None = None
    primary_object_id: int | None = None
    merged_object_ids: tuple[int, ...] = ()
    new_object_id: int | None = None

    @property
    def surviving_object_id(self) -> int | None:
        """For a merge, the contact that exists afterwards; otherwise `objectId`."""
        return self.new_object_id or self.primary_object_id or self.object_id

    @property
    def kind(self) -> str | None:
        """`contact.<action>` for a contact event in either format; None for other objects."""
        family, _, action = self.subscription_type.partition(".")
        if family == "object" and self.object_type_id == CONTACT_OBJECT_TYPE_ID:
            family = "contact"
        return f"contact.{action}" if family == "contact" and action else None

    def skip_reason(self) -> SkipReason | None:
        """Why leadscore cannot act on this event; None when it can."""
        family, _, action = self.subscription_type.partition(".")
        if family == "object" and not self.object_type_id:
            return SkipReason.MALFORMED  # the generic format always says which object
        if self.kind is None:
            return SkipReason.OTHER_OBJECT_TYPE
        if action not in CONTACT_ACTIONS:
            return SkipReason.UNSUPPORTED_TYPE
        if self.surviving_object_id is None:
            return SkipReason.NO_OBJECT_ID
        return None


@dataclass(frozen=True)
class Delivery:
    """A verified body: the events leadscore can act on, and how many were set aside, why."""

    events: list[WebhookEvent]
    received: int
    skipped: Mapping[SkipReason, int]
    skipped_event_ids: list[int]  # of the skipped events that had a readable eventId


class HttpRequest(BaseModel):
    """What signature verification needs from an API Gateway HTTP API (payload v2) event."""

    model_config = ConfigDict(frozen=True)

    method: str
    uri: str
    headers: dict[str, str]  # lower-cased names
    body: bytes


class RequestTooLarge(ValueError):
    """The body exceeds the size we are willing to decode and verify (answer 413)."""


class MalformedRequest(ValueError):
    """The request cannot be read at all (answer 400); the message is safe to return."""


class InvalidWebhookPayload(ValueError):
    """The verified body is not a HubSpot event batch (answer 400); message safe to return."""


def signed_uri(event: Mapping[str, Any], public_url: str | None) -> str:
    """The URI HubSpot signed: `public_url` if configured, else `https://{domainName}{rawPath}`.

    The query string of the request is appended (`?rawQueryString`) unless `public_url` already
    carries one, so a configured URL may be either the bare endpoint or the full target URL.
    """
    query = event.get("rawQueryString") or ""
    if public_url:
        base = public_url
        if "?" in public_url:
            query = ""
    else:
        context = event.get("requestContext") or {}
        base = f"https://{context.get('domainName', '')}{event.get('rawPath', '')}"
    uri = f"{base}?{query}" if query else base
    return _SIGNED_URI_PATTERN.sub(lambda m: _SIGNED_URI_DECODINGS[m.group(0).upper()], uri)


def request_from_http_api_event(
    event: Mapping[str, Any],
    public_url: str | None,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> HttpRequest:
    """Decodes the body (base64 when flagged) with a size check before and after decoding."""
    raw = event.get("body") or ""
    if event.get("isBase64Encoded"):
        # 4 base64 characters carry 3 bytes: refuse oversize bodies before decoding them.
        if len(raw) > (max_body_bytes // 3 + 1) * 4:
            raise RequestTooLarge(f"body exceeds {max_body_bytes} bytes")
        try:
            body = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError) as error:
            raise MalformedRequest("body is not valid base64") from error
    else:
        body = raw.encode("utf-8")
    if len(body) > max_body_bytes:
        raise RequestTooLarge(f"body exceeds {max_body_bytes} bytes")
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    method = ((event.get("requestContext") or {}).get("http") or {}).get("method", "POST")
    return HttpRequest(method=method.upper(), uri=signed_uri(event, public_url), headers=headers,
                       body=body)


def is_valid_signature(request: HttpRequest, client_secret: str, now_ms: int | None = None) -> bool:
    """Checks `X-HubSpot-Signature-v3` and the 5-minute timestamp window (both directions).

    The window is checked here rather than by `Signature.is_valid` so that `now_ms` can be
    injected and future-dated timestamps are refused too; the HMAC itself is the SDK's.
    """
    signature = request.headers.get(SIGNATURE_HEADER)
    timestamp = request.headers.get(TIMESTAMP_HEADER)
    if not signature or not timestamp or not (timestamp.isascii() and timestamp.isdigit()):
        return False
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    if abs(now_ms - int(timestamp)) > MAX_TIMESTAMP_SKEW_MS:
        return False
    try:
        body = request.body.decode("utf-8")
    except UnicodeDecodeError:
        return False  # HubSpot signs UTF-8 text; anything else cannot be a genuine request
    expected = Signature.get_signature(
        client_secret, body, "v3", http_uri=request.uri, http_method=request.method,
        timestamp=timestamp,
    )
    return hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace"))


def parse_delivery(body: bytes) -> Delivery:
    """Reads a verified body event by event: one event that cannot be read or acted on is
    set aside with its reason, never the delivery (HubSpot does not retry a 4xx, so the other
    events would be lost). Only a body that is not a JSON array of at most 100 is refused."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidWebhookPayload("body is not valid JSON") from error
    if not isinstance(payload, list):
        raise InvalidWebhookPayload("body must be a JSON array of webhook events")
    if len(payload) > MAX_EVENTS_PER_REQUEST:
        raise InvalidWebhookPayload(
            f"{len(payload)} events: HubSpot sends at most {MAX_EVENTS_PER_REQUEST} per request"
        )
    events: list[WebhookEvent] = []
    skipped: Counter[SkipReason] = Counter()
    skipped_ids: list[int] = []
    for item in payload:
        try:
            event = WebhookEvent.model_validate(item)
        except ValidationError:
            reason: SkipReason | None = SkipReason.MALFORMED
            event_id = item.get("eventId") if isinstance(item, dict) else None
        else:
            reason, event_id = event.skip_reason(), event.event_id
        if reason is None:
            events.append(event)
            continue
        skipped[reason] += 1
        if isinstance(event_id, int) and not isinstance(event_id, bool):
            skipped_ids.append(event_id)
    return Delivery(events=events, received=len(payload), skipped=dict(skipped),
                    skipped_event_ids=skipped_ids)
