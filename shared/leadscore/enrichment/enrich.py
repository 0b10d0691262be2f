"""LLM enrichment of a scored lead: a fit summary, a next action and a review flag for the rep.

The flow for one contact (`enrich_contact`):

1. Consent, re-checked on the freshly read contact: without `ai_enrichment` (or with a value
   we cannot parse) nothing is sent anywhere and nothing is written (fail closed). A message
   older than the contact's latest score (`ai_lead_scored_at`) is skipped: the newer score
   queued its own enrichment, which will read the fresh data.
2. Provider `off`, or no API key: a deterministic summary from the model's reasons, labelled
   as not written by an LLM.
3. The daily budget is asked (`reserve_budget`); refused → `BudgetExhausted` (wait, not fail).
   Otherwise only allow-listed, non-identifying properties are sent, with e-mail addresses,
   phone and ID numbers redacted from every value, inside a delimited `<lead_data>` block the
   system prompt declares to be data. The system prompt (a template plus the qualification
   criteria, each versioned, from SSM Parameter Store or `defaults/`: `load_prompt`) carries
   `cache_control`; the cached prefix is the tool definition plus the system prompt.
4. The answer is requested through a tool call whose `input_schema` is `LeadAssessment`'s
   JSON schema, validated with pydantic; the request is shaped per model
   (`MODEL_CAPABILITIES`): thinking off, the tool call forced where the model accepts it
   ("auto" plus an instruction where not), no sampling parameters. Warm leads go to the fast
   model, hot leads straight to the escalation model. Invalid output gets one retry that
   quotes the validation error, then (fast model only) the escalation model; after that a
   final `EnrichmentError` (dead-lettered at once with the reason; API errors that outlast
   the SDK's retries are not final: SQS redelivers first). A valid but low-confidence answer
   from the fast model is also escalated.
5. What the LLM wrote is cleaned (markup, links, control characters and personal data
   removed, lengths capped) before it becomes HubSpot properties; the LLM can only ever set
   the four `ai_lead_*` enrichment properties, never the score.

Company name is not sent: for small companies it identifies the person as surely as a name.
The SQS side (budget counter, deferral, dead-lettering, once-per-score) is in
`leadscore.enrichment.worker`.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    SecretStr,
    TypeAdapter,
    ValidationError,
    field_validator,
)

from leadscore.dpdp.consent import DEFAULT_PURPOSES_PROPERTY, consent_for
from leadscore.settings import CommonSettings, NonEmpty

if TYPE_CHECKING:  # imported on the first LLM call: init and provider "off" never load it
    import anthropic

Tier = Literal["hot", "warm", "cold", "disqualified"]
Level = Literal["low", "medium", "high", "unknown"]
Confidence = Literal["low", "medium", "high"]
Provider = Literal["anthropic", "bedrock", "off"]

DEFAULTS_DIR = Path(__file__).parent / "defaults"
PROMPT_FILE = DEFAULTS_DIR / "enrichment_prompt.md"
CRITERIA_FILE = DEFAULTS_DIR / "qualification_criteria.md"
TOOL_NAME = "record_lead_assessment"
AUTO_SUMMARY_LABEL = "[Auto-summary, not AI-written]"
AUTO_ACTION_LABEL = "[Rule-based]"

# Properties sent to the LLM (HubSpot internal name → label in the prompt). Nothing else leaves.
ALLOWED_PROPERTIES: dict[str, str] = {
    "jobtitle": "Job title",
    "numemployees": "Company size (employees)",
    "industry": "Industry",
    "country": "Country",
    "hs_analytics_source": "Original traffic source",
    "hs_analytics_num_visits": "Website visits",
    "hs_analytics_num_page_views": "Page views",
}
MESSAGE_PROPERTY = "message"  # free text from the lead's form submission
REASONS_PROPERTY = "ai_lead_reasons"  # written by the score function
SCORED_AT_PROPERTY = "ai_lead_scored_at"  # written by the score function, with each score

SUMMARY_PROPERTY = "ai_lead_summary"
NEXT_ACTION_PROPERTY = "ai_lead_next_action"
NEEDS_REVIEW_PROPERTY = "ai_lead_needs_review"
REVIEW_REASON_PROPERTY = "ai_lead_review_reason"

# Length caps: what a value may occupy in the prompt, and in HubSpot.
FIELD_CHARS = 200
MESSAGE_CHARS = 2000
REASONS_CHARS = 1000
SUMMARY_CHARS = 400
NEXT_ACTION_CHARS = 200
SUMMARY_PROPERTY_CHARS = 1000  # fit summary plus the signal and red-flag lines
REVIEW_REASON_CHARS = 250

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


# ---------------------------------------------------------------- the LLM's answer


class BantItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    level: Level
    evidence: str | None = Field(default=None, max_length=FIELD_CHARS,
                                 description="A few words quoting or paraphrasing the lead data.")


class Bant(BaseModel):
    model_config = ConfigDict(extra="forbid")

    budget: BantItem
    authority: BantItem
    need: BantItem
    timeline: BantItem


ShortPhrase = Annotated[str, Field(max_length=120)]


class LeadAssessment(BaseModel):
    """The qualification assessment of one lead."""  # sent to the LLM in the tool schema

    model_config = ConfigDict(extra="forbid")

    fit_summary: str = Field(min_length=1, max_length=SUMMARY_CHARS,
                             description="Why the lead fits or not; plain text, no personal data.")
    next_action: str = Field(min_length=1, max_length=NEXT_ACTION_CHARS,
                             description="One concrete next step for the sales rep.")
    bant: Bant
    buying_signals: list[ShortPhrase] = Field(max_length=5)
    red_flags: list[ShortPhrase] = Field(max_length=5)
    confidence: Confidence


def assessment_tool() -> dict[str, Any]:
    return {
        "name": TOOL_NAME,
        "description": "Record the qualification assessment of the lead in <lead_data>.",
        "input_schema": LeadAssessment.model_json_schema(),
    }


# --------------------------------------------------------------------- inputs


class EnrichRequest(BaseModel):
    """An EnrichQueue message body (docs/CONTRACTS.md, "Messages")."""

    contact_id: str = Field(min_length=1)
    score: int = Field(ge=0, le=100)
    tier: Tier
    model_version: str
    scored_at: str
    event_ids: list[str] = []  # HubSpot events behind the score: the logs' correlation

    @field_validator("contact_id", mode="before")
    @classmethod
    def _id_as_string(cls, value: object) -> object:
        return str(value) if isinstance(value, int) else value


class LlmSettings(BaseModel):
    """Which LLM to call and how; frozen so a built client can be cached per settings."""

    model_config = ConfigDict(frozen=True)

    provider: Provider = "off"
    api_key: SecretStr | None = None
    base_url: str | None = None  # Anthropic API override (the local stack's emulator)
    bedrock_region: str = "ap-south-1"
    model: str | None = None  # None: the provider's default fast model
    escalation_model: str | None = None  # None: the provider's default; same as model: never
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


class EnrichSettings(CommonSettings):
    """The enrich function's environment (docs/CONTRACTS.md, "Environment variables")."""

    hubspot_token_secret: NonEmpty
    llm_provider: Provider = "off"
    llm_api_key_secret: str | None = None
    anthropic_base_url: str | None = None
    bedrock_region: NonEmpty = "ap-south-1"
    llm_model: str | None = None
    llm_escalation_model: str | None = None
    llm_timeout_seconds: PositiveFloat = 20.0
    llm_max_retries: NonNegativeInt = 2
    llm_prices: str | None = None  # JSON laid over MODEL_PRICES (see `parse_prices`)
    # SSM parameters holding the prompt template and the qualification criteria ("default" or
    # unset: the versioned texts in leadscore/defaults/), re-read after this many seconds.
    enrichment_prompt_parameter: str | None = None
    qualification_criteria_parameter: str | None = None
    enrichment_config_max_age_seconds: PositiveInt = 300
    # Daily LLM spend limit (UTC days) kept in ENRICH_BUDGET_TABLE; 0 or no table: no limit.
    enrich_budget_table: str | None = None
    llm_daily_budget_usd: float = Field(default=0.0, ge=0)
    # Reserved before a contact's calls and settled to the real cost after them.
    llm_cost_reservation_usd: PositiveFloat = 0.02
    # Messages waiting for the next day's budget are queued again here, with a delay.
    enrich_queue_url: str | None = None
    # Records that finally fail go to this DLQ with a `reason` attribute; keep the count equal
    # to EnrichQueue's maxReceiveCount.
    enrich_dlq_url: str | None = None
    enrich_queue_max_receive_count: PositiveInt = 5
    # Powertools idempotency: one enrichment per (contact, scored_at); unset: no dedupe.
    idempotency_table: str | None = None

    def llm(self, api_key: str | None) -> LlmSettings:
        return LlmSettings(
            provider=self.llm_provider, api_key=SecretStr(api_key) if api_key else None,
            base_url=self.anthropic_base_url, bedrock_region=self.bedrock_region,
            model=self.llm_model, escalation_model=self.llm_escalation_model,
            timeout_seconds=self.llm_timeout_seconds, max_retries=self.llm_max_retries,
        )


