"""The personal-data filter: e-mails, phone numbers and personal-data keys never reach a log
line, whichever logger, formatter or field they arrive through; ids and counts do."""

from __future__ import annotations

import io
import json
import logging

import pytest
from aws_lambda_powertools import Logger

from leadscore.observability import (
    REDACTED,
    install_personal_data_filter,
    redact,
    redact_text,
)

EMAIL = "asha.rao+leads@acme-corp.co.in"


@pytest.mark.parametrize("text", [
    f"could not score {EMAIL}",
    "call +91 98765 43210 today",
    "mobile 9876543210",
    "mobile 09876543210",
    "office (022) 2345 6789",
    "office 022-23456789",
    "us 415-555-0199",
    "+44 20 7946 0958",
])
def test_emails_and_phone_numbers_are_redacted_in_text(text):
    redacted = redact_text(text)
    assert "@" not in redacted
    assert not any(run in redacted for run in ("98765", "43210", "2345", "23456789",
                                                 "555-0199", "7946"))


@pytest.mark.parametrize("text", [
    "contact 123456789012 scored",  # HubSpot ids are long digit runs, not phones
    "event_id=1700000000000",
    "2026-06-01T21:30:00.000Z",
    "arn:aws:sqs:ap-south-1:123456789012:ScoreQueue",
    "score=87 probability=0.8731 tier=hot",
    "took 1234.5678 ms",
])
def test_ids_times_and_numbers_survive(text):
    assert redact_text(text) == text


def test_personal_keys_are_redacted_in_text_structures_and_nesting():
    assert (redact_text('{"firstname": "Asha", "score": 9}')
            == f'{{"firstname": "{REDACTED}", "score": 9}}')
    assert redact_text("lastname=Rao tier=hot") == f"lastname={REDACTED} tier=hot"
    assert redact({"properties": {"jobtitle": "CTO"}, "contact_id": "123"}) == {
        "properties": REDACTED, "contact_id": "123"}
    assert redact({"batch": [{"email": EMAIL, "id": "5"}]}) == {
        "batch": [{"email": REDACTED, "id": "5"}]}
    assert redact({"failed_contact_ids": ["9876543210"]}) == {"failed_contact_ids": ["9876543210"]}


def _capture(logger_name):
    stream = io.StringIO()
    target = logging.getLogger(logger_name)
    target.handlers = [logging.StreamHandler(stream)]
    target.propagate = False
    install_personal_data_filter(target)
    return target, stream


def test_filter_redacts_message_args_extra_and_exceptions():
    target, stream = _capture("leadscore-test-std")
    target.handlers[0].setFormatter(logging.Formatter("%(message)s %(contact)s %(firstname)s"))
    try:
        raise ValueError(f"bad email {EMAIL} for Asha")
    except ValueError:
        target.exception("failed for %s", EMAIL, extra={"contact": {"email": EMAIL},
                                                        "firstname": "Asha"})
    out = stream.getvalue()
    assert EMAIL not in out and "asha.rao" not in out
    assert "Asha" not in out.split("Traceback")[0]  # the name by key; free text needs the rule
    assert "ValueError" in out  # the exception is still reported


def test_powertools_logger_output_is_redacted():
    stream = io.StringIO()
    powertools = Logger(service="leadscore-filter-test", logger_handler=logging.StreamHandler(
        stream))
    install_personal_data_filter(powertools)
    powertools.info("Scored", extra={"contact_id": "501", "email": EMAIL,
                                     "note": "reach me on +91 98765 43210"})
    powertools.info({"message": "dict message", "phone": "+91 98765 43210"})
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[0]["contact_id"] == "501"
    assert lines[0]["email"] == REDACTED
    assert "98765" not in json.dumps(lines)
    assert EMAIL not in stream.getvalue()


def test_install_is_idempotent():
    target, _ = _capture("leadscore-test-idem")
    install_personal_data_filter(target)
    install_personal_data_filter(target)
    assert len(target.filters) == 1 and len(target.handlers[0].filters) == 1


class CountingClient:
    def __init__(self) -> None:
        self.request_count = 0
        self.throttled_count = 0


def test_hubspot_usage_emits_the_blocks_requests_and_throttles():
    from leadscore.observability import hubspot_usage, metrics

    client = CountingClient()
    client.request_count = 7  # requests before the block are not this invocation's
    metrics.clear_metrics()
    with hubspot_usage(client):
        client.request_count += 3
        client.throttled_count += 1
    emitted = {name: dict(metric) for name, metric in metrics.metric_set.items()}
    metrics.clear_metrics()
    assert emitted["HubSpotRequests"]["Value"] == [3.0]
    assert emitted["HubSpotThrottles"]["Value"] == [1.0]
