"""The Anthropic emulator over real HTTP, driven by the official `anthropic` SDK."""

from __future__ import annotations

import dataclasses
import json
import urllib.error
import urllib.request
from typing import Any

import anthropic
import jsonschema
import pytest
from anthropic.types import Message, TextBlock, ToolUseBlock

from leadscore_local.anthropic_answers import AnswerProfile
from leadscore_local.anthropic_emulator import REFUSAL_TEST_STRING, AnthropicEmulator

MODEL = "claude-haiku-4-5"

# Every schema feature tool inputs use: bounds, enums, nesting, $ref, nullable anyOf, arrays.
SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "$defs": {
        "Item": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "level": {"enum": ["low", "medium", "high", "unknown"], "type": "string"},
                "evidence": {"anyOf": [{"type": "string", "maxLength": 40}, {"type": "null"}]},
            },
            "required": ["level", "evidence"],
        },
    },
    "properties": {
        "summary": {"type": "string", "minLength": 5, "maxLength": 60},
        "count": {"type": "integer", "minimum": 3, "maximum": 7},
        "ratio": {"type": "number", "minimum": 0, "maximum": 1},
        "flag": {"type": "boolean"},
        "maybe": {"type": ["string", "null"], "maxLength": 10},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 15},
                 "minItems": 1, "maxItems": 2},
        "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}},
        "nested": {"type": "object", "properties": {"inner": {"$ref": "#/$defs/Item"}},
                   "required": ["inner"], "additionalProperties": False},
        "choice": {"const": "fixed"},
    },
    "required": ["summary", "count", "ratio", "flag", "maybe", "tags", "items", "nested",
                 "choice"],
}
TOOL = {"name": "record", "description": "Record the answer.", "input_schema": SCHEMA}
FORCE = {"type": "tool", "name": "record"}
# Above Claude Haiku 4.5's documented caching minimum (4,096 tokens at ~4 characters a token).
SYSTEM_CACHED = [{"type": "text", "text": "You qualify sales leads. " * 700,
                  "cache_control": {"type": "ephemeral"}}]


# Tests of the answers' shape want every answer well-formed; the profile's shares of invalid
# answers and refusals have tests of their own (at the end).
WELL_FORMED = AnswerProfile(invalid_share=0, refusal_share=0)


@pytest.fixture
def emulator():
    with AnthropicEmulator(retry_after_seconds=0.01, slow_response_seconds=2.0,
                           profile=WELL_FORMED) as running:
        yield running


@pytest.fixture
def fast_backoff(monkeypatch):
    """The SDK's exponential backoff (0.5 s doubling) shrunk so retry tests stay fast."""
    monkeypatch.setattr(anthropic._base_client, "INITIAL_RETRY_DELAY", 0.01)
    monkeypatch.setattr(anthropic._base_client, "MAX_RETRY_DELAY", 0.02)


def client(emulator: AnthropicEmulator, **options: Any) -> anthropic.Anthropic:
    options.setdefault("max_retries", 0)
    return anthropic.Anthropic(base_url=emulator.url, api_key="test", **options)


def ask(sdk: anthropic.Anthropic, text: str = "We need pricing for 50 seats this quarter",
        **extra: Any) -> Message:
    return sdk.messages.create(model=MODEL, max_tokens=512,
                               messages=[{"role": "user", "content": text}], **extra)


def raw_post(url: str, body: Any, headers: dict[str, str]) -> tuple[int, dict[str, str], Any]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"content-type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


# ------------------------------------------------------------------- response shape


def test_text_answer_parses_into_the_sdk_types(emulator):
    message = ask(client(emulator))

    assert isinstance(message, Message)
    assert message.type == "message" and message.role == "assistant" and message.model == MODEL
    assert message.id.startswith("msg_")
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert [type(block) for block in message.content] == [TextBlock]
    assert message.content[0].text
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    assert message.usage.cache_creation_input_tokens == 0
    assert message.usage.cache_read_input_tokens == 0


def test_answers_are_deterministic_for_the_same_request(emulator):
    sdk = client(emulator)
    first, second = ask(sdk), ask(sdk)
    other = ask(sdk, "A different question about invoices and onboarding")

    assert first.content == second.content
    assert first.id != second.id  # ids stay unique, as the API's are
    assert other.content != first.content


