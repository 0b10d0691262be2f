"""What the functions use of AWS in the local stack, counted the way AWS bills it, for
`infra/bench/aws_cost_bench.py`; never shipped.

- Lambda: invocations and duration per function, each invocation's duration rounded up to the
  next millisecond as Lambda bills it (`FunctionRuntime.invoke` reports them), and the SQS
  records each invocation was given.
- AWS API requests by caller, service and operation, with the billing units of each: SQS and
  SNS requests per 64 KB chunk of payload; DynamoDB read and write request units from the item
  sizes in the request and the response (on-demand rules: a write is 1 unit per 1 KB, a
  strongly consistent read 1 unit per 4 KB and an eventually consistent one half of that,
  transactions twice). The caller is the function whose invocation made the request
  (`request_attribution`), `stack` for the local stack's own clients (the SQS pollers that
  stand in for Lambda's event source mappings, `/stats`), `other` for anything else: mostly a
  function's work on threads started without its context (the score function's parallel
  ledger and snapshot writes), so the benchmark counts `other` as the app's.

Turned on by LEADSCORE_LOCAL_USAGE_FILE (the local stack is a subprocess, and its admin API is
not this module's): the counts are then written to that file as JSON every half second. Off,
only the cheap Lambda counters run.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import os
import threading
from collections import Counter
from typing import Any
from urllib.parse import urlencode

from botocore.client import BaseClient

from leadscore_local.faults import STACK_CLIENT
from leadscore_local.request_attribution import current_function

USAGE_FILE_SETTING = "LEADSCORE_LOCAL_USAGE_FILE"
WRITE_INTERVAL_SECONDS = 0.5
CHUNK_BYTES = 64 * 1024  # SQS and SNS bill each 64 KB of a request's payload as one request
WRITE_UNIT_BYTES, READ_UNIT_BYTES = 1024, 4096


class UsageMeter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.invocations: Counter[str] = Counter()
        self.billed_ms: Counter[str] = Counter()
        self.duration_ms: Counter[str] = Counter()
        self.records: Counter[str] = Counter()
        # "caller service Operation" (DynamoDB: "Operation:table") -> counts
        self.requests: dict[str, Counter[str]] = {}
        self._original: Any = None
        self._writer: threading.Thread | None = None

    # ------------------------------------------------------------------ Lambda
    def invoked(self, logical_id: str, seconds: float, event: Any) -> None:
        records = event.get("Records") if isinstance(event, dict) else None
        with self._lock:
            self.invocations[logical_id] += 1
            self.duration_ms[logical_id] += seconds * 1000
            self.billed_ms[logical_id] += max(1, math.ceil(seconds * 1000))
            self.records[logical_id] += len(records) if isinstance(records, list) else 0

    # ------------------------------------------------------------------ AWS requests
    def start_from_environment(self) -> None:
        """Count AWS requests and write the file, when LEADSCORE_LOCAL_USAGE_FILE is set."""
        path = os.environ.get(USAGE_FILE_SETTING)
        if path and self._writer is None:
            self.install()
            self._writer = threading.Thread(target=self._write_forever, args=(path,),
                                            daemon=True, name="usage-meter")
            self._writer.start()

    def install(self) -> None:
        """Wraps botocore's `_make_request` (one call per API request; faults.py wraps
        `_make_api_call`, so the two never stack on each other)."""
        if self._original is not None:
            return
        original, meter = BaseClient._make_request, self

        def _make_request(client: BaseClient, operation_model: Any, request_dict: Any,
                          request_context: Any) -> Any:
            response = original(client, operation_model, request_dict, request_context)
            with contextlib.suppress(Exception):  # a meter must never break the call it watches
                meter.count(client, operation_model.name, request_dict, response[1])
            return response

        self._original = original
        BaseClient._make_request = _make_request  # type: ignore[method-assign]

    def count(self, client: BaseClient, operation: str, request_dict: dict[str, Any],
              parsed: dict[str, Any]) -> None:
        service = client.meta.service_model.service_name
        caller = current_function() or ("stack" if getattr(client, STACK_CLIENT, False)
                                        else "other")
        body = request_dict.get("body")
        params = _json_body(body)
        units = billing_units(service, operation, params, parsed, _size(body))
        tables = params.get("TableName") or ",".join(sorted(params.get("RequestItems") or {}))
        if service == "dynamodb" and tables:  # which table: "PutItem:leadscore-local-..."
            operation = f"{operation}:{tables}"
        with self._lock:
            counts = self.requests.setdefault(f"{caller} {service} {operation}", Counter())
            counts["requests"] += 1
            for name, value in units.items():
                counts[name] += value

    # ------------------------------------------------------------------ output
    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "lambda": {name: {"invocations": self.invocations[name],
                                  "billed_ms": self.billed_ms[name],
                                  "duration_ms": round(self.duration_ms[name], 1),
                                  "records": self.records[name]}
                           for name in self.invocations},
                "aws_requests": {key: dict(counts) for key, counts in self.requests.items()},
            }

    def _write_forever(self, path: str) -> None:
        while True:
            temporary = f"{path}.tmp"
            with open(temporary, "w", encoding="utf-8") as out:
                json.dump(self.snapshot(), out)
            os.replace(temporary, path)  # readers never see half a file
            threading.Event().wait(WRITE_INTERVAL_SECONDS)


# ---------------------------------------------------------------------- billing units


def billing_units(service: str, operation: str, body: dict[str, Any], parsed: dict[str, Any],
                  payload_bytes: int) -> dict[str, float]:
    """What one request adds to the bill beyond being a request: `chunks` (SQS, SNS),
    `messages` (SQS messages sent, received or deleted), `empty` (an SQS receive that found
    nothing), `read_units`/`write_units` (DynamoDB on demand)."""
    if service == "sqs":
        messages = len(parsed.get("Messages") or body.get("Entries") or [])
        if operation == "ReceiveMessage":  # billed on the payload received
            payload_bytes = sum(len(m.get("Body", "")) for m in parsed.get("Messages") or [])
        elif operation in ("SendMessage", "DeleteMessage", "ChangeMessageVisibility"):
            messages = 1
        return {"chunks": max(1, math.ceil(payload_bytes / CHUNK_BYTES)), "messages": messages,
                "empty": int(operation == "ReceiveMessage" and not messages)}
    if service == "sns" and operation in ("Publish", "PublishBatch"):
        messages = sum(key.endswith(".Id") for key in body) if operation == "PublishBatch" else 1
        per_message = max(1, math.ceil(payload_bytes / max(1, messages) / CHUNK_BYTES))
        return {"chunks": per_message * max(1, messages), "messages": messages}
    if service == "dynamodb":
        return dynamodb_units(operation, body, parsed)
    return {}


def dynamodb_units(operation: str, body: dict[str, Any], parsed: dict[str, Any]
                   ) -> dict[str, float]:
    if operation == "PutItem":
        return {"write_units": _write_units(body.get("Item"))}
    if operation == "UpdateItem":  # the item's size after the update; without ReturnValues
        # ALL_NEW only the key and the values written are known: a lower bound over 1 KB
        written = parsed.get("Attributes") or {**(body.get("Key") or {}),
                                               **(body.get("ExpressionAttributeValues") or {})}
        return {"write_units": _write_units(written)}
    if operation == "DeleteItem":
        return {"write_units": _write_units(parsed.get("Attributes"))}
    if operation == "BatchWriteItem":
        units = sum(_write_units(request.get("PutRequest", {}).get("Item"))
                    for requests in (body.get("RequestItems") or {}).values()
                    for request in requests)
        return {"write_units": units}
    if operation == "TransactWriteItems":
        units = sum(2 * _write_units((next(iter(item.values())) or {}).get("Item"))
                    for item in body.get("TransactItems") or [])
        return {"write_units": units}
    if operation == "GetItem":
        return {"read_units": _read_units([parsed.get("Item")], body.get("ConsistentRead"))}
    if operation in ("Query", "Scan"):  # one rounding for the whole page
        size = sum(item_size(item) for item in parsed.get("Items") or [])
        consistent = 1 if body.get("ConsistentRead") else 0.5
        return {"read_units": consistent * max(1, math.ceil(size / READ_UNIT_BYTES))}
    if operation == "BatchGetItem":
        units = 0.0
        for table, request in (body.get("RequestItems") or {}).items():
            found = (parsed.get("Responses") or {}).get(table) or []
            missing = max(0, len(request.get("Keys") or []) - len(found))
            units += _read_units(found + [None] * missing, request.get("ConsistentRead"))
        return {"read_units": units}
    if operation == "TransactGetItems":
        found = [response.get("Item") for response in parsed.get("Responses") or []]
        return {"read_units": 2 * _read_units(found, True)}
    return {}


def _write_units(item: dict[str, Any] | None) -> int:
    return max(1, math.ceil(item_size(item or {}) / WRITE_UNIT_BYTES))


def _read_units(items: list[dict[str, Any] | None], consistent: Any) -> float:
    factor = 1 if consistent else 0.5  # each item rounded up on its own
    return sum(factor * max(1, math.ceil(item_size(item or {}) / READ_UNIT_BYTES))
               for item in items)


def item_size(item: dict[str, Any]) -> int:
    """DynamoDB's item size: attribute names plus values (AttributeValue wire format)."""
    return sum(len(name.encode()) + attribute_size(value) for name, value in item.items())


