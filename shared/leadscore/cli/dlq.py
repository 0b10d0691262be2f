"""`leadscore dlq inspect|redrive`: what is in a DLQ and why, and sending it back.

Messages our functions dead-letter themselves carry a `reason` message attribute; messages
SQS moved after maxReceiveCount failed receives have none and are reported as such.
Samples show ids, reasons and counts only: message bodies name contacts, so they are
never printed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from leadscore.messaging import REASON_ATTRIBUTE

NO_REASON = "no reason recorded (moved by SQS after maxReceiveCount)"
PEEK_VISIBILITY_SECONDS = 30  # hidden while counted, so one message is not counted twice


@dataclass
class DlqSample:
    message_id: str
    reason: str
    receive_count: int
    sent_at: str


@dataclass
class DlqReport:
    queue_url: str
    approximate_messages: int
    reasons: Counter[str] = field(default_factory=Counter)
    samples: list[DlqSample] = field(default_factory=list)
    inspected: int = 0


def resolve_queue_url(sqs: Any, queue: str) -> str:
    """Accept a queue URL or a queue name."""
    if queue.startswith(("http://", "https://")):
        return queue
    try:
        return sqs.get_queue_url(QueueName=queue)["QueueUrl"]
    except ClientError as exc:
        raise ValueError(f"no queue named {queue!r} in this account and region") from exc


def inspect(sqs: Any, queue: str, *, limit: int = 1000, samples: int = 5) -> DlqReport:
    """Count messages by reason (up to `limit`), then make them visible again."""
    url = resolve_queue_url(sqs, queue)
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    report = DlqReport(url, int(attributes["ApproximateNumberOfMessages"]))
    held: list[str] = []
    try:
        while report.inspected < limit:
            messages = sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=min(10, limit - report.inspected),
                VisibilityTimeout=PEEK_VISIBILITY_SECONDS, WaitTimeSeconds=0,
                AttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
                MessageAttributeNames=[REASON_ATTRIBUTE],
            ).get("Messages", [])
            if not messages:
                break
            for message in messages:
                held.append(message["ReceiptHandle"])
                reason = (message.get("MessageAttributes", {}).get(REASON_ATTRIBUTE, {})
                          .get("StringValue")) or NO_REASON
                report.reasons[reason] += 1
                report.inspected += 1
                if len(report.samples) < samples:
                    sent = int(message["Attributes"].get("SentTimestamp", "0")) / 1000
                    report.samples.append(DlqSample(
                        message_id=message["MessageId"],
                        reason=reason,
                        receive_count=int(message["Attributes"].get("ApproximateReceiveCount",
                                                                    "0")),
                        sent_at=datetime.fromtimestamp(sent, UTC).isoformat(timespec="seconds"),
                    ))
    finally:
        for start in range(0, len(held), 10):  # inspecting must not hide messages for long
            sqs.change_message_visibility_batch(QueueUrl=url, Entries=[
                {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                for i, handle in enumerate(held[start:start + 10])
            ])
    return report


@dataclass
class RedriveResult:
    method: str  # "message-move-task" or "copy" (endpoints without StartMessageMoveTask)
    destination: str
    moved: int | None  # None while SQS's task runs asynchronously
    task_handle: str | None = None


def redrive(sqs: Any, queue: str, *, to: str | None = None, copy: bool = False) -> RedriveResult:
    """Send a DLQ's messages back to their source queue with SQS's native message move.

    `copy=True` moves them by receive/send/delete instead, for endpoints that lack
    StartMessageMoveTask (moto, so the local stack).
    """
    url = resolve_queue_url(sqs, queue)
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    destination_url = resolve_queue_url(sqs, to) if to else _source_queue(sqs, url)
    destination_arn = sqs.get_queue_attributes(
        QueueUrl=destination_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    if copy:
        return RedriveResult("copy", destination_url, _copy_all(sqs, url, destination_url))
    handle = sqs.start_message_move_task(SourceArn=arn, DestinationArn=destination_arn)
    return RedriveResult("message-move-task", destination_url, None, handle["TaskHandle"])


def _source_queue(sqs: Any, dlq_url: str) -> str:
    sources = sqs.list_dead_letter_source_queues(QueueUrl=dlq_url).get("queueUrls", [])
    if len(sources) != 1:
        raise ValueError(f"{dlq_url} is the DLQ of {len(sources)} queues; name one with --to")
    return sources[0]


def _copy_all(sqs: Any, source: str, destination: str) -> int:
    """Send then delete, batch by batch: a crash between the two duplicates, never loses."""
    moved = 0
    while True:
        messages = sqs.receive_message(
            QueueUrl=source, MaxNumberOfMessages=10, WaitTimeSeconds=0,
            VisibilityTimeout=PEEK_VISIBILITY_SECONDS, MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return moved
        entries = [{"Id": str(i), "MessageBody": m["Body"],
                    "MessageAttributes": m.get("MessageAttributes", {})}
                   for i, m in enumerate(messages)]
        sent = sqs.send_message_batch(QueueUrl=destination, Entries=entries)
        ok = {entry["Id"] for entry in sent.get("Successful", [])}
        sqs.delete_message_batch(QueueUrl=source, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
            for i, m in enumerate(messages) if str(i) in ok
        ])
        moved += len(ok)
        if len(ok) < len(messages):
            raise RuntimeError(f"{len(messages) - len(ok)} messages could not be sent to "
                               f"{destination}; they stay in the DLQ")