def test_forced_tool_use_returns_input_valid_against_the_schema(emulator):
    sdk = client(emulator)
    validator = jsonschema.Draft202012Validator(SCHEMA)
    for n in range(40):  # many requests: every branch (null or not, optional or not) gets hit
        message = ask(sdk, f"Lead {n}: evaluating analytics platform for procurement",
                      tools=[TOOL], tool_choice=FORCE)

        assert message.stop_reason == "tool_use"
        (block,) = message.content
        assert isinstance(block, ToolUseBlock)
        assert block.name == "record" and block.id.startswith("toolu_")
        validator.validate(block.input)


def test_tool_strings_are_built_from_the_input_text(emulator):
    message = ask(client(emulator), "procurement analytics onboarding", tools=[TOOL],
                  tool_choice=FORCE)
    summary = message.content[0].input["summary"].lower()

    assert {"procurement", "analytics", "onboarding"} & set(summary.rstrip(".").split())


def test_auto_tool_choice_uses_the_first_tool_after_a_text_block(emulator):
    message = ask(client(emulator), tools=[TOOL], tool_choice={"type": "auto"})

    assert [block.type for block in message.content] == ["text", "tool_use"]
    assert message.stop_reason == "tool_use"


def test_small_max_tokens_stops_with_max_tokens(emulator):
    message = client(emulator).messages.create(
        model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "hello"}],
        tools=[TOOL], tool_choice=FORCE)

    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 5


# ------------------------------------------------------------------- prompt caching


def test_cached_system_prompt_is_written_once_then_read(emulator):
    sdk = client(emulator)
    first = ask(sdk, "first lead", system=SYSTEM_CACHED, tools=[TOOL], tool_choice=FORCE)
    second = ask(sdk, "second lead, different text", system=SYSTEM_CACHED, tools=[TOOL],
                 tool_choice=FORCE)

    assert first.usage.cache_creation_input_tokens > 0
    assert first.usage.cache_read_input_tokens == 0
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    assert second.usage.cache_creation_input_tokens == 0
    # The uncached remainder (the user turn) is billed as plain input both times.
    assert 0 < second.usage.input_tokens < second.usage.cache_read_input_tokens


def test_no_cache_control_means_no_cache_counters(emulator):
    sdk = client(emulator)
    plain = [{"type": "text", "text": SYSTEM_CACHED[0]["text"]}]
    for _ in range(2):
        message = ask(sdk, system=plain)
        assert message.usage.cache_creation_input_tokens == 0
        assert message.usage.cache_read_input_tokens == 0


def test_cache_is_per_model_and_per_prefix(emulator):
    sdk = client(emulator)
    ask(sdk, system=SYSTEM_CACHED)
    other_model = sdk.messages.create(model="claude-sonnet-4-6", max_tokens=64,
                                      system=SYSTEM_CACHED,
                                      messages=[{"role": "user", "content": "hi"}])
    changed = [{**SYSTEM_CACHED[0], "text": SYSTEM_CACHED[0]["text"] + "Changed."}]
    other_prefix = ask(sdk, system=changed)

    assert other_model.usage.cache_read_input_tokens == 0
    assert other_prefix.usage.cache_read_input_tokens == 0
    assert other_prefix.usage.cache_creation_input_tokens > 0


def test_cache_control_on_a_tool_caches_the_tools():
    with AnthropicEmulator(min_cacheable_tokens=0) as any_length:  # the tool alone is short
        sdk = client(any_length)
        cached_tool = {**TOOL, "cache_control": {"type": "ephemeral"}}
        first = ask(sdk, "one", tools=[cached_tool], tool_choice=FORCE)
        second = ask(sdk, "two", tools=[cached_tool], tool_choice=FORCE)

    assert first.usage.cache_creation_input_tokens > 0
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens


