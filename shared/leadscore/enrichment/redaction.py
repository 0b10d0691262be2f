"""Personal data and markup out of free text: what goes into the prompt (`prompt_value`) and
what comes back from the LLM before it becomes a HubSpot property (`clean_output`).

Personal data is recognised by `leadscore.personal_data.redact_free_text`, the package's one
implementation (the log filter uses the same patterns); its LLM-bound mode removes every run of
ten or more digits (phone, Aadhaar, card numbers), where the log filter keeps long ids.

No numpy/lightgbm here.
"""

from __future__ import annotations

import html
import re

from leadscore.personal_data import redact_free_text

URL_RE = re.compile(r"\b(?:https?|ftp)://\S+|\bwww\.\S+", re.IGNORECASE)
TAG_RE = re.compile(r"<[^<>]{0,200}>")
MD_LINK_RE = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
MARKUP_RE = re.compile(r"[*`#~|<>\[\]{}\\]+")
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


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
    text = redact_free_text(text)
    text = CONTROL_RE.sub(" ", text)
    return truncate(" ".join(text.split()), limit)


def prompt_value(raw: str, limit: int) -> str:
    """A contact value as it goes into the prompt: redacted, escaped, capped."""
    text = CONTROL_RE.sub(" ", redact_free_text(raw))
    return html.escape(truncate(" ".join(text.split()), limit), quote=True)