def read_properties(purposes_property: str = DEFAULT_PURPOSES_PROPERTY) -> list[str]:
    """The HubSpot properties `enrich_contact` needs on the contact."""
    return [purposes_property, *ALLOWED_PROPERTIES, MESSAGE_PROPERTY, REASONS_PROPERTY,
            SCORED_AT_PROPERTY]


def parse_prices(overrides: str | None) -> dict[str, ModelPrice]:
    """`MODEL_PRICES` with LLM_PRICES' JSON (`{"claude-haiku-4-5": {"input": 1.0, ...}}`)
    laid over it."""
    prices = dict(MODEL_PRICES)
    if overrides and overrides.strip():
        for family, price in TypeAdapter(dict[str, ModelPrice]).validate_json(overrides).items():
            prices[price_key(family)] = price
    return prices


def _instant(value: str | None) -> datetime | None:
    """An ISO-8601 or epoch-milliseconds timestamp (HubSpot uses both), or None."""
    if not value or not value.strip():
        return None
    text = value.strip()
    try:
        if text.isdigit():
            return datetime.fromtimestamp(int(text) / 1000, tz=UTC)
        parsed = datetime.fromisoformat(text)
    except (ValueError, OverflowError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def is_stale(properties: Mapping[str, str | None], scored: EnrichRequest) -> bool:
    """The contact was scored again after this message was queued: the newer score queued its
    own enrichment (or, in a tier not enriched, none), so this one must not run."""
    current, queued = _instant(properties.get(SCORED_AT_PROPERTY)), _instant(scored.scored_at)
    return current is not None and queued is not None and current > queued


@dataclass(frozen=True)
class EnrichmentPrompt:
    version: str  # "<template version>+<criteria version>": logged with every enrichment
    text: str


class PromptConfigError(ValueError):
    """A prompt template or criteria text that cannot be used (no version header, ...)."""


DEFAULT_SETTING = "default"  # an SSM parameter with this value means "the repo's default"
CRITERIA_PLACEHOLDER = "{{qualification_criteria}}"
_VERSION_HEADER = re.compile(r"\s*<!--\s*(prompt|criteria)-version:\s*(\S+)\s*-->[ \t]*\n")


def _versioned(text: str, kind: str) -> tuple[str, str]:
    """(version, body) of a prompt template or criteria text with its version header."""
    match = _VERSION_HEADER.match(text)
    if match is None or match.group(1) != kind:
        raise PromptConfigError(f"the {kind} text must start with <!-- {kind}-version: ... -->")
    return match.group(2), text[match.end():].strip()


def compose_prompt(template: str, criteria: str) -> EnrichmentPrompt:
    """The system prompt: the template with the qualification criteria in its placeholder."""
    template_version, template_body = _versioned(template, "prompt")
    criteria_version, criteria_body = _versioned(criteria, "criteria")
    if template_body.count(CRITERIA_PLACEHOLDER) != 1:
        raise PromptConfigError(f"the prompt template must contain the placeholder "
                                f"{CRITERIA_PLACEHOLDER} once")
    if not criteria_body:
        raise PromptConfigError("the qualification criteria are empty")
    return EnrichmentPrompt(version=f"{template_version}+{criteria_version}",
                            text=template_body.replace(CRITERIA_PLACEHOLDER, criteria_body))


@cache
def default_texts() -> tuple[str, str]:
    """The versioned template and criteria shipped with the package."""
    return (PROMPT_FILE.read_text(encoding="utf-8"),
            CRITERIA_FILE.read_text(encoding="utf-8"))


@cache
def default_prompt() -> EnrichmentPrompt:
    return compose_prompt(*default_texts())


ParameterFetcher = Callable[[str], str]


def load_prompt(template_parameter: str | None, criteria_parameter: str | None,
                fetch: ParameterFetcher) -> EnrichmentPrompt:
    """The prompt from SSM Parameter Store (`fetch` caches with a TTL), where a parameter
    unset or set to "default" means the repo's versioned default. RevOps edit the parameters
    to change the criteria or wording without a deploy; a text that is not usable raises
    `PromptConfigError` (the handler then falls back to the default and alarms)."""
    template, criteria = default_texts()
    if template_parameter:
        value = fetch(template_parameter)
        template = template if value.strip() == DEFAULT_SETTING else value
    if criteria_parameter:
        value = fetch(criteria_parameter)
        criteria = criteria if value.strip() == DEFAULT_SETTING else value
    return compose_prompt(template, criteria)


# -------------------------------------------------------------------- outputs


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
    outcome: Literal["valid", "invalid", "api_error"]
    usage: TokenUsage = TokenUsage()
    cost_usd: float | None = None  # None: no price known for this model
    problem: str | None = None  # why the output was invalid, or the API error class


class EnrichmentResult(BaseModel):
    contact_id: str
    status: Literal["enriched", "auto_summary", "skipped_no_consent", "skipped_stale"]
    properties: dict[str, str]  # the HubSpot properties to write; empty when skipped
    prompt_version: str | None = None
    assessment: LeadAssessment | None = None
    answered_by: str | None = None  # the model whose answer was used
    escalated: bool = False  # the fast model's answer was invalid or unsure: asked again
    needs_review: bool = False
    review_reason: str | None = None
    calls: list[LlmCall] = []

    @property
    def usage(self) -> TokenUsage:
        return sum((call.usage for call in self.calls), TokenUsage())

    @property
    def estimated_cost_usd(self) -> float | None:
        costs = [call.cost_usd for call in self.calls]
        return None if any(cost is None for cost in costs) else round(sum(costs), 6)


class EnrichmentError(Exception):
    """No usable answer. `final`: no model produced a valid one (dead-letter now, a retry
    would only spend more); otherwise the API kept failing (SQS retries, then dead-letters).

    `reason` never contains lead data; `calls` carries the tokens spent on the way.
    """

    def __init__(self, reason: str, calls: Sequence[LlmCall] = (), *, final: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.calls = list(calls)
        self.final = final


class BudgetExhausted(Exception):
    """Today's LLM budget is spent: the message must wait for the next day, not fail."""


# --------------------------------------------------------- personal data and markup

EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# Digit runs with separators; counted afterwards so years, amounts and dates survive.
NUMBER_RUN_RE = re.compile(r"(?<![\w+])\+?\d[\d\s().\-/]{6,}\d(?!\w)")
ISO_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
PAN_RE = re.compile(r"\b[A-Z]{5}\d{4}[A-Z]\b")  # Indian Permanent Account Number
URL_RE = re.compile(r"\b(?:https?|ftp)://\S+|\bwww\.\S+", re.IGNORECASE)
TAG_RE = re.compile(r"<[^<>]{0,200}>")
MD_LINK_RE = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
MARKUP_RE = re.compile(r"[*`#~|<>\[\]{}\\]+")
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


def _redact_number(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = sum(ch.isdigit() for ch in text)
    if ISO_DATE_RE.fullmatch(text.strip()):
        return text
    # Phone numbers (10+ digits, or international with +), Aadhaar (12), card numbers.
    if digits >= 10 or (text.startswith("+") and digits >= 8):
        return "[redacted number]"
    return text


def redact(text: str) -> str:
    """Removes e-mail addresses, phone/ID/card numbers and PAN numbers from free text."""
    text = EMAIL_RE.sub("[redacted email]", text)
    text = NUMBER_RUN_RE.sub(_redact_number, text)
    return PAN_RE.sub("[redacted id]", text)


def truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit * 0.6 else cut).rstrip(" ,;:.") + "…"


def clean_output(text: str, limit: int) -> str:
    """LLM text made safe for a CRM field: no markup, links, control characters or personal
    data, one line, at most `limit` characters."""
    text = html.unescape(text)
    text = TAG_RE.sub(" ", text)
    text = MD_LINK_RE.sub(r"\1", text)
    text = MARKUP_RE.sub(" ", text)
    text = URL_RE.sub("[link removed]", text)
    text = redact(text)
    text = CONTROL_RE.sub(" ", text)
    return truncate(" ".join(text.split()), limit)


def _data_value(raw: str, limit: int) -> str:
    """A contact value as it goes into the prompt: redacted, escaped, capped."""
    text = CONTROL_RE.sub(" ", redact(raw))
    return html.escape(truncate(" ".join(text.split()), limit), quote=True)


def lead_data_block(properties: Mapping[str, str | None], scored: EnrichRequest) -> str:
    """The `<lead_data>` block: allow-listed fields only, every value redacted and escaped."""
    lines = ["<lead_data>",
             f'<model_score score="{scored.score}" tier="{scored.tier}" '
             f'model_version="{html.escape(scored.model_version[:80], quote=True)}"/>']
    reasons = properties.get(REASONS_PROPERTY)
    if reasons and reasons.strip():
        lines.append(f"<model_reasons>{_data_value(reasons, REASONS_CHARS)}</model_reasons>")
    for name, label in ALLOWED_PROPERTIES.items():
        value = properties.get(name)
        if value and value.strip():
            lines.append(f'<field name="{label}">{_data_value(value, FIELD_CHARS)}</field>')
    message = properties.get(MESSAGE_PROPERTY)
    if message and message.strip():
        lines.append(f"<lead_message>{_data_value(message, MESSAGE_CHARS)}</lead_message>")
    else:
        lines.append("<lead_message/>")
    lines.append("</lead_data>")
    return "\n".join(lines)


# --------------------------------------------------------------------- the calls


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


def _usage_of(response: Any) -> TokenUsage:
    usage = getattr(response, "usage", None)
    return TokenUsage(
        input_tokens=getattr(usage, "input_tokens", 0) or 0,
        output_tokens=getattr(usage, "output_tokens", 0) or 0,
        cache_creation_input_tokens=getattr(usage, "cache_creation_input_tokens", 0) or 0,
        cache_read_input_tokens=getattr(usage, "cache_read_input_tokens", 0) or 0,
    )


def _problem(error: ValidationError) -> str:
    parts = [f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}"
             for e in error.errors(include_url=False, include_input=False)[:8]]
    return "; ".join(parts)


class _Conversation:
    """Asks models for a `LeadAssessment` about one lead, recording every call."""

    def __init__(self, client: Any, llm: LlmSettings, prompt: EnrichmentPrompt, data: str,
                 prices: Mapping[str, ModelPrice]):
        self.client, self.llm, self.prices = client, llm, prices
        # The cached prefix is the tool definition plus the system prompt (~1,200 tokens by
        # the emulator's estimate, more on the 5.x tokenizer): above Haiku 5.5's and Sonnet
        # 5.5's 512-token minimum, so every call after the first within 5 minutes reads it at
        # a tenth of the input price. (Haiku 4.5's minimum, 4,096, was out of reach.)
        self.system = [{"type": "text", "text": prompt.text,
                        "cache_control": {"type": "ephemeral"}}]
        self.tools = [assessment_tool()]
        # Where the tool call cannot be forced this instruction is what asks for it; an
        # answer without it is invalid output like any other.
        self.opening = {"role": "user", "content": [{"type": "text", "text": (
            f"Assess the lead in <lead_data> against the qualification criteria. Answer only "
            f"by calling the {TOOL_NAME} tool, once; do not answer in text.\n\n{data}")}]}
        self.calls: list[LlmCall] = []
        self.last_problem = "no answer"

    def ask(self, model: str, *, retries: int) -> LeadAssessment | None:
        messages: list[dict[str, Any]] = [self.opening]
        for attempt in range(retries + 1):
            response = self._create(model, messages)
            assessment, problem = self._parse(response)
            usage = _usage_of(response)
            self.calls.append(LlmCall(model=model, outcome="valid" if assessment else "invalid",
                                      usage=usage, cost_usd=cost_usd(model, usage, self.prices),
                                      problem=problem))
            if assessment is not None:
                return assessment
            self.last_problem = f"{model}: {problem}"
            if attempt < retries:
                messages = [*messages, *self._correction(response, problem or "")]
        return None

    def _request(self, model: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
        """The Messages request for `model`, shaped by what it accepts (`MODEL_CAPABILITIES`).
        No temperature/top_p/top_k and no assistant prefill: 5.x models reject them."""
        accepts = capabilities(model)
        request: dict[str, Any] = {
            "model": model, "max_tokens": self.llm.max_tokens, "system": self.system,
            "tools": self.tools, "messages": messages,
            "tool_choice": ({"type": "tool", "name": TOOL_NAME} if accepts.forced_tool_choice
                            else {"type": "auto"}),
        }
        if accepts.thinking_off is not None:
            request["thinking"] = accepts.thinking_off
        return request

    def _create(self, model: str, messages: list[dict[str, Any]]) -> Any:
        import anthropic  # loaded by build_client already; a dict lookup here

        try:
            return self.client.messages.create(**self._request(model, messages))
        except anthropic.APIError as error:
            status = getattr(error, "status_code", None)
            reason = f"llm_api_error: {type(error).__name__}" + (f" ({status})" if status else "")
            # Rejected requests are not billed; a timed-out one may be, but reports no usage.
            self.calls.append(LlmCall(model=model, outcome="api_error", problem=reason,
                                      cost_usd=0.0))
            raise EnrichmentError(reason, self.calls) from error

    @staticmethod
    def _parse(response: Any) -> tuple[LeadAssessment | None, str | None]:
        """The assessment in an answer, or why there is none."""
        if response.stop_reason == "max_tokens":
            return None, "the answer was cut off at max_tokens"
        tool_use = next((block for block in response.content
                         if block.type == "tool_use" and block.name == TOOL_NAME), None)
        if tool_use is None:
            return None, f"no {TOOL_NAME} tool call in the answer"
        try:
            return LeadAssessment.model_validate(tool_use.input), None
        except ValidationError as error:
            return None, _problem(error)

    @staticmethod
    def _correction(response: Any, problem: str) -> list[dict[str, Any]]:
        """The turns that show the model its invalid answer and what was wrong with it.

        The whole answer goes back as the assistant turn (thinking blocks must accompany the
        tool call they led to); every tool call in it gets an error `tool_result`.
        """
        feedback = (f"The {TOOL_NAME} input was invalid: {problem}. Call {TOOL_NAME} again with "
                    f"input that satisfies its schema.")
        answer = [block.to_dict() for block in response.content
                  if not (block.type == "text" and not block.text.strip())]
        tool_uses = [block for block in response.content if block.type == "tool_use"]
        reply = ([{"type": "tool_result", "tool_use_id": block.id, "is_error": True,
                   "content": feedback} for block in tool_uses]
                 or [{"type": "text", "text": feedback}])
        turns = [{"role": "assistant", "content": answer}] if answer else []
        return [*turns, {"role": "user", "content": reply}]


# ---------------------------------------------------------------- review and output


def review_reasons(assessment: LeadAssessment, tier: str) -> list[str]:
    """Why a rep should look twice: low confidence, or the score and the LLM disagree."""
    reasons = []
    if assessment.confidence == "low":
        reasons.append("LLM confidence is low")
    if tier == "hot":
        if assessment.red_flags:
            reasons.append("scored hot but the LLM found red flags")
        if assessment.bant.need.level == "low":
            reasons.append("scored hot but the LLM sees low need")
    if (tier in ("cold", "disqualified") and assessment.bant.need.level == "high"
            and assessment.bant.timeline.level == "high"):
        reasons.append(f"scored {tier} but the LLM sees high need and a near timeline")
    return reasons


def _summary_text(assessment: LeadAssessment) -> str:
    lines = [clean_output(assessment.fit_summary, SUMMARY_CHARS)]
    signals = [clean_output(s, 120) for s in assessment.buying_signals if s.strip()]
    flags = [clean_output(f, 120) for f in assessment.red_flags if f.strip()]
    if signals:
        lines.append("Buying signals: " + "; ".join(signals))
    if flags:
        lines.append("Red flags: " + "; ".join(flags))
    return truncate("\n".join(lines), SUMMARY_PROPERTY_CHARS)


def _properties(summary: str, next_action: str, reasons: Sequence[str]) -> dict[str, str]:
    return {
        SUMMARY_PROPERTY: summary,
        NEXT_ACTION_PROPERTY: next_action,
        NEEDS_REVIEW_PROPERTY: "true" if reasons else "false",
        # "" clears a reason left by an earlier enrichment of the same contact.
        REVIEW_REASON_PROPERTY: truncate("; ".join(reasons), REVIEW_REASON_CHARS),
    }


AUTO_NEXT_ACTIONS: dict[str, str] = {
    "hot": "Contact within one business day and confirm need and timeline.",
    "warm": "Send relevant material and offer a discovery call this week.",
    "cold": "Keep in nurture; revisit if engagement increases.",
    "disqualified": "No sales action; check the disqualifying factors if this looks wrong.",
}


def auto_summary(properties: Mapping[str, str | None], scored: EnrichRequest) -> dict[str, str]:
    """The no-LLM fallback: the model's own reasons, clearly labelled as not AI-written."""
    raw = properties.get(REASONS_PROPERTY) or ""
    reasons = [clean_output(part.strip(" -•*"), 120) for part in re.split(r"[\n;]+", raw)]
    reasons = [reason for reason in reasons if reason][:3]
    summary = f"{AUTO_SUMMARY_LABEL} Score {scored.score}/100 ({scored.tier})."
    if reasons:
        summary += " Top factors: " + "; ".join(reasons) + "."
    action = f"{AUTO_ACTION_LABEL} {AUTO_NEXT_ACTIONS[scored.tier]}"
    return _properties(truncate(summary, SUMMARY_PROPERTY_CHARS), action, ())


def enrich_contact(
    properties: Mapping[str, str | None],
    scored: EnrichRequest,
    llm: LlmSettings,
    client_factory: ClientFactory = build_client,
    *,
    purposes_property: str = DEFAULT_PURPOSES_PROPERTY,
    prompt: EnrichmentPrompt | None = None,
    prices: Mapping[str, ModelPrice] = MODEL_PRICES,
    reserve_budget: Callable[[], bool] | None = None,
) -> EnrichmentResult:
    """Enrich one scored contact; `properties` must be freshly read (see `read_properties`).

    `reserve_budget` is asked right before the first LLM call; False raises `BudgetExhausted`.
    Raises `EnrichmentError` when no model produced a valid answer or the API kept failing.
    """
    if not consent_for(properties, purposes_property).may_enrich:
        return EnrichmentResult(contact_id=scored.contact_id, status="skipped_no_consent",
                                properties={})
    if is_stale(properties, scored):
        return EnrichmentResult(contact_id=scored.contact_id, status="skipped_stale",
                                properties={})
    if not llm.enabled:
        return EnrichmentResult(contact_id=scored.contact_id, status="auto_summary",
                                properties=auto_summary(properties, scored))

    if reserve_budget is not None and not reserve_budget():
        raise BudgetExhausted()
    prompt = prompt or default_prompt()
    conversation = _Conversation(client_factory(llm), llm, prompt,
                                 lead_data_block(properties, scored), prices)
    primary, escalation = llm.primary_model, llm.escalation_model_id
    if scored.tier == "hot":
        # A hot lead gets the stronger model's judgement anyway: no fast call to pay for first.
        assessment = conversation.ask(escalation, retries=1)
        answered_by, escalated = escalation, False
    else:
        assessment, escalated = conversation.ask(primary, retries=1), False
        answered_by = primary
        if (assessment is None or assessment.confidence == "low") and escalation != primary:
            try:
                better = conversation.ask(escalation, retries=0)
            except EnrichmentError:
                if assessment is None:
                    raise
                better = None  # the fast model's valid answer stands; the failed call is recorded
            if better is not None:
                assessment, answered_by, escalated = better, escalation, True
    if assessment is None:
        raise EnrichmentError(f"invalid_output: {conversation.last_problem}", conversation.calls,
                              final=True)

    reasons = review_reasons(assessment, scored.tier)
    return EnrichmentResult(
        contact_id=scored.contact_id, status="enriched",
        properties=_properties(_summary_text(assessment),
                               clean_output(assessment.next_action, NEXT_ACTION_CHARS), reasons),
        prompt_version=prompt.version, assessment=assessment, answered_by=answered_by,
        escalated=escalated, needs_review=bool(reasons),
        review_reason="; ".join(reasons) or None, calls=conversation.calls,
    )