@pytest.mark.parametrize(("model", "cached"), [
    ("claude-haiku-4-5", False),  # documented minimum 4,096 tokens
    ("claude-sonnet-4-6", False),  # 2,048
    ("claude-sonnet-4-5", True),  # 1,024
    ("claude-haiku-5-5", True),  # 512
])
def test_each_model_caches_only_from_its_documented_minimum(emulator, model, cached):
    # ~1,250 tokens: above the 5.5 models' and Sonnet 4.5's minimum, below Haiku 4.5's.
    system = [{"type": "text", "text": "You qualify sales leads. " * 200,
               "cache_control": {"type": "ephemeral"}}]
    sdk = client(emulator)
    thinking = {"thinking": {"type": "disabled"}} if model.endswith("5-5") else {}
    usages = [sdk.messages.create(model=model, max_tokens=64, system=system,
                                  messages=[{"role": "user", "content": f"lead {i}"}],
                                  **thinking).usage for i in range(2)]

    if cached:
        assert usages[0].cache_creation_input_tokens > 1024
        assert usages[1].cache_read_input_tokens == usages[0].cache_creation_input_tokens
    else:  # silently billed as plain input, both counters at 0, as the API does
        assert all(u.cache_creation_input_tokens == u.cache_read_input_tokens == 0
                   for u in usages)
        assert usages[1].input_tokens > 1024


def test_min_cacheable_tokens_overrides_every_models_minimum():
    with AnthropicEmulator(min_cacheable_tokens=100_000) as strict:
        sdk = client(strict)
        for _ in range(2):
            message = ask(sdk, system=SYSTEM_CACHED)
            assert message.usage.cache_creation_input_tokens == 0
            assert message.usage.cache_read_input_tokens == 0


@pytest.mark.parametrize("model", ["claude-future-9", "apac.anthropic.claude-sonnet-5-5",
                                   "claude-haiku-5.5", "sonnet"])
def test_a_model_the_api_does_not_serve_is_a_404_not_found_error(emulator, model):
    with pytest.raises(anthropic.NotFoundError) as raised:
        client(emulator).messages.create(model=model, max_tokens=64,
                                         messages=[{"role": "user", "content": "hi"}])

    assert raised.value.status_code == 404
    assert raised.value.body == {"type": "error", "error": {"type": "not_found_error",
                                                            "message": f"model: {model}"}}
    assert emulator.stats()["tokens"]["input_tokens"] == 0  # nothing billed


# ------------------------------------------------------------ authentication, validation


def test_missing_api_key_is_an_authentication_error(emulator):
    status, _, body = raw_post(emulator.url + "/v1/messages",
                               {"model": MODEL, "max_tokens": 5,
                                "messages": [{"role": "user", "content": "hi"}]},
                               {"anthropic-version": "2023-06-01"})

    assert status == 401
    assert body == {"type": "error", "error": {"type": "authentication_error",
                                               "message": "invalid x-api-key"}}


def test_x_api_key_header_is_accepted(emulator):
    status, _, body = raw_post(emulator.url + "/v1/messages",
                               {"model": MODEL, "max_tokens": 5,
                                "messages": [{"role": "user", "content": "hi"}]},
                               {"x-api-key": "k", "anthropic-version": "2023-06-01"})

    assert status == 200 and body["type"] == "message"


def test_a_configured_key_rejects_others():
    with AnthropicEmulator(api_key="right") as guarded:
        with pytest.raises(anthropic.AuthenticationError) as raised:
            ask(client(guarded))
        assert raised.value.status_code == 401
        assert raised.value.body["error"]["type"] == "authentication_error"
        assert ask(anthropic.Anthropic(base_url=guarded.url, api_key="right", max_retries=0))


