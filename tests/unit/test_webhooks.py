"""HubSpot v3 signatures, the signed URI, body decoding and the webhook event model."""

from __future__ import annotations

import json

import pytest

from leadscore.hubspot.webhooks import (
    MAX_TIMESTAMP_SKEW_MS,
    HttpRequest,
    InvalidWebhookPayload,
    MalformedRequest,
    RequestTooLarge,
    SkipReason,
    WebhookEvent,
    is_valid_signature,
    parse_delivery,
    request_from_http_api_event,
    signed_uri,
)

NOW_MS = 1_700_000_300_000
URI = "https://hooks.example.in/webhooks/hubspot"
BODY = b'[{"eventId":1,"objectId":123}]'


def _request(kit, *, secret=None, body=BODY, uri=URI, signed_for=None, timestamp=NOW_MS,
             method="POST") -> HttpRequest:
    signature = kit.sign(secret or kit.CLIENT_SECRET, method, signed_for or uri, body, timestamp)
    return HttpRequest(method=method, uri=uri, body=body, headers={
        "x-hubspot-signature-v3": signature, "x-hubspot-request-timestamp": str(timestamp),
    })


# --- signature ----------------------------------------------------------------------------


def test_valid_signature_is_accepted(kit):
    assert is_valid_signature(_request(kit), kit.CLIENT_SECRET, now_ms=NOW_MS)


def test_signature_with_wrong_secret_is_rejected(kit):
    assert not is_valid_signature(_request(kit, secret="another-secret"), kit.CLIENT_SECRET,
                                  now_ms=NOW_MS)


def test_tampered_body_is_rejected(kit):
    request = _request(kit)
    tampered = request.model_copy(update={"body": BODY.replace(b"123", b"124")})
    assert not is_valid_signature(tampered, kit.CLIENT_SECRET, now_ms=NOW_MS)


def test_signature_for_another_uri_is_rejected(kit):
    request = _request(kit, signed_for="https://hooks.example.in/webhooks/other")
    assert not is_valid_signature(request, kit.CLIENT_SECRET, now_ms=NOW_MS)


def test_tampered_timestamp_is_rejected(kit):
    request = _request(kit)
    headers = {**request.headers, "x-hubspot-request-timestamp": str(NOW_MS - 1)}
    assert not is_valid_signature(request.model_copy(update={"headers": headers}),
                                  kit.CLIENT_SECRET, now_ms=NOW_MS)


@pytest.mark.parametrize("age_ms, accepted", [
    (0, True),
    (MAX_TIMESTAMP_SKEW_MS, True),
    (MAX_TIMESTAMP_SKEW_MS + 1, False),  # stale: older than 5 minutes
    (-MAX_TIMESTAMP_SKEW_MS - 1, False),  # from the future beyond the same tolerance
    (24 * 3600 * 1000, False),
])
def test_timestamp_window(kit, age_ms, accepted):
    request = _request(kit, timestamp=NOW_MS - age_ms)
    assert is_valid_signature(request, kit.CLIENT_SECRET, now_ms=NOW_MS) is accepted


def test_signature_checked_against_real_clock_by_default(kit):
    import time

    now = int(time.time() * 1000)
    assert is_valid_signature(_request(kit, timestamp=now), kit.CLIENT_SECRET)
    assert not is_valid_signature(_request(kit, timestamp=now - 301_000), kit.CLIENT_SECRET)


@pytest.mark.parametrize("drop", ["x-hubspot-signature-v3", "x-hubspot-request-timestamp"])
def test_missing_headers_are_rejected(kit, drop):
    request = _request(kit)
    headers = {k: v for k, v in request.headers.items() if k != drop}
    assert not is_valid_signature(request.model_copy(update={"headers": headers}),
                                  kit.CLIENT_SECRET, now_ms=NOW_MS)


@pytest.mark.parametrize("timestamp", ["", "abc", "-1", "1.7e12", "１７"])
def test_unparsable_timestamp_is_rejected(kit, timestamp):
    request = _request(kit)
    headers = {**request.headers, "x-hubspot-request-timestamp": timestamp}
    assert not is_valid_signature(request.model_copy(update={"headers": headers}),
                                  kit.CLIENT_SECRET, now_ms=NOW_MS)


