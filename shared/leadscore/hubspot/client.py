"""The HubSpot CRM calls leadscore makes, on the official `hubspot-api-client` SDK.

Contacts: batch read and update, search (`HubSpotClient`) and GDPR delete (`GdprDeleter`).
`HubSpotClient` adds what the SDK leaves to callers: chunking at HubSpot's batch limit of 100,
bounded retries (429 honouring `Retry-After`, 5xx and timeouts with jittered backoff — done by
urllib3's `Retry`, which the SDK accepts), a request budget per second shared by every client
of the app (in DynamoDB across Lambda containers, `leadscore.hubspot.shared_budget`; a token
bucket per process elsewhere), pacing from HubSpot's `X-HubSpot-RateLimit-*` headers, a
request timeout, request counters, and exceptions that never carry HubSpot response bodies
(they can echo property values, i.e. personal data).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import batched
from typing import Any, Protocol

import urllib3
from hubspot import HubSpot
from hubspot.crm.contacts import (
    BatchInputSimplePublicObjectBatchInput,
    BatchReadInputSimplePublicObjectId,
    PublicGdprDeleteInput,
    PublicObjectSearchRequest,
    SimplePublicObjectBatchInput,
    SimplePublicObjectId,
)
from hubspot.crm.contacts.exceptions import ApiException
from urllib3.exceptions import MaxRetryError
from urllib3.util.retry import Retry

from leadscore.hubspot.history import HISTORY_BATCH_LIMIT, ContactHistory, contact_history

DEFAULT_BASE_URL = "https://api.hubapi.com"
BATCH_LIMIT = 100  # HubSpot's maximum inputs per batch read/update/create
SEARCH_PAGE = 200  # HubSpot's largest search page (`limit`)
# (connect, read) seconds: HubSpot answers batch calls in well under a second when healthy.
DEFAULT_TIMEOUT = (3.05, 6.0)
MAX_ATTEMPTS = 4
MAX_RETRY_AFTER_SECONDS = 10.0  # HubSpot's limits are per 10 s window; never sleep longer
NOT_FOUND_CATEGORY = "OBJECT_NOT_FOUND"
# The whole app's budget (HubSpotRequestsPerSecond): at most 12 x 8 = 96 requests in any
# rolling 10 s (leadscore.hubspot.shared_budget), under every tier's per-app limit (100 per
# 10 s for Free and Starter).
DEFAULT_REQUESTS_PER_SECOND = 8.0
# HubSpot's search endpoints allow 5 requests per second per token, below the general limit.
SEARCH_REQUESTS_PER_SECOND = 4.0
REQUESTS_PER_SECOND_ENV = "HUBSPOT_REQUESTS_PER_SECOND"
BUDGET_TABLE_ENV = "HUBSPOT_BUDGET_TABLE"  # the app-wide budget's DynamoDB table
# When HubSpot says fewer than this share of the window is left, slow down before the 429.
LOW_WATER_FRACTION = 0.05


class HubSpotError(Exception):
    """A HubSpot call failed; carries the status and HubSpot's error category, never the body."""

    def __init__(self, operation: str, status: int, category: str | None = None):
        self.operation = operation
        self.status = status
        self.category = category
        super().__init__(f"HubSpot {operation} failed: status={status} category={category}")


class HubSpotUnavailable(HubSpotError):
    """Rate limited, 5xx or unreachable after bounded retries: retry later. `retry_after` is
    HubSpot's `Retry-After` (seconds) on the last answer, when it gave one."""

    def __init__(self, operation: str, status: int, category: str | None = None,
                 retry_after: float | None = None):
        self.retry_after = retry_after
        super().__init__(operation, status, category)


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """`Retry-After` in seconds (HubSpot sends whole seconds), or None."""
    value = (headers or {}).get("Retry-After")
    return float(value) if value and value.strip().isdigit() else None


class SearchOrderError(RuntimeError):
    """A search asked for ascending `hs_object_id` returned ids that do not increase: paging
    on from the last id would skip contacts, so the paging loop stops instead."""


