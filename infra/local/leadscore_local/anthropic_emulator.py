"""A local stand-in for the Anthropic Messages API (`POST /v1/messages`), for tests and the stack.

It answers with the real response shape (content blocks, `tool_use`, `stop_reason`,
`stop_details`, `usage` including prompt-cache counters) so the official `anthropic` SDK parses
it unchanged, and its answers are deterministic: the same request always yields the same
content, derived from a hash of the request. Forced tool use (`tool_choice: {"type": "tool",
...}`) yields a `tool_use` block whose `input` conforms to the tool's `input_schema`, with
strings built from words of the input and shaped by an `AnswerProfile` (low-confidence and
red-flag shares, answer length, shares of invalid answers and refusals, latency:
`anthropic_answers`, which says why each default). An invalid answer or a refusal drawn from
the profile looks exactly like the "malformed" or "refusal" fault below.

Models (`anthropic_models`): only the ids the API serves are answered; any other id is a 404
`not_found_error` (`model: <id>`), as the real API answers. Each model caches a marked prefix
only from its documented minimum length on, and enforces its documented request rules with a
400 `invalid_request_error` (5.x: no sampling parameters, no prefill, adaptive thinking unless
turned off, no thinking with a forced tool choice; Sonnet 5.5: no forced tool choice at all and
`between_tools` as its lowest thinking setting). An answer with thinking on starts with a
`thinking` block, billed as output tokens.

Faults for the next N requests, from tests (`inject_fault`) or over HTTP (`POST /_emulator/faults`):
429 `rate_limit_error` (with `retry-after`), 500 `api_error`, 529 `overloaded_error`, `"timeout"`
(the answer comes only after `slow_response_seconds`, longer than a client's timeout),
`"malformed"` (a `tool_use` input that breaks its schema: a required field missing, another of
the wrong type) and `"refusal"`: a 200 answer with `stop_reason: "refusal"`, no content and
`stop_details` naming the category, the input billed and no output, as Anthropic documents a
refusal before any output. A prompt containing Anthropic's documented test string
(`REFUSAL_TEST_STRING`) is refused every time, as the real API refuses it.
Admin: `GET /_emulator/stats`, `GET /_emulator/requests`, `POST /_emulator/reset`,
`POST /_emulator/tool_input` (pin fields of the next tool inputs, e.g. a confidence level),
`POST /_emulator/profile` (change the answer profile: shares, length, latency; the stats
show the profile in effect and how many answers it made invalid or refused).

Not emulated: streaming, server tools, batches, token counting, server-side fallback. Token
counts are an estimate (characters / 4), not the real tokenizer.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import random
import re
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from leadscore_local.anthropic_answers import AnswerProfile, SchemaFaker, corrupt
from leadscore_local.anthropic_models import (
    KNOWN_MODELS,
    RequestError,
    model_not_found,
    thinking_mode,
    validate_model_rules,
)
from leadscore_local.anthropic_models import invalid as _fail

FAULT_KINDS: dict[int | str, tuple[int, str, str]] = {
    # kind → (HTTP status, error.type, error.message) as the API reports them
    429: (429, "rate_limit_error",
          "This request would exceed the rate limit for your organization. Please retry later."),
    500: (500, "api_error", "Internal server error"),
    529: (529, "overloaded_error", "Overloaded"),
}
BEHAVIOUR_FAULTS = ("timeout", "malformed", "refusal")
# Anthropic's documented prompt for testing refusal handling: always refused.
REFUSAL_TEST_STRING = ("ANTHROPIC_MAGIC_STRING_TRIGGER_REFUSAL_1FAEFB6177B4672DEE07F9D3AFC62588"
                       "CCD2631EDCF22E8CCC1FB35B501C9C86")
REFUSAL_DETAILS = {"type": "refusal", "category": "general_harms",
                   "explanation": "This request was declined by a safety classifier."}
TOOL_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
CACHE_TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}
MAX_CACHE_BREAKPOINTS = 4
STOPWORDS = frozenset({"the", "and", "for", "are", "but", "not", "you", "all", "any", "can",
                       "her", "was", "one", "our", "out", "has", "his", "how", "its", "who",
                       "did", "get", "may", "him", "she", "use", "that", "with", "this", "from",
                       "they", "will", "have", "your", "into", "than", "then", "them", "were"})

@dataclass
class _Segment:
    """One cacheable unit of the prompt, in the API's prefix order: tools, system, messages."""

    canonical: str
    tokens: int
    cache_ttl: str | None  # set when the block carries cache_control