def test_garbage_signature_and_non_utf8_body_are_rejected(kit):
    request = _request(kit)
    garbage = {**request.headers, "x-hubspot-signature-v3": "nöt-base64 ✗"}
    assert not is_valid_signature(request.model_copy(update={"headers": garbage}),
                                  kit.CLIENT_SECRET, now_ms=NOW_MS)
    binary = _request(kit, body=b"\xff\xfe[]")
    assert not is_valid_signature(binary, kit.CLIENT_SECRET, now_ms=NOW_MS)


def test_unicode_body_is_verified_as_utf8(kit):
    body = json.dumps([{"propertyValue": "Sharma — मुंबई"}], ensure_ascii=False).encode()
    assert is_valid_signature(_request(kit, body=body), kit.CLIENT_SECRET, now_ms=NOW_MS)


# --- the signed URI -----------------------------------------------------------------------


def _event(path="/webhooks/hubspot", query="", domain="abc.execute-api.ap-south-1.amazonaws.com"):
    return {"rawPath": path, "rawQueryString": query, "requestContext": {"domainName": domain}}


def test_uri_rebuilt_from_event_without_public_url():
    assert (signed_uri(_event(), None)
            == "https://abc.execute-api.ap-south-1.amazonaws.com/webhooks/hubspot")


def test_uri_rebuilt_with_query_string():
    assert (signed_uri(_event(query="portal=62515&x=1"), None)
            == "https://abc.execute-api.ap-south-1.amazonaws.com/webhooks/hubspot"
               "?portal=62515&x=1")


def test_public_url_replaces_domain_and_path():
    event = _event(path="/prod/webhooks/hubspot")
    assert signed_uri(event, "https://hooks.example.in/hubspot") == (
        "https://hooks.example.in/hubspot")
    assert signed_uri(event, "") == (
        "https://abc.execute-api.ap-south-1.amazonaws.com/prod/webhooks/hubspot")


def test_public_url_gets_request_query_string_unless_it_has_one():
    event = _event(query="a=1")
    assert signed_uri(event, "https://hooks.example.in/hubspot") == (
        "https://hooks.example.in/hubspot?a=1")
    assert signed_uri(event, "https://hooks.example.in/hubspot?a=1") == (
        "https://hooks.example.in/hubspot?a=1")


def test_uri_percent_encodings_hubspot_decodes_are_decoded():
    event = _event(query="redirect=https%3A%2F%2Fx.in%2Fa&t=%40me")
    assert signed_uri(event, None).endswith("?redirect=https://x.in/a&t=@me")
    assert signed_uri(_event(query="q=a%20b"), None).endswith("?q=a%20b")  # not in the table


# --- body decoding ------------------------------------------------------------------------


def test_event_to_request(kit):
    event = kit.http_api_event(BODY, query="a=1")
    request = request_from_http_api_event(event, None)
    assert request.body == BODY
    assert request.method == "POST"
    assert request.uri == "https://abc123.execute-api.ap-south-1.amazonaws.com/webhooks/hubspot?a=1"
    assert is_valid_signature(request, kit.CLIENT_SECRET)


def test_base64_body_is_decoded_and_verifies(kit):
    event = kit.http_api_event(BODY, base64_body=True)
    request = request_from_http_api_event(event, None)
    assert request.body == BODY
    assert is_valid_signature(request, kit.CLIENT_SECRET)


def test_mixed_case_headers_are_found(kit):
    event = kit.http_api_event(BODY)
    event["headers"] = {k.title(): v for k, v in event["headers"].items()}
    assert is_valid_signature(request_from_http_api_event(event, None), kit.CLIENT_SECRET)


def test_oversize_bodies_are_refused_before_and_after_decoding(kit):
    with pytest.raises(RequestTooLarge):
        request_from_http_api_event(kit.http_api_event(b"x" * 1001), None, max_body_bytes=1000)
    with pytest.raises(RequestTooLarge):
        request_from_http_api_event(kit.http_api_event(b"x" * 1001, base64_body=True), None,
                                    max_body_bytes=1000)
    exact = request_from_http_api_event(kit.http_api_event(b"x" * 1000, base64_body=True), None,
                                        max_body_bytes=1000)
    assert len(exact.body) == 1000


def test_invalid_base64_is_malformed(kit):
    event = kit.http_api_event(BODY)
    event.update(body="not base64!!", isBase64Encoded=True)
    with pytest.raises(MalformedRequest):
        request_from_http_api_event(event, None)


