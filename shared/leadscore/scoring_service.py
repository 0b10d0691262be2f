"""The score pipeline (ScoreQueue batches) and the synchronous score used by `POST /score`.

Batch flow, per 100 contacts: one HubSpot batch read (model properties + consent) → consent
gate → model → one HubSpot batch update → ledger → hot-lead alert → enrichment message.
A contact is reported as failed (its SQS records go back to the queue) unless every step it
needed succeeded; contacts HubSpot no longer has are dropped, not retried. Contacts without
`lead_scoring` consent are never written, stored, alerted on or enriched.

The model is passed in (loaded by the handler from the model layer), so this module does not
import numpy/lightgbm itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, ValidationError

from leadscore.consent import ConsentDecision, consent_for
from leadscore.hubspot_client import BATCH_LIMIT, HubSpotBatchError, HubSpotError
from leadscore.ingest import ScoreMessage
from leadscore.ledger import LedgerEntry, iso_millis
from leadscore.observability import count, logger
from leadscore.webhooks import (
    MalformedRequest,
    RequestTooLarge,
    is_valid_signature,
    request_from_http_api_event,
)

SNS_BATCH_LIMIT = 10
SQS_BATCH_LIMIT = 10
HOT_TIER = "hot"


class ScoreResultLike(Protocol):
    score: int
    probability: float
    tier: str
    reasons: list[str]


class ScoringModel(Protocol):
    """What `leadscore.model.load()` returns (CONTRACTS.md, "Python APIs")."""

    version: str
    properties: list[str]

    def score(self, properties: Mapping[str, str | None]) -> ScoreResultLike: ...

    def score_many(self, rows: Sequence[Mapping[str, str | None]],
                   with_reasons: bool = True) -> list[ScoreResultLike]: ...


class ContactReaderWriter(Protocol):
    def batch_read(self, ids: Iterable[str],
                   properties: Iterable[str]) -> dict[str, dict[str, str | None]]: ...

    def batch_update(self, updates: Mapping[str, Mapping[str, str]]) -> None: ...


class ScoreLedger(Protocol):
    def put_many(self, entries: Iterable[LedgerEntry]) -> None: ...


class EnrichMessage(BaseModel):
    """EnrichQueue message body (CONTRACTS.md, "Messages")."""

    model_config = ConfigDict(frozen=True)

    contact_id: str
    score: int
    tier: str
    model_version: str
    scored_at: str


class HotLeadAlert(BaseModel):
    """SNS message for a hot lead: ids and numbers only, no personal data."""

    model_config = ConfigDict(frozen=True)

    contact_id: str
    portal_id: int | None
    score: int
    tier: str
    model_version: str
    scored_at: str


class HotLeadAlerts:
    """Publishes to `HotLeadsTopic` with PublishBatch; returns the contact ids not published."""

    def __init__(self, topic_arn: str, sns_client: Any | None = None):
        self._arn = topic_arn
        self._sns = sns_client or boto3.client("sns")

    def publish(self, alerts: Sequence[HotLeadAlert]) -> set[str]:
        failed: set[str] = set()
        for start in range(0, len(alerts), SNS_BATCH_LIMIT):
            chunk = alerts[start:start + SNS_BATCH_LIMIT]
            entries = [{
                "Id": str(i), "Subject": "leadscore: hot lead", "Message": alert.model_dump_json(),
                "MessageAttributes": {"tier": {"DataType": "String", "StringValue": alert.tier}},
            } for i, alert in enumerate(chunk)]
            try:
                response = self._sns.publish_batch(TopicArn=self._arn,
                                                   PublishBatchRequestEntries=entries)
            except (BotoCoreError, ClientError):
                failed.update(alert.contact_id for alert in chunk)
                continue
            failed.update(chunk[int(entry["Id"])].contact_id
                          for entry in response.get("Failed") or [])
        return failed


class EnrichmentQueue:
    """Sends EnrichQueue messages with SendMessageBatch; returns the contact ids not queued."""

    def __init__(self, queue_url: str, sqs_client: Any | None = None):
        self._url = queue_url
        self._sqs = sqs_client or boto3.client("sqs")

    def send(self, messages: Sequence[EnrichMessage]) -> set[str]:
        failed: set[str] = set()
        for start in range(0, len(messages), SQS_BATCH_LIMIT):
            chunk = messages[start:start + SQS_BATCH_LIMIT]
            entries = [{"Id": str(i), "MessageBody": message.model_dump_json()}
                       for i, message in enumerate(chunk)]
            try:
                response = self._sqs.send_message_batch(QueueUrl=self._url, Entries=entries)
            except (BotoCoreError, ClientError):
                failed.update(message.contact_id for message in chunk)
                continue
            failed.update(chunk[int(entry["Id"])].contact_id
                          for entry in response.get("Failed") or [])
        return failed


class ScoreRunResult(BaseModel):
    """What happened to each contact of a batch (ids only)."""

    scored: list[str] = []
    skipped_consent: list[str] = []  # includes malformed consent
    malformed_consent: list[str] = []
    not_found: list[str] = []
    failed: list[str] = []  # to be retried: their SQS records are reported as failures


class SqsRecordLike(Protocol):
    @property
    def message_id(self) -> str: ...

    @property
    def body(self) -> str: ...


@dataclass(frozen=True)
class BatchOutcome:
    result: ScoreRunResult
    failed_message_ids: frozenset[str]


def hubspot_score_properties(result: ScoreResultLike, model_version: str,
                             scored_at: datetime) -> dict[str, str]:
    """The values written to HubSpot; every value is a string, as the API expects."""
    return {
        "ai_lead_score": str(int(result.score)),
        "ai_lead_probability": f"{float(result.probability):.4f}",
        "ai_lead_tier": result.tier,
        "ai_lead_reasons": "\n".join(result.reasons),
        "ai_lead_model_version": model_version,
        "ai_lead_scored_at": iso_millis(scored_at),
    }


@dataclass
class ScorePipeline:
    hubspot: ContactReaderWriter
    model: ScoringModel
    ledger: ScoreLedger
    purposes_property: str
    retention_days: int
    enrich_tiers: frozenset[str] = frozenset({"hot", "warm"})
    hot_leads: HotLeadAlerts | None = None
    enrichment: EnrichmentQueue | None = None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def run_sqs_batch(self, records: Sequence[SqsRecordLike]) -> BatchOutcome:
        """Scores a whole SQS batch at once and names the records to hand back to SQS.

        A body that is not a ScoreMessage is reported as failed, so after maxReceiveCount it
        lands in the DLQ for inspection instead of vanishing.
        """
        failed_records: set[str] = set()
        messages: dict[str, ScoreMessage] = {}
        for record in records:
            try:
                messages[record.message_id] = ScoreMessage.model_validate_json(record.body)
            except ValidationError:
                failed_records.add(record.message_id)
                logger.error("Unreadable ScoreQueue message",
                             extra={"message_id": record.message_id})
        count("MalformedMessages", len(failed_records))
        result = self.run(list(messages.values()))
        failed_contacts = set(result.failed)
        failed_records.update(mid for mid, message in messages.items()
                              if message.contact_id in failed_contacts)
        return BatchOutcome(result=result, failed_message_ids=frozenset(failed_records))

    def run(self, messages: Sequence[ScoreMessage]) -> ScoreRunResult:
        portal_of: dict[str, int] = {}
        for message in messages:  # several events for one contact: score it once
            portal_of.setdefault(message.contact_id, message.portal_id)
        contact_ids = list(portal_of)
        result = ScoreRunResult()
        for start in range(0, len(contact_ids), BATCH_LIMIT):
            self._run_chunk(contact_ids[start:start + BATCH_LIMIT], portal_of, result)
        count("ContactsScored", len(result.scored))
        count("SkippedNoConsent", len(result.skipped_consent))
        count("MalformedConsent", len(result.malformed_consent))
        count("ContactNotFound", len(result.not_found))
        count("ScoreFailures", len(result.failed))
        logger.info("Score batch done", extra={
            "scored": len(result.scored), "skipped_consent": len(result.skipped_consent),
            "not_found": result.not_found, "failed": result.failed,
        })
        return result

    def _run_chunk(self, chunk: list[str], portal_of: Mapping[str, int],
                   result: ScoreRunResult) -> None:
        wanted = list(dict.fromkeys([*self.model.properties, self.purposes_property]))
        try:
            found = self.hubspot.batch_read(chunk, wanted)
        except HubSpotError as error:
            self._fail(result, chunk, "HubSpot batch read failed", error)
            return

        consented: list[tuple[str, dict[str, str | None], ConsentDecision]] = []
        for contact_id in chunk:
            properties = found.get(contact_id)
            if properties is None:
                result.not_found.append(contact_id)
                continue
            decision = consent_for(properties, self.purposes_property)
            if decision.may_score:
                consented.append((contact_id, properties, decision))
                continue
            result.skipped_consent.append(contact_id)
            if decision.malformed:
                result.malformed_consent.append(contact_id)
        if not consented:
            return

        try:
            scores = self.model.score_many([props for _, props, _ in consented],
                                           with_reasons=True)
        except Exception as error:  # a model bug must not lose the batch: retry, then DLQ
            self._fail(result, [cid for cid, _, _ in consented], "Model failed", error)
            return
        scored_at = self.clock()
        scored = {cid: (score, decision)
                  for (cid, _, decision), score in zip(consented, scores, strict=True)}

        written = set(scored)
        try:
            self.hubspot.batch_update({
                cid: hubspot_score_properties(score, self.model.version, scored_at)
                for cid, (score, _) in scored.items()
            })
        except HubSpotBatchError as error:
            self._fail(result, sorted(error.failed_ids), "HubSpot batch update partly failed",
                       error)
            written -= error.failed_ids
        except HubSpotError as error:
            self._fail(result, list(scored), "HubSpot batch update failed", error)
            return
        done = [cid for cid in scored if cid in written]

        try:
            self.ledger.put_many(LedgerEntry.for_score(
                contact_id=cid, score=scored[cid][0].score,
                probability=scored[cid][0].probability, tier=scored[cid][0].tier,
                model_version=self.model.version, scored_at=scored_at,
                retention_days=self.retention_days,
            ) for cid in done)
        except (BotoCoreError, ClientError) as error:
            # Written to HubSpot but not recorded: retry, or erasure could miss the contact.
            self._fail(result, done, "Ledger write failed", error)
            return

        undelivered = self._alert_and_enrich(done, scored, portal_of, scored_at)
        if undelivered:
            self._fail(result, sorted(undelivered), "Alert or enrichment not sent", None)
        result.scored.extend(cid for cid in done if cid not in undelivered)

    def _alert_and_enrich(self, done: list[str], scored: Mapping[str, tuple[Any, ConsentDecision]],
                          portal_of: Mapping[str, int], scored_at: datetime) -> set[str]:
        stamp = iso_millis(scored_at)
        undelivered: set[str] = set()
        hot = [HotLeadAlert(contact_id=cid, portal_id=portal_of.get(cid),
                            score=scored[cid][0].score, tier=scored[cid][0].tier,
                            model_version=self.model.version, scored_at=stamp)
               for cid in done if scored[cid][0].tier == HOT_TIER]
        if hot and self.hot_leads:
            undelivered |= self.hot_leads.publish(hot)
        count("HotLeads", len(hot))
        enrich = [EnrichMessage(contact_id=cid, score=scored[cid][0].score,
                                tier=scored[cid][0].tier, model_version=self.model.version,
                                scored_at=stamp)
                  for cid in done
                  if scored[cid][0].tier in self.enrich_tiers and scored[cid][1].may_enrich]
        if enrich and self.enrichment:
            not_queued = self.enrichment.send(enrich)
            undelivered |= not_queued
            count("EnrichmentQueued", len(enrich) - len(not_queued))
        return undelivered

    @staticmethod
    def _fail(result: ScoreRunResult, contact_ids: Sequence[str], what: str,
              error: BaseException | None) -> None:
        result.failed.extend(contact_ids)
        # Exception type and HubSpot status/category only: messages can quote property values.
        logger.warning(what, extra={
            "contact_ids": list(contact_ids),
            "error": type(error).__name__ if error else None,
            "status": getattr(error, "status", None),
            "category": getattr(error, "category", None),
        })


# --- POST /score ---------------------------------------------------------------------------


class InvalidScoreRequest(ValueError):
    """The request body cannot be scored; the message names the field and is safe to return."""


class ScoreApiResponse(BaseModel):
    status_code: int
    body: dict[str, Any]


def _property_source(payload: Any) -> tuple[Mapping[str, Any], str]:
    """Where the properties are, for the shapes HubSpot and people send:
    custom workflow action `{"object": {"properties": {...}}}`, workflow "send a webhook" /
    CRM object `{"properties": {...}}` (values plain or legacy `{"value": ...}`), or a flat
    `{"property": "value"}` object."""
    if not isinstance(payload, dict):
        raise InvalidScoreRequest("body must be a JSON object")
    obj = payload.get("object")
    if isinstance(obj, dict) and "properties" in obj:
        source, where = obj["properties"], "object.properties"
    elif "properties" in payload:
        source, where = payload["properties"], "properties"
    else:
        return payload, ""
    if not isinstance(source, dict):
        raise InvalidScoreRequest(f"'{where}' must be a JSON object")
    return source, where + "."


def request_properties(payload: Any, wanted: Iterable[str]) -> dict[str, str | None]:
    """The `wanted` properties as HubSpot strings; other fields are ignored, whatever they are."""
    source, prefix = _property_source(payload)
    properties: dict[str, str | None] = {}
    for name in wanted:
        if name not in source:
            continue
        value = source[name]
        if isinstance(value, dict) and "value" in value:  # legacy {"value": ..., "versions": []}
            value = value["value"]
        if value is None or isinstance(value, str):
            properties[name] = value
        elif isinstance(value, bool):
            properties[name] = "true" if value else "false"
        elif isinstance(value, int | float):
            properties[name] = str(value)
        else:
            raise InvalidScoreRequest(
                f"'{prefix}{name}' must be a string, number, boolean or null"
            )
    return properties


def score_one(properties: Mapping[str, str | None], model: ScoringModel,
              purposes_property: str) -> dict[str, Any]:
    """Scores one lead if consent allows. No consent is an answer, not an error: a workflow
    branches on `scored` instead of logging a failed action."""
    decision = consent_for(properties, purposes_property)
    if not decision.may_score:
        count("SkippedNoConsent")
        if decision.malformed:
            count("MalformedConsent")
        reason = ("consent property is malformed" if decision.malformed
                  else "no consent for lead_scoring")
        return {"scored": False, "reason": reason}
    result = model.score(properties)
    count("ContactsScored")
    return {"scored": True, "score": int(result.score), "probability": float(result.probability),
            "tier": result.tier, "reasons": list(result.reasons), "model_version": model.version}


def answer_score_request(
    event: Mapping[str, Any],
    *,
    client_secret: Callable[[], str],
    public_url: str | None,
    model: ScoringModel,
    purposes_property: str,
    now_ms: int | None = None,
) -> ScoreApiResponse:
    """`POST /score`: size (413) → signature (401) → JSON and field types (400) → consent →
    score (200). Nothing is written or stored: the caller owns what it does with the score."""
    try:
        request = request_from_http_api_event(event, public_url)
    except RequestTooLarge as error:
        count("ScoreApiBadRequest")
        return ScoreApiResponse(status_code=413, body={"message": str(error)})
    except MalformedRequest as error:
        count("ScoreApiBadRequest")
        return ScoreApiResponse(status_code=400, body={"message": str(error)})
    if not is_valid_signature(request, client_secret(), now_ms=now_ms):
        count("ScoreApiSignatureRejected")
        return ScoreApiResponse(status_code=401, body={"message": "Unauthorized"})
    try:
        properties = request_properties(json.loads(request.body),
                                        [*model.properties, purposes_property])
    except (UnicodeDecodeError, json.JSONDecodeError):
        count("ScoreApiBadRequest")
        return ScoreApiResponse(status_code=400, body={"message": "body is not valid JSON"})
    except InvalidScoreRequest as error:
        count("ScoreApiBadRequest")
        return ScoreApiResponse(status_code=400, body={"message": str(error)})
    return ScoreApiResponse(status_code=200, body=score_one(properties, model, purposes_property))
