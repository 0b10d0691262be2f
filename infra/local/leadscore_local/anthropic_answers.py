"""What the Anthropic emulator answers in a tool call: a value valid against the tool's JSON
schema, deterministic for a request, shaped by an `AnswerProfile`.

The profile is the emulator's model of a real answer, with these defaults (why each):

- `low_confidence_share` 0.2 — the share of answers whose `confidence` is `low`. Our prompt
  asks for `low` when the data is thin, contradictory or manipulative. Thin data is common in
  inbound leads (35 % of the synthetic leads carry no message, the rest a one-line one), but
  models' self-reported confidence is known to skew high, so the default sits below that
  share. Before: a uniform pick among the enum's values, i.e. one answer in three.
- `red_flag_share` 0.25 — the share of answers listing red flags (then 1–2 of them). The
  prompt's red flags are students, job seekers, "just browsing", free-tool and removal
  requests and injected instructions; in the synthetic leads such low-intent messages come
  with about 20 % of leads, and a model also flags things the data does not say outright.
  Before: every answer had 1–3 red flags, so every hot lead was sent for review.
- `answer_length` 0.5 — the mean share of a string's `maxLength` an answer fills (± 40 %).
  The prompt gives caps ("at most 400 characters") and asks for "a few words" of evidence
  and short phrases; models asked for "at most N" write well under N. Half of every cap
  overstates the evidence and phrases, on purpose: output tokens are the larger part of the
  bill, so the emulator errs on the expensive side. Strings without a `maxLength` get 24–160
  characters, as before.
- `invalid_share` 0.02 — the share of tool answers whose `input` breaks the tool's schema (a
  required field missing, another of the wrong type: what the "malformed" fault sends).
  Anthropic documents that without `strict: true` on a tool "Claude might return incompatible
  types ("2" instead of 2) or omit required fields", and that strict tool use (grammar-
  constrained sampling) guarantees schema-valid inputs (platform.claude.com/docs, "Strict tool
  use"); it publishes no rate. Our tool is not strict and our validation (pydantic: lengths,
  enums, nested BANT items) is stricter than a type check, so a small share is realistic; 2 %
  is an assumption, not an Anthropic figure: the middle of the 1–3 % we expect from tool use
  without strict mode on a schema this size (the pipeline retries once, then escalates).
- `refusal_share` 0.002 — the share of answers that are a refusal: a 200 with `stop_reason:
  "refusal"`, no content, the input billed (what the "refusal" fault sends). Anthropic
  documents that Claude Haiku 5.5 and Sonnet 5.5 carry safety classifiers that can decline a
  request, and that the same request sent to another Claude model can usually be answered
  ("Refusals and fallback", "Handle streaming refusals"); it publishes no rate. Benign B2B
  lead data (job titles, company size, a one-line message) is far from every refusal
  category, so the share is set well under 1 %: 0.2 %, an assumption. A refused lead starts
  again on the escalation model.
- `first_token_seconds` / `output_tokens_per_second` — how long an answer takes. 0 (answer at
  once) by default, so tests stay fast; benchmarks that measure Lambda duration set them.

The low-confidence and red-flag shares apply to fields with those names (`confidence` with a
`low` option, an array named `red_flags`): our tool's names. Any other schema is faked
generically. Refusals and invalid answers are drawn from a hash of the request
(`AnswerProfile.drawn_outcome`), so the same request always gets the same outcome; a retry
differs, because the corrected conversation carries more messages (and an escalation names
another model).
"""

from __future__ import annotations

import copy
import hashlib
import math
import random
from dataclasses import dataclass, fields
from typing import Any

FALLBACK_WORDS = ("lead", "interest", "product", "team", "evaluation", "pricing", "demo",
                  "timeline", "budget", "fit", "follow", "call")
LENGTH_SPREAD = 0.4  # strings vary ± this share around the profile's mean length
SHARES = ("low_confidence_share", "red_flag_share", "invalid_share", "refusal_share")


def _unit(digest: str, label: str) -> float:
    """A number in [0, 1) derived from `digest`, independent for each `label`."""
    return int(hashlib.sha256(f"{label}:{digest}".encode()).hexdigest()[:13], 16) / 16 ** 13