@pytest.mark.parametrize(("body", "fragment"), [
    ({"max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}, "model"),
    ({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}, "max_tokens"),
    ({"model": MODEL, "max_tokens": 5, "messages": []}, "messages"),
    ({"model": MODEL, "max_tokens": 5, "messages": [{"role": "system", "content": "hi"}]},
     "role"),
    ({"model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}],
      "tools": [{"name": "t", "input_schema": {"type": "string"}}]}, "input_schema"),
])
def test_invalid_requests_are_400_invalid_request_error(emulator, body, fragment):
    status, _, answer = raw_post(emulator.url + "/v1/messages", body,
                                 {"x-api-key": "k", "anthropic-version": "2023-06-01"})

    assert status == 400
    assert answer["type"] == "error"
    assert answer["error"]["type"] == "invalid_request_error"
    assert fragment in answer["error"]["message"]


def test_tool_choice_must_name_a_given_tool(emulator):
    with pytest.raises(anthropic.BadRequestError, match="not found in tools"):
        ask(client(emulator), tools=[TOOL], tool_choice={"type": "tool", "name": "other"})


def test_tool_use_must_be_answered_by_a_tool_result(emulator):
    sdk = client(emulator)
    unanswered = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "record",
                                           "input": {}}]},
        {"role": "user", "content": "no result here"},
    ]
    with pytest.raises(anthropic.BadRequestError, match="tool_result"):
        sdk.messages.create(model=MODEL, max_tokens=64, messages=unanswered, tools=[TOOL])

    answered = [*unanswered[:2], {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_1", "is_error": True, "content": "bad"}]}]
    assert sdk.messages.create(model=MODEL, max_tokens=64, messages=answered, tools=[TOOL])


# ------------------------------------------------------- what 5.x models reject

HAIKU_5, SONNET_5 = "claude-haiku-5-5", "claude-sonnet-5-5"
THINKING_OFF = {"type": "disabled"}


def create(sdk: anthropic.Anthropic, model: str, **extra: Any) -> Message:
    extra.setdefault("messages", [{"role": "user", "content": "We need pricing for 50 seats"}])
    return sdk.messages.create(model=model, max_tokens=512, **extra)


@pytest.mark.parametrize("model", [SONNET_5])
@pytest.mark.parametrize("choice", [FORCE, {"type": "any"}])
def test_sonnet_5_5_rejects_forced_tool_use(emulator, model, choice):
    with pytest.raises(anthropic.BadRequestError, match="forced tool use is not supported") as e:
        create(client(emulator), model, tools=[TOOL], tool_choice=choice,
               thinking={"type": "between_tools"})
    assert e.value.body["error"]["type"] == "invalid_request_error"


def test_sonnet_5_5_turns_thinking_off_with_between_tools_not_disabled(emulator):
    sdk = client(emulator)
    with pytest.raises(anthropic.BadRequestError, match="between_tools"):
        create(sdk, SONNET_5, tools=[TOOL], tool_choice={"type": "auto"}, thinking=THINKING_OFF)

    answer = create(sdk, SONNET_5, tools=[TOOL], tool_choice={"type": "auto"},
                    thinking={"type": "between_tools"})
    assert [block.type for block in answer.content] == ["text", "tool_use"]
    with pytest.raises(anthropic.BadRequestError, match="between_tools"):  # Sonnet 5.5 only
        create(sdk, HAIKU_5, thinking={"type": "between_tools"})


@pytest.mark.parametrize("model", [HAIKU_5, SONNET_5])
@pytest.mark.parametrize("parameter", [{"temperature": 0.2}, {"top_p": 0.9}, {"top_k": 5}])
def test_5x_models_reject_sampling_parameters(emulator, model, parameter):
    # SDK 2.x has no arguments for them any more; a hand-built request can still send them.
    with pytest.raises(anthropic.BadRequestError, match="sampling parameters"):
        create(client(emulator), model, extra_body=parameter)
    assert ask(client(emulator), extra_body=parameter)  # Haiku 4.5 still takes them


def test_5x_models_reject_an_assistant_prefill(emulator):
    prefill = [{"role": "user", "content": "Qualify this lead"},
               {"role": "assistant", "content": "{"}]
    with pytest.raises(anthropic.BadRequestError, match="prefill"):
        create(client(emulator), HAIKU_5, messages=prefill)
    assert client(emulator).messages.create(model=MODEL, max_tokens=64, messages=prefill)


def test_haiku_5_5_forces_a_tool_only_with_thinking_off(emulator):
    sdk = client(emulator)
    # Adaptive thinking is on by default on 5.x: a forced tool call needs it turned off.
    with pytest.raises(anthropic.BadRequestError, match="Thinking may not be enabled"):
        create(sdk, HAIKU_5, tools=[TOOL], tool_choice=FORCE)
    with pytest.raises(anthropic.BadRequestError, match="Thinking may not be enabled"):
        create(sdk, HAIKU_5, tools=[TOOL], tool_choice=FORCE, thinking={"type": "adaptive"})
    with pytest.raises(anthropic.BadRequestError, match="'enabled' is not supported"):
        create(sdk, HAIKU_5, thinking={"type": "enabled", "budget_tokens": 1024})

    answer = create(sdk, HAIKU_5, tools=[TOOL], tool_choice=FORCE, thinking=THINKING_OFF)
    assert [block.type for block in answer.content] == ["tool_use"]


def test_adaptive_thinking_answers_with_a_thinking_block_billed_as_output(emulator):
    sdk = client(emulator)
    thinking = create(sdk, HAIKU_5, tools=[TOOL], tool_choice={"type": "auto"})
    plain = create(sdk, HAIKU_5, tools=[TOOL], tool_choice={"type": "auto"},
                   thinking=THINKING_OFF)

    assert thinking.content[0].type == "thinking" and thinking.content[0].signature
    assert "thinking" not in [block.type for block in plain.content]
    tool_json = json.dumps(thinking.content[-1].input, separators=(",", ":"))
    assert thinking.usage.output_tokens >= (len(thinking.content[0].thinking) + len(tool_json)) / 4


# ------------------------------------------------------------------------- faults


@pytest.mark.parametrize(("fault", "error_class", "error_type"), [
    (429, anthropic.RateLimitError, "rate_limit_error"),
    (500, anthropic.InternalServerError, "api_error"),
    (529, anthropic.OverloadedError, "overloaded_error"),
])
def test_status_faults_raise_the_sdk_error_class(emulator, fault, error_class, error_type):
    emulator.inject_fault(fault, 1)
    with pytest.raises(error_class) as raised:
        ask(client(emulator))

    assert raised.value.status_code == fault
    assert raised.value.body == {"type": "error", "error": {
        "type": error_type, "message": raised.value.body["error"]["message"]}}
    assert ask(client(emulator)).content  # the fault was used up


def test_429_carries_retry_after(emulator):
    emulator.inject_fault(429, 1)
    with pytest.raises(anthropic.RateLimitError) as raised:
        ask(client(emulator))

    assert raised.value.response.headers["retry-after"] == "0.01"


@pytest.mark.parametrize("fault", [429, 529])
def test_sdk_retries_ride_out_a_single_fault(emulator, fast_backoff, fault):
    emulator.inject_fault(fault, 1)
    message = ask(client(emulator, max_retries=2))

    assert message.stop_reason == "end_turn"
    assert [r["status"] for r in emulator.requests] == [fault, 200]


@pytest.mark.parametrize(("fault", "error_class"), [
    (429, anthropic.RateLimitError), (529, anthropic.OverloadedError),
])
def test_sdk_gives_up_when_faults_outlast_its_retries(emulator, fast_backoff, fault, error_class):
    emulator.inject_fault(fault, 3)
    with pytest.raises(error_class):
        ask(client(emulator, max_retries=2))

    assert [r["status"] for r in emulator.requests] == [fault] * 3


def test_timeout_fault_makes_the_sdk_time_out(emulator):
    emulator.inject_fault("timeout", 1)
    with pytest.raises(anthropic.APITimeoutError):
        ask(client(emulator, timeout=0.3))


def test_sdk_retry_recovers_from_a_timeout(emulator, fast_backoff):
    emulator.inject_fault("timeout", 1)
    message = ask(client(emulator, timeout=0.3, max_retries=1))

    assert message.content
    assert [r["fault"] for r in emulator.requests] == ["timeout", None]


def test_malformed_fault_breaks_the_tool_input_schema(emulator):
    emulator.inject_fault("malformed", 1)
    broken = ask(client(emulator), tools=[TOOL], tool_choice=FORCE)
    fine = ask(client(emulator), tools=[TOOL], tool_choice=FORCE)

    validator = jsonschema.Draft202012Validator(SCHEMA)
    assert broken.stop_reason == "tool_use"
    assert list(validator.iter_errors(broken.content[0].input))
    validator.validate(fine.content[0].input)


def test_faults_queue_in_order(emulator, fast_backoff):
    emulator.inject_fault(429, 1)
    emulator.inject_fault(529, 1)
    ask(client(emulator, max_retries=2))

    assert [r["status"] for r in emulator.requests] == [429, 529, 200]


def test_refusal_fault_answers_200_with_stop_reason_refusal_and_no_content(emulator):
    emulator.inject_fault("refusal", 1)
    refused = ask(client(emulator), tools=[TOOL], tool_choice=FORCE)
    after = ask(client(emulator), tools=[TOOL], tool_choice=FORCE)

    # As Anthropic documents a refusal before any output: HTTP 200, no content, the reason in
    # stop_reason and stop_details, the input billed and no output.
    assert refused.stop_reason == "refusal" and refused.content == []
    assert refused.stop_details is not None and refused.stop_details.type == "refusal"
    assert refused.stop_details.category == "general_harms"
    assert refused.usage.input_tokens > 0 and refused.usage.output_tokens == 0
    assert after.stop_reason == "tool_use" and after.stop_details is None
    assert [r["fault"] for r in emulator.requests] == ["refusal", None]


def test_anthropics_refusal_test_string_is_refused_every_time(emulator):
    text = f"Lead message: {REFUSAL_TEST_STRING}"
    answers = [ask(client(emulator), text, tools=[TOOL], tool_choice=FORCE) for _ in range(2)]

    assert [a.stop_reason for a in answers] == ["refusal", "refusal"]
    assert ask(client(emulator)).stop_reason == "end_turn"


def test_unknown_fault_kind_is_refused(emulator):
    with pytest.raises(ValueError, match="unknown fault"):
        emulator.inject_fault(418, 1)


# --------------------------------------------------------------------------- admin


def test_admin_faults_stats_and_reset_over_http(emulator):
    status, _, answer = raw_post(emulator.url + "/_emulator/faults",
                                 {"status": 529, "count": 2}, {})
    assert (status, answer) == (200, {"faults_pending": 2})
    status, _, _ = raw_post(emulator.url + "/_emulator/faults", {"status": "timeout"}, {})
    assert status == 200
    assert raw_post(emulator.url + "/_emulator/faults", {"status": 418}, {})[0] == 400

    with pytest.raises(anthropic.OverloadedError):
        ask(client(emulator))
    with urllib.request.urlopen(emulator.url + "/_emulator/stats", timeout=5) as response:
        stats = json.loads(response.read())
    assert stats["requests"] == 1
    assert stats["by_model"] == {MODEL: 1}
    assert stats["by_status"] == {"529": 1}
    assert stats["faults_pending"] == 2
    assert stats["faults_served"] == {"529": 1}
    assert set(stats["tokens"]) == {"input_tokens", "output_tokens",
                                    "cache_creation_input_tokens", "cache_read_input_tokens"}

    assert raw_post(emulator.url + "/_emulator/reset", {}, {})[0] == 200
    assert emulator.stats()["requests"] == 0 and emulator.stats()["faults_pending"] == 0
    assert ask(client(emulator)).content


def test_stats_sum_token_usage(emulator):
    sdk = client(emulator)
    messages = [ask(sdk, system=SYSTEM_CACHED), ask(sdk, "other", system=SYSTEM_CACHED)]
    tokens = emulator.stats()["tokens"]

    assert tokens["input_tokens"] == sum(m.usage.input_tokens for m in messages)
    assert tokens["output_tokens"] == sum(m.usage.output_tokens for m in messages)
    assert tokens["cache_read_input_tokens"] == messages[1].usage.cache_read_input_tokens


def test_stats_split_token_usage_by_model_for_cost_estimates(emulator):
    sdk = client(emulator)

    def create(model: str, text: str) -> Message:
        return sdk.messages.create(model=model, max_tokens=256,
                                   messages=[{"role": "user", "content": text}])

    small = create("claude-haiku-4-5", "zero")
    large = [create("claude-sonnet-4-6", "one"), create("claude-sonnet-4-6", "two")]
    by_model = emulator.stats()["tokens_by_model"]

    assert set(by_model) == {"claude-haiku-4-5", "claude-sonnet-4-6"}
    assert by_model["claude-haiku-4-5"]["output_tokens"] == small.usage.output_tokens
    assert by_model["claude-sonnet-4-6"]["input_tokens"] == sum(
        m.usage.input_tokens for m in large)


def test_requests_are_recorded_with_the_key_masked(emulator):
    answer = ask(client(emulator), "recorded text")
    emulator.inject_fault(529)
    with pytest.raises(anthropic.InternalServerError):
        ask(client(emulator), "overloaded")
    record, failed = emulator.requests

    assert record["body"]["messages"] == [{"role": "user", "content": "recorded text"}]
    assert record["status"] == 200
    assert record["usage"]["output_tokens"] == answer.usage.output_tokens  # per-call cost
    assert failed["status"] == 529 and failed["usage"] is None
    assert "test" not in json.dumps(record["headers"])
    with urllib.request.urlopen(emulator.url + "/_emulator/requests", timeout=5) as response:
        assert json.loads(response.read())["requests"][0]["body"] == record["body"]


def test_tool_input_override_pins_fields(emulator):
    emulator.override_tool_input({"summary": "Pinned summary"}, count=1)
    sdk = client(emulator)
    pinned = ask(sdk, tools=[TOOL], tool_choice=FORCE)
    after = ask(sdk, "another", tools=[TOOL], tool_choice=FORCE)

    assert pinned.content[0].input["summary"] == "Pinned summary"
    assert after.content[0].input["summary"] != "Pinned summary"


# ---------------------------------------------------------------- the answer profile

ASSESSMENT = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "fit_summary": {"type": "string", "minLength": 1, "maxLength": 400},
        "red_flags": {"type": "array", "items": {"type": "string", "maxLength": 120},
                      "maxItems": 5},
        "confidence": {"type": "string", "enum": ["low", "medium", "high"]},
    },
    "required": ["fit_summary", "red_flags", "confidence"],
}
ASSESS = {"name": "assess", "description": "Assess.", "input_schema": ASSESSMENT}


