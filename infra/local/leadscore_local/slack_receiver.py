"""A loopback stand-in for a Slack incoming webhook: records what the functions post.

It answers as Slack documents incoming webhooks and is at least as strict: 200 `ok` for a
valid message; 400 `invalid_payload` for a body that is not a JSON object (or not sent as
JSON) and `invalid_blocks` for Block Kit it would not render (unknown block types, a header
over 150 characters, a section text over 3,000 or more than 10 fields, more than 50 blocks,
an empty text object); 400 `missing_text_or_fallback_or_attachments` without a `text`
fallback (Slack accepts blocks alone; the fallback is what notifications show, so it is
required here); 429 `rate_limited` with `Retry-After: 1` for a post less than a second after
the previous one (Slack allows about one per second per channel, with short bursts: stricter).
Faults injected from the local stack's admin API make the next posts fail: 429, 500
(`rollup_error`), 404 (`channel_not_found`), 410 (`channel_is_archived`) or "timeout" (the
message is recorded, as Slack may have posted it, and the answer comes too late).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from leadscore_local.loopback import LoopbackServer, QuietHandler

WEBHOOK_PATH = "/services/TLOCAL000/BLOCAL000/leadscore-local"
MIN_INTERVAL_SECONDS = 1.0
LATE_ANSWER_SECONDS = 12.0  # longer than the Slack client's 10 s read timeout
MAX_BLOCKS = 50
BLOCK_TYPES = frozenset({"header", "section", "context", "divider", "actions", "image"})
FAULT_ANSWERS = {429: "rate_limited", 500: "rollup_error", 404: "channel_not_found",
                 410: "channel_is_archived", 403: "action_prohibited"}


def _text_ok(node: Any, limit: int, kinds: frozenset[str] = frozenset({"plain_text",
                                                                        "mrkdwn"})) -> bool:
    return (isinstance(node, dict) and node.get("type") in kinds
            and isinstance(node.get("text"), str) and 0 < len(node["text"]) <= limit)


def block_problem(payload: Any) -> str | None:
    """Slack's error code for a payload it would refuse, or None."""
    if not isinstance(payload, dict):
        return "invalid_payload"
    if not isinstance(payload.get("text"), str) or not payload["text"].strip():
        return "missing_text_or_fallback_or_attachments"
    blocks = payload.get("blocks", [])
    if not isinstance(blocks, list) or len(blocks) > MAX_BLOCKS:
        return "invalid_blocks"
    for block in blocks:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind not in BLOCK_TYPES:
            return "invalid_blocks"
        if kind == "header" and not _text_ok(block.get("text"), 150, frozenset({"plain_text"})):
            return "invalid_blocks"
        if kind == "section":
            fields = block.get("fields")
            text_ok = "text" not in block or _text_ok(block["text"], 3000)
            fields_ok = fields is None or (isinstance(fields, list) and 0 < len(fields) <= 10
                                           and all(_text_ok(f, 2000) for f in fields))
            if not (text_ok and fields_ok) or ("text" not in block and fields is None):
                return "invalid_blocks"
        if kind == "context":
            elements = block.get("elements")
            if not (isinstance(elements, list) and 0 < len(elements) <= 10
                    and all(_text_ok(e, 2000) for e in elements)):
                return "invalid_blocks"
    return None


class SlackReceiver(LoopbackServer):
    """`url` is the webhook URL the local stack puts in SlackWebhookUrlSecret."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.answers: Counter[int] = Counter()
        self._faults: list[int | str] = []
        self._last_post: float | None = None
        self._lock = threading.Lock()
        receiver = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                status, body, headers = receiver.receive(self.path, self.headers, raw)
                self.reply(status, {"content-type": "text/plain", **headers}, body.encode())

        super().__init__(Handler, name="slack-receiver")
        self.webhook_url = self.url + WEBHOOK_PATH

    def receive(self, path: str, headers: Any, raw: bytes) -> tuple[int, str, dict[str, str]]:
        with self._lock:
            status, answer, extra = self._answer(path, headers, raw)
            self.answers[status] += 1
        if answer == "late":  # recorded as posted; the answer comes after the client gave up
            time.sleep(LATE_ANSWER_SECONDS)
            return 200, "ok", {}
        return status, answer, extra

    def _answer(self, path: str, headers: Any, raw: bytes) -> tuple[int, str, dict[str, str]]:
        if path != WEBHOOK_PATH:
            return 404, "no_service", {}
        if not (headers.get("content-type") or "").startswith("application/json"):
            return 400, "invalid_payload", {}
        try:
            payload = json.loads(raw)
        except ValueError:
            return 400, "invalid_payload", {}
        problem = block_problem(payload)
        if problem:
            return 400, problem, {}
        fault = self._faults.pop(0) if self._faults else None
        if fault is not None and fault != "timeout":
            retry = {"Retry-After": "1"} if fault == 429 else {}
            return int(fault), FAULT_ANSWERS[int(fault)], retry
        now = time.monotonic()
        if self._last_post is not None and now - self._last_post < MIN_INTERVAL_SECONDS:
            return 429, "rate_limited", {"Retry-After": "1"}
        self._last_post = now
        self.posts.append({"received_at": datetime.now(UTC).isoformat(), "payload": payload})
        return 200, "late" if fault == "timeout" else "ok", {}

    def inject_fault(self, status: int | str, count: int) -> None:
        if status != "timeout" and int(status) not in FAULT_ANSWERS:
            raise ValueError(f"unsupported Slack fault {status!r}: use "
                             f"{sorted(FAULT_ANSWERS)} or 'timeout'")
        with self._lock:
            self._faults.extend([status] * count)

    def report(self) -> dict[str, Any]:
        with self._lock:
            return {"posts": list(self.posts),
                    "answers": {str(k): v for k, v in sorted(self.answers.items())},
                    "faults_pending": len(self._faults)}


def as_text(payload: dict[str, Any]) -> str:
    """A posted message as plain text, roughly as Slack shows it (for the demo and README)."""
    def plain(text: str) -> str:
        text = re.sub(r"<([^|>]+)\|([^>]+)>", r"\2 (\1)", text)  # <url|label> → label (url)
        return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")

    lines = []
    for block in payload.get("blocks", []):
        kind = block.get("type")
        if kind == "header":
            lines.append(block["text"]["text"].upper())
        elif kind == "section" and "fields" in block:
            lines.append("   ".join(plain(f["text"]).replace("\n", ": ") for f in block["fields"]))
        elif kind == "section":
            lines.append(plain(block["text"]["text"]))
        elif kind == "context":
            lines.append(" ".join(plain(e["text"]) for e in block["elements"]))
    return "\n".join(lines)