@dataclass(frozen=True)
class AnswerProfile:
    """How tool answers look and how long they take (module docstring: defaults and why)."""

    low_confidence_share: float = 0.2
    red_flag_share: float = 0.25
    answer_length: float = 0.5
    invalid_share: float = 0.02
    refusal_share: float = 0.002
    first_token_seconds: float = 0.0
    output_tokens_per_second: float = 0.0

    def __post_init__(self) -> None:
        for name in SHARES:
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be between 0 and 1")
        if not 0 < self.answer_length <= 1:
            raise ValueError("answer_length must be in (0, 1]")
        if self.first_token_seconds < 0 or self.output_tokens_per_second < 0:
            raise ValueError("latencies must be >= 0")

    def drawn_outcome(self, request_digest: str, uses_tool: bool = True) -> str | None:
        """"refusal", "invalid" or None (a normal answer) for the request with this digest.

        Two draws from the digest, independent of each other and of the answer's content: a
        refusal with `refusal_share`, else an invalid tool input with `invalid_share` (only
        when the answer is a tool call). Shares of 0 and 1 are exact."""
        if _unit(request_digest, "refusal") < self.refusal_share:
            return "refusal"
        if uses_tool and _unit(request_digest, "invalid") < self.invalid_share:
            return "invalid"
        return None

    def seconds_for(self, output_tokens: int) -> float:
        """How long an answer of `output_tokens` takes to arrive."""
        if self.output_tokens_per_second <= 0:
            return self.first_token_seconds
        return self.first_token_seconds + output_tokens / self.output_tokens_per_second

    @classmethod
    def from_json(cls, values: dict[str, Any], base: AnswerProfile | None = None
                  ) -> AnswerProfile:
        """`base` with the given fields replaced; unknown fields are an error."""
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown profile fields: {sorted(unknown)}")
        current = {name: getattr(base or cls(), name) for name in known}
        return cls(**{**current, **{k: float(v) for k, v in values.items()}})


