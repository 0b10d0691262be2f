"""Shared Powertools Logger, Metrics and Tracer, and the guard that keeps personal data out of logs.

Service name, log level and metrics namespace come from the Powertools environment variables
(`POWERTOOLS_SERVICE_NAME`, `POWERTOOLS_LOG_LEVEL`, `POWERTOOLS_METRICS_NAMESPACE`).
Rule for every module: log ids and counts only — never contact properties, emails or names.
"""

from __future__ import annotations

import logging
import os

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

# Keys that would carry personal data if someone passed them as `extra=`; their values are
# replaced before the record is formatted.
PERSONAL_DATA_KEYS = frozenset({
    "properties", "email", "firstname", "lastname", "name", "phone", "mobilephone", "company",
    "jobtitle", "address", "body", "payload",
})
REDACTED = "[redacted]"


class PersonalDataFilter(logging.Filter):
    """Redacts `extra=` values whose key names personal data (defence in depth, not a licence)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key in PERSONAL_DATA_KEYS.intersection(record.__dict__):
            setattr(record, key, REDACTED)
        return True


logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "leadscore"))
logger.addFilter(PersonalDataFilter())
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "LeadScore"))
tracer = Tracer()

# The HubSpot SDK logs whole response bodies (contact properties) at DEBUG; keep it quiet even
# when POWERTOOLS_LOG_LEVEL=DEBUG is used to debug our own code.
logging.getLogger("hubspot").setLevel(logging.INFO)


def count(name: str, value: int = 1) -> None:
    """Adds a Count metric; zero values are skipped to keep EMF blobs small."""
    if value:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
