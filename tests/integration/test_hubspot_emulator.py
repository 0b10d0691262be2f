"""The HubSpot emulator over real HTTP, driven by the official `hubspot-api-client`.

Shapes are checked against HubSpot's own OpenAPI files (tests/fixtures/hubspot-openapi/, with
their source), webhook signatures against the SDK's validator.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hubspot import HubSpot
from hubspot.crm.contacts import (
    BatchInputSimplePublicObjectBatchInput,
    BatchInputSimplePublicObjectBatchInputForCreate,
    BatchReadInputSimplePublicObjectId,
    PublicGdprDeleteInput,
    PublicMergeInput,
    PublicObjectSearchRequest,
    SimplePublicObjectInput,
    SimplePublicObjectInputForCreate,
)
from hubspot.crm.contacts.exceptions import ApiException, NotFoundException, UnauthorizedException
from hubspot.crm.properties import PropertyCreate, PropertyGroupCreate
from hubspot.utils.signature import Signature
from openapi_schema_validator import OAS30Validator

from leadscore_local import webhook_sender
from leadscore_local.hubspot_emulator import ROUTES, HubSpotEmulator, RateLimits

FUNCTIONS_TOKEN = "pat-test-functions"
ADMIN_TOKEN = "pat-test-admin"
TOKENS = {FUNCTIONS_TOKEN: "functions", ADMIN_TOKEN: "admin"}
SECRET = "test-client-secret"
ROOT = Path(__file__).resolve().parents[2]
OPENAPI_DIR = ROOT / "tests" / "fixtures" / "hubspot-openapi"
OPENAPI_FILES = ("crm-contacts-v3.json", "crm-properties-v3.json", "webhooks-v3.json")


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def openapi() -> dict[str, dict[str, Any]]:
    return {name: json.loads((OPENAPI_DIR / name).read_text()) for name in OPENAPI_FILES}


@pytest.fixture
def emulator() -> Iterator[HubSpotEmulator]:
    # Search semantics are tested with many quick searches: lift the 5/s search limit here
    # (test_rate_limit_answers_429_with_hubspot_headers covers it).
    limits = RateLimits(search_per_second=1000)
    with HubSpotEmulator(tokens=TOKENS, client_secret=SECRET, rate_limit=limits,
                         timeout_seconds=0.3, webhook_backoff_seconds=0.05,
                         webhook_timeout_seconds=2) as emu:
        yield emu


@pytest.fixture
def client(emulator: HubSpotEmulator) -> HubSpot:
    return HubSpot(access_token=FUNCTIONS_TOKEN, host=emulator.url)


class Receiver:
    """A webhook endpoint recording every request; answers `fail_first` requests with 500."""

    def __init__(self, fail_first: int = 0, status: int = 500) -> None:
        self.fail_first, self.status = fail_first, status
        self.requests: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append({"path": self.path, "headers": self.headers,
                                          "body": body})
                failing = len(receiver.requests) <= receiver.fail_first
                self.send_response(receiver.status if failing else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/hubspot?stage=t"

    def events(self) -> list[dict[str, Any]]:
        return [e for r in self.requests for e in json.loads(r["body"])]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


# --------------------------------------------------------------------------- helpers

def _resolve(node: Any, spec: dict[str, Any]) -> Any:
    """Inline every local $ref so one schema can be validated on its own."""
    if isinstance(node, dict):
        if "$ref" in node:
            target: Any = spec
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            return _resolve(target, spec)
        return {k: _resolve(v, spec) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v, spec) for v in node]
    return node


def _response_schema(spec: dict[str, Any], path: str, method: str, status: int) -> Any:
    spec = copy.deepcopy(spec)
    # The live API returns null for a requested property the record has no value for (and
    # the SDK types it Optional); HubSpot's OpenAPI omits `nullable` there. Allow exactly that.
    for name in ("SimplePublicObject", "SimplePublicObjectWithAssociations"):
        schema = spec["components"]["schemas"].get(name)
        if schema:
            schema["properties"]["properties"]["additionalProperties"]["nullable"] = True
    responses = spec["paths"][path][method.lower()]["responses"]
    response = _resolve(responses.get(str(status)) or responses["default"], spec)
    content = response["content"]
    return (content.get("application/json") or content["*/*"])["schema"]


def assert_matches(spec: dict[str, Any], path: str, method: str, status: int, body: Any) -> None:
    errors = sorted(OAS30Validator(_response_schema(spec, path, method, status))
                    .iter_errors(body), key=str)
    assert not errors, f"{method} {path} {status}: " + "; ".join(
        f"{list(e.absolute_path)}: {e.message}" for e in errors[:5])


def raw(response: Any) -> tuple[int, Any]:
    """Status and parsed JSON of an SDK call made with `_preload_content=False`."""
    return response.status, json.loads(response.data) if response.data else None


def http(method: str, url: str, body: Any = None, token: str | None = FUNCTIONS_TOKEN,
         timeout: float = 5) -> tuple[int, dict[str, str], Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = response.read()
            status, reply_headers = response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        payload, status, reply_headers = error.read(), error.code, dict(error.headers)
    return status, reply_headers, json.loads(payload) if payload else None


def new_contact(index: int, **extra: str) -> dict[str, Any]:
    return {"properties": {"email": f"lead{index}@example.in", "firstname": f"Lead{index}",
                           **extra}, "associations": []}


def create_many(client: HubSpot, rows: list[dict[str, Any]]) -> list[str]:
    batch = BatchInputSimplePublicObjectBatchInputForCreate(inputs=rows)
    return [c.id for c in client.crm.contacts.batch_api.create(batch).results]


def search(client: HubSpot, filters: list[dict[str, Any]], **kwargs: Any) -> Any:
    request = PublicObjectSearchRequest(filter_groups=[{"filters": filters}], **kwargs)
    return client.crm.contacts.search_api.do_search(request)


# --------------------------------------------------------------------------- OpenAPI conformance

def _normalise(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def test_every_route_exists_in_hubspots_openapi(openapi: dict[str, dict[str, Any]]) -> None:
    documented = {(method.upper(), _normalise(path))
                  for spec in openapi.values() for path, operations in spec["paths"].items()
                  for method in operations}
    served = {(method, _normalise(template)) for method, template, _ in ROUTES}
    assert served - documented == set()
    # The operations leadscore needs are all served.
    needed = {("POST", "/crm/v3/objects/contacts/batch/read"),
              ("POST", "/crm/v3/objects/contacts/batch/update"),
              ("POST", "/crm/v3/objects/contacts/search"),
              ("POST", "/crm/v3/objects/contacts/gdpr-delete"),
              ("GET", "/crm/v3/objects/contacts/{}"),
              ("POST", "/crm/v3/properties/{}/groups"), ("PATCH", "/crm/v3/properties/{}/{}")}
    assert needed <= served


def test_webhook_types_are_hubspot_event_types(openapi: dict[str, dict[str, Any]]) -> None:
    schemas = openapi["webhooks-v3.json"]["components"]["schemas"]
    allowed = set(schemas["SubscriptionCreateRequest"]["properties"]["eventType"]["enum"])
    from leadscore_local.hubspot_emulator import GENERIC_WEBHOOK_TYPES, WEBHOOK_TYPES

    assert set(WEBHOOK_TYPES) <= allowed
    assert set(GENERIC_WEBHOOK_TYPES) <= allowed
    # HubSpot has no generic privacy deletion: a generic app subscribes to the legacy one.
    assert "object.privacyDeletion" not in allowed


def test_responses_validate_against_openapi_schemas(
        openapi: dict[str, dict[str, Any]], emulator: HubSpotEmulator, client: HubSpot) -> None:
    contacts, props = openapi["crm-contacts-v3.json"], openapi["crm-properties-v3.json"]
    basic, batch = client.crm.contacts.basic_api, client.crm.contacts.batch_api
    base = "/crm/v3/objects/contacts"

    status, created = raw(basic.create(SimplePublicObjectInputForCreate(
        properties={"email": "a@example.in", "dpdp_consent_purposes": "lead_scoring"}),
        _preload_content=False))
    assert status == 201
    assert_matches(contacts, base, "POST", 201, created)

    status, got = raw(basic.get_by_id(created["id"], properties=["email", "jobtitle"],
                                      _preload_content=False))
    assert status == 200 and got["properties"]["jobtitle"] is None
    assert_matches(contacts, base + "/{contactId}", "GET", 200, got)

    status, read = raw(batch.read(BatchReadInputSimplePublicObjectId(
        inputs=[{"id": created["id"]}], properties=["email"], properties_with_history=[]),
        _preload_content=False))
    assert status == 200
    assert_matches(contacts, base + "/batch/read", "POST", 200, read)

    status, partial = raw(batch.read(BatchReadInputSimplePublicObjectId(
        inputs=[{"id": created["id"]}, {"id": "999999"}], properties=["email"],
        properties_with_history=[]), _preload_content=False))
    assert status == 207 and partial["errors"][0]["context"]["ids"] == ["999999"]
    assert_matches(contacts, base + "/batch/read", "POST", 207, partial)

    status, updated = raw(batch.update(BatchInputSimplePublicObjectBatchInput(
        inputs=[{"id": created["id"], "properties": {"jobtitle": "CTO"}}]),
        _preload_content=False))
    assert status == 200
    assert_matches(contacts, base + "/batch/update", "POST", 200, updated)

    status, found = raw(client.crm.contacts.search_api.do_search(PublicObjectSearchRequest(
        filter_groups=[{"filters": [{"propertyName": "jobtitle", "operator": "HAS_PROPERTY"}]}],
        properties=["jobtitle", "company"], limit=10), _preload_content=False))
    assert status == 200 and found["total"] == 1
    assert_matches(contacts, base + "/search", "POST", 200, found)

    status, group = raw(client.crm.properties.groups_api.create(
        "contacts", PropertyGroupCreate(name="ai_lead_scoring", label="AI lead scoring"),
        _preload_content=False))
    assert status == 201
    assert_matches(props, "/crm/v3/properties/{objectType}/groups", "POST", 201, group)

    status, prop = raw(client.crm.properties.core_api.create("contacts", PropertyCreate(
        name="ai_lead_tier", label="AI lead tier", type="enumeration", field_type="select",
        group_name="ai_lead_scoring", options=[
            {"label": "Hot", "value": "hot", "hidden": False, "displayOrder": 0}]),
        _preload_content=False))
    assert status == 201
    assert_matches(props, "/crm/v3/properties/{objectType}", "POST", 201, prop)

    status, listed = raw(client.crm.properties.core_api.get_all("contacts",
                                                                _preload_content=False))
    assert status == 200
    assert_matches(props, "/crm/v3/properties/{objectType}", "GET", 200, listed)

    # Errors carry HubSpot's `Error` body.
    status, _, bad = http("POST", emulator.url + base, {"properties": {"no_such_property": "x"}})
    assert status == 400
    assert_matches(contacts, base, "POST", 400, bad)
    status, _, missing = http("GET", f"{emulator.url}{base}/424242")
    assert status == 404
    assert_matches(contacts, base + "/{contactId}", "GET", 404, missing)


# --------------------------------------------------------------------------- SDK round trips

def test_sdk_round_trip_create_update_read_search_purge(client: HubSpot) -> None:
    basic = client.crm.contacts.basic_api
    created = basic.create(SimplePublicObjectInputForCreate(properties={
        "email": "Asha@Example.IN", "firstname": "Asha", "numemployees": "100-500",
        "dpdp_consent_purposes": "lead_scoring;ai_enrichment",
        "hs_analytics_last_visit_timestamp": "1700000000000"}))
    assert created.properties["email"] == "asha@example.in"  # HubSpot lower-cases emails
    assert created.properties["hs_object_id"] == created.id
    assert created.properties["hs_analytics_last_visit_timestamp"] == "2023-11-14T22:13:20.000Z"

    got = basic.get_by_id(created.id, properties=["firstname", "jobtitle"])
    assert got.properties["firstname"] == "Asha" and got.properties["jobtitle"] is None
    assert basic.get_by_id("asha@example.in", id_property="email").id == created.id

    others = create_many(client, [new_contact(i) for i in range(5)])
    time.sleep(0.002)  # lastmodifieddate must move
    update = BatchInputSimplePublicObjectBatchInput(inputs=[
        {"id": i, "properties": {"jobtitle": f"Engineer {n}"}}
        for n, i in enumerate([created.id, *others[:3]])])
    updated = client.crm.contacts.batch_api.update(update)
    assert {c.id for c in updated.results} == {created.id, *others[:3]}

    read = client.crm.contacts.batch_api.read(BatchReadInputSimplePublicObjectId(
        inputs=[{"id": created.id}], properties=["jobtitle", "email"],
        properties_with_history=[]))
    contact = read.results[0]
    assert contact.properties["jobtitle"] == "Engineer 0"
    assert contact.properties["lastmodifieddate"] > created.properties["lastmodifieddate"]
    assert contact.updated_at > contact.created_at

    seen, after, totals = [], None, set()
    while True:
        page = search(client, [{"propertyName": "jobtitle", "operator": "HAS_PROPERTY"}],
                      properties=["jobtitle"], limit=3, after=after,
                      sorts=[{"propertyName": "hs_object_id", "direction": "ASCENDING"}])
        seen += [c.id for c in page.results]
        totals.add(page.total)
        if page.paging is None:
            break
        after = page.paging.next.after
    assert seen == sorted([created.id, *others[:3]], key=int) and totals == {4}

    basic.purge(PublicGdprDeleteInput(object_id=created.id))
    with pytest.raises(NotFoundException) as missing:
        basic.get_by_id(created.id)
    assert json.loads(missing.value.body)["category"] == "OBJECT_NOT_FOUND"


def test_properties_with_history_has_one_version_per_write(client: HubSpot) -> None:
    basic = client.crm.contacts.basic_api
    created = basic.create(SimplePublicObjectInputForCreate(properties={"jobtitle": "Intern"}))
    for title in ("Engineer", "Engineer", "CTO"):  # a repeated value is still a write
        basic.update(created.id, SimplePublicObjectInput(properties={"jobtitle": title}))
    got = basic.get_by_id(created.id, properties=["jobtitle"],
                          properties_with_history=["jobtitle", "no_such_property"])
    versions = got.properties_with_history["jobtitle"]
    assert [v.value for v in versions] == ["CTO", "Engineer", "Engineer", "Intern"]
    assert versions[0].timestamp >= versions[-1].timestamp
    assert set(got.properties_with_history) == {"jobtitle"}
    plain = basic.get_by_id(created.id, properties=["jobtitle"])
    assert not plain.properties_with_history
    read = client.crm.contacts.batch_api.read(BatchReadInputSimplePublicObjectId(
        inputs=[{"id": created.id}], properties=["jobtitle"],
        properties_with_history=["jobtitle"]))
    assert len(read.results[0].properties_with_history["jobtitle"]) == 4


def test_list_paging_archive_and_gdpr_by_email(client: HubSpot) -> None:
    ids = create_many(client, [new_contact(i) for i in range(7)])
    basic = client.crm.contacts.basic_api
    first = basic.get_page(limit=5)
    second = basic.get_page(limit=5, after=first.paging.next.after)
    assert [c.id for c in first.results + second.results] == ids and second.paging is None

    basic.archive(ids[0])
    with pytest.raises(NotFoundException):
        basic.get_by_id(ids[0])
    assert basic.get_by_id(ids[0], archived=True).archived is True

    basic.purge(PublicGdprDeleteInput(object_id="lead1@example.in", id_property="email"))
    with pytest.raises(NotFoundException):
        basic.get_by_id(ids[1])
    # An address erased when unknown is blocked from coming back.
    basic.purge(PublicGdprDeleteInput(object_id="gone@example.in", id_property="email"))
    with pytest.raises(ApiException) as blocked:
        basic.create(SimplePublicObjectInputForCreate(properties={"email": "gone@example.in"}))
    assert blocked.value.status == 400


def test_search_operators_sorts_and_limits(client: HubSpot) -> None:
    rows = [
        new_contact(0, jobtitle="Head of Data", hs_analytics_num_visits="3",
                    dpdp_consent_purposes="lead_scoring"),
        new_contact(1, jobtitle="Data Engineer", hs_analytics_num_visits="12",
                    dpdp_consent_purposes="lead_scoring;ai_enrichment"),
        new_contact(2, hs_analytics_num_visits="40"),
    ]
    ids = create_many(client, rows)

    def ids_for(filters: list[dict[str, Any]], **kwargs: Any) -> list[str]:
        kwargs.setdefault("sorts", [{"propertyName": "hs_object_id", "direction": "ASCENDING"}])
        return [c.id for c in search(client, filters, **kwargs).results]

    visits = "hs_analytics_num_visits"
    assert ids_for([{"propertyName": visits, "operator": "GT", "value": "5"}]) == ids[1:]
    assert ids_for([{"propertyName": visits, "operator": "LT", "value": "12"}]) == ids[:1]
    assert ids_for([{"propertyName": "email", "operator": "EQ",
                     "value": "LEAD2@example.in"}]) == ids[2:]
    assert ids_for([{"propertyName": "firstname", "operator": "NEQ", "value": "Lead0"}]) == ids[1:]
    assert ids_for([{"propertyName": "firstname", "operator": "IN",
                     "values": ["Lead0", "Lead2"]}]) == [ids[0], ids[2]]
    assert ids_for([{"propertyName": "jobtitle", "operator": "CONTAINS_TOKEN",
                     "value": "data"}]) == ids[:2]
    assert ids_for([{"propertyName": "jobtitle", "operator": "NOT_HAS_PROPERTY"}]) == ids[2:]
    assert ids_for([{"propertyName": "dpdp_consent_purposes", "operator": "EQ",
                     "value": "ai_enrichment"}]) == ids[1:2]
    assert ids_for([], sorts=[{"propertyName": visits, "direction": "DESCENDING"}]) == ids[::-1]
    assert [c.id for c in client.crm.contacts.search_api.do_search(
        PublicObjectSearchRequest(query="lead1")).results] == ids[1:2]

    with pytest.raises(ApiException) as too_many:
        search(client, [], limit=201)
    assert too_many.value.status == 400
    assert json.loads(too_many.value.body)["category"] == "VALIDATION_ERROR"


@pytest.mark.parametrize("sorts, complaint", [
    (["hs_object_id"], "sorts[0] must be an object"),  # the SDK's `list[str]` type
    ([{"direction": "ASCENDING"}], "sorts[0].propertyName is required"),
    ([{"propertyName": "createdate", "direction": "UP"}], "sorts[0].direction must be one of"),
    ("hs_object_id", "sorts must be an array"),
])
def test_sorts_must_be_in_the_documented_object_form(client: HubSpot, sorts, complaint) -> None:
    with pytest.raises(ApiException) as refused:
        search(client, [], sorts=sorts)
    body = json.loads(refused.value.body)
    assert refused.value.status == 400
    assert body["category"] == "VALIDATION_ERROR" and body["status"] == "error"
    assert complaint in body["message"] and body["correlationId"]


def test_without_a_sort_results_are_not_in_id_order(client: HubSpot) -> None:
    ids = create_many(client, [new_contact(i) for i in range(30)])
    unsorted = [c.id for c in search(client, [], limit=30).results]
    assert sorted(unsorted, key=int) == ids  # every contact, in some order ...
    assert unsorted != ids  # ... that a paging loop must not take for id order
    assert [c.id for c in search(client, [], limit=30).results] == unsorted  # but a stable one


# --------------------------------------------------------------------------- errors

def test_unknown_property_is_a_400_with_hubspots_body(client: HubSpot) -> None:
    with pytest.raises(ApiException) as error:
        client.crm.contacts.basic_api.create(SimplePublicObjectInputForCreate(
            properties={"email": "x@example.in", "favourite_colour": "teal"}))
    body = json.loads(error.value.body)
    assert error.value.status == 400
    assert body["status"] == "error" and body["category"] == "VALIDATION_ERROR"
    assert re.fullmatch(r"[0-9a-f-]{36}", body["correlationId"])
    assert body["message"].startswith("Property values were not valid: ")
    assert body["errors"][0]["code"] == "PROPERTY_DOESNT_EXIST"
    assert "X-HubSpot-RateLimit-Remaining" in error.value.headers

    ids = create_many(client, [new_contact(1)])
    with pytest.raises(ApiException) as bad_option:
        client.crm.contacts.basic_api.update(ids[0], SimplePublicObjectInput(
            properties={"lifecyclestage": "hot", "hs_object_id": "5"}))
    codes = [e["code"] for e in json.loads(bad_option.value.body)["errors"]]
    assert codes == ["INVALID_OPTION", "READ_ONLY_VALUE"]


def test_bad_or_missing_token_is_401(emulator: HubSpotEmulator) -> None:
    with pytest.raises(UnauthorizedException) as error:
        HubSpot(access_token="pat-wrong", host=emulator.url).crm.contacts.basic_api.get_page()
    body = json.loads(error.value.body)
    assert body["category"] == "INVALID_AUTHENTICATION" and body["status"] == "error"
    status, _, _ = http("GET", emulator.url + "/crm/v3/objects/contacts", token=None)
    assert status == 401
    assert emulator.stats()["unauthorized"] == 2 and emulator.stats()["requests"] == {}


def test_batch_over_100_inputs_is_a_400(client: HubSpot) -> None:
    with pytest.raises(ApiException) as error:
        client.crm.contacts.batch_api.read(BatchReadInputSimplePublicObjectId(
            inputs=[{"id": str(i)} for i in range(101)], properties=["email"],
            properties_with_history=[]))
    assert error.value.status == 400
    assert json.loads(error.value.body)["category"] == "VALIDATION_ERROR"
    with pytest.raises(ApiException):
        create_many(client, [new_contact(i) for i in range(101)])
    assert client.crm.contacts.basic_api.get_page().results == []


def test_rate_limit_answers_429_with_hubspot_headers() -> None:
    limits = RateLimits(max_requests=3, interval_seconds=10, search_per_second=100)
    with HubSpotEmulator(tokens=TOKENS, rate_limit=limits) as emu:
        url = emu.url + "/crm/v3/objects/contacts"
        remaining = []
        for _ in range(3):
            status, headers, _ = http("GET", url)
            assert status == 200
            assert headers["X-HubSpot-RateLimit-Max"] == "3"
            assert headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
            remaining.append(headers["X-HubSpot-RateLimit-Remaining"])
        assert remaining == ["2", "1", "0"]

        status, headers, body = http("GET", url)
        assert status == 429
        assert 1 <= int(headers["Retry-After"]) <= 10
        assert headers["X-HubSpot-RateLimit-Remaining"] == "0"
        assert body["category"] == "RATE_LIMITS" and body["policyName"] == "TEN_SECONDLY_ROLLING"
        # Another client has its own budget.
        assert http("GET", url, token=ADMIN_TOKEN)[0] == 200
        assert emu.stats()["rate_limited"] == {"functions": 1}

    search_limits = RateLimits(max_requests=100, search_per_second=2)
    with HubSpotEmulator(tokens=TOKENS, rate_limit=search_limits) as emu:
        client = HubSpot(access_token=FUNCTIONS_TOKEN, host=emu.url)
        search(client, [])
        search(client, [])
        with pytest.raises(ApiException) as error:
            search(client, [])
        assert error.value.status == 429 and "Retry-After" in error.value.headers
        assert json.loads(error.value.body)["policyName"] == "SECONDLY"


def test_limits_are_hubspots_by_tier() -> None:
    # HubSpot's API usage guidelines: per 10 s per app, per day per account.
    assert RateLimits() == RateLimits.for_tier("professional")
    assert (RateLimits().max_requests, RateLimits().daily) == (190, 625_000)
    assert [(limits.max_requests, limits.daily) for limits in (
        RateLimits.for_tier("free"), RateLimits.for_tier("starter"),
        RateLimits.for_tier("enterprise"), RateLimits.for_tier("starter", limit_increases=2),
    )] == [(100, 250_000), (100, 250_000), (190, 1_000_000), (250, 2_250_000)]
    with pytest.raises(ValueError):
        RateLimits.for_tier("professional", limit_increases=3)


def test_each_app_has_its_own_ten_second_limit_and_the_account_one_daily_limit() -> None:
    limits = RateLimits(max_requests=2, daily=5, search_per_second=100)
    with HubSpotEmulator(tokens=TOKENS, rate_limit=limits) as emu:
        url = emu.url + "/crm/v3/objects/contacts"
        observer = emu.add_app("observer")  # a second private app, as a test's own reader
        assert [http("GET", url)[0] for _ in range(3)] == [200, 200, 429]
        assert [http("GET", url, token=observer)[0] for _ in range(2)] == [200, 200]
        # Four requests counted today, account-wide: one more for anybody, then DAILY.
        status, headers, _ = http("GET", url, token=ADMIN_TOKEN)
        assert (status, headers["X-HubSpot-RateLimit-Daily-Remaining"]) == (200, "0")
        status, headers, body = http("GET", url, token=ADMIN_TOKEN)
        assert (status, body["policyName"]) == (429, "DAILY")
        assert int(headers["Retry-After"]) >= 1
        assert emu.stats()["rate_limited"] == {"functions": 1, "admin": 1}
        token = json.loads(urllib.request.urlopen(urllib.request.Request(
            emu.url + "/_emulator/tokens", data=b'{"client": "another"}', method="POST",
            headers={"content-type": "application/json"})).read())["token"]
        assert emu.tokens[token] == "another"


def test_injected_faults_hit_only_that_client(emulator: HubSpotEmulator, client: HubSpot) -> None:
    emulator.inject_fault("functions", 500, 1)
    emulator.inject_fault("functions", 429, 1)
    with pytest.raises(ApiException) as server_error:
        client.crm.contacts.basic_api.get_page()
    assert server_error.value.status == 500
    assert json.loads(server_error.value.body)["status"] == "error"
    # A POST: urllib3 under the SDK silently retries GETs that answer 429 with Retry-After.
    with pytest.raises(ApiException) as throttled:
        search(client, [])
    assert throttled.value.status == 429 and throttled.value.headers["Retry-After"] == "1"
    assert client.crm.contacts.basic_api.get_page().results == []

    # Over the admin API; "timeout" stalls longer than a short client timeout allows.
    status, _, _ = http("POST", emulator.url + "/_emulator/faults",
                        {"client": "functions", "status": "timeout", "count": 2}, token=None)
    assert status == 200
    assert http("GET", emulator.url + "/crm/v3/objects/contacts", token=ADMIN_TOKEN)[0] == 200
    with pytest.raises(OSError):  # the client gives up first
        http("GET", emulator.url + "/crm/v3/objects/contacts", timeout=0.1)
    started = time.monotonic()
    assert http("GET", emulator.url + "/crm/v3/objects/contacts")[0] == 504
    assert time.monotonic() - started >= 0.3
    assert emulator.stats()["faults_served"] == {"functions": 4}


def test_requests_sooner_than_retry_after_are_counted(emulator: HubSpotEmulator,
                                                     client: HubSpot) -> None:
    emulator.inject_fault("functions", 429, 1)
    client.crm.contacts.basic_api.get_page()  # urllib3 under the SDK waits, then retries
    assert emulator.stats()["early_retries"] == {}

    url = emulator.url + "/crm/v3/objects/contacts"
    emulator.inject_fault("functions", 429, 1)
    assert http("GET", url, token=FUNCTIONS_TOKEN)[0] == 429
    assert http("GET", url, token=FUNCTIONS_TOKEN)[0] == 200  # did not wait the Retry-After
    assert http("GET", url, token=ADMIN_TOKEN)[0] == 200  # another client is not held back
    assert emulator.stats()["early_retries"] == {"functions": 1}
    assert emulator.stats()["faults_served"] == {"functions": 2}


def test_requests_are_counted_per_client(emulator: HubSpotEmulator, client: HubSpot) -> None:
    admin = HubSpot(access_token=ADMIN_TOKEN, host=emulator.url)
    create_many(admin, [new_contact(1)])
    admin.crm.properties.core_api.get_all("contacts")
    client.crm.contacts.basic_api.get_page()
    http("GET", emulator.url + "/_emulator/contacts", token=None)  # admin API: not counted
    status, _, stats = http("GET", emulator.url + "/_emulator/stats", token=None)
    assert status == 200 and stats["requests"] == {"admin": 2, "functions": 1}
    assert stats["operations"]["functions"] == {"GET /crm/v3/objects/contacts": 1}
    emulator.reset()
    assert emulator.stats()["requests"] == {} and emulator.contacts() == []


# --------------------------------------------------------------------------- webhooks

def _assert_signed(request: dict[str, Any], url: str, secret: str = SECRET) -> None:
    headers = request["headers"]
    assert Signature.is_valid(
        signature=headers["X-HubSpot-Signature-v3"], client_secret=secret,
        request_body=request["body"].decode(), http_uri=url, http_method="POST",
        signature_version="v3", timestamp=headers["X-HubSpot-Request-Timestamp"])
    assert Signature.is_valid(
        signature=headers["X-HubSpot-Signature"], client_secret=secret,
        request_body=request["body"].decode(), signature_version="v1")


def test_webhooks_are_signed_batches_in_hubspots_shape(
        emulator: HubSpotEmulator, client: HubSpot, receiver: Receiver) -> None:
    emulator.subscribe(receiver.url, property_names=["dpdp_consent_purposes"])
    contact = client.crm.contacts.basic_api.create(SimplePublicObjectInputForCreate(
        properties={"email": "w@example.in", "dpdp_consent_purposes": "lead_scoring"}))
    client.crm.contacts.basic_api.update(contact.id, SimplePublicObjectInput(
        properties={"dpdp_consent_purposes": "", "jobtitle": "CFO"}))
    client.crm.contacts.basic_api.archive(contact.id)
    client.crm.contacts.basic_api.purge(PublicGdprDeleteInput(object_id=contact.id))
    assert emulator.flush(5)

    for request in receiver.requests:
        _assert_signed(request, receiver.url)
        assert request["path"] == "/webhooks/hubspot?stage=t"
    events = receiver.events()
    assert [(e["subscriptionType"], e.get("propertyValue")) for e in events] == [
        ("contact.creation", None), ("contact.propertyChange", "lead_scoring"),
        ("contact.propertyChange", ""), ("contact.deletion", None),
        ("contact.privacyDeletion", None)]
    ids = [e["eventId"] for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    creation = events[0]
    assert set(creation) == {"eventId", "subscriptionId", "portalId", "appId", "occurredAt",
                             "subscriptionType", "attemptNumber", "objectId", "changeFlag",
                             "changeSource"}
    assert creation["objectId"] == int(contact.id) and creation["attemptNumber"] == 0
    assert creation["changeFlag"] == "CREATED" and creation["portalId"] == emulator.portal_id
    assert abs(creation["occurredAt"] - time.time() * 1000) < 60_000
    assert events[1]["propertyName"] == "dpdp_consent_purposes"
    assert emulator.stats()["delivered"] == 5 and emulator.stats()["pending"] == 0


def test_generic_format_apps_get_object_events_for_contacts(
        emulator: HubSpotEmulator, client: HubSpot, receiver: Receiver) -> None:
    app = emulator.subscribe(receiver.url, property_names=["jobtitle"], webhook_format="generic")
    assert {s["eventType"] for s in app["subscriptions"]} == {
        "object.creation", "object.propertyChange", "object.deletion", "object.merge",
        "contact.privacyDeletion"}
    assert all(s.get("objectTypeId") == "0-1" for s in app["subscriptions"]
               if s["eventType"].startswith("object."))
    basic = client.crm.contacts.basic_api
    first = basic.create(SimplePublicObjectInputForCreate(properties={"jobtitle": "CTO"}))
    second = basic.create(SimplePublicObjectInputForCreate(properties={"email": "g@example.in"}))
    basic.merge(PublicMergeInput(primary_object_id=first.id, object_id_to_merge=second.id))
    basic.archive(first.id)
    basic.purge(PublicGdprDeleteInput(object_id=first.id))
    assert emulator.flush(5)
    events = receiver.events()
    assert [(e["subscriptionType"], e.get("objectTypeId")) for e in events] == [
        ("object.creation", "0-1"), ("object.propertyChange", "0-1"),
        ("object.creation", "0-1"), ("object.merge", "0-1"), ("object.deletion", "0-1"),
        ("contact.privacyDeletion", None)]
    merge = events[3]
    assert (merge["primaryObjectId"], merge["mergedObjectIds"]) == (int(first.id),
                                                                   [int(second.id)])
    with pytest.raises(ValueError, match="generic format"):
        emulator.subscribe(receiver.url, types=["contact.creation"], webhook_format="generic")


def test_event_ids_can_be_reused_as_hubspot_allows(
        emulator: HubSpotEmulator, receiver: Receiver) -> None:
    emulator.subscribe(receiver.url, types=["contact.creation"])
    emulator.event_id_pool = 3
    emulator.create_contacts([{"email": f"reuse{i}@example.in"} for i in range(7)])
    assert emulator.flush(5)
    assert [e["eventId"] for e in receiver.events()] == [101, 102, 103, 101, 102, 103, 101]


def test_more_than_100_events_are_split(emulator: HubSpotEmulator, receiver: Receiver) -> None:
    emulator.subscribe(receiver.url, types=["contact.creation"])
    emulator.create_contacts([{"email": f"bulk{i}@example.in"} for i in range(150)])
    assert emulator.flush(5)
    sizes = [len(json.loads(r["body"])) for r in receiver.requests]
    assert sizes == [100, 50]
    assert len({e["eventId"] for e in receiver.events()}) == 150
    for request in receiver.requests:
        _assert_signed(request, receiver.url)


def test_failed_deliveries_are_retried_with_higher_attempt_numbers(
        emulator: HubSpotEmulator) -> None:
    flaky = Receiver(fail_first=2)
    down = Receiver(fail_first=10**6, status=503)
    refused = Receiver(fail_first=10**6, status=400)
    try:
        emulator.subscribe(flaky.url, types=["contact.creation"])
        emulator.subscribe(down.url, types=["contact.creation"], client_secret="other")
        emulator.subscribe(refused.url, types=["contact.creation"])
        emulator.create_contacts([{"email": "retry@example.in"}])
        assert emulator.flush(10)
        attempts = [json.loads(r["body"])[0]["attemptNumber"] for r in flaky.requests]
        assert attempts == [0, 1, 2]
        assert len({json.loads(r["body"])[0]["eventId"] for r in flaky.requests}) == 1
        for request in flaky.requests:
            _assert_signed(request, flaky.url)
        assert len(down.requests) == 4  # webhook_max_attempts
        _assert_signed(down.requests[-1], down.url, secret="other")
        assert len(refused.requests) == 1  # 4xx other than 429 is not retried, as HubSpot
        stats = emulator.stats()
        assert stats["delivered"] == 1 and stats["failed"] == 2
        assert stats["webhook_retries"] == 2 + 3
    finally:
        for r in (flaky, down, refused):
            r.close()


def test_webhook_sender_signs_as_the_sdk_validates(receiver: Receiver) -> None:
    body = b'[{"eventId":1}]'
    expected = Signature.get_signature(SECRET, body.decode(), "v3", receiver.url, "POST",
                                       "1700000000000")
    assert webhook_sender.sign_v3(SECRET, "POST", receiver.url, body, 1700000000000) == expected

    event = {"eventId": 7, "subscriptionId": 1, "portalId": 62515, "appId": 54321,
             "occurredAt": int(time.time() * 1000), "subscriptionType": "contact.creation",
             "attemptNumber": 0, "objectId": 123, "changeFlag": "CREATED", "changeSource": "CRM"}
    status, _ = webhook_sender.deliver(receiver.url, [event], SECRET)
    assert status == 204
    _assert_signed(receiver.requests[0], receiver.url)
    with pytest.raises(ValueError):
        webhook_sender.deliver(receiver.url, [event] * 101, SECRET)
    with pytest.raises(OSError):
        webhook_sender.deliver("http://127.0.0.1:9/nothing", [event], SECRET, timeout=1)


def test_admin_http_api(emulator: HubSpotEmulator, receiver: Receiver) -> None:
    admin = emulator.url + "/_emulator"
    status, _, app = http("POST", admin + "/subscriptions", {
        "target_url": receiver.url, "client_secret": "s3", "app_id": 7, "portal_id": 8,
        "types": ["contact.creation", "contact.propertyChange"],
        "property_names": ["email", "jobtitle"]}, token=None)
    assert status == 201
    assert [(s["eventType"], s.get("propertyName")) for s in app["subscriptions"]] == [
        ("contact.creation", None), ("contact.propertyChange", "email"),
        ("contact.propertyChange", "jobtitle")]
    status, _, created = http("POST", admin + "/contacts",
                              {"contacts": [{"email": "ui@example.in"}]}, token=None)
    assert status == 201
    assert http("POST", admin + "/flush", {"timeout": 5}, token=None)[2] == {"drained": True}
    assert [(e["appId"], e["portalId"], e["subscriptionType"]) for e in receiver.events()] == [
        (7, 8, "contact.creation"), (7, 8, "contact.propertyChange")]
    _assert_signed(receiver.requests[0], receiver.url, secret="s3")
    dump = http("GET", admin + "/contacts", token=None)[2]["results"]
    assert [c["id"] for c in dump] == created["ids"]
    assert http("POST", admin + "/reset", token=None)[0] == 200
    assert http("GET", admin + "/contacts", token=None)[2]["results"] == []


def test_runs_standalone_and_prints_one_json_line() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT / "infra" / "local"), str(ROOT / "shared"), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen(
        [sys.executable, "-m", "leadscore_local.hubspot_emulator", "--port", "0",
         "--token", "tok=cli"], stdout=subprocess.PIPE, env=env, text=True)
    try:
        info = json.loads(process.stdout.readline())
        assert info["tokens"] == {"tok": "cli"}
        status, _, _ = http("GET", info["url"] + "/crm/v3/objects/contacts", token="tok")
        assert status == 200
        assert http("GET", info["admin_url"] + "/stats", token=None)[2]["requests"] == {"cli": 1}
    finally:
        process.terminate()
        assert process.wait(timeout=5) == 0
