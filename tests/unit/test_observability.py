"""The personal-data redaction: e-mails, phone, Aadhaar, PAN and card numbers and values under
personal keys never reach a log line or a trace, whichever logger, formatter, field or
structure they arrive through; ids and counts do."""

from __future__ import annotations

import io
import json
import logging
import sys
from pathlib import Path

import pytest
from aws_lambda_powertools import Logger

from leadscore.observability import RedactingFormatter, install_personal_data_filter
from leadscore.personal_data import (
    REDACTED,
    is_personal_key,
    luhn_valid,
    redact,
    redact_free_text,
    redact_text,
    verhoeff_valid,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "infra" / "bench"))
import redaction_probes

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


@pytest.mark.parametrize("text", [
    "aadhaar 234567890124", "uid 2345 6789 0124", "uid 2345-6789-0124",
    "PAN ABCPK1234Q", "pan abcpk1234q", "card 4111 1111 1111 1111", "card 4111111111111111",
    "mobile_phone: 9845012345", "91 98450 12345", "919845012345",
])
def test_indian_ids_cards_and_bare_mobiles_are_redacted_in_text(text):
    redacted = redact_text(text)
    assert not any(run in redacted for run in (
        "234567890124", "6789 0124", "6789-0124", "1234Q", "1234q", "1111 1111", "1111111111",
        "9845012345", "98450 12345"))


@pytest.mark.parametrize("text", [
    "contact 234567890125 scored",  # 12 digits, Verhoeff check fails: an id, not Aadhaar
    "event 4111111111111112",  # 16 digits, Luhn fails
    "took 1700000000000 ms",
    "model lgbm-2025.1 v3",
])
def test_numbers_without_a_valid_check_digit_survive(text):
    assert redact_text(text) == text


def test_check_digits():
    assert verhoeff_valid("234567890124") and not verhoeff_valid("234567890125")
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")


def test_keys_are_judged_by_their_words():
    for key in ("email", "mobile_phone", "contactName", "firstName", "owner_display_name",
                "properties", "whatsapp", "pincode", "aadhaar_number"):
        assert is_personal_key(key), key
    for key in ("contact_id", "function_name", "property_name", "exception_name", "score",
                "tier", "reason", "event_ids", "queue_name"):
        assert not is_personal_key(key), key


def test_structures_models_and_numbers():
    from pydantic import BaseModel

    class Lead(BaseModel):
        contact_id: str
        mail: str
        notes: str

    assert redact({"lead": Lead(contact_id="5", mail="a@b.in", notes="call me")}) == {
        "lead": {"contact_id": "5", "mail": REDACTED, "notes": REDACTED}}
    assert redact({"alt": 9845012345, "uid": 234567890124, "count": 12,
                   "contact_id": 9845012345, "occurred_at": 1700000000000}) == {
        "alt": REDACTED, "uid": REDACTED, "count": 12, "contact_id": 9845012345,
        "occurred_at": 1700000000000}
    assert redact(object.__new__(type("Opaque", (), {"__str__": lambda self: "a@b.in"}))) == (
        "[redacted email]")


def test_llm_bound_text_loses_every_long_number_but_keeps_dates_and_amounts():
    text = "Budget 2500000 INR, call 98450 12345 or 234567890125, PAN ABCDE1234F by 2025-03-31"
    assert redact_free_text(text) == ("Budget 2500000 INR, call [redacted number] or "
                                      "[redacted number], PAN [redacted id] by 2025-03-31")


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


def test_powertools_formatter_redacts_append_keys_and_dict_messages():
    stream = io.StringIO()
    powertools = Logger(service="leadscore-formatter-test",
                        logger_handler=logging.StreamHandler(stream),
                        logger_formatter=RedactingFormatter())
    powertools.append_keys(lead={"email": EMAIL}, mobile_phone="9845012345", contact_id="77")
    powertools.info("Working")
    [line] = [json.loads(x) for x in stream.getvalue().splitlines()]
    assert line["lead"] == {"email": REDACTED} and line["mobile_phone"] == REDACTED
    assert line["contact_id"] == "77" and line["service"] == "leadscore-formatter-test"
    assert line["message"] == "Working"


def test_every_probe_shape_is_redacted():
    """The probes of infra/bench/redaction_probes.py: personal data in each shape careless
    code could log it, through the project's own logger, a third-party logger and X-Ray."""
    results = redaction_probes.run_probes()
    leaks = {r.name: r.leaked for r in results if r.leaked}
    print(f"\nredaction probes: {len(results)}, leaks: {len(leaks)}")
    assert len(results) >= 30
    assert leaks == {}


def test_xray_exception_metadata_is_off(monkeypatch):
    """With POWERTOOLS_TRACER_CAPTURE_ERROR=false (template Globals) Powertools adds no
    exception metadata to the subsegment; the emitter has dropped the cause's message."""
    from aws_lambda_powertools import Tracer
    from aws_xray_sdk import global_sdk_config
    from aws_xray_sdk.core.context import Context
    from aws_xray_sdk.core.recorder import AWSXRayRecorder

    from leadscore.observability import MessagelessEmitter

    monkeypatch.setenv("POWERTOOLS_TRACER_CAPTURE_ERROR", "false")
    sent: list[str] = []

    class Capturing:
        def send_entity(self, entity):
            sent.append(entity.serialize())

        def set_daemon_address(self, address):
            pass

    saved, enabled = dict(Tracer._config), global_sdk_config.sdk_enabled()
    global_sdk_config.set_sdk_enabled(True)
    recorder = AWSXRayRecorder()
    recorder.configure(sampling=False, context=Context(), emitter=MessagelessEmitter(Capturing()),
                       context_missing="LOG_ERROR")
    try:
        Tracer._reset_config()  # the package's tracer, disabled outside Lambda, is kept aside
        tracer = Tracer(service="probe", provider=recorder, disabled=False, auto_patch=False)

        @tracer.capture_method
        def score():
            raise ValueError(f"row {EMAIL}")

        recorder.begin_segment("handler")
        with pytest.raises(ValueError):
            score()
        recorder.end_segment()
    finally:
        Tracer._config.clear()
        Tracer._config.update(saved)
        global_sdk_config.set_sdk_enabled(enabled)
    [segment] = [json.loads(s) for s in sent]
    [subsegment] = segment["subsegments"]
    assert subsegment["cause"]["exceptions"][0]["type"] == "ValueError"
    assert "message" not in subsegment["cause"]["exceptions"][0]
    assert "metadata" not in subsegment
    assert EMAIL not in json.dumps(segment)


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
