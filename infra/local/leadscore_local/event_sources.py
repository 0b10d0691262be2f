"""Turns HTTP requests, SQS messages and schedules into Lambda events, as AWS would.

- HTTP: an HTTP API (payload format 2.0) front on 127.0.0.1 routing by method and path.
- SQS: one poller per event source honouring BatchSize, MaximumBatchingWindowInSeconds and
  ReportBatchItemFailures; failed messages return to the queue and moto's redrive moves them
  to the DLQ after maxReceiveCount receives. Locally a failed message becomes visible again
  after a short backoff (1 s, 2 s, 4 s, capped at 5 s) instead of the queue's visibility
  timeout, so retries happen in seconds rather than minutes.
- Schedules: `rate(...)` expressions fire on a timer; any schedule can be run on demand.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import threading
import time
import traceback
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from leadscore_local.lambda_runtime import FunctionRuntime
from leadscore_local.loopback import LoopbackServer, QuietHandler
from leadscore_local.resources import ACCOUNT, REGION, local_client
from leadscore_local.template import SqsSource

# ---------------------------------------------------------------- HTTP API (payload 2.0)


def http_api_event(method: str, target: str, headers: dict[str, str], body: bytes) -> dict:
    """The event API Gateway HTTP API (payload format 2.0) gives a Lambda integration."""
    parts = urlsplit(target)
    lowered = {name.lower(): value for name, value in headers.items()}
    try:
        text, is_base64 = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, is_base64 = base64.b64encode(body).decode("ascii"), True
    now = datetime.now(UTC)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": f"{method} {parts.path}",
        "rawPath": parts.path,
        "rawQueryString": parts.query,
        "headers": lowered,
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": "local",
            "domainName": lowered.get("host", "127.0.0.1"),
            "domainPrefix": "local",
            "http": {
                "method": method,
                "path": parts.path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": lowered.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": f"{method} {parts.path}",
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "body": text,
        "isBase64Encoded": is_base64,
    }
    if parts.query:
        event["queryStringParameters"] = dict(
            pair.split("=", 1) if "=" in pair else (pair, "") for pair in parts.query.split("&")
        )
    return event


def http_api_response(result: Any) -> tuple[int, dict[str, str], bytes]:
    """Interpret a handler's return value the way HTTP API payload 2.0 does."""
    if isinstance(result, dict) and "statusCode" in result:
        body = result.get("body") or ""
        raw = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode()
        headers = {k: str(v) for k, v in (result.get("headers") or {}).items()}
        return int(result["statusCode"]), headers, raw
    return 200, {"content-type": "application/json"}, json.dumps(result).encode()


class HttpFront(LoopbackServer):
    """Serves the template's HttpApi routes on 127.0.0.1 and invokes their functions."""

    def __init__(self, runtime: FunctionRuntime, max_body_bytes: int = 10 * 1024 * 1024):
        self.routes = {
            (route.method, route.path): spec.logical_id
            for spec in runtime.specs.values()
            for route in spec.http_routes
        }
        front = self

        class Handler(QuietHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                if length > max_body_bytes:  # API Gateway's own payload limit
                    self.reply(413, {"content-type": "application/json"},
                                b'{"message":"Request Entity Too Large"}')
                    return
                body = self.rfile.read(length) if length else b""
                logical_id = front.routes.get((self.command, urlsplit(self.path).path))
                if logical_id is None:
                    self.reply(404, {"content-type": "application/json"},
                                b'{"message":"Not Found"}')
                    return
                event = http_api_event(self.command, self.path, dict(self.headers), body)
                try:
                    result = runtime.invoke(logical_id, event)
                except Exception:
                    self.reply(500, {"content-type": "application/json"},
                                b'{"message":"Internal Server Error"}')
                    return
                self.reply(*http_api_response(result))

            do_POST = do_GET = do_PUT = do_PATCH = do_DELETE = _serve

        super().__init__(Handler, name="http-front")


# ---------------------------------------------------------------------------- SQS pollers


def sqs_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    attributes = {
        "ApproximateReceiveCount": "1", "SentTimestamp": "0", "SenderId": ACCOUNT,
        "ApproximateFirstReceiveTimestamp": "0", **message.get("Attributes", {}),
    }
    message_attributes = {
        name: {
            "stringValue": value.get("StringValue"),
            "binaryValue": value.get("BinaryValue"),
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": value["DataType"],
        }
        for name, value in message.get("MessageAttributes", {}).items()
    }
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": attributes,
        "messageAttributes": message_attributes,
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }


