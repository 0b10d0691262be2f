"""Which Claude model answers, how it is called, and what it costs.

Defaults per provider (`DEFAULT_MODELS`), what each model family accepts in a Messages request
(`MODEL_CAPABILITIES`), list prices (`MODEL_PRICES`, overridable with LLM_PRICES), the SDK
client (`build_client`, imported on the first LLM call: init and provider "off" never load the
anthropic SDK), and the token usage and cost of each call.

No numpy/lightgbm here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    SecretStr,
    TypeAdapter,
)

if TYPE_CHECKING:  # imported on the first LLM call: init and provider "off" never load it
    import anthropic

Provider = Literal["anthropic", "bedrock", "off"]
# When the escalation model is asked (LLM_ESCALATE_ON; default: invalid, refusal):
# invalid = the fast model's answer was still invalid after one corrected retry;
# refusal = the fast model declined (stop_reason "refusal"): a fresh conversation;
# low_confidence = its valid answer said confidence "low"; hot = hot leads start on it.
EscalationTrigger = Literal["invalid", "refusal", "low_confidence", "hot"]
DEFAULT_ESCALATE_ON: frozenset[EscalationTrigger] = frozenset({"invalid", "refusal"})

# Defaults per provider: (fast model, escalation model). Claude Haiku 5.5 and Sonnet 5.5.
# Bedrock: current Claude models are invocable only through cross-Region inference profiles,
# so the ids are the APAC profiles. There is no India-only profile: called from ap-south-1,
# "apac." keeps processing inside Asia-Pacific (e.g. Tokyo, Seoul, Singapore, Sydney), not
# inside India ("global." would route worldwide). Verify with
# `aws bedrock list-inference-profiles --region ap-south-1` before deploying.
DEFAULT_MODELS: dict[str, tuple[str, str]] = {
    "anthropic": ("claude-haiku-5-5", "claude-sonnet-5-5"),
    "bedrock": ("apac.anthropic.claude-haiku-5-5", "apac.anthropic.claude-sonnet-5-5"),
}


@dataclass(frozen=True)
class ModelCapabilities:
    """What a model family accepts in a Messages request (the API answers 400 otherwise)."""

    # tool_choice {"type": "tool"} is accepted (with thinking off); otherwise the tool is
    # offered with "auto" and an answer without the tool call is invalid output (retried).
    forced_tool_choice: bool
    # The `thinking` value that turns thinking off: it costs output tokens, and a forced tool
    # call is rejected while it is on. None: send no `thinking` (unknown models only).
    thinking_off: dict[str, str] | None
    # Prompt-cache minimum: a shorter cached prefix is silently not cached.
    min_cacheable_tokens: int


# Keyed by model family (`price_key`). 5.x models reject temperature/top_p/top_k and
# assistant prefill, so no request sends them. Sonnet 5.5 rejects forced tool use and
# thinking {"type": "disabled"}: its lowest setting is "between_tools" (no up-front thinking).
MODEL_CAPABILITIES: dict[str, ModelCapabilities] = {
    "claude-haiku-5-5": ModelCapabilities(True, {"type": "disabled"}, 512),
    "claude-sonnet-5-5": ModelCapabilities(False, {"type": "between_tools"}, 512),
    "claude-sonnet-5": ModelCapabilities(True, {"type": "disabled"}, 1024),
    "claude-sonnet-4-6": ModelCapabilities(True, {"type": "disabled"}, 2048),
    "claude-sonnet-4-5": ModelCapabilities(True, {"type": "disabled"}, 1024),
    "claude-haiku-4-5": ModelCapabilities(True, {"type": "disabled"}, 4096),
}
# A model not listed gets the request every current model accepts: the tool offered with
# "auto" and no `thinking` field (it may think at its default effort; add it to the table).
UNKNOWN_MODEL = ModelCapabilities(False, None, 4096)


def capabilities(model_id: str) -> ModelCapabilities:
    return MODEL_CAPABILITIES.get(price_key(model_id), UNKNOWN_MODEL)


class ModelPrice(BaseModel):
    """USD per million tokens (5-minute cache writes)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cache_write: float = Field(ge=0)
    cache_read: float = Field(ge=0)


# Keyed by model family (see `price_key`); a model not listed has no cost estimate. Anthropic
# API list prices; Bedrock's geographic profiles can cost more than these (about 10%).
# LLM_PRICES (JSON, same shape) overrides or extends them without a code change.
MODEL_PRICES: dict[str, ModelPrice] = {
    "claude-haiku-4-5": ModelPrice(input=1.00, output=5.00, cache_write=1.25, cache_read=0.10),
    "claude-sonnet-4-5": ModelPrice(input=3.00, output=15.00, cache_write=3.75, cache_read=0.30),
    "claude-sonnet-4-6": ModelPrice(input=3.00, output=15.00, cache_write=3.75, cache_read=0.30),
    "claude-sonnet-5": ModelPrice(input=2.00, output=10.00, cache_write=2.50, cache_read=0.20),
    "claude-sonnet-5-5": ModelPrice(input=2.00, output=10.00, cache_write=2.50, cache_read=0.20),
    # Haiku 5.5's rate for prompts up to 100k tokens (longer prompts cost 5x; ours are ~2k).
    "claude-haiku-5-5": ModelPrice(input=0.10, output=0.50, cache_write=0.125, cache_read=0.01),
}