def messages(emulator: AnthropicEmulator, count: int, topic: str = "pricing") -> list[Message]:
    """`count` distinct requests, each forcing the assessment tool."""
    sdk = client(emulator)
    return [ask(sdk, f"lead number {i} wants {topic}", tools=[ASSESS],
                tool_choice={"type": "tool", "name": "assess"}) for i in range(count)]


def schema_valid(message: Message) -> bool:
    (block,) = message.content
    return not list(jsonschema.Draft202012Validator(ASSESSMENT).iter_errors(block.input))


def answers(emulator: AnthropicEmulator, count: int) -> list[dict[str, Any]]:
    """The tool inputs of the answers that are neither refused nor invalid."""
    return [m.content[0].input for m in messages(emulator, count)
            if m.stop_reason != "refusal" and schema_valid(m)]


def test_default_profile_shares_and_lengths_are_as_documented():
    with AnthropicEmulator() as default:
        found = answers(default, 200)
    assert len(found) >= 190  # about 2 % invalid and 0.2 % refused by default
    low = sum(a["confidence"] == "low" for a in found) / len(found)
    flagged = sum(bool(a["red_flags"]) for a in found) / len(found)
    mean_summary = sum(len(a["fit_summary"]) for a in found) / len(found)

    profile = AnswerProfile()
    assert abs(low - profile.low_confidence_share) < 0.08
    assert abs(flagged - profile.red_flag_share) < 0.08
    assert all(len(a["red_flags"]) <= 2 for a in found)
    # Half of the 400-character cap on average (words are cut at a boundary: a little less).
    assert 0.4 * 400 <= mean_summary <= 0.5 * 400