def last_ascending_id(contacts: Sequence[Contact], after_id: int = 0) -> int:
    """The last id of a search page sorted by ascending `hs_object_id` (whose filter asked for
    ids above `after_id`; HubSpot's ids are positive); raises SearchOrderError when the ids do
    not only increase."""
    last = after_id
    for contact in contacts:
        contact_id = int(contact.id)
        if contact_id <= last:
            raise SearchOrderError(
                f"HubSpot search returned contact {contact_id} after {last} although it was "
                "asked for ascending hs_object_id; stopping rather than skip contacts")
        last = contact_id
    return last


class HubSpotBatchError(HubSpotError):
    """A batch call partly failed; `failed_ids` did not take effect, the others did."""

    def __init__(self, operation: str, failed_ids: Iterable[str], category: str | None = None):
        self.failed_ids = frozenset(failed_ids)
        super().__init__(operation, 207, category)


@dataclass(frozen=True)
class Contact:
    id: str
    properties: dict[str, str | None]


class ContactProperties(Protocol):
    """Reading and writing contact properties by id, in batches (`HubSpotClient`)."""

    def batch_read(self, ids: Iterable[str],
                   properties: Iterable[str]) -> dict[str, dict[str, str | None]]: ...

    def batch_update(self, updates: Mapping[str, Mapping[str, str]]) -> None: ...


class ContactSearch(Protocol):
    """CRM search pages and batch reads by id (`HubSpotClient`)."""

    def search(self, filter_groups: Sequence[Mapping[str, Any]], properties: Sequence[str],
               after: str | None = None, limit: int = BATCH_LIMIT,
               sorts: Sequence[str] = ()) -> tuple[list[Contact], str | None]: ...

    def batch_read(self, ids: Iterable[str],
                   properties: Iterable[str]) -> dict[str, dict[str, str | None]]: ...


class Budget(Protocol):
    """What a client draws its requests from: `RequestBudget` (this process) or
    `leadscore.hubspot.shared_budget.SharedRequestBudget` (the whole app)."""

    def acquire(self) -> float: ...

    def pause(self, seconds: float) -> None: ...

    def observe(self, headers: Mapping[str, str] | None) -> None: ...


def low_water_pause(headers: Mapping[str, str] | None) -> float:
    """Seconds to wait when `X-HubSpot-RateLimit-Remaining/-Max/-Interval-Milliseconds` say
    the app's window is nearly used up: roughly one request's share of the window per request
    below the low-water mark; 0 otherwise."""
    if not headers:
        return 0.0
    try:
        remaining = int(headers.get("X-HubSpot-RateLimit-Remaining", ""))
        limit = int(headers.get("X-HubSpot-RateLimit-Max", ""))
        interval = int(headers.get("X-HubSpot-RateLimit-Interval-Milliseconds", "")) / 1000
    except (TypeError, ValueError):
        return 0.0
    low_water = max(1, int(limit * LOW_WATER_FRACTION))
    if limit > 0 and remaining <= low_water:
        return (low_water - remaining + 1) * interval / limit
    return 0.0


class RequestBudget:
    """A token bucket: `per_second` requests per second on average, bursts up to `burst`.

    Callers reserve a token and sleep until it is theirs, so concurrent threads queue fairly
    instead of polling. `pause` stops everyone (HubSpot said to wait); `observe` reads
    HubSpot's rate-limit headers and slows down when the app's window is nearly used up.
    """

    def __init__(self, per_second: float, burst: float | None = None, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        if per_second <= 0:
            raise ValueError("per_second must be positive")
        self.per_second = per_second
        self.capacity = max(1.0, per_second if burst is None else burst)
        self._clock, self._sleep = clock, sleep
        self._tokens = self.capacity
        self._updated = clock()
        self._paused_until = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Takes one token, sleeping as long as needed; returns the seconds waited."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity,
                               self._tokens + (now - self._updated) * self.per_second)
            self._updated = now
            self._tokens -= 1
            wait = max(self._paused_until - now,
                       -self._tokens / self.per_second if self._tokens < 0 else 0.0)
        if wait > 0:
            self._sleep(wait)
        return wait

    def pause(self, seconds: float) -> None:
        """No request from this process for `seconds` (bounded by MAX_RETRY_AFTER_SECONDS)."""
        seconds = min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)

    def observe(self, headers: Mapping[str, str] | None) -> None:
        """Paces on HubSpot's rate-limit headers (`low_water_pause`)."""
        pause = low_water_pause(headers)
        if pause:
            self.pause(pause)


