"""Shared Powertools Logger, Metrics and Tracer, and the filter that keeps personal data out of
logs.

Service name, log level and metrics namespace come from the Powertools environment variables
(`POWERTOOLS_SERVICE_NAME`, `POWERTOOLS_LOG_LEVEL`, `POWERTOOLS_METRICS_NAMESPACE`).
Rule for every module: log ids and counts only — never contact properties, emails or names.
The filter is the safety net under that rule, not a licence to break it: it redacts e-mail
addresses and phone numbers wherever they appear (message, `extra=` values, exception text),
and values under keys that name personal data (`firstname`, `email`, `properties`, ... as
`extra=` keys, nested dict keys, or `key: value` / `key=value` pairs in text). A bare name in
free text cannot be recognised by pattern; that is what the rule, and the end-to-end test that
greps a whole run's logs for the test contacts' names, are for.

Metrics carry names and counts only (no dimensions or metadata from contact data).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer, single_metric
from aws_lambda_powertools.metrics import MetricUnit

# Keys whose values are personal data (or may contain it) wherever they appear.
PERSONAL_DATA_KEYS = frozenset({
    "properties", "email", "emails", "firstname", "lastname", "first_name", "last_name",
    "fullname", "full_name", "name", "phone", "mobilephone", "phone_number", "company",
    "jobtitle", "address", "city", "message", "body", "payload",
})
REDACTED = "[redacted]"
REDACTED_EMAIL = "[redacted-email]"
REDACTED_PHONE = "[redacted-phone]"
# Attributes every LogRecord has; everything else on a record came from `extra=`.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime"}
# Identifier-valued keys ("contact_id", "event_ids", ...): long digit runs there are ids, not
# phone numbers, so only e-mail addresses are redacted in them.
_ID_KEY = re.compile(r"(?:^|_)ids?$")

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_NOT_IN_TOKEN_BEFORE = r"(?<![\w+./:#-])"
_NOT_IN_TOKEN_AFTER = r"(?![\w/:#-]|\.\d)"
PHONE = re.compile(
    _NOT_IN_TOKEN_BEFORE + "(?:"
    r"\+\d{1,3}[\s.-]?(?:\(\d{1,5}\)[\s.-]?)?\d{2,5}(?:[\s.-]?\d{2,5}){1,4}"  # +91 98765 43210
    r"|0?[6-9]\d{4}[\s-]?\d{5}"  # Indian mobile: 9876543210, 98765-43210, 09876543210
    r"|\(0?\d{2,4}\)[\s.-]?\d{3,4}[\s.-]?\d{4}"  # (022) 2345 6789
    r"|0\d{2,4}[\s-]\d{6,8}"  # 022-23456789, 080 41234567
    r"|\d{3}[\s.-]\d{3}[\s.-]\d{4}"  # 415-555-0199
    ")" + _NOT_IN_TOKEN_AFTER)
# `"firstname": "Asha"`, `'email': 'a@b.in'`, `lastname=Rao` in free text (JSON, reprs, k=v).
_KEY_VALUE = re.compile(
    r"""(?P<key>(?P<q>["']?)\b(?:""" + "|".join(sorted(PERSONAL_DATA_KEYS, key=len, reverse=True))
    + r""")(?P=q)\s*[:=]\s*)(?P<value>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[^\s,;}\])]+)""",
    re.IGNORECASE)


def redact_text(text: str, *, identifiers: bool = False) -> str:
    """Text with e-mail addresses, phone numbers (unless `identifiers`) and `key: value` pairs
    of personal-data keys replaced."""
    text = EMAIL.sub(REDACTED_EMAIL, text)
    if not identifiers:
        text = PHONE.sub(REDACTED_PHONE, text)

    def value(match: re.Match[str]) -> str:
        raw = match.group("value")
        quote = raw[0] if raw[:1] in ("'", '"') else ""
        return f"{match.group('key')}{quote}{REDACTED}{quote}"

    return _KEY_VALUE.sub(value, text)


def redact(value: Any, key: str = "") -> Any:
    """A copy of a logged value with personal data replaced (containers recursively)."""
    if key.lower() in PERSONAL_DATA_KEYS:
        return REDACTED
    if isinstance(value, str):
        if value.isdigit():  # a structured value of digits only is an id (phones go by key)
            return value
        return redact_text(value, identifiers=bool(_ID_KEY.search(key.lower())))
    if isinstance(value, Mapping):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [redact(item, key) for item in value]
    if isinstance(value, BaseException):
        return redact_text(f"{type(value).__name__}: {value}")
    return value


class PersonalDataFilter(logging.Filter):
    """Redacts personal data in a record before any handler formats it. Never drops a record.

    Only `extra=` attributes are rewritten, never the record's own (`name` is the logger's
    name, `module` the code's). An exception is rendered here and its redacted text put where
    both formatters look (`exc_text` for logging's, `exception`/`exception_name` for
    Powertools'), because the exception object itself can quote input values.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, Mapping):  # Powertools accepts dict messages
            record.msg = redact(record.msg)
        else:
            record.msg = redact_text(record.getMessage())
            record.args = None
        for key in set(vars(record)) - _RECORD_ATTRIBUTES:
            setattr(record, key, redact(getattr(record, key), key))
        if record.exc_info and record.exc_info[0] is not None:
            text = redact_text(logging.Formatter().formatException(record.exc_info))
            record.exception_name = record.exc_info[0].__name__
            record.exception = text
            record.exc_text = text
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        return True


PERSONAL_DATA_FILTER = PersonalDataFilter()


def install_personal_data_filter(*loggers: logging.Logger | Logger) -> None:
    """Adds the filter to these loggers and their handlers (idempotent). Logger-level filters
    see only records logged on that logger; handler-level ones also see records propagated
    from other loggers (botocore, urllib3, the HubSpot SDK) to the root handlers."""
    for target in loggers:
        std = logging.getLogger(target.name) if isinstance(target, Logger) else target
        for filterer in (std, *std.handlers):
            if PERSONAL_DATA_FILTER not in filterer.filters:
                filterer.addFilter(PERSONAL_DATA_FILTER)


SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "leadscore")
logger = Logger(service=SERVICE)
install_personal_data_filter(logger, logging.getLogger())
# The service is the metrics' one dimension, which every custom-metric alarm filters on.
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "LeadScore"),
                  service=SERVICE)
tracer = Tracer()

# The HubSpot SDK logs whole response bodies (contact properties) at DEBUG; keep it quiet even
# when POWERTOOLS_LOG_LEVEL=DEBUG is used to debug our own code.
logging.getLogger("hubspot").setLevel(logging.INFO)


def count(name: str, value: int = 1) -> None:
    """Adds a Count metric; zero values are skipped to keep EMF blobs small."""
    if value:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def count_by_dimension(name: str, dimension: str, counts: Mapping[Any, int]) -> None:
    """Adds the total as a Count metric (service dimension, what alarms watch) and each part
    as the same metric with `dimension` added (e.g. WebhookEventsSkipped by reason). The
    dimension values must be a fixed vocabulary (enum members), never contact data."""
    total = sum(counts.values())
    count(name, total)
    for value, part in counts.items():
        if part:
            with single_metric(name=name, unit=MetricUnit.Count, value=part,
                               namespace=metrics.namespace,
                               default_dimensions={"service": SERVICE}) as metric:
                metric.add_dimension(name=dimension, value=str(value))


@contextmanager
def hubspot_usage(client: Any) -> Iterator[None]:
    """Emits the HubSpot requests (retries included) and 429 answers of the block as
    `HubSpotRequests` and `HubSpotThrottles`: the rate limit is shared by the whole portal."""
    def totals() -> tuple[int, int]:  # a client that does not count (a test fake) counts 0
        return getattr(client, "request_count", 0), getattr(client, "throttled_count", 0)

    requests, throttled = totals()
    try:
        yield
    finally:
        requests_after, throttled_after = totals()
        count("HubSpotRequests", requests_after - requests)
        count("HubSpotThrottles", throttled_after - throttled)

