"""Personal data recognised by its shape: the one implementation behind the log filter
(`leadscore.observability`) and the text leadscore sends to an LLM or writes to HubSpot
(`leadscore.enrichment.redaction`).

Recognised in text: e-mail addresses; Indian and international phone numbers (bare ten-digit
mobiles such as 9845012345 included); Aadhaar numbers (12 digits, first 2-9, grouped or not,
with a valid Verhoeff check digit, so most other 12-digit numbers are left alone); PAN
(five letters, four digits, a letter); payment-card numbers (13-19 digits passing the
Luhn check). `key: value` / `key=value` pairs whose key names personal data are redacted too.

Recognised in structures (`redact`): values under keys that name personal data, matched by
the key's words (`mobile_phone`, `contactName`, `owner.displayName`, `properties`, ...), and
the patterns above in every other value, inside mappings, sequences, pydantic models,
dataclasses and exceptions; other objects are redacted as their text. Under identifier keys
(`contact_id`, `event_ids`, ...) long digit runs are ids, so only e-mail addresses are removed.

`redact_free_text` is stricter, for text that leaves for an LLM: every run of ten or more
digits goes, whatever it is. A name in free text has no shape: logging code must not log
contact properties (the rule), and the end-to-end test greps a whole run's logs for names.

No numpy/lightgbm here.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from pydantic import BaseModel

REDACTED = "[redacted]"
REDACTED_EMAIL = "[redacted email]"
REDACTED_PHONE = "[redacted phone]"
REDACTED_ID = "[redacted id]"  # Aadhaar, PAN
REDACTED_NUMBER = "[redacted number]"  # card numbers; any long digit run in LLM-bound text

# Words that make a key name personal data, wherever they appear in it.
PERSONAL_KEY_WORDS = frozenset({
    "email", "emails", "mail", "phone", "phones", "mobile", "mobilephone", "telephone", "tel",
    "whatsapp", "fax", "name", "names", "firstname", "lastname", "fullname", "surname",
    "middlename", "nickname", "displayname", "address", "street", "city", "zip", "zipcode",
    "postcode", "postal", "pincode", "dob", "birthday", "birthdate", "aadhaar", "aadhar", "pan",
    "passport", "ip", "properties", "message", "body", "payload", "company", "jobtitle", "note",
    "notes", "comment", "comments", "text", "content",
})
# ... unless the key is about a thing, not a person: `function_name`, `property_name`.
TECHNICAL_KEY_WORDS = frozenset({
    "function", "service", "queue", "table", "metric", "logger", "file", "module", "model",
    "property", "parameter", "secret", "topic", "bucket", "stack", "event", "host", "field",
    "class", "exception", "route", "index", "attribute", "group", "app", "tool", "key",
})
_KEY_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_BEFORE = r"(?<![\w+./:#-])"  # not inside a longer token (ids, ARNs, versions, times)
_AFTER = r"(?![\w/:#-]|\.\d)"
PHONE = re.compile(
    _BEFORE + "(?:"
    r"\+\d{1,3}[\s.-]?(?:\(\d{1,5}\)[\s.-]?)?\d{2,5}(?:[\s.-]?\d{2,5}){1,4}"  # +91 98765 43210
    r"|(?:0|91[\s-]?)?[6-9]\d{4}[\s-]?\d{5}"  # Indian mobile: 9845012345, 09845012345, 91 98...
    r"|\(0?\d{2,4}\)[\s.-]?\d{3,4}[\s.-]?\d{4}"  # (022) 2345 6789
    r"|0\d{2,4}[\s-]\d{6,8}"  # 022-23456789, 080 41234567
    r"|\d{3}[\s.-]\d{3}[\s.-]\d{4}"  # 415-555-0199
    ")" + _AFTER)
AADHAAR = re.compile(_BEFORE + r"[2-9]\d{3}(?:[\s-]?\d{4}){2}" + _AFTER)
# Any holder-type letter, any case: a mistyped PAN is still someone's PAN.
PAN = re.compile(r"\b[A-Z]{5}\d{4}[A-Z]\b", re.IGNORECASE)
CARD = re.compile(_BEFORE + r"[3-6]\d{3}(?:[\s-]?\d){9,15}" + _AFTER)
# LLM-bound text: digit runs with separators, judged by their digit count afterwards.
_NUMBER_RUN = re.compile(r"(?<![\w+])\+?\d[\d\s().\-/]{6,}\d(?!\w)")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# `"firstname": "Asha"`, `'email': 'a@b.in'`, `lastname=Rao` in text (JSON, reprs, k=v).
_KEY_VALUE = re.compile(
    r"""(?P<key>(?P<q>["']?)\b(?P<name>[A-Za-z_][\w-]{0,40})(?P=q)\s*[:=]\s*)"""
    r"""(?P<value>\[redacted[^\]]*\]|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[^\s,;}\])]+)""")
_ID_KEY = re.compile(r"(?:^|_)ids?$|[a-z]Ids?$")
_SAFE_SCALARS = (bool, float, Decimal, datetime, date, time, timedelta, UUID, type(None))

_VERHOEFF_D = [  # the dihedral group D5's multiplication table
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
    [2, 3, 4, 0, 1, 7, 8, 9, 5, 6], [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
    [4, 0, 1, 2, 3, 9, 5, 6, 7, 8], [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
    [6, 5, 9, 8, 7, 1, 0, 4, 3, 2], [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
    [8, 7, 6, 5, 9, 3, 2, 1, 0, 4], [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]]
_VERHOEFF_P = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
    [5, 8, 0, 3, 7, 9, 6, 1, 4, 2], [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
    [9, 4, 5, 3, 1, 2, 6, 8, 7, 0], [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
    [2, 7, 9, 3, 8, 0, 6, 4, 1, 5], [7, 0, 4, 6, 9, 1, 3, 2, 5, 8]]


def verhoeff_valid(digits: str) -> bool:
    """The Verhoeff check UIDAI puts in the last digit of every Aadhaar number."""
    check = 0
    for position, digit in enumerate(reversed(digits)):
        check = _VERHOEFF_D[check][_VERHOEFF_P[position % 8][int(digit)]]
    return check == 0


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, digit in enumerate(reversed(digits)):
        value = int(digit) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def _aadhaar(match: re.Match[str]) -> str:
    return REDACTED_ID if verhoeff_valid(_digits(match.group(0))) else match.group(0)


def _card(match: re.Match[str]) -> str:
    digits = _digits(match.group(0))
    return REDACTED_NUMBER if 13 <= len(digits) <= 19 and luhn_valid(digits) else match.group(0)


def is_personal_key(key: str) -> bool:
    """Whether values under this key are personal data, judged by the key's words."""
    words = {word.lower() for word in _KEY_WORD.findall(key)}
    joined = re.sub(r"[^a-z]", "", key.lower())
    if not (words & PERSONAL_KEY_WORDS or joined in PERSONAL_KEY_WORDS):
        return False
    return not (words & TECHNICAL_KEY_WORDS)


def is_identifier_key(key: str) -> bool:
    return bool(_ID_KEY.search(key))


def redact_text(text: str, *, identifiers: bool = False) -> str:
    """Text with e-mail addresses, ID and card numbers, phone numbers and `key: value` pairs
    of personal keys replaced. `identifiers`: the text is an id field, where long digit runs
    are ids, so only e-mail addresses go."""
    text = EMAIL.sub(REDACTED_EMAIL, text)
    if identifiers:
        return text
    text = AADHAAR.sub(_aadhaar, text)
    text = PAN.sub(REDACTED_ID, text)
    text = CARD.sub(_card, text)
    text = PHONE.sub(REDACTED_PHONE, text)

    def value(match: re.Match[str]) -> str:
        if not is_personal_key(match.group("name")):
            return match.group(0)
        raw = match.group("value")
        quote = raw[0] if raw[:1] in ("'", '"') else ""
        return f"{match.group('key')}{quote}{REDACTED}{quote}"

    return _KEY_VALUE.sub(value, text)


def _long_number(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = len(_digits(text))
    if _ISO_DATE.fullmatch(text.strip()):
        return text
    # Phone numbers (10+ digits, or international with +), Aadhaar (12), card numbers.
    if digits >= 10 or (text.startswith("+") and digits >= 8):
        return REDACTED_NUMBER
    return text


def redact_free_text(text: str) -> str:
    """Text that leaves for an LLM or a CRM field: e-mail addresses, every run of ten or more
    digits (phones, Aadhaar, cards: no ids belong there) and PAN numbers removed; years,
    amounts and dates survive."""
    text = EMAIL.sub(REDACTED_EMAIL, text)
    text = _NUMBER_RUN.sub(_long_number, text)
    return PAN.sub(REDACTED_ID, text)


def _number(value: int, key: str) -> int | str:
    """An integer that is a phone or an Aadhaar number (outside id keys) is redacted."""
    if is_identifier_key(key):
        return value
    text = str(value)
    if PHONE.fullmatch(text) or (AADHAAR.fullmatch(text) and verhoeff_valid(text)):
        return REDACTED
    return value


def redact(value: Any, key: str = "") -> Any:
    """A copy of a logged value with personal data replaced: containers, pydantic models and
    dataclasses recursively, exceptions as their text, unknown objects as their text."""
    if key and is_personal_key(key):
        return REDACTED if value not in (None, "") else value
    if isinstance(value, str):
        return redact_text(value, identifiers=is_identifier_key(key))
    if isinstance(value, int) and not isinstance(value, bool):
        return _number(value, key)
    if isinstance(value, _SAFE_SCALARS):
        return value
    if isinstance(value, BaseModel):
        return redact(value.model_dump(mode="python"), key)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return redact({f.name: getattr(value, f.name) for f in dataclasses.fields(value)}, key)
    if isinstance(value, Mapping):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [redact(item, key) for item in value]
    if isinstance(value, BaseException):
        return redact_text(f"{type(value).__name__}: {value}")
    return redact_text(str(value))
