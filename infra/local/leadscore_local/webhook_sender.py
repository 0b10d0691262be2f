"""Signs and delivers webhook batches the way HubSpot does.

HubSpot POSTs a JSON array of up to 100 events and signs each request twice:
`X-HubSpot-Signature` (v1: hex SHA-256 of client secret + body, announced by
`X-HubSpot-Signature-Version: v1`) and `X-HubSpot-Signature-v3` (base64 HMAC-SHA256 of
method + URI + body + timestamp, with the timestamp in `X-HubSpot-Request-Timestamp`).
The URI in v3 is the full target URL HubSpot called, so receivers must know it exactly.

Used by the HubSpot emulator's delivery thread, and directly by tests and the demo.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any

MAX_EVENTS_PER_REQUEST = 100
DEFAULT_TIMEOUT_SECONDS = 5.0  # HubSpot gives up on a delivery after 5 s and retries later


def sign_v3(client_secret: str, method: str, uri: str, body: bytes, timestamp_ms: int) -> str:
    """`X-HubSpot-Signature-v3`: base64(HMAC-SHA256(secret, method + uri + body + timestamp))."""
    source = method.encode() + uri.encode() + body + str(timestamp_ms).encode()
    digest = hmac.new(client_secret.encode(), source, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def sign_v1(client_secret: str, body: bytes) -> str:
    """`X-HubSpot-Signature` with version v1: hex SHA-256 of client secret + body."""
    return hashlib.sha256(client_secret.encode() + body).hexdigest()


def encode_events(events: Sequence[Mapping[str, Any]]) -> bytes:
    """The exact body bytes that are signed and sent (compact JSON, like HubSpot)."""
    return json.dumps(list(events), separators=(",", ":")).encode()


def signed_headers(url: str, body: bytes, client_secret: str, timestamp_ms: int) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": "HubSpot Connect 2.0 (http://dev.hubspot.com/)",
        "X-HubSpot-Signature": sign_v1(client_secret, body),
        "X-HubSpot-Signature-Version": "v1",
        "X-HubSpot-Signature-v3": sign_v3(client_secret, "POST", url, body, timestamp_ms),
        "X-HubSpot-Request-Timestamp": str(timestamp_ms),
    }


def deliver(
    url: str,
    events: Sequence[Mapping[str, Any]],
    client_secret: str,
    *,
    timestamp_ms: int | None = None,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> tuple[int, bytes]:
    """POST one signed batch to `url`; returns (HTTP status, response body).

    Non-2xx answers are returned, not raised; connection failures and timeouts raise
    `OSError` (urllib's `URLError` and `TimeoutError` are subclasses) so callers can retry.
    """
    if len(events) > MAX_EVENTS_PER_REQUEST:
        raise ValueError(f"HubSpot sends at most {MAX_EVENTS_PER_REQUEST} events per request")
    body = encode_events(events)
    stamp = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    request = urllib.request.Request(
        url, data=body, method="POST", headers=signed_headers(url, body, client_secret, stamp)
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read()