def estimate_tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _without_cache_control(block: Any) -> Any:
    if isinstance(block, dict):
        return {key: value for key, value in block.items() if key != "cache_control"}
    return block


def _cache_ttl(block: Any) -> str | None:
    if isinstance(block, dict) and isinstance(block.get("cache_control"), dict):
        return block["cache_control"].get("ttl") or "5m"
    return None


def _block_text(block: Any) -> str:
    """The text a content block contributes to the prompt (for token estimates and words)."""
    if isinstance(block, str):
        return block
    if not isinstance(block, dict):
        return ""
    kind = block.get("type")
    if kind == "text":
        return str(block.get("text", ""))
    if kind == "tool_use":
        return _canonical(block.get("input", {}))
    if kind == "tool_result":
        content = block.get("content", "")
        if isinstance(content, list):
            return " ".join(_block_text(item) for item in content)
        return str(content)
    return _canonical(block)


def _segments(body: dict[str, Any]) -> list[_Segment]:
    segments: list[_Segment] = []
    for tool in body.get("tools") or []:
        text = _canonical(_without_cache_control(tool))
        segments.append(_Segment(text, estimate_tokens(text), _cache_ttl(tool)))
    system = body.get("system")
    if isinstance(system, str) and system:
        segments.append(_Segment(system, estimate_tokens(system), None))
    elif isinstance(system, list):
        for block in system:
            segments.append(_Segment(_canonical(_without_cache_control(block)),
                                     estimate_tokens(_block_text(block)), _cache_ttl(block)))
    for message in body.get("messages") or []:
        content = message.get("content")
        blocks = [content] if isinstance(content, str) else list(content or [])
        for block in blocks:
            segments.append(_Segment(
                message.get("role", "") + ":" + _canonical(_without_cache_control(block)),
                estimate_tokens(_block_text(block)), _cache_ttl(block)))
    return segments


# ------------------------------------------------------------------ request validation


def validate_request(body: Any, models: dict[str, int] | None = None) -> None:
    """The checks the API makes before generating; raises RequestError (400, or 404 for a
    model it does not serve) on the first."""
    if not isinstance(body, dict):
        raise _fail("Request body must be a JSON object")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise _fail("model: Field required")
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        raise _fail("max_tokens: Field required")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise _fail("max_tokens: Input should be an integer greater than or equal to 1")
    if body["model"] not in (KNOWN_MODELS if models is None else models):
        raise model_not_found(body["model"])
    if body.get("stream"):
        raise _fail("stream: streaming is not supported by the local emulator")
    temperature = body.get("temperature")
    if temperature is not None and not (
        isinstance(temperature, int | float) and 0 <= temperature <= 1
    ):
        raise _fail("temperature: Input should be a number between 0 and 1")
    _validate_system(body.get("system"))
    tool_names = _validate_tools(body.get("tools"))
    _validate_tool_choice(body.get("tool_choice"), tool_names)
    _validate_messages(body.get("messages"))
    validate_model_rules(body)
    breakpoints = sum(1 for segment in _segments(body) if segment.cache_ttl)
    if breakpoints > MAX_CACHE_BREAKPOINTS:
        raise _fail(f"A maximum of {MAX_CACHE_BREAKPOINTS} blocks with cache_control may be "
                    f"provided. Found {breakpoints}.")


def _validate_system(system: Any) -> None:
    if system is None or isinstance(system, str):
        return
    if not isinstance(system, list):
        raise _fail("system: Input should be a valid string or list of text blocks")
    for index, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text" or not isinstance(
            block.get("text"), str
        ):
            raise _fail(f"system.{index}: Input should be a text block")