def test_profile_over_http_changes_shares_and_length(emulator):
    status, _, answer = raw_post(emulator.url + "/_emulator/profile", {
        "low_confidence_share": 1, "red_flag_share": 0, "answer_length": 0.1}, {})
    assert status == 200 and answer["profile"]["answer_length"] == 0.1
    found = answers(emulator, 20)

    assert all(a["confidence"] == "low" and a["red_flags"] == [] for a in found)
    assert all(len(a["fit_summary"]) <= 0.1 * 400 * 1.4 for a in found)
    assert raw_post(emulator.url + "/_emulator/profile", {"answer_length": 0}, {})[0] == 400
    assert raw_post(emulator.url + "/_emulator/profile", {"speed": 1}, {})[0] == 400


def test_profile_latency_holds_each_answer_back_by_its_length(emulator):
    emulator.profile = AnswerProfile(first_token_seconds=0.05, output_tokens_per_second=2000)
    message = ask(client(emulator))

    (record,) = emulator.requests
    assert record["delay_seconds"] == 0.05 + message.usage.output_tokens / 2000
    assert AnswerProfile().seconds_for(500) == 0  # tests answer at once by default


# ------------------------------------------- invalid answers and refusals from the profile


def set_profile(emulator: AnthropicEmulator, **shares: float) -> None:
    status, _, answer = raw_post(emulator.url + "/_emulator/profile", shares, {})
    assert status == 200, answer
    assert all(answer["profile"][name] == value for name, value in shares.items())


