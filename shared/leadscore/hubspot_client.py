"""The HubSpot CRM calls leadscore makes, on the official `hubspot-api-client` SDK.

`HubSpotClient` adds what the SDK leaves to callers: chunking at HubSpot's batch limit of 100,
bounded retries (429 honouring `Retry-After`, 5xx and timeouts with jittered backoff — done by
urllib3's `Retry`, which the SDK accepts), a request timeout, a request counter, and exceptions
that never carry HubSpot response bodies (they can echo property values, i.e. personal data).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import urllib3
from hubspot import HubSpot
from hubspot.crm.contacts import (
    BatchInputSimplePublicObjectBatchInput,
    BatchInputSimplePublicObjectBatchInputForCreate,
    BatchReadInputSimplePublicObjectId,
    PublicObjectSearchRequest,
    SimplePublicObjectBatchInput,
    SimplePublicObjectId,
    SimplePublicObjectInputForCreate,
)
from hubspot.crm.contacts.exceptions import ApiException
from urllib3.util.retry import Retry

DEFAULT_BASE_URL = "https://api.hubapi.com"
BATCH_LIMIT = 100  # HubSpot's maximum inputs per batch read/update/create
# (connect, read) seconds: HubSpot answers batch calls in well under a second when healthy.
DEFAULT_TIMEOUT = (3.05, 6.0)
MAX_ATTEMPTS = 4
MAX_RETRY_AFTER_SECONDS = 10.0  # HubSpot's limits are per 10 s window; never sleep longer
NOT_FOUND_CATEGORY = "OBJECT_NOT_FOUND"

# Contact properties leadscore writes (DESIGN.md; created by `leadscore hubspot setup`).
SCORE_PROPERTIES: tuple[str, ...] = (
    "ai_lead_score", "ai_lead_probability", "ai_lead_tier", "ai_lead_reasons",
    "ai_lead_model_version", "ai_lead_scored_at",
)
ENRICHMENT_PROPERTIES: tuple[str, ...] = (
    "ai_lead_summary", "ai_lead_next_action", "ai_lead_needs_review", "ai_lead_review_reason",
)
AI_PROPERTIES: tuple[str, ...] = SCORE_PROPERTIES + ENRICHMENT_PROPERTIES


class HubSpotError(Exception):
    """A HubSpot call failed; carries the status and HubSpot's error category, never the body."""

    def __init__(self, operation: str, status: int, category: str | None = None):
        self.operation = operation
        self.status = status
        self.category = category
        super().__init__(f"HubSpot {operation} failed: status={status} category={category}")


class HubSpotUnavailable(HubSpotError):
    """Rate limited, 5xx or unreachable after bounded retries: retry later (SQS will)."""


class HubSpotBatchError(HubSpotError):
    """A batch call partly failed; `failed_ids` did not take effect, the others did."""

    def __init__(self, operation: str, failed_ids: Iterable[str], category: str | None = None):
        self.failed_ids = frozenset(failed_ids)
        super().__init__(operation, 207, category)


@dataclass(frozen=True)
class Contact:
    id: str
    properties: dict[str, str | None]


class _CappedRetry(Retry):
    """urllib3 `Retry` honours `Retry-After` on 429/503; this caps it so a Lambda never sleeps
    past its budget (a long wait is better left to the SQS visibility timeout)."""

    def get_retry_after(self, response: Any) -> float | None:
        seconds = super().get_retry_after(response)
        return None if seconds is None else min(seconds, MAX_RETRY_AFTER_SECONDS)


def default_retry() -> Retry:
    return _CappedRetry(
        total=MAX_ATTEMPTS - 1,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=None,  # batch read/update and search are POSTs that are safe to repeat
        backoff_factor=0.5,
        backoff_jitter=0.5,
        backoff_max=8.0,
        respect_retry_after_header=True,
        raise_on_status=False,  # hand the last response to the SDK, which raises ApiException
    )


