"""The system prompt: a versioned template with versioned qualification criteria in its
placeholder, from SSM Parameter Store (RevOps edit them without a deploy) or the texts shipped in
`defaults/` (`load_prompt`). The version of each is logged with every enrichment.

No numpy/lightgbm here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

DEFAULTS_DIR = Path(__file__).parent / "defaults"
PROMPT_FILE = DEFAULTS_DIR / "enrichment_prompt.md"
CRITERIA_FILE = DEFAULTS_DIR / "qualification_criteria.md"


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