def test_shares_of_zero_give_only_valid_answers(emulator):
    set_profile(emulator, invalid_share=0, refusal_share=0)
    found = messages(emulator, 100)

    assert all(m.stop_reason == "tool_use" and schema_valid(m) for m in found)
    assert emulator.stats()["answers_drawn"] == {}


def test_an_invalid_share_of_one_breaks_every_tool_input_as_the_malformed_fault_does(emulator):
    set_profile(emulator, invalid_share=1, refusal_share=0)
    found = messages(emulator, 30)

    assert all(m.stop_reason == "tool_use" and not schema_valid(m) for m in found)
    assert all("fit_summary" not in m.content[0].input for m in found)  # a required field gone
    assert emulator.stats()["answers_drawn"] == {"invalid": 30}
    assert [r["drawn"] for r in emulator.requests] == ["invalid"] * 30
    plain = ask(client(emulator), "no tool offered")  # only tool inputs can be invalid
    assert plain.stop_reason == "end_turn"


def test_a_refusal_share_of_one_refuses_every_request_as_the_refusal_fault_does(emulator):
    set_profile(emulator, refusal_share=1, invalid_share=1)
    found = messages(emulator, 30)

    for message in found:
        assert message.stop_reason == "refusal" and message.content == []
        assert message.stop_details.type == "refusal"
        assert message.usage.output_tokens == 0 and message.usage.input_tokens > 0
    assert emulator.stats()["answers_drawn"] == {"refusal": 30}