class SchemaFaker:
    """Generates a value that conforms to a JSON schema, deterministically from `rng`.

    Covers what tool schemas use: objects (required and optional properties), arrays
    (min/maxItems, uniqueItems), strings (enum, const, min/maxLength, a few formats),
    integers and numbers (bounds), booleans, null, `anyOf`/`oneOf`/`allOf`, `$ref` into
    `$defs`/`definitions`, and type lists such as `["string", "null"]`. `pattern` is not honoured.
    """

    max_depth = 8

    def __init__(self, root: dict[str, Any], rng: random.Random, words: list[str],
                 profile: AnswerProfile | None = None):
        self.root, self.rng, self.words = root, rng, words or list(FALLBACK_WORDS)
        self.profile = profile or AnswerProfile()

    def value(self, schema: Any, depth: int = 0, name: str | None = None) -> Any:
        schema = self._resolve(schema if isinstance(schema, dict) else {})
        if "const" in schema:
            return copy.deepcopy(schema["const"])
        if "enum" in schema:
            return copy.deepcopy(self._enum(schema["enum"], name))
        if "allOf" in schema:
            merged = {key: value for key, value in schema.items() if key != "allOf"}
            for part in schema["allOf"]:
                merged.update(self._resolve(part))
            return self.value(merged, depth, name)
        for key in ("anyOf", "oneOf"):
            if key in schema:
                return self.value(self._pick_branch(schema[key]), depth, name)
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = self._pick_type(kind)
        if kind is None:
            kind = "object" if "properties" in schema else "string"
        if depth >= self.max_depth:  # a recursive schema: stop with the smallest valid value
            return {"object": {}, "array": [], "null": None}.get(kind, self._scalar(kind, schema))
        if kind == "object":
            return self._object(schema, depth)
        if kind == "array":
            return self._array(schema, depth, name)
        return self._scalar(kind, schema)

    def _enum(self, options: list[Any], name: str | None) -> Any:
        if name == "confidence" and "low" in options and len(options) > 1:
            if self.rng.random() < self.profile.low_confidence_share:
                return "low"
            return self.rng.choice([option for option in options if option != "low"])
        return self.rng.choice(options)

    def _resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        seen = 0
        while "$ref" in schema and seen < 32:
            target: Any = self.root
            for part in schema["$ref"].lstrip("#/").split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            extra = {key: value for key, value in schema.items() if key != "$ref"}
            schema = {**target, **extra}
            seen += 1
        return schema

    def _pick_branch(self, branches: list[Any]) -> Any:
        resolved = [self._resolve(branch) for branch in branches]
        real = [branch for branch in resolved if branch.get("type") != "null"]
        if real and len(real) < len(resolved):  # nullable: mostly answer with a value
            return self.rng.choice(real) if self.rng.random() < 0.75 else {"type": "null"}
        return self.rng.choice(resolved)

    def _pick_type(self, kinds: list[str]) -> str:
        real = [kind for kind in kinds if kind != "null"]
        if real and (len(real) == len(kinds) or self.rng.random() < 0.75):
            return self.rng.choice(real)
        return "null"

    def _object(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        required = set(schema.get("required") or [])
        result: dict[str, Any] = {}
        for name, sub in (schema.get("properties") or {}).items():
            if name in required or self.rng.random() < 0.5:
                result[name] = self.value(sub, depth + 1, name)
        return result

    def _array(self, schema: dict[str, Any], depth: int, name: str | None) -> list[Any]:
        low = int(schema.get("minItems", 0))
        high = int(schema.get("maxItems", max(low, 3)))
        if name == "red_flags" and low == 0:
            flagged = self.rng.random() < self.profile.red_flag_share
            count = self.rng.randint(1, max(1, min(high, 2))) if flagged and high else 0
        else:
            count = self.rng.randint(max(low, min(1, high)), max(low, min(high, 3)))
        items: list[Any] = []
        for _ in range(count * 4):  # uniqueItems may need a few more draws
            if len(items) == count:
                break
            item = self.value(schema.get("items", {}), depth + 1)
            if schema.get("uniqueItems") and item in items:
                continue
            items.append(item)
        return items

    def _scalar(self, kind: str, schema: dict[str, Any]) -> Any:
        if kind == "string":
            return self._string(schema)
        if kind in ("integer", "number"):
            low = schema.get("minimum", schema.get("exclusiveMinimum"))
            high = schema.get("maximum", schema.get("exclusiveMaximum"))
            if low is None:
                low = 0 if high is None or high >= 0 else high - 100
            if high is None:
                high = low + 100
            if kind == "integer":
                low = math.ceil(low) + (1 if "exclusiveMinimum" in schema else 0)
                high = math.floor(high) - (1 if "exclusiveMaximum" in schema else 0)
                return self.rng.randint(low, max(low, high))
            return round(self.rng.uniform(low, high), 2)
        if kind == "boolean":
            return self.rng.random() < 0.5
        return None

    def _string(self, schema: dict[str, Any]) -> str:
        fmt = schema.get("format")
        if fmt == "date-time":
            return "2025-01-15T10:00:00Z"
        if fmt == "date":
            return "2025-01-15"
        if fmt == "email":
            return "someone@example.com"
        if fmt in ("uri", "url"):
            return "https://example.com/"
        if fmt == "uuid":
            return "00000000-0000-4000-8000-" + f"{self.rng.getrandbits(48):012x}"
        min_length = int(schema.get("minLength", 0))
        if "maxLength" in schema:
            max_length = int(schema["maxLength"])
            spread = self.rng.uniform(1 - LENGTH_SPREAD, 1 + LENGTH_SPREAD)
            target = round(max_length * self.profile.answer_length * spread)
        else:
            max_length, target = 10_000, self.rng.randint(24, 160)
        return self.sentence(min(max_length, max(min_length, target, 1)), min_length)

    def sentence(self, target: int, min_length: int = 0) -> str:
        """Words from the input, joined into a sentence of at most `target` characters."""
        parts: list[str] = []
        length = 0
        while True:
            word = self.rng.choice(self.words)
            extra = len(word) + (1 if parts else 0)
            if length + extra > target - 1:
                break
            parts.append(word)
            length += extra
        text = " ".join(parts)
        text = (text[:1].upper() + text[1:] + ".") if text else text
        if len(text) < min_length:
            text += "x" * (min_length - len(text))
        return text[:target] if target else ""


def corrupt(value: dict[str, Any], schema: dict[str, Any], faker: SchemaFaker) -> dict[str, Any]:
    """Break a valid tool input: drop the first required field, mistype another property."""
    schema = faker._resolve(schema)
    broken = dict(value)
    required = list(schema.get("required") or [])
    if required:
        broken.pop(required[0], None)
    for name in broken:
        if name not in required[:1]:
            current = broken[name]
            broken[name] = 12345 if isinstance(current, str) else "not-the-right-type"
            break
    if broken == value:  # no properties to break: add one the schema does not declare
        broken = {"unexpected_field": ["malformed"]}
    return broken
