"""Helpers shared by the e2e modules (the fault drills use the same ones)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from leadscore_local.fault_drills import aws_client, hubspot_sdk, post, settle, wait_for
from leadscore_local.webhook_sender import encode_events, signed_headers

ROOT = Path(__file__).resolve().parents[2]
__all__ = ["ROOT", "aws_client", "hubspot_sdk", "post", "settle", "signed", "wait_for"]


def signed(stack, events: list[dict[str, Any]],
           at_ms: int | None = None) -> tuple[str, bytes, dict[str, str]]:
    """(url, body, headers) of a webhook POST signed with the stack's client secret."""
    url, secret = stack.info["webhook_url"], stack.info["hubspot_client_secret"]
    body = encode_events(events)
    return url, body, signed_headers(url, body, secret, at_ms or int(time.time() * 1000))