def test_a_share_of_one_half_lands_near_half_and_each_request_keeps_its_outcome(emulator):
    set_profile(emulator, invalid_share=0.5, refusal_share=0)
    first = [schema_valid(m) for m in messages(emulator, 200)]
    again = [schema_valid(m) for m in messages(emulator, 200)]
    set_profile(emulator, invalid_share=0, refusal_share=0.5)
    refused = [m.stop_reason == "refusal" for m in messages(emulator, 200, topic="a demo")]

    assert 0.35 <= first.count(False) / 200 <= 0.65
    assert again == first  # drawn from a hash of the request: the same request, the same answer
    assert 0.35 <= sum(refused) / 200 <= 0.65


def test_a_retried_conversation_gets_a_fresh_draw(emulator):
    """The correction the pipeline appends makes another request, so its outcome is drawn
    anew: with an invalid share of one half, some first answers are invalid and their
    retries valid."""
    set_profile(emulator, invalid_share=0.5, refusal_share=0)
    sdk = client(emulator)
    retried_valid = 0
    for message in messages(emulator, 40):
        if schema_valid(message):
            continue
        tool_use = message.content[0]
        retry = sdk.messages.create(
            model=MODEL, max_tokens=512, tools=[ASSESS],
            tool_choice={"type": "tool", "name": "assess"},
            messages=[{"role": "user", "content": "lead wants pricing"},
                      {"role": "assistant", "content": [tool_use.model_dump()]},
                      {"role": "user", "content": [{"type": "tool_result", "is_error": True,
                                                    "tool_use_id": tool_use.id,
                                                    "content": "fit_summary: Field required"}]}])
        retried_valid += schema_valid(retry)
    assert retried_valid > 0


@pytest.mark.parametrize("shares", [{"invalid_share": 1.5}, {"refusal_share": -0.1},
                                    {"invalid_share": "often"}])
def test_the_profile_refuses_shares_outside_zero_to_one(emulator, shares):
    status, _, answer = raw_post(emulator.url + "/_emulator/profile", shares, {})

    assert status == 400 and answer["error"]["type"] == "invalid_request_error"
    assert emulator.stats()["profile"] == dataclasses.asdict(WELL_FORMED)  # unchanged


def test_the_default_profile_is_documented_and_reported():
    profile = AnswerProfile()
    assert 0.01 <= profile.invalid_share <= 0.03  # small: tool use without strict mode
    assert 0 < profile.refusal_share < 0.01  # well under 1 %: benign B2B lead data
    with AnthropicEmulator() as running:
        assert running.stats()["profile"] == dataclasses.asdict(profile)
