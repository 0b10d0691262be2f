"""The models the Anthropic emulator serves, and what each accepts, as Anthropic documents them.

- Model ids: the Messages API answers an id it does not serve with 404 `not_found_error`,
  message `model: <id>` (seen on the real API for typos and for Bedrock ids such as
  `us.anthropic.claude-3-7-sonnet-20250219-v1:0`, which only Bedrock serves). The emulator
  emulates the Anthropic API, so Bedrock inference-profile ids are unknown here too.
- Prompt-cache minimum per model (`KNOWN_MODELS`): a marked prefix shorter than this is
  processed at the plain input price, silently, with both cache counters at 0. Values from
  Anthropic's prompt-caching documentation: 4,096 tokens for Claude Haiku 4.5 and Opus
  4.5/4.6; 2,048 for Sonnet 4.6 (one published table says 1,024: the stricter is kept);
  1,024 for Sonnet 4.5, Sonnet 5 and Opus 4.1; 512 for the 5.5 models (the value the project
  has recorded since the Haiku 5.5 / Sonnet 5.5 integration; verify against the live page).
- Model rules (`validate_model_rules`): on 5.x models `temperature`/`top_p`/`top_k`, an
  assistant prefill and `thinking: {"type": "enabled", ...}` are rejected, and adaptive
  thinking is on unless the request turns it off; thinking together with a forced tool choice
  (`tool`/`any`) is rejected; Claude Sonnet 5.5 rejects any forced tool choice and
  `thinking: {"type": "disabled"}` (its lowest setting is `between_tools`).
"""

from __future__ import annotations

import re
from typing import Any

# Served model id → prompt-cache minimum (tokens). Dated ids are the same model.
KNOWN_MODELS: dict[str, int] = {
    "claude-haiku-5-5": 512,
    "claude-sonnet-5-5": 512,
    "claude-sonnet-5": 1024,
    "claude-sonnet-4-6": 2048,
    "claude-sonnet-4-5": 1024,
    "claude-sonnet-4-5-20250929": 1024,
    "claude-haiku-4-5": 4096,
    "claude-haiku-4-5-20251001": 4096,
    "claude-opus-4-6": 4096,
    "claude-opus-4-5": 4096,
    "claude-opus-4-5-20251101": 4096,
    "claude-opus-4-1": 1024,
    "claude-opus-4-1-20250805": 1024,
}

NO_FORCED_TOOL_CHOICE = frozenset({"claude-sonnet-5-5"})
BETWEEN_TOOLS_THINKING = frozenset({"claude-sonnet-5-5"})  # "disabled" is rejected there
SAMPLING_PARAMETERS = ("temperature", "top_p", "top_k")


class RequestError(Exception):
    """A request the API would reject: becomes `{"type": "error", "error": {...}}`."""

    def __init__(self, status: int, error_type: str, message: str):
        super().__init__(message)
        self.status, self.error_type, self.message = status, error_type, message


def invalid(message: str) -> RequestError:
    return RequestError(400, "invalid_request_error", message)


def model_not_found(model: str) -> RequestError:
    return RequestError(404, "not_found_error", f"model: {model}")


def model_family(model: str) -> str:
    """`apac.anthropic.claude-haiku-5-5-v1:0`, `claude-haiku-4-5-20251001` → the family."""
    family = re.sub(r"^(?:[a-z-]+\.)?anthropic\.", "", model.lower())
    family = re.sub(r"-v\d+(?::\d+)?$", "", family)
    return re.sub(r"(?:-|@)\d{8}$", "", family)


def is_5x(model: str) -> bool:
    match = re.match(r"claude-[a-z]+-(\d+)", model_family(model))
    return match is not None and int(match.group(1)) >= 5


def thinking_mode(body: dict[str, Any]) -> str:
    """The thinking the request runs with: 5.x models think adaptively unless told not to."""
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and isinstance(thinking.get("type"), str):
        return thinking["type"]
    return "adaptive" if is_5x(body["model"]) else "disabled"


def validate_model_rules(body: dict[str, Any]) -> None:
    """What a model rejects although the request is well-formed (raises RequestError)."""
    family, choice = model_family(body["model"]), body.get("tool_choice") or {}
    forced = isinstance(choice, dict) and choice.get("type") in ("tool", "any")
    thinking = body.get("thinking")
    if thinking is not None:
        allowed = (("adaptive", "between_tools") if family in BETWEEN_TOOLS_THINKING
                   else ("adaptive", "disabled") if is_5x(body["model"])
                   else ("enabled", "adaptive", "disabled"))
        kind = thinking.get("type") if isinstance(thinking, dict) else None
        if kind not in allowed:
            hint = " Use thinking.type 'between_tools' to turn off up-front thinking." \
                if kind == "disabled" else ""
            raise invalid(f"thinking.type: '{kind}' is not supported for this model; expected "
                          f"one of {', '.join(repr(a) for a in allowed)}.{hint}")
    if is_5x(body["model"]):
        for name in SAMPLING_PARAMETERS:
            if name in body:
                raise invalid(f"{name}: sampling parameters are not supported for this model")
        messages = body.get("messages") or []
        if messages and isinstance(messages[-1], dict) and messages[-1].get("role") == "assistant":
            raise invalid("This model does not support assistant message prefill. The "
                          "conversation must end with a user message.")
    if forced and family in NO_FORCED_TOOL_CHOICE:
        raise invalid("tool_choice: forced tool use is not supported for this model; use "
                      "tool_choice 'auto' (or 'none').")
    if forced and thinking_mode(body) in ("enabled", "adaptive"):
        raise invalid("Thinking may not be enabled when tool_choice forces tool use.")