def _validate_tools(tools: Any) -> set[str]:
    if tools is None:
        return set()
    if not isinstance(tools, list):
        raise _fail("tools: Input should be a valid list")
    names: set[str] = set()
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise _fail(f"tools.{index}: Input should be an object")
        if tool.get("type") not in (None, "custom"):
            raise _fail(f"tools.{index}.type: server tools are not supported by the local emulator")
        name = tool.get("name")
        if not isinstance(name, str) or not TOOL_NAME_RE.match(name):
            raise _fail(f"tools.{index}.name: String should match pattern "
                        f"'{TOOL_NAME_RE.pattern}'")
        schema = tool.get("input_schema")
        if not isinstance(schema, dict):
            raise _fail(f"tools.{index}.input_schema: Field required")
        if schema.get("type") != "object":
            raise _fail(f"tools.{index}.input_schema.type: Input should be 'object'")
        if name in names:
            raise _fail(f"tools: Tool names must be unique. Found duplicate: {name}")
        names.add(name)
    return names


def _validate_tool_choice(choice: Any, tool_names: set[str]) -> None:
    if choice is None:
        return
    if not isinstance(choice, dict) or choice.get("type") not in ("auto", "any", "tool", "none"):
        raise _fail("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'")
    if choice["type"] in ("any", "tool") and not tool_names:
        raise _fail("tool_choice: tool_choice may only be specified while providing tools")
    if choice["type"] == "tool" and choice.get("name") not in tool_names:
        raise _fail(f"tool_choice.name: Tool '{choice.get('name')}' not found in tools")


def _validate_messages(messages: Any) -> None:
    if not isinstance(messages, list) or not messages:
        raise _fail("messages: at least one message is required")
    pending_tool_uses: set[str] = set()
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise _fail(f"messages.{index}.role: Input should be 'user' or 'assistant'")
        content = message.get("content")
        if isinstance(content, str):
            if not content and message["role"] == "user":
                raise _fail(f"messages.{index}: user messages must have non-empty content")
            blocks: list[Any] = []
        elif isinstance(content, list) and content:
            blocks = content
        else:
            raise _fail(f"messages.{index}.content: Input should be a string or a non-empty list")
        for position, block in enumerate(blocks):
            if not isinstance(block, dict) or not isinstance(block.get("type"), str):
                raise _fail(f"messages.{index}.content.{position}.type: Field required")
        results = {block.get("tool_use_id") for block in blocks if block["type"] == "tool_result"}
        if message["role"] == "user":
            # The API insists every tool_use is answered by a tool_result in the very next turn.
            if pending_tool_uses - results:
                raise _fail(f"messages.{index}: `tool_use` ids were found without `tool_result` "
                            f"blocks immediately after: {', '.join(sorted(pending_tool_uses))}")
            if results - pending_tool_uses:
                raise _fail(f"messages.{index}.content: unexpected `tool_use_id` found in "
                            f"`tool_result` blocks: {', '.join(sorted(map(str, results)))}. Each "
                            f"`tool_result` block must have a corresponding `tool_use` block in "
                            f"the previous message.")
            pending_tool_uses = set()
        else:
            if results:
                raise _fail(f"messages.{index}: `tool_result` blocks are only allowed in user "
                            f"messages")
            pending_tool_uses = {str(block.get("id")) for block in blocks
                                 if block["type"] == "tool_use"}


def _words(messages: list[dict[str, Any]]) -> list[str]:
    """Distinct words of the user turns, tags removed: the raw material of answers."""
    texts = []
    for message in messages:
        if message.get("role") == "user":
            content = message.get("content")
            blocks = [content] if isinstance(content, str) else content
            texts.extend(_block_text(block) for block in blocks)
    text = re.sub(r"<[^>]*>|&[a-z]+;", " ", " ".join(texts))
    words = (word.lower() for word in re.findall(r"[A-Za-z][A-Za-z'-]{2,}", text))
    return list(dict.fromkeys(word for word in words if word not in STOPWORDS))


# -------------------------------------------------------------------------- the server


