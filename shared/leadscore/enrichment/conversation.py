"""The conversation with the LLM about one lead: the Messages request shaped per model, the tool
call validated into a `LeadAssessment`, one retry quoting the validation error, and every call
recorded (model, outcome, tokens, cost). `EnrichmentError` ends it without a usable answer.

Each `ask` is a fresh conversation: the opening turn only. A refusal (`stop_reason: "refusal"`)
ends the ask at once: Anthropic's guidance is to reset the context after a refusal, since
continuing the refused conversation is refused again, so nothing is appended to it; the caller
decides whether another model is asked afresh.

No numpy/lightgbm here; the anthropic SDK is imported on the first call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from leadscore.enrichment.assessment import TOOL_NAME, LeadAssessment, assessment_tool
from leadscore.enrichment.llm import (
    LlmCall,
    LlmSettings,
    ModelPrice,
    TokenUsage,
    capabilities,
    cost_usd,
)
from leadscore.enrichment.prompt import EnrichmentPrompt


class EnrichmentError(Exception):
    """No usable answer. `final`: no model produced a valid one, or the API rejected the
    request itself (400, or 404 for a model it does not serve): dead-letter now, a retry would
    only spend more or fail the same way; otherwise the API kept failing (SQS retries, then
    dead-letters).

    `reason` never contains lead data; `calls` carries the tokens spent on the way.
    """

    def __init__(self, reason: str, calls: Sequence[LlmCall] = (), *, final: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.calls = list(calls)
        self.final = final


@dataclass(frozen=True)
class Answer:
    """What one `ask` got: a valid assessment, or none (invalid after the retries, or refused)."""

    assessment: LeadAssessment | None
    refused: bool = False


def _refusal_problem(response: Any) -> str:
    details = getattr(response, "stop_details", None)
    category = getattr(details, "category", None)
    return f"refused ({category})" if category else "refused"


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


class Conversation:
    """Asks models for a `LeadAssessment` about one lead, recording every call."""

    def __init__(self, client: Any, llm: LlmSettings, prompt: EnrichmentPrompt, data: str,
                 prices: Mapping[str, ModelPrice],
                 before_call: Callable[[str], None] | None = None):
        self.client, self.llm, self.prices = client, llm, prices
        # Asked before every call; raises to stop (the batch's time budget is spent).
        self.before_call = before_call
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

    def ask(self, model: str, *, retries: int) -> Answer:
        """A fresh conversation with `model`; an invalid answer is corrected `retries` times."""
        messages: list[dict[str, Any]] = [self.opening]
        for attempt in range(retries + 1):
            response = self._create(model, messages)
            usage = _usage_of(response)
            if response.stop_reason == "refusal":  # never corrected: the context is reset
                self.last_problem = f"{model}: {_refusal_problem(response)}"
                self._record(model, "refused", usage, _refusal_problem(response))
                return Answer(None, refused=True)
            assessment, problem = self._parse(response)
            self._record(model, "valid" if assessment else "invalid", usage, problem)
            if assessment is not None:
                return Answer(assessment)
            self.last_problem = f"{model}: {problem}"
            if attempt < retries:
                messages = [*messages, *self._correction(response, problem or "")]
        return Answer(None)

    def _record(self, model: str, outcome: str, usage: TokenUsage, problem: str | None) -> None:
        self.calls.append(LlmCall(model=model, outcome=outcome, usage=usage,  # type: ignore[arg-type]
                                  cost_usd=cost_usd(model, usage, self.prices), problem=problem))

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

        if self.before_call is not None:
            self.before_call(model)
        try:
            return self.client.messages.create(**self._request(model, messages))
        except anthropic.APIError as error:
            status = getattr(error, "status_code", None)
            reason = f"llm_api_error: {type(error).__name__}" + (f" ({status})" if status else "")
            # Rejected requests are not billed; a timed-out one may be, but reports no usage.
            self.calls.append(LlmCall(model=model, outcome="api_error", problem=reason,
                                      cost_usd=0.0))
            rejected = isinstance(error, anthropic.BadRequestError | anthropic.NotFoundError)
            raise EnrichmentError(reason, self.calls, final=rejected) from error

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
