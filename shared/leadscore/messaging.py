"""Sending to SQS and SNS, and dead-lettering with a reason: the one way every function does it.

`BatchSender` sends entries ten per call (SQS SendMessageBatch to a queue URL, SNS PublishBatch to
a topic ARN) and answers with the entries that were not accepted, by the caller's key, and why.
The score function's hot-lead alerts and enrichment messages, the ingest function's ScoreQueue
bodies and both dead-letter queues go through it.

`DeadLetters` is the dead-letter router of the score and enrich functions. SQS's own redrive
moves a message after maxReceiveCount failed receives but cannot say why; so a record that will
not succeed (its failure is final, or this is its last allowed receive) is sent to the DLQ here
with a `reason` message attribute, and then acknowledged. Reasons never carry lead data.

No numpy/lightgbm here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import batched
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from leadscore.observability import count, logger

BATCH_LIMIT = 10  # entries per SendMessageBatch / PublishBatch call
REASON_ATTRIBUTE = "reason"  # the DLQ message attribute naming why a record is there
MAX_REASON_LENGTH = 256


@dataclass(frozen=True)
class Outgoing:
    """One message to send. `key` names it to the caller (a contact id, an SQS message id):
    failures are reported by key."""

    key: str
    body: str
    attributes: Mapping[str, str] = field(default_factory=dict)  # String message attributes
    delay_seconds: int = 0  # SQS only: the message stays invisible this long (0-900)


class BatchSender:
    """Sends `Outgoing` entries to one SQS queue (`BatchSender.sqs`) or SNS topic
    (`BatchSender.sns`), `BATCH_LIMIT` per call.

    `send` returns {key: why} for the entries not accepted. A call that raises (after boto3's own
    retries) fails all its entries. Entries the service reports as failed on its side are sent
    again up to `attempts` times in all, with a short backoff; entries it rejects as the sender's
    fault never are. `workers` > 1 sends the calls of a large send in parallel.
    """

    def __init__(self, call: Callable[..., Mapping[str, Any]], *, target: Mapping[str, str],
                 entries_key: str, body_key: str, subject: str | None = None,
                 attempts: int = 1, workers: int = 1,
                 sleep: Callable[[float], None] = time.sleep):
        self._call, self._target = call, dict(target)
        self._entries_key, self._body_key, self._subject = entries_key, body_key, subject
        self._attempts, self._workers, self._sleep = attempts, workers, sleep

    @classmethod
    def sqs(cls, queue_url: str, client: Any | None = None, **options: Any) -> BatchSender:
        """SendMessageBatch to the queue `queue_url`."""
        sqs = client or boto3.client("sqs")
        return cls(sqs.send_message_batch, target={"QueueUrl": queue_url}, entries_key="Entries",
                   body_key="MessageBody", **options)

    @classmethod
    def sns(cls, topic_arn: str, client: Any | None = None, **options: Any) -> BatchSender:
        """PublishBatch to the topic `topic_arn` (`subject=` sets every entry's Subject)."""
        sns = client or boto3.client("sns")
        return cls(sns.publish_batch, target={"TopicArn": topic_arn},
                   entries_key="PublishBatchRequestEntries", body_key="Message", **options)

    def send(self, entries: Sequence[Outgoing]) -> dict[str, str]:
        chunks = list(batched(entries, BATCH_LIMIT))
        failed: dict[str, str] = {}
        if len(chunks) <= 1 or self._workers <= 1:
            for chunk in chunks:
                failed.update(self._send_chunk(chunk))
            return failed
        with ThreadPoolExecutor(max_workers=min(len(chunks), self._workers)) as pool:
            for result in pool.map(self._send_chunk, chunks):
                failed.update(result)
        return failed

    def _entry(self, entry_id: str, entry: Outgoing) -> dict[str, Any]:
        wire: dict[str, Any] = {"Id": entry_id, self._body_key: entry.body}
        if self._subject:
            wire["Subject"] = self._subject
        if entry.delay_seconds:
            wire["DelaySeconds"] = entry.delay_seconds
        if entry.attributes:
            wire["MessageAttributes"] = {name: {"DataType": "String", "StringValue": value}
                                         for name, value in entry.attributes.items()}
        return wire

    def _send_chunk(self, chunk: Sequence[Outgoing]) -> dict[str, str]:
        pending = {str(i): entry for i, entry in enumerate(chunk)}
        failed: dict[str, str] = {}
        for attempt in range(self._attempts):
            entries = [self._entry(i, entry) for i, entry in pending.items()]
            try:
                response = self._call(**self._target, **{self._entries_key: entries})
            except (BotoCoreError, ClientError) as error:
                why = f"batch send failed: {type(error).__name__}"
                return failed | {entry.key: why for entry in pending.values()}
            retry: dict[str, Outgoing] = {}
            for report in response.get("Failed") or []:
                entry = pending[report["Id"]]
                if report.get("SenderFault"):
                    failed[entry.key] = f"rejected: {report.get('Code')}"
                else:
                    retry[report["Id"]] = entry
            if not retry:
                return failed
            pending = retry
            if attempt + 1 < self._attempts:
                self._sleep(0.05 * 2**attempt)
        return failed | {entry.key: f"still failing after {self._attempts} tries"
                         for entry in pending.values()}


@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    body: str
    reason: str


class DeadLetters:
    """Sends records that will not succeed to a DLQ with a `reason` attribute (see the module
    docstring); `max_receive_count` must equal the source queue's maxReceiveCount."""

    def __init__(self, dlq_url: str, max_receive_count: int, sqs_client: Any | None = None):
        self.max_receive_count = max_receive_count
        self._sender = BatchSender.sqs(dlq_url, sqs_client)

    def takes(self, receive_count: int, *, final: bool = False) -> bool:
        """Whether a failed record goes to the DLQ now: its failure is final, or SQS will not
        deliver it again."""
        return final or receive_count >= self.max_receive_count

    def send(self, letters: Sequence[DeadLetter]) -> set[str]:
        """Dead-letters these records; returns the message ids now safely in the DLQ (the
        others are left to SQS's redrive, which moves them without a reason)."""
        failed = self._sender.send([Outgoing(
            key=letter.message_id, body=letter.body,
            attributes={REASON_ATTRIBUTE: (letter.reason or "failed")[:MAX_REASON_LENGTH],
                        "source_message_id": letter.message_id},
        ) for letter in letters])
        if failed:
            logger.error("Could not dead-letter records", extra={
                "message_ids": sorted(failed), "errors": sorted(set(failed.values()))})
        sent = {letter.message_id for letter in letters} - set(failed)
        count("DeadLettered", len(sent))
        if sent:
            logger.warning("Records dead-lettered", extra={
                "message_ids": sorted(sent),
                "reasons": sorted({letter.reason for letter in letters
                                   if letter.message_id in sent})})
        return sent

    def route(self, records: Sequence[Mapping[str, Any]], failed: frozenset[str],
              reasons: Mapping[str, str], final: frozenset[str] = frozenset()) -> frozenset[str]:
        """For an SQS batch: dead-letters the failed raw records that will not be received
        again (or whose failure is `final`); returns the failed ids still to report to SQS."""
        last = [DeadLetter(record["messageId"], record["body"],
                           reasons.get(record["messageId"]) or "failed")
                for record in records if record["messageId"] in failed and self.takes(
                    int(record.get("attributes", {}).get("ApproximateReceiveCount", 1)),
                    final=record["messageId"] in final)]
        return failed - self.send(last) if last else failed
