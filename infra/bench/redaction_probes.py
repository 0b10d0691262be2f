"""Probes of the personal-data redaction: personal data handed to the logs and traces the way
careless code would, one probe per shape, each checked against what was actually written.

A probe logs through the project's own logger (`leadscore.observability.logger`: Powertools,
its redacting formatter and the filter), or through a third-party logger reaching the root
handlers, or raises inside an X-Ray subsegment; the output is searched for the probe's
secrets. A leak is a probe with any secret in its output. `tests/unit/test_observability.py`
asserts 0 leaks; `infra/bench/security_bench.py` reports the counts in `make bench`.

The secrets are fictitious (the Aadhaar number carries a valid Verhoeff check digit, as a real
one would).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

EMAIL = "zubeida.okonkwo@probe-lead.example.in"
FIRST, LAST = "Zubeida", "Okonkwo-Rao"
MOBILE = "9845012345"  # bare digits, as a CRM stores it
MOBILE_INT = 9876501234
MOBILE_SPACED = "+91 98450 67890"
MOBILE_ZERO = "098457 31829"
LANDLINE = "(022) 2345 6789"
AADHAAR = "234567890124"  # 12 digits, valid Verhoeff check digit
AADHAAR_GROUPED = "2345 6789 0124"
PAN = "ABCPK1234Q"
PAN_LOWER = "abcpk5678q"
CARD = "4111 1111 1111 1111"


class ContactModel(BaseModel):
    contact_id: str
    email: str
    mobile_phone: str


@dataclass
class ContactRecord:
    contact_id: str
    owner_name: str
    whatsapp: int


@dataclass
class Probe:
    name: str
    secrets: list[str]
    emit: Callable[[Any, logging.Logger], None]  # (project logger, a third-party logger)
    channel: str = "logs"


def _raise(message: str) -> None:
    raise ValueError(message)


def _exception(logger: Any, message: str) -> None:
    try:
        _raise(message)
    except ValueError:
        logger.exception("Scoring failed")


def _chained(logger: Any) -> None:
    try:
        try:
            _raise(f"HubSpot said: contact {EMAIL} is invalid")
        except ValueError as inner:
            raise RuntimeError("batch update failed") from inner
    except RuntimeError:
        logger.exception("Batch failed")


def _append_keys(logger: Any) -> None:
    logger.append_keys(lead={"email": EMAIL, "firstname": FIRST}, mobile_phone=MOBILE)
    try:
        logger.info("Enriching")
    finally:
        logger.remove_keys(["lead", "mobile_phone"])


def _append_model(logger: Any) -> None:
    logger.append_keys(contact=ContactModel(contact_id="1", email=EMAIL, mobile_phone=MOBILE))
    try:
        logger.info("Working")
    finally:
        logger.remove_keys(["contact"])


PROBES: list[Probe] = [
    Probe("e-mail in the message", [EMAIL], lambda lg, _: lg.info(f"Could not score {EMAIL}")),
    Probe("e-mail in %s arguments", [EMAIL], lambda lg, _: lg.info("Lead %s arrived", EMAIL)),
    Probe("e-mail inside a pydantic model in extra", [EMAIL, MOBILE],
          lambda lg, _: lg.info("Scored", extra={"contact": ContactModel(
              contact_id="1", email=EMAIL, mobile_phone=MOBILE)})),
    Probe("pydantic model as the message", [EMAIL],
          lambda lg, _: lg.info(ContactModel(contact_id="1", email=EMAIL, mobile_phone="x"))),
    Probe("dataclass in extra, name and number under unknown keys", [FIRST, str(MOBILE_INT)],
          lambda lg, _: lg.info("Record", extra={"record": ContactRecord(
              contact_id="7", owner_name=f"{FIRST} {LAST}", whatsapp=MOBILE_INT)})),
    Probe("nested lists and dicts", [EMAIL, LAST],
          lambda lg, _: lg.info("Batch", extra={"batch": [
              {"contact": {"lead": {"email": EMAIL, "surname": LAST}}}]})),
    Probe("bare-digit phone under an unknown key (int)", [str(MOBILE_INT)],
          lambda lg, _: lg.info("Lead", extra={"mobile_phone": MOBILE_INT})),
    Probe("bare-digit phone under an unknown key (string)", [MOBILE],
          lambda lg, _: lg.info("Lead", extra={"alt_contact": MOBILE})),
    Probe("bare-digit phone in text", [MOBILE],
          lambda lg, _: lg.info(f"mobile_phone: {MOBILE}")),
    Probe("+91 phone in free text", [MOBILE_SPACED, "98450 67890"],
          lambda lg, _: lg.info(f"Call her on {MOBILE_SPACED} after 5")),
    Probe("0-prefixed mobile in free text", [MOBILE_ZERO, "98457 31829"],
          lambda lg, _: lg.warning(f"Callback requested on {MOBILE_ZERO}")),
    Probe("landline in free text", ["2345 6789"],
          lambda lg, _: lg.info(f"Office {LANDLINE}")),
    Probe("Aadhaar in free text", [AADHAAR],
          lambda lg, _: lg.info(f"Lead wrote: my Aadhaar is {AADHAAR}")),
    Probe("grouped Aadhaar in free text", [AADHAAR_GROUPED, "6789 0124"],
          lambda lg, _: lg.info(f"KYC {AADHAAR_GROUPED} attached")),
    Probe("Aadhaar as an int under an unknown key", [AADHAAR],
          lambda lg, _: lg.info("KYC", extra={"uid": int(AADHAAR)})),
    Probe("PAN in free text", [PAN], lambda lg, _: lg.info(f"PAN {PAN} for invoicing")),
    Probe("lower-case PAN in free text", [PAN_LOWER],
          lambda lg, _: lg.info(f"pan no. {PAN_LOWER}")),
    Probe("card number in free text", [CARD, "1111 1111"],
          lambda lg, _: lg.info(f"paid with {CARD}")),
    Probe("name under an unknown key", [FIRST, LAST],
          lambda lg, _: lg.info("Lead", extra={"contact_name": f"{FIRST} {LAST}"})),
    Probe("name under a camelCase key", [FIRST],
          lambda lg, _: lg.info("Lead", extra={"firstName": FIRST})),
    Probe("name nested under unknown keys", [LAST],
          lambda lg, _: lg.info("Owner", extra={"owner": {"displayName": LAST}})),
    Probe("key=value and JSON text", [FIRST, LAST],
          lambda lg, _: lg.info(f'firstname={FIRST} payload {{"lastname": "{LAST}"}}')),
    Probe("dict message (Powertools)", [EMAIL, MOBILE],
          lambda lg, _: lg.info({"message": "lead", "lead": {"email": EMAIL,
                                                             "phone_number": MOBILE}})),
    Probe("append_keys", [EMAIL, FIRST, MOBILE], lambda lg, _: _append_keys(lg)),
    Probe("append_keys with a model", [EMAIL, MOBILE], lambda lg, _: _append_model(lg)),
    Probe("exception message (logger.exception)", [EMAIL, AADHAAR],
          lambda lg, _: _exception(lg, f"bad row for {EMAIL}, uid {AADHAAR}")),
    Probe("chained exception", [EMAIL], lambda lg, _: _chained(lg)),
    Probe("exception object in extra", [EMAIL],
          lambda lg, _: lg.error("Failed", extra={"error": ValueError(f"no {EMAIL}")})),
    Probe("exception text in extra", [MOBILE],
          lambda lg, _: lg.error("Failed", extra={"reason": str(ValueError(MOBILE))})),
    Probe("HubSpot error body in text", [EMAIL, FIRST],
          lambda lg, _: lg.warning('HTTP 400: {"properties": {"email": "' + EMAIL
                                   + '", "firstname": "' + FIRST + '"}}')),
    Probe("third-party logger to the root handlers", [EMAIL, MOBILE],
          lambda _, other: other.warning("Response body: %s", {"email": EMAIL,
                                                                 "phone": MOBILE})),
    Probe("third-party logger, exception", [AADHAAR],
          lambda _, other: _exception(other, f"uid {AADHAAR}")),
    Probe("tuple and set values", [EMAIL, MOBILE],
          lambda lg, _: lg.info("Sets", extra={"seen": (EMAIL,), "numbers": {MOBILE}})),
]


@dataclass
class ProbeResult:
    name: str
    channel: str
    leaked: list[str] = field(default_factory=list)


def _capture_logs(probe: Probe) -> str:
    """Runs one probe through the project's logger and a third-party logger; returns what
    was written."""
    from leadscore.observability import install_personal_data_filter, logger

    buffer = io.StringIO()
    handler = logger.registered_handler
    previous = handler.setStream(buffer)
    root = logging.getLogger()
    root_handler = logging.StreamHandler(buffer)
    root.addHandler(root_handler)
    install_personal_data_filter(root)  # what observability does for Lambda's root handler
    other = logging.getLogger("probe.thirdparty.sdk")
    other.setLevel(logging.INFO)
    try:
        probe.emit(logger, other)
    finally:
        handler.setStream(previous)
        root.removeHandler(root_handler)
    return buffer.getvalue()


class _CapturingEmitter:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def send_entity(self, entity: Any) -> None:
        self.sent.append(entity.serialize())

    def set_daemon_address(self, address: str | None) -> None:
        pass


def _capture_trace(secret_text: str) -> str:
    """A failing subsegment under a segment, sent by the project's emitter wrapper."""
    from aws_xray_sdk import global_sdk_config
    from aws_xray_sdk.core.context import Context
    from aws_xray_sdk.core.recorder import AWSXRayRecorder

    from leadscore.observability import MessagelessEmitter

    # Powertools switches the SDK off outside Lambda; this probe needs it on, briefly.
    enabled = global_sdk_config.sdk_enabled()
    global_sdk_config.set_sdk_enabled(True)
    try:
        return _send_failing_segment(AWSXRayRecorder(), Context(), MessagelessEmitter,
                                     secret_text)
    finally:
        global_sdk_config.set_sdk_enabled(enabled)