def _chunks(items: Sequence[str], size: int = BATCH_LIMIT) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _category(body: Any) -> str | None:
    try:
        return json.loads(body).get("category")
    except (TypeError, ValueError, AttributeError):
        return None


class HubSpotClient:
    """Contacts batch read/update, search and create with retries and request accounting.

    `request_count` counts API calls issued (a call retried by urllib3 counts once).
    """

    def __init__(
        self,
        access_token: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        retry: Retry | None = None,
    ):
        sdk = HubSpot(access_token=access_token, host=base_url.rstrip("/"),
                      retry=retry or default_retry())
        # Each SDK property access builds a new ApiClient (and connection pool): keep one each.
        self._batch_api = sdk.crm.contacts.batch_api
        self._search_api = sdk.crm.contacts.search_api
        self._timeout = timeout
        self.request_count = 0

    def _call(self, operation: str, method: Any, request: Any) -> Any:
        self.request_count += 1
        try:
            return method(request, _request_timeout=self._timeout)
        except ApiException as error:
            status = int(error.status or 0)
            category = _category(error.body)
            if status == 429 or status >= 500 or status == 0:
                raise HubSpotUnavailable(operation, status, category) from None
            raise HubSpotError(operation, status, category) from None
        except urllib3.exceptions.HTTPError as error:  # timeouts, refused connections
            raise HubSpotUnavailable(operation, 0, type(error).__name__) from None

    def batch_read(
        self, ids: Iterable[str], properties: Iterable[str]
    ) -> dict[str, dict[str, str | None]]:
        """Reads contacts by id, 100 per request; ids HubSpot does not know are absent."""
        unique_ids = list(dict.fromkeys(str(i) for i in ids))
        wanted = list(dict.fromkeys(properties))
        found: dict[str, dict[str, str | None]] = {}
        for chunk in _chunks(unique_ids):
            request = BatchReadInputSimplePublicObjectId(
                inputs=[SimplePublicObjectId(id=i) for i in chunk], properties=wanted,
                properties_with_history=[],
            )
            response = self._call("batch read", self._batch_api.read, request)
            errors = [e for e in (getattr(response, "errors", None) or [])
                      if e.category != NOT_FOUND_CATEGORY]
            if errors:  # 207 for a reason other than deleted/unknown contacts
                raise HubSpotError("batch read", 207, errors[0].category)
            for obj in response.results or []:
                found[str(obj.id)] = {name: (obj.properties or {}).get(name) for name in wanted}
        return found

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
                response = self._call("batch update", self._batch_api.update, request)
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
    ) -> tuple[list[Contact], str | None]:
        """One page of CRM search; `filter_groups` use the API's JSON shape
        (`[{"filters": [{"propertyName": ..., "operator": ...}]}]`). Returns (contacts, next
        cursor or None)."""
        request = PublicObjectSearchRequest(
            filter_groups=[dict(group) for group in filter_groups], properties=list(properties),
            limit=limit, after=after, sorts=[],
        )
        response = self._call("search", self._search_api.do_search, request)
        contacts = [Contact(id=str(obj.id), properties=dict(obj.properties or {}))
                    for obj in response.results or []]
        paging = response.paging
        next_after = paging.next.after if paging and paging.next else None
        return contacts, next_after

    def create_contacts(self, rows: Sequence[Mapping[str, str]]) -> list[str]:
        """Creates contacts, 100 per request; returns the new ids (HubSpot's order)."""
        created: list[str] = []
        for start in range(0, len(rows), BATCH_LIMIT):
            request = BatchInputSimplePublicObjectBatchInputForCreate(inputs=[
                SimplePublicObjectInputForCreate(properties=dict(row), associations=[])
                for row in rows[start:start + BATCH_LIMIT]
            ])
            response = self._call("batch create", self._batch_api.create, request)
            if getattr(response, "errors", None):
                raise HubSpotError("batch create", 207, response.errors[0].category)
            created.extend(str(obj.id) for obj in response.results or [])
        return created
