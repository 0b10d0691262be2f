"""Personal data and markup out of free text: what goes into the prompt (`prompt_value`) and
what comes back from the LLM before it becomes a HubSpot property (`clean_output`).

E-mail addresses are recognised with the package's one pattern (`leadscore.observability.
EMAIL`, which the log filter uses too). Numbers are judged differently from the log filter's
phone pattern on purpose: any run of ten or more digits (phone, Aadhaar, card numbers) is
removed from text bound for an LLM, where the log filter must keep long digit ids readable.

No numpy/lightgbm here.
"""

from __future__ import annotations

import html
import re

from leadscore.observability import EMAIL

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
    text = EMAIL.sub("[redacted email]", text)
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


def prompt_value(raw: str, limit: int) -> str:
    """A contact value as it goes into the prompt: redacted, escaped, capped."""
    text = CONTROL_RE.sub(" ", redact(raw))
    return html.escape(truncate(" ".join(text.split()), limit), quote=True)