def _send_failing_segment(recorder: Any, context: Any, wrapper: Any, secret_text: str) -> str:
    inner = _CapturingEmitter()
    recorder.configure(sampling=False, context=context, emitter=wrapper(inner),
                       context_missing="LOG_ERROR")
    recorder.begin_segment("probe")
    try:
        with recorder.in_subsegment("## score"):
            _raise(secret_text)
    except ValueError:
        pass
    recorder.end_segment()
    return "\n".join(inner.sent)


TRACE_PROBES = [
    Probe("X-Ray: exception message in a failed subsegment", [EMAIL, AADHAAR, MOBILE],
          lambda *_: None, channel="traces"),
]


def run_probes() -> list[ProbeResult]:
    results = []
    for probe in PROBES:
        output = _capture_logs(probe)
        if not output.strip():
            raise RuntimeError(f"probe {probe.name!r} wrote nothing: it would prove nothing")
        results.append(ProbeResult(probe.name, probe.channel,
                                   [s for s in probe.secrets if s in output]))
    for probe in TRACE_PROBES:
        output = _capture_trace(f"row {EMAIL} uid {AADHAAR} phone {MOBILE}")
        if "ValueError" not in output:
            raise RuntimeError("the trace probe recorded no exception")
        results.append(ProbeResult(probe.name, probe.channel,
                                   [s for s in probe.secrets if s in output]))
    return results
