"""Shared Powertools Logger, Metrics and Tracer, and what keeps personal data out of logs and
traces.

Service name, log level and metrics namespace come from the Powertools environment variables
(`POWERTOOLS_SERVICE_NAME`, `POWERTOOLS_LOG_LEVEL`, `POWERTOOLS_METRICS_NAMESPACE`).
Rule for every module: log ids and counts only — never contact properties, emails or names.
The redaction is the safety net under that rule, not a licence to break it
(`leadscore.personal_data` says what it recognises):
- the Powertools logger's formatter redacts the whole entry just before it is written:
  message, `extra=` values, keys added with `append_keys` or `inject_lambda_context`, and
  exception text;
- a logging filter on that logger and on the root handlers redacts every record of every
  other logger (botocore, urllib3, the HubSpot SDK, Powertools' own) the same way;
- X-Ray: the template turns off Powertools' capture of responses and exceptions
  (`POWERTOOLS_TRACER_CAPTURE_RESPONSE/ERROR=false`), and the emitter drops the exception
  message the X-Ray SDK records in a failed segment's `cause` (type and stack stay).

Metrics carry names and counts only (no dimensions or metadata from contact data).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer, single_metric
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from aws_lambda_powertools.metrics import MetricUnit

from leadscore.personal_data import redact, redact_text

# Attributes every LogRecord has; everything else on a record came from `extra=`.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime"}
# Keys Powertools fills itself (its own names, never personal data): written as they are.
_POWERTOOLS_KEYS = frozenset({
    "level", "location", "timestamp", "service", "sampling_rate", "cold_start",
    "function_name", "function_memory_size", "function_arn", "function_request_id",
    "xray_trace_id", "correlation_id", "exception_name"})
# Free text of the entry, whatever its key says.
_TEXT_KEYS = frozenset({"message", "exception", "stack_trace", "exception_notes"})


def redact_log_entry(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A structured log entry (Powertools' dict) with personal data replaced."""
    return {key: value if key in _POWERTOOLS_KEYS else redact(value, "" if key in _TEXT_KEYS
                                                               else key)
            for key, value in entry.items()}


class RedactingFormatter(LambdaPowertoolsFormatter):
    """Powertools' JSON formatter, redacting the finished entry: the only point every key
    passes, `append_keys` and `inject_lambda_context` keys included."""

    def serialize(self, log: Any) -> str:
        return super().serialize(redact_log_entry(log) if isinstance(log, Mapping) else log)


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


def strip_exception_messages(entity: Any) -> None:
    """Removes the exception messages the X-Ray SDK recorded in a segment or subsegment's
    `cause` (and its subsegments'): a message can quote input values. Type and stack stay."""
    cause = getattr(entity, "cause", None)
    if isinstance(cause, dict):
        for throwable in cause.get("exceptions", ()):
            if hasattr(throwable, "message"):
                del throwable.message
    for subsegment in getattr(entity, "subsegments", ()):
        strip_exception_messages(subsegment)


class MessagelessEmitter:
    """Wraps the X-Ray recorder's emitter: every segment leaves without exception messages."""

    def __init__(self, inner: Any):
        self.inner = inner

    def send_entity(self, entity: Any) -> None:
        strip_exception_messages(entity)
        self.inner.send_entity(entity)

    def __getattr__(self, name: str) -> Any:  # set_daemon_address, ip, port, ...
        return getattr(self.inner, name)


def scrub_exception_messages_from_traces(recorder: Any) -> None:
    """Installs `MessagelessEmitter` on an X-Ray recorder (idempotent)."""
    if not isinstance(recorder.emitter, MessagelessEmitter):
        recorder.emitter = MessagelessEmitter(recorder.emitter)


SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "leadscore")
logger = Logger(service=SERVICE, logger_formatter=RedactingFormatter())
install_personal_data_filter(logger, logging.getLogger())
# The service is the metrics' one dimension, which every custom-metric alarm filters on.
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "LeadScore"),
                  service=SERVICE)
tracer = Tracer()
scrub_exception_messages_from_traces(tracer.provider)

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