def test_missing_body_is_empty(kit):
    event = kit.http_api_event(b"")
    event.pop("body")
    assert request_from_http_api_event(event, None).body == b""


# --- events -------------------------------------------------------------------------------


def test_events_parse_and_ignore_unknown_fields(kit):
    events = parse_delivery(kit.webhook_body([
        kit.webhook_event(1, 123, sourceId="userId:1", brandNewField={"x": 1}),
        kit.webhook_event(2, 124, "contact.propertyChange", propertyName="email",
                          propertyValue="a@b.in"),
    ])).events
    assert [(e.event_id, e.object_id, e.subscription_type) for e in events] == [
        (1, 123, "contact.creation"), (2, 124, "contact.propertyChange")]
    assert events[0].change_flag == "CREATED"
    assert events[1].property_name == "email"


@pytest.mark.parametrize("body, message", [
    (b"{not json", "not valid JSON"),
    (b'{"eventId": 1}', "JSON array"),
    (b'"x"', "JSON array"),
    (b"\xff", "not valid JSON"),
])
def test_a_body_that_is_not_an_event_array_is_refused(body, message):
    with pytest.raises(InvalidWebhookPayload, match=message):
        parse_delivery(body)


def test_more_than_100_events_are_refused(kit):
    body = kit.webhook_body([kit.webhook_event(i, i) for i in range(101)])
    with pytest.raises(InvalidWebhookPayload, match="at most 100"):
        parse_delivery(body)
    events = parse_delivery(kit.webhook_body([kit.webhook_event(i, i) for i in range(100)]))
    assert len(events.events) == 100


def test_each_event_stands_alone(kit):
    events = [kit.webhook_event(1, 1), kit.webhook_event(2, 2), kit.webhook_event(3, 3)]
    events[1]["objectId"] = "not-a-number"
    del events[2]["objectId"]
    delivery = parse_delivery(kit.webhook_body([*events, 17, [], {"eventId": True}]))
    assert [e.event_id for e in delivery.events] == [1]
    assert delivery.skipped == {SkipReason.MALFORMED: 4, SkipReason.NO_OBJECT_ID: 1}
    assert delivery.skipped_event_ids == [2, 3]  # never True, a list or a missing id
    assert delivery.received == 6


@pytest.mark.parametrize("subscription_type, extra, kind, reason", [
    ("contact.creation", {}, "contact.creation", None),
    ("object.creation", {"objectTypeId": "0-1"}, "contact.creation", None),
    ("object.propertyChange", {"objectTypeId": "0-1", "propertyName": "jobtitle"},
     "contact.propertyChange", None),
    ("object.restore", {"objectTypeId": "0-1"}, "contact.restore", None),
    ("object.creation", {"objectTypeId": "0-2"}, None, SkipReason.OTHER_OBJECT_TYPE),
    ("object.creation", {}, None, SkipReason.MALFORMED),
    ("company.creation", {}, None, SkipReason.OTHER_OBJECT_TYPE),
    ("conversation.creation", {}, None, SkipReason.OTHER_OBJECT_TYPE),
    ("contact.associationChange", {}, "contact.associationChange", SkipReason.UNSUPPORTED_TYPE),
    ("object.associationChange", {"objectTypeId": "0-1"}, "contact.associationChange",
     SkipReason.UNSUPPORTED_TYPE),
    ("contact", {}, None, SkipReason.OTHER_OBJECT_TYPE),
])
def test_both_formats_read_as_contact_events(kit, subscription_type, extra, kind, reason):
    event = WebhookEvent.model_validate(kit.webhook_event(1, 5, subscription_type, **extra))
    assert (event.kind, event.skip_reason()) == (kind, reason)


def test_merge_events_name_the_surviving_contact(kit):
    merge = kit.webhook_event(1, 5, "contact.merge", primaryObjectId=5, mergedObjectIds=[6, 7])
    del merge["objectId"]  # merge events may omit it
    assert parse_delivery(kit.webhook_body([merge])).events[0].surviving_object_id == 5
    created_new = dict(merge, newObjectId=9)
    parsed = parse_delivery(kit.webhook_body([created_new])).events[0]
    assert (parsed.surviving_object_id, parsed.merged_object_ids) == (9, (6, 7))