def attribute_size(value: Any) -> int:
    if not isinstance(value, dict) or len(value) != 1:
        return 0
    (kind, inner), = value.items()
    if kind == "S":
        return len(inner.encode())
    if kind == "N":  # about one byte per two significant digits, plus one
        return len(str(inner).lstrip("-").replace(".", "").strip("0")) // 2 + 1
    if kind == "B":
        return _binary_size(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(v.encode()) for v in inner)
    if kind == "NS":
        return sum(attribute_size({"N": v}) for v in inner)
    if kind == "BS":
        return sum(_binary_size(v) for v in inner)
    if kind == "M":
        return 3 + sum(len(k.encode()) + attribute_size(v) + 1 for k, v in inner.items())
    if kind == "L":
        return 3 + sum(attribute_size(v) + 1 for v in inner)
    return 0


def _binary_size(value: Any) -> int:
    if isinstance(value, bytes | bytearray):
        return len(value)
    return len(base64.b64decode(value)) if isinstance(value, str) else 0


def _json_body(body: Any) -> dict[str, Any]:
    """The request's parameters: JSON protocols send bytes, the query protocol a dict."""
    if isinstance(body, dict):
        return body
    try:
        parsed = json.loads(body or b"{}")
    except (ValueError, TypeError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _size(body: Any) -> int:
    if isinstance(body, bytes | bytearray):
        return len(body)
    if isinstance(body, str):
        return len(body.encode())
    if isinstance(body, dict):
        return len(urlencode(body, doseq=True).encode())
    return 0