_shared_budgets: dict[tuple[str | None, float], Budget] = {}
_shared_lock = threading.Lock()


def shared_budget(per_second: float | None = None) -> Budget:
    """The budget every client of this process draws from, for this rate (default
    `HUBSPOT_REQUESTS_PER_SECOND`, else DEFAULT_REQUESTS_PER_SECOND): the whole app's in
    DynamoDB when `HUBSPOT_BUDGET_TABLE` names its table (the Lambdas), else this process's
    token bucket (the CLI tools, tests)."""
    if per_second is None:
        per_second = float(os.environ.get(REQUESTS_PER_SECOND_ENV) or DEFAULT_REQUESTS_PER_SECOND)
    table = os.environ.get(BUDGET_TABLE_ENV) or None
    with _shared_lock:
        if (table, per_second) not in _shared_budgets:
            if table:
                from leadscore.hubspot.shared_budget import SharedRequestBudget

                budget: Budget = SharedRequestBudget(table, max(1, int(per_second)))
            else:
                budget = RequestBudget(per_second)
            _shared_budgets[(table, per_second)] = budget
        return _shared_budgets[(table, per_second)]


# Per process, as shared_budget (HubSpot's limit is per token). No burst: 4 evenly spaced.
_search_budget = RequestBudget(SEARCH_REQUESTS_PER_SECOND, burst=1)


class RequestMeter:
    """What one client sent: every HTTP attempt (retries included, as HubSpot counts them),
    the 429s it met, and the budget each attempt draws from."""

    def __init__(self, budget: Budget):
        self.budget = budget
        self.requests = 0
        self.retries = 0
        self.throttled = 0
        self._lock = threading.Lock()

    def before_request(self, retry: bool = False) -> None:
        self.budget.acquire()
        with self._lock:
            self.requests += 1
            self.retries += int(retry)

    def after_response(self, status: int, headers: Mapping[str, str] | None) -> None:
        if status == 429:
            with self._lock:
                self.throttled += 1
            retry_after = retry_after_seconds(headers)
            if retry_after is not None:
                self.budget.pause(retry_after)  # every thread waits, not just this one
        self.budget.observe(headers)


class _MeteredRetry(Retry):
    """urllib3's `Retry` (Retry-After on 429/503, jittered exponential backoff on 5xx and
    timeouts) that also charges every retried attempt to the client's meter and budget."""

    meter: RequestMeter | None = None

    def new(self, **kw: Any) -> _MeteredRetry:
        copy = super().new(**kw)
        copy.meter = self.meter
        return copy

    def increment(self, method: str | None = None, url: str | None = None,
                  response: Any = None, error: Exception | None = None,
                  _pool: Any = None, _stacktrace: Any = None) -> Retry:
        if self.meter is not None and response is not None:
            self.meter.after_response(response.status, response.headers)
        wait = retry_after_seconds(response.headers) if response is not None else None
        if wait is not None and wait > self.retry_after_max:
            # HubSpot says not before then (a daily limit, say): another try now would only
            # count against the limit. The caller gets the 429 and waits outside the call.
            raise MaxRetryError(_pool, url, reason=None)  # type: ignore[arg-type]
        return super().increment(method, url, response, error, _pool, _stacktrace)

    def sleep(self, response: Any = None) -> None:
        super().sleep(response)
        if self.meter is not None:
            self.meter.before_request(retry=True)


def default_retry() -> Retry:
    return _MeteredRetry(
        total=MAX_ATTEMPTS - 1,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=None,  # batch read/update and search are POSTs that are safe to repeat
        backoff_factor=0.5,
        backoff_jitter=0.5,
        backoff_max=8.0,
        respect_retry_after_header=True,
        # Sleeping longer is better left to the SQS visibility timeout.
        retry_after_max=MAX_RETRY_AFTER_SECONDS,
        raise_on_status=False,  # hand the last response to the SDK, which raises ApiException
    )