class TokenUsage(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(**{name: getattr(self, name) + getattr(other, name)
                             for name in TokenUsage.model_fields})


class LlmCall(BaseModel):
    """One Messages API call: which model, what came of it, what it cost."""

    model: str
    outcome: Literal["valid", "invalid", "refused", "api_error"]
    usage: TokenUsage = TokenUsage()
    cost_usd: float | None = None  # None: no price known for this model
    problem: str | None = None  # why the output was invalid or refused, or the API error


def price_key(model_id: str) -> str:
    """`apac.anthropic.claude-haiku-4-5-20251001-v1:0` and `claude-haiku-4-5-20251001` →
    `claude-haiku-4-5`."""
    key = model_id.lower()
    key = re.sub(r"^(?:[a-z-]+\.)?anthropic\.", "", key)
    key = re.sub(r"-v\d+(?::\d+)?$", "", key)
    return re.sub(r"(?:-|@)\d{8}$", "", key)


def cost_usd(model_id: str, usage: TokenUsage,
             prices: Mapping[str, ModelPrice] = MODEL_PRICES) -> float | None:
    price = prices.get(price_key(model_id))
    if price is None:
        return None
    return round((usage.input_tokens * price.input + usage.output_tokens * price.output
                  + usage.cache_creation_input_tokens * price.cache_write
                  + usage.cache_read_input_tokens * price.cache_read) / 1_000_000, 6)


def parse_prices(overrides: str | None) -> dict[str, ModelPrice]:
    """`MODEL_PRICES` with LLM_PRICES' JSON (`{"claude-haiku-4-5": {"input": 1.0, ...}}`)
    laid over it."""
    prices = dict(MODEL_PRICES)
    if overrides and overrides.strip():
        for family, price in TypeAdapter(dict[str, ModelPrice]).validate_json(overrides).items():
            prices[price_key(family)] = price
    return prices


class LlmSettings(BaseModel):
    """Which LLM to call and how; frozen so a built client can be cached per settings."""

    model_config = ConfigDict(frozen=True)

    provider: Provider = "off"
    api_key: SecretStr | None = None
    base_url: str | None = None  # Anthropic API override (the local stack's emulator)
    bedrock_region: str = "ap-south-1"
    model: str | None = None  # None: the provider's default fast model
    escalation_model: str | None = None  # None: the provider's default; same as model: never
    escalate_on: frozenset[EscalationTrigger] = DEFAULT_ESCALATE_ON
    # The longest valid LeadAssessment is ~950 tokens on the 5.x tokenizer (typical: ~250);
    # thinking is off, so this leaves room for a short preamble before an "auto" tool call
    # and still stops a runaway answer early. Not billed unless used.
    max_tokens: PositiveInt = 1200
    timeout_seconds: PositiveFloat = 20.0
    max_retries: NonNegativeInt = 2  # the SDK's own retries of 429/5xx/timeouts

    @property
    def enabled(self) -> bool:
        """An LLM is called: a provider is chosen and (for the Anthropic API) a key is set."""
        if self.provider == "anthropic":
            return self.api_key is not None and bool(self.api_key.get_secret_value())
        return self.provider == "bedrock"

    @property
    def primary_model(self) -> str:
        return self.model or DEFAULT_MODELS[self.provider][0]

    @property
    def escalation_model_id(self) -> str:
        return self.escalation_model or DEFAULT_MODELS[self.provider][1]


@lru_cache(maxsize=4)
def build_client(llm: LlmSettings) -> anthropic.Anthropic | anthropic.AnthropicBedrock:
    """The SDK client for `llm` (cached: warm Lambda invocations reuse its connections)."""
    import anthropic

    if llm.provider == "bedrock":
        return anthropic.AnthropicBedrock(aws_region=llm.bedrock_region,
                                          max_retries=llm.max_retries,
                                          timeout=llm.timeout_seconds)
    if llm.provider == "anthropic" and llm.api_key is not None:
        return anthropic.Anthropic(api_key=llm.api_key.get_secret_value(),
                                   base_url=llm.base_url or None,
                                   max_retries=llm.max_retries, timeout=llm.timeout_seconds)
    raise ValueError(f"no LLM client for provider {llm.provider!r} without an API key")


ClientFactory = Callable[[LlmSettings], Any]