class AnthropicEmulator:
    """`POST /v1/messages` on 127.0.0.1 in a daemon thread, with fault injection.

    `api_key`: when set, only that key is accepted (any non-empty key otherwise), sent as
    `x-api-key` or as `Authorization: Bearer` (what the official SDK 2.x sends).
    `slow_response_seconds`: how long a `"timeout"` fault holds the answer back (the default
    outlasts the enrich function's default LLM timeout of 20 s).
    `retry_after_seconds`: the `retry-after` header sent with 429s.
    `models`: served model id → prompt-cache minimum in tokens (default `KNOWN_MODELS`, the
    documented values); any other id is a 404. `min_cacheable_tokens` replaces every model's
    minimum (a test knob). `profile`: how answers look and how long they take.
    """

    def __init__(self, port: int = 0, *, api_key: str | None = None,
                 slow_response_seconds: float = 30.0, retry_after_seconds: float = 1.0,
                 models: dict[str, int] | None = None, min_cacheable_tokens: int | None = None,
                 profile: AnswerProfile | None = None):
        self.api_key = api_key
        self.slow_response_seconds = slow_response_seconds
        self.retry_after_seconds = retry_after_seconds
        self.models = dict(KNOWN_MODELS if models is None else models)
        if min_cacheable_tokens is not None:
            self.models = dict.fromkeys(self.models, min_cacheable_tokens)
        self.profile = profile or AnswerProfile()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._faults: deque[int | str] = deque()
        self._tool_input_overrides: deque[dict[str, Any]] = deque()
        self._cache: dict[str, float] = {}  # prefix hash → expiry (monotonic seconds)
        self._requests: list[dict[str, Any]] = []
        self._sequence = 0
        self._reset_stats()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        # A short poll interval keeps stop() quick (shutdown waits for the next poll).
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True, name="anthropic-emulator")

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> AnthropicEmulator:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes requests held back by a "timeout" fault
        if self._thread.is_alive():  # shutdown() would wait forever on a server never started
            self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> AnthropicEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --------------------------------------------------------------- test controls
    def inject_fault(self, kind: int | str, count: int = 1) -> None:
        """Make the next `count` message requests fail as `kind` (429, 500, 529, "timeout",
        "malformed", "refusal"); faults queue up in the order they were injected."""
        kind = int(kind) if isinstance(kind, str) and kind.isdigit() else kind
        if kind not in FAULT_KINDS and kind not in BEHAVIOUR_FAULTS:
            raise ValueError(f"unknown fault {kind!r}: use 429, 500, 529, 'timeout', "
                             "'malformed' or 'refusal'")
        if count < 0:
            raise ValueError("count must be >= 0")
        with self._lock:
            self._faults.extend([kind] * count)

    def override_tool_input(self, values: dict[str, Any], count: int = 1) -> None:
        """Pin fields of the next `count` generated tool inputs (merged over generated ones)."""
        with self._lock:
            self._tool_input_overrides.extend([dict(values)] * count)

    def reset(self) -> None:
        """Forget faults, overrides, the prompt cache, recorded requests and statistics."""
        with self._lock:
            self._faults.clear()
            self._tool_input_overrides.clear()
            self._cache.clear()
            self._requests.clear()
            self._reset_stats()

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Every `/v1/messages` request received: path, headers (key masked), body, status
        and, when answered, the usage billed."""
        with self._lock:
            return copy.deepcopy(self._requests)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": self._stats_requests,
                "profile": dataclasses.asdict(self.profile),
                "answers_drawn": dict(self._answers_drawn),
                "by_model": dict(self._by_model),
                "by_status": {str(code): n for code, n in self._by_status.items()},
                "tokens": dict(self._tokens),
                "tokens_by_model": {model: dict(tokens)
                                    for model, tokens in self._tokens_by_model.items()},
                "faults_pending": len(self._faults),
                "faults_served": {str(kind): n for kind, n in self._faults_served.items()},
            }

    def _reset_stats(self) -> None:
        self._stats_requests = 0
        self._by_model: Counter[str] = Counter()
        self._by_status: Counter[int] = Counter()
        self._faults_served: Counter[int | str] = Counter()
        self._answers_drawn: Counter[str] = Counter()  # refusals and invalid answers drawn
        self._tokens = {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0,
                        "cache_read_input_tokens": 0}
        self._tokens_by_model: dict[str, Counter[str]] = {}  # for per-model cost estimates

    # --------------------------------------------------------------- the API itself
    def handle_messages(self, headers: dict[str, str], raw: bytes) -> tuple[int, dict, dict]:
        """Answers one `POST /v1/messages`: (status, extra headers, JSON body)."""
        record: dict[str, Any] = {
            "path": "/v1/messages",
            "headers": {name: ("***" if name in ("x-api-key", "authorization") else value)
                        for name, value in headers.items()},
            "body": None, "status": None, "fault": None, "drawn": None, "usage": None,
            "delay_seconds": 0.0,
        }
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            body = raw.decode("utf-8", "replace")
        record["body"] = body
        with self._lock:
            self._requests.append(record)
            self._stats_requests += 1
            if isinstance(body, dict) and isinstance(body.get("model"), str):
                self._by_model[body["model"]] += 1
        status, extra, payload = self._answer(headers, body, record)
        with self._lock:
            record["status"] = status
            record["usage"] = payload.get("usage") if status == 200 else None  # per-call cost
            self._by_status[status] += 1
        return status, extra, payload

    def _answer(self, headers: dict[str, str], body: Any,
                record: dict[str, Any]) -> tuple[int, dict, dict]:
        try:
            key = _api_key(headers)
            if not key or (self.api_key is not None and key != self.api_key):
                raise RequestError(401, "authentication_error", "invalid x-api-key")
            if not headers.get("anthropic-version"):
                raise _fail("anthropic-version: header is required")
            if isinstance(body, str):
                raise _fail(f"There was an issue with your request body: invalid JSON: "
                            f"{body[:80]!r}")
            validate_request(body, self.models)
        except RequestError as error:
            return error.status, {}, _error_body(error.error_type, error.message)
        with self._lock:
            fault = self._faults.popleft() if self._faults else None
            if fault is not None:
                self._faults_served[fault] += 1
        record["fault"] = fault
        if fault in FAULT_KINDS:
            status, error_type, message = FAULT_KINDS[fault]
            extra = {"retry-after": _seconds_header(self.retry_after_seconds)} if status == 429 \
                else {}
            return status, extra, _error_body(error_type, message)
        if fault == "timeout":
            # Hold the answer back; the client gives up first. Stopping the server wakes us.
            self._stopping.wait(self.slow_response_seconds)
        digest = _request_digest(body)
        drawn = self.profile.drawn_outcome(digest, _uses_tool(body))
        record["drawn"] = drawn
        if drawn is not None:
            with self._lock:
                self._answers_drawn[drawn] += 1
        if "refusal" in (fault, drawn) or REFUSAL_TEST_STRING in _canonical(body.get("messages")):
            return 200, {}, self._refusal(body)
        message = self._message(body, digest,
                                malformed=fault == "malformed" or drawn == "invalid")
        delay = self.profile.seconds_for(message["usage"]["output_tokens"])
        record["delay_seconds"] = delay
        if delay > 0:
            self._stopping.wait(delay)
        return 200, {}, message

    def _refusal(self, body: dict[str, Any]) -> dict[str, Any]:
        """A refusal before any output: no content, the input billed, no output tokens."""
        with self._lock:
            self._sequence += 1
            ident = hashlib.sha256(f"refusal:{self._sequence}".encode()).hexdigest()
        return {
            "id": "msg_01" + _base62(ident, 22), "type": "message", "role": "assistant",
            "model": body["model"], "content": [], "stop_reason": "refusal",
            "stop_sequence": None, "stop_details": dict(REFUSAL_DETAILS),
            "usage": self._usage(body, [], body["max_tokens"], "refusal"),
        }

    def _message(self, body: dict[str, Any], digest: str, malformed: bool) -> dict[str, Any]:
        rng = random.Random(digest)
        words = _words(body["messages"])
        with self._lock:
            self._sequence += 1
            sequence = self._sequence
        ident = hashlib.sha256(f"{digest}:{sequence}".encode()).hexdigest()

        choice = body.get("tool_choice") or {"type": "auto"}
        tools = body.get("tools") or []
        tool = None
        if tools and choice["type"] != "none":
            tool = next((t for t in tools if t["name"] == choice.get("name")), tools[0])
        content: list[dict[str, Any]] = []
        stop_reason, stop_sequence = "end_turn", None
        max_tokens = body["max_tokens"]
        faker = SchemaFaker(tool["input_schema"] if tool else {}, rng, words, self.profile)
        if thinking_mode(body) in ("enabled", "adaptive"):  # billed as output, as by the API
            content.append({"type": "thinking", "thinking": faker.sentence(rng.randint(300, 1200)),
                            "signature": _base62(ident, 40)})
        if tool is not None:
            if choice["type"] == "auto":
                content.append({"type": "text", "text": f"I'll use the {tool['name']} tool."})
            tool_input = faker.value(tool["input_schema"])
            with self._lock:
                override = (self._tool_input_overrides.popleft()
                            if self._tool_input_overrides else None)
            if override and isinstance(tool_input, dict):
                tool_input.update(copy.deepcopy(override))
            if malformed:
                tool_input = corrupt(tool_input, tool["input_schema"], faker)
            stop_reason = "tool_use"
            if estimate_tokens(_canonical(tool_input)) + 20 > max_tokens:
                tool_input, stop_reason = {}, "max_tokens"  # cut off mid-way: nothing usable
            content.append({"type": "tool_use", "id": "toolu_01" + _base62(ident, 22),
                            "name": tool["name"], "input": tool_input})
        else:
            text = faker.sentence(rng.randint(80, 300))
            for sequence_text in body.get("stop_sequences") or []:
                at = text.find(sequence_text)
                if sequence_text and at >= 0:
                    text, stop_reason, stop_sequence = text[:at], "stop_sequence", sequence_text
                    break
            if estimate_tokens(text) > max_tokens and stop_reason == "end_turn":
                text, stop_reason = text[: max_tokens * 4], "max_tokens"
            content.append({"type": "text", "text": text})

        usage = self._usage(body, content, max_tokens, stop_reason)
        return {
            "id": "msg_01" + _base62(ident[::-1], 22),
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": stop_sequence,
            "stop_details": None,
            "usage": usage,
        }

    def _usage(self, body: dict[str, Any], content: list[dict[str, Any]], max_tokens: int,
               stop_reason: str) -> dict[str, Any]:
        segments = _segments(body)
        total = sum(segment.tokens for segment in segments)
        read = creation = cached_prefix = 0
        created_by_ttl = {"5m": 0, "1h": 0}
        breakpoints = [i for i, segment in enumerate(segments) if segment.cache_ttl]
        minimum = self.models[body["model"]]
        if breakpoints:
            prefix_tokens = [0]
            for segment in segments:
                prefix_tokens.append(prefix_tokens[-1] + segment.tokens)
            keys = {i: hashlib.sha256((body["model"] + "\x00" + "\x00".join(
                s.canonical for s in segments[: i + 1])).encode()).hexdigest()
                for i in breakpoints}
            now = time.monotonic()
            with self._lock:
                hit = next((i for i in reversed(breakpoints)
                            if self._cache.get(keys[i], 0.0) > now), None)
                last = breakpoints[-1]
                if prefix_tokens[last + 1] >= minimum:
                    cached_prefix = prefix_tokens[last + 1]
                    read = prefix_tokens[hit + 1] if hit is not None else 0
                    creation = cached_prefix - read
                    for i in breakpoints:  # a hit refreshes the entry's lifetime, as the API does
                        ttl = segments[i].cache_ttl or "5m"
                        if prefix_tokens[i + 1] >= minimum:
                            self._cache[keys[i]] = now + CACHE_TTL_SECONDS.get(ttl, 300.0)
                    created_by_ttl[segments[last].cache_ttl or "5m"] = creation
        output_text = "".join(
            block.get("text", "") if block["type"] == "text"
            else block.get("thinking", "") if block["type"] == "thinking"
            else _canonical(block["input"])
            for block in content)
        output_tokens = 0 if stop_reason == "refusal" else max_tokens \
            if stop_reason == "max_tokens" else min(
            max_tokens, estimate_tokens(output_text) + (10 if stop_reason == "tool_use" else 0))
        usage = {
            "input_tokens": total - cached_prefix,
            "cache_creation_input_tokens": creation,
            "cache_read_input_tokens": read,
            "cache_creation": {"ephemeral_5m_input_tokens": created_by_ttl.get("5m", 0),
                               "ephemeral_1h_input_tokens": created_by_ttl.get("1h", 0)},
            "output_tokens": output_tokens,
            "service_tier": "standard",
        }
        with self._lock:
            by_model = self._tokens_by_model.setdefault(body["model"], Counter())
            for key in self._tokens:
                self._tokens[key] += usage[key]
                by_model[key] += usage[key]
        return usage

    # ------------------------------------------------------------------ HTTP plumbing
    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out as separate writes; without TCP_NODELAY the body waits
            # for the client's delayed ACK (~40 ms a request).
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                path = urlsplit(self.path).path
                headers = {name.lower(): value for name, value in self.headers.items()}
                if path == "/v1/messages":
                    self._send(*emulator.handle_messages(headers, raw))
                elif path == "/_emulator/faults":
                    self._send(*emulator._admin_faults(raw))
                elif path == "/_emulator/tool_input":
                    self._send(*emulator._admin_tool_input(raw))
                elif path == "/_emulator/profile":
                    self._send(*emulator._admin_profile(raw))
                elif path == "/_emulator/reset":
                    emulator.reset()
                    self._send(200, {}, {"reset": True})
                else:
                    self._send(404, {}, _error_body("not_found_error", "Not found"))

            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                if path == "/_emulator/stats":
                    self._send(200, {}, emulator.stats())
                elif path == "/_emulator/requests":
                    self._send(200, {}, {"requests": emulator.requests})
                else:
                    self._send(404, {}, _error_body("not_found_error", "Not found"))

            def _send(self, status: int, extra: dict[str, str], payload: Any) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("request-id", "req_01" + _base62(
                        hashlib.sha256(data + str(time.monotonic_ns()).encode()).hexdigest(), 22))
                    for name, value in extra.items():
                        self.send_header(name, value)
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client gave up (a "timeout" fault)

        return Handler

    def _admin_faults(self, raw: bytes) -> tuple[int, dict, dict]:
        try:
            request = json.loads(raw or b"{}")
            self.inject_fault(request["status"], int(request.get("count", 1)))
        except (ValueError, KeyError, TypeError) as error:
            return 400, {}, _error_body("invalid_request_error", f"bad fault request: {error}")
        return 200, {}, {"faults_pending": self.stats()["faults_pending"]}

    def _admin_profile(self, raw: bytes) -> tuple[int, dict, dict]:
        try:
            values = json.loads(raw or b"{}")
            if not isinstance(values, dict):
                raise ValueError("the profile must be an object")
            self.profile = AnswerProfile.from_json(values, self.profile)
        except (ValueError, TypeError) as error:
            return 400, {}, _error_body("invalid_request_error", f"bad profile: {error}")
        return 200, {}, {"profile": dataclasses.asdict(self.profile)}

    def _admin_tool_input(self, raw: bytes) -> tuple[int, dict, dict]:
        try:
            request = json.loads(raw or b"{}")
            if not isinstance(request.get("input"), dict):
                raise ValueError("'input' must be an object")
            self.override_tool_input(request["input"], int(request.get("count", 1)))
        except (ValueError, TypeError) as error:
            return 400, {}, _error_body("invalid_request_error", f"bad override: {error}")
        with self._lock:
            pending = len(self._tool_input_overrides)
        return 200, {}, {"overrides_pending": pending}


def _request_digest(body: dict[str, Any]) -> str:
    """What an answer is derived from: the same request always gets the same answer."""
    return hashlib.sha256(_canonical({
        key: body.get(key) for key in ("model", "system", "messages", "tools", "tool_choice",
                                       "max_tokens", "stop_sequences")
    }).encode()).hexdigest()


def _uses_tool(body: dict[str, Any]) -> bool:
    return bool(body.get("tools")) and (body.get("tool_choice") or {}).get("type") != "none"


def _api_key(headers: dict[str, str]) -> str:
    """The key from `x-api-key`, or from `Authorization: Bearer`, which SDK 2.x sends."""
    if headers.get("x-api-key"):
        return headers["x-api-key"]
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _error_body(error_type: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type, "message": message}}


def _seconds_header(seconds: float) -> str:
    # The API sends whole seconds; fractions (allowed here for fast tests) are parsed by the SDK.
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)


_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _base62(hex_digest: str, length: int) -> str:
    number = int(hex_digest, 16)
    chars = []
    for _ in range(length):
        number, remainder = divmod(number, 62)
        chars.append(_BASE62[remainder])
    return "".join(chars)