def _category(body: Any) -> str | None:
    try:
        return json.loads(body).get("category")
    except (TypeError, ValueError, AttributeError):
        return None


class HubSpotClient:
    """Contacts batch read/update, search and create with retries, a request budget and
    request accounting.

    `request_count` counts HTTP requests sent, retries included (what HubSpot's rate limit
    and the local stack's `/stats` count); `throttled_count` the 429 answers among them.
    """

    def __init__(
        self,
        access_token: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        retry: Retry | None = None,
        budget: Budget | None = None,
    ):
        self.meter = RequestMeter(budget or shared_budget())
        retry = retry or default_retry()
        if isinstance(retry, _MeteredRetry):
            retry.meter = self.meter
        sdk = HubSpot(access_token=access_token, host=base_url.rstrip("/"), retry=retry)
        # Each SDK property access builds a new ApiClient (and connection pool): keep one each.
        self._batch_api = sdk.crm.contacts.batch_api
        self._search_api = sdk.crm.contacts.search_api
        self._timeout = timeout

    @property
    def request_count(self) -> int:
        return self.meter.requests

    @property
    def throttled_count(self) -> int:
        return self.meter.throttled

    def _call(self, operation: str, method: Any, request: Any) -> Any:
        """`method` is an SDK `*_with_http_info` method: its headers feed the budget."""
        self.meter.before_request()
        try:
            data, status, headers = method(request, _request_timeout=self._timeout,
                                           _return_http_data_only=False)
        except ApiException as error:
            status = int(error.status or 0)
            self.meter.after_response(status, error.headers)
            category = _category(error.body)
            if status == 429 or status >= 500 or status == 0:
                raise HubSpotUnavailable(operation, status, category,
                                         retry_after_seconds(error.headers)) from None
            raise HubSpotError(operation, status, category) from None
        except urllib3.exceptions.HTTPError as error:  # timeouts, refused connections
            raise HubSpotUnavailable(operation, 0, type(error).__name__) from None
        self.meter.after_response(status, headers)
        return data

    def batch_read(
        self, ids: Iterable[str], properties: Iterable[str]
    ) -> dict[str, dict[str, str | None]]:
        """Reads contacts by id, 100 per request; ids HubSpot does not know are absent."""
        wanted = list(dict.fromkeys(properties))
        return {str(obj.id): {name: (obj.properties or {}).get(name) for name in wanted}
                for obj in self._read(ids, wanted, [], BATCH_LIMIT)}

    def batch_read_history(self, ids: Iterable[str], properties: Iterable[str],
                           with_history: Iterable[str]) -> dict[str, ContactHistory]:
        """Reads contacts by id with the version history of `with_history`, 50 per request
        (HubSpot's limit for history reads); ids HubSpot does not know are absent."""
        wanted, history_of = list(dict.fromkeys(properties)), list(dict.fromkeys(with_history))
        return {str(obj.id): contact_history(obj, wanted, history_of)
                for obj in self._read(ids, wanted, history_of, HISTORY_BATCH_LIMIT)}

    def _read(self, ids: Iterable[str], wanted: list[str], history_of: list[str],
              chunk_size: int) -> Iterator[Any]:
        """The SDK's result objects of batch reads, `chunk_size` ids per request."""
        for chunk in batched(dict.fromkeys(str(i) for i in ids), chunk_size):
            request = BatchReadInputSimplePublicObjectId(
                inputs=[SimplePublicObjectId(id=i) for i in chunk], properties=wanted,
                properties_with_history=history_of,
            )
            response = self._call("batch read", self._batch_api.read_with_http_info, request)
            errors = [e for e in (getattr(response, "errors", None) or [])
                      if e.category != NOT_FOUND_CATEGORY]
            if errors:  # 207 for a reason other than deleted/unknown contacts
                raise HubSpotError("batch read", 207, errors[0].category)
            yield from response.results or []

    def batch_update(self, updates: Mapping[str, Mapping[str, str]]) -> None:
        """Writes properties, 100 contacts per request.

        Raises `HubSpotBatchError` naming the contacts that were not updated when HubSpot
        reports a partial failure (207); the other contacts' writes took effect.
        """
        ids = list(updates)
        failed: set[str] = set()
        category: str | None = None
        for start in range(0, len(ids), BATCH_LIMIT):
            chunk = ids[start:start + BATCH_LIMIT]
            request = BatchInputSimplePublicObjectBatchInput(inputs=[
                SimplePublicObjectBatchInput(id=i, properties=dict(updates[i])) for i in chunk
            ])
            try:
                response = self._call("batch update", self._batch_api.update_with_http_info,
                                      request)
            except HubSpotError as error:
                if start == 0:
                    raise  # nothing written yet: the plain error says it all
                # Earlier chunks were written: name exactly what was not.
                raise HubSpotBatchError("batch update", failed.union(ids[start:]),
                                        error.category) from None
            errors = getattr(response, "errors", None) or []
            if errors:
                done = {str(obj.id) for obj in response.results or []}
                failed.update(i for i in chunk if i not in done)
                category = errors[0].category
        if failed:
            raise HubSpotBatchError("batch update", failed, category)

    def search(
        self,
        filter_groups: Sequence[Mapping[str, Any]],
        properties: Sequence[str],
        after: str | None = None,
        limit: int = BATCH_LIMIT,
        sorts: Sequence[str] = (),
    ) -> tuple[list[Contact], str | None]:
        """One page of CRM search; `filter_groups` use the API's JSON shape
        (`[{"filters": [{"propertyName": ..., "operator": ...}]}]`), `sorts` are property
        names, ascending. They are sent in the documented object form
        (`{"propertyName": ..., "direction": "ASCENDING"}`): the SDK's type says strings, which
        HubSpot's search guide does not. Returns (contacts, next cursor or None)."""
        request = PublicObjectSearchRequest(
            filter_groups=[dict(group) for group in filter_groups], properties=list(properties),
            limit=limit, after=after,
            sorts=[{"propertyName": name, "direction": "ASCENDING"} for name in sorts],
        )
        _search_budget.acquire()  # then the general budget, in `_call`
        response = self._call("search", self._search_api.do_search_with_http_info, request)
        contacts = [Contact(id=str(obj.id), properties=dict(obj.properties or {}))
                    for obj in response.results or []]
        paging = response.paging
        next_after = paging.next.after if paging and paging.next else None
        return contacts, next_after