class SqsPoller:
    """Lambda's SQS event source mapping for one function and queue."""

    def __init__(self, runtime: FunctionRuntime, logical_id: str, source: SqsSource,
                 queue_url: str, queue_arn: str, endpoint_url: str, stop: threading.Event):
        self.runtime, self.logical_id, self.source = runtime, logical_id, source
        self.queue_url, self.queue_arn, self.stop_event = queue_url, queue_arn, stop
        self.sqs = local_client("sqs", endpoint_url)
        self.busy = threading.Event()  # set while a batch is being handled
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"sqs-{logical_id}")

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _receive(self, count: int, wait_seconds: int) -> list[dict[str, Any]]:
        return self.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=min(10, count),
            WaitTimeSeconds=wait_seconds, AttributeNames=["All"], MessageAttributeNames=["All"],
        ).get("Messages", [])

    def _collect_batch(self) -> list[dict[str, Any]]:
        batch = self._receive(self.source.batch_size, wait_seconds=1)
        if not batch:
            return []
        self.busy.set()
        deadline = time.monotonic() + self.source.batching_window_seconds
        while len(batch) < self.source.batch_size and time.monotonic() < deadline:
            more = self._receive(self.source.batch_size - len(batch), wait_seconds=0)
            if more:
                batch.extend(more)
            else:
                time.sleep(0.05)
        return batch

    def _run(self) -> None:
        while not self.stop_event.is_set():
            try:
                messages = self._collect_batch()
                if messages:
                    self._deliver(messages)
            except Exception:  # a poller must survive anything and keep polling
                if not self.stop_event.is_set():
                    traceback.print_exc()
                    time.sleep(0.5)
            finally:
                self.busy.clear()

    def _deliver(self, messages: list[dict[str, Any]]) -> None:
        event = {"Records": [sqs_record(m, self.queue_arn) for m in messages]}
        by_id = {m["MessageId"]: m for m in messages}
        try:
            result = self.runtime.invoke(self.logical_id, event)
        except Exception:
            failed = set(by_id)
        else:
            failed = set()
            if self.source.report_batch_item_failures and isinstance(result, dict):
                failed = {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
                if not failed <= set(by_id):  # Lambda treats an unknown id as a full failure
                    failed = set(by_id)
        done = [m for message_id, m in by_id.items() if message_id not in failed]
        for start in range(0, len(done), 10):
            self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                for i, m in enumerate(done[start:start + 10])
            ])
        for message_id in failed:
            message = by_id[message_id]
            receives = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
            self.sqs.change_message_visibility(
                QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"],
                VisibilityTimeout=min(5, 2 ** (receives - 1)),
            )


# ------------------------------------------------------------------------------ schedules


def scheduled_event(rule_name: str, at: datetime | None = None) -> dict[str, Any]:
    """EventBridge's scheduled event; `time` is when the rule fired (`at`, default now)."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": (at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{rule_name}"],
        "detail": {},
    }


_RATE = re.compile(r"rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def rate_seconds(expression: str) -> int | None:
    """Seconds between runs for `rate(...)`; None for cron expressions (run on demand)."""
    match = _RATE.fullmatch(expression.strip())
    if not match:
        return None
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2).rstrip("s")]


class Scheduler:
    """Fires rate() schedules on a timer and runs any schedule on demand."""

    def __init__(self, runtime: FunctionRuntime, stop: threading.Event):
        self.runtime, self.stop_event = runtime, stop
        self.schedules = {
            spec.logical_id: schedule
            for spec in runtime.specs.values()
            for schedule in spec.schedules
        }
        self._thread = threading.Thread(target=self._run, daemon=True, name="scheduler")

    def run_now(self, logical_id: str, at: datetime | None = None) -> Any:
        """Invoke a scheduled function by its logical id (or its schedule event's name).

        `at` sets the event's `time`, which lets tests simulate the clock for functions
        that take "now" from `leadscore.timestamps.scheduled_time` (the local stack allows it).
        """
        for function_id, schedule in self.schedules.items():
            if logical_id in (function_id, schedule.name):
                return self.runtime.invoke(function_id, scheduled_event(schedule.name, at))
        raise KeyError(logical_id)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        next_run = {
            function_id: time.monotonic() + seconds
            for function_id, schedule in self.schedules.items()
            if (seconds := rate_seconds(schedule.expression))
        }
        while not self.stop_event.wait(1.0):
            for function_id, due in next_run.items():
                if time.monotonic() >= due:
                    schedule = self.schedules[function_id]
                    next_run[function_id] = due + (rate_seconds(schedule.expression) or 0)
                    # A failure is counted as an error by the runtime; the timer keeps going.
                    with contextlib.suppress(Exception):
                        self.runtime.invoke(function_id, scheduled_event(schedule.name))
