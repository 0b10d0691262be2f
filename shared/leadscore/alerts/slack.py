"""Posting to a Slack incoming webhook, as Slack documents it.

The body is JSON with `blocks` (Block Kit) and `text` (the fallback shown in notifications).
HTTP 200 ("ok") is success and anything else a failure (Slack, "Improving error conditions for
Incoming Webhooks"): 400 `invalid_payload` / `invalid_blocks` (the message is wrong), 403
`action_prohibited` / `invalid_token`, 404 `channel_not_found` / `no_service` and 410
`channel_is_archived` (the webhook or channel must be fixed) are final; 429 (Slack's rate
limit, about one message per second per channel with short bursts; its `Retry-After` header
says how long to wait) and 5xx are retried. A request that was sent but never answered may
have been posted: it is not repeated (`SlackDeliveryUnknown`), so a lead is never posted twice.

The webhook URL is a bearer credential: it lives in Secrets Manager and is never logged.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import urllib3

MIN_INTERVAL_SECONDS = 1.05  # Slack: one message per second per channel (a little margin)
MAX_RETRY_AFTER_SECONDS = 30.0  # a longer wait is SQS's job (the record is retried later)
ATTEMPTS = 3  # per post, within one invocation: 429s and 5xx
TIMEOUT = urllib3.Timeout(connect=3.05, read=10.0)
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_ERROR_CODE = re.compile(r"[a-z_]{3,40}")

# Final answers: what the operator must do (the DLQ reason).
_FIXES = {
    400: "Slack rejected the message",
    403: "Slack forbids this webhook to post; check the Slack app and workspace settings",
    404: "the webhook or its channel no longer exists; put a new webhook URL in the secret",
    410: "the channel is archived; put a webhook URL for a live channel in the secret",
}


class SlackError(Exception):
    """A post that failed; `final` when sending it again cannot help. The message carries
    Slack's error code and the status only, never the URL or the lead."""

    def __init__(self, reason: str, *, final: bool) -> None:
        super().__init__(reason)
        self.reason, self.final = reason, final


class SlackDeliveryUnknown(SlackError):
    """Sent but not answered: the message may be in the channel. Not retried (never twice);
    the record goes to the DLQ with this reason for someone to check the channel."""

    def __init__(self) -> None:
        super().__init__(f"Slack did not answer within {TIMEOUT.read_timeout:.0f} s; the "
                         "message may have been posted: check the channel before redriving",
                         final=True)


def webhook_url(secret_value: str | None) -> str | None:
    """The incoming-webhook URL the secret holds, or None while it holds none (the stack
    creates the secret with a random placeholder): without a URL nothing is sent. HTTPS only;
    plain HTTP is accepted for a loopback address (the local stack's receiver)."""
    value = (secret_value or "").strip()
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    if parts.scheme == "https" and parts.hostname:
        return value
    if parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS:
        return value
    return None


def _retry_after(headers: Mapping[str, str]) -> float:
    try:
        seconds = float(headers.get("Retry-After", "1"))
    except ValueError:
        seconds = 1.0
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


class SlackWebhook:
    """One channel's incoming webhook. Posts are spaced MIN_INTERVAL_SECONDS apart in this
    container (Slack's per-channel rate); a 429 is waited out per its Retry-After."""

    def __init__(self, url: str, *, http: urllib3.PoolManager | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url
        self._http = http or urllib3.PoolManager()
        self._sleep, self._clock = sleep, clock
        self._last_post: float | None = None
        self.posted = 0
        self.rate_limited = 0

    def _pace(self) -> None:
        if self._last_post is not None:
            wait = self._last_post + MIN_INTERVAL_SECONDS - self._clock()
            if wait > 0:
                self._sleep(wait)

    def post(self, message: Mapping[str, Any]) -> None:
        """Posts `message` (a Block Kit payload); raises SlackError when it was not posted."""
        body = json.dumps(message, ensure_ascii=False).encode("utf-8")
        attempt = 0
        while True:
            attempt += 1
            self._pace()
            try:
                response = self._http.request(
                    "POST", self.url, body=body, timeout=TIMEOUT, retries=False,
                    redirect=False, headers={"Content-Type": "application/json; charset=utf-8"})
            except urllib3.exceptions.NewConnectionError as error:  # nothing was sent
                if attempt == ATTEMPTS:
                    raise SlackError(f"Slack unreachable: {type(error).__name__}",
                                     final=False) from None
                self._sleep(attempt)
                continue
            except (urllib3.exceptions.TimeoutError, urllib3.exceptions.ProtocolError):
                raise SlackDeliveryUnknown() from None
            finally:
                self._last_post = self._clock()
            if response.status == 200:
                self.posted += 1
                return
            code = _ERROR_CODE.search(response.data[:200].decode("utf-8", "replace"))
            answer = f"Slack answered {response.status}" + (f" {code.group(0)}" if code else "")
            self.rate_limited += response.status == 429
            retryable = response.status == 429 or response.status >= 500
            if not retryable:
                fix = _FIXES.get(response.status, "Slack refused the message")
                raise SlackError(f"{answer}: {fix}", final=True)
            if attempt == ATTEMPTS:
                raise SlackError(answer, final=False)
            self._sleep(_retry_after(response.headers) if response.status == 429 else attempt)