class GdprDeleter:
    """HubSpot's GDPR delete (`POST /crm/v3/objects/contacts/gdpr-delete`), one contact per call
    (HubSpot has no batch form), with `HubSpotClient`'s retries and process-wide request budget.
    """

    def __init__(self, access_token: str, base_url: str = DEFAULT_BASE_URL, *,
                 timeout: float | tuple[float, float] = DEFAULT_TIMEOUT):
        self.meter = RequestMeter(shared_budget())
        retry = default_retry()
        retry.meter = self.meter
        self._basic_api = HubSpot(access_token=access_token, host=base_url.rstrip("/"),
                                  retry=retry).crm.contacts.basic_api
        self._timeout = timeout

    def gdpr_delete(self, contact_id: str) -> bool:
        """Deletes the contact and its history; False if HubSpot does not have it."""
        self.meter.before_request()
        try:
            _, status, headers = self._basic_api.purge_with_http_info(
                PublicGdprDeleteInput(object_id=str(contact_id)),
                _request_timeout=self._timeout, _return_http_data_only=False)
        except ApiException as error:  # never the body: it can quote the contact
            status = int(error.status or 0)
            self.meter.after_response(status, error.headers)
            if status == 404:
                return False
            if status == 429 or status >= 500 or status == 0:
                raise HubSpotUnavailable("gdpr delete", status,
                                         retry_after=retry_after_seconds(error.headers)) from None
            raise HubSpotError("gdpr delete", status) from None
        self.meter.after_response(status, headers)
        return True
