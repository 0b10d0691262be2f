"""Faults the local stack can inject besides HubSpot's and the LLM's (those live in the emulators).

- AWS: the functions' next N calls to a service fail as AWS fails them when it throttles
  (DynamoDB's ProvisionedThroughputExceededException, SQS's RequestThrottled). The error is
  raised where botocore makes the call, after its own retries would have run: it is throttling
  that outlived the SDK's retries, which is what the functions must survive.
- crash: a function's next N invocations run to the end and then die before returning, so
  every side effect happened and nothing was acknowledged — the worst moment for a crash
  mid-batch (SQS redelivers the whole batch).

Only the functions' calls are affected: the stack's own clients (`resources.local_client`, e.g.
the SQS pollers) are marked and exempt, so the plumbing that delivers events keeps working.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from botocore.client import BaseClient
from botocore.exceptions import ClientError

AWS_ERRORS = {
    "dynamodb": ("ProvisionedThroughputExceededException",
                 "The level of configured provisioned throughput for the table was exceeded."),
    "sqs": ("RequestThrottled", "Request is throttled."),
}

STACK_CLIENT = "_leadscore_local_stack_client"  # attribute set on the stack's own clients


class InjectedCrash(RuntimeError):
    """The function died after its handler ran; Lambda reports it as a function error."""


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._aws: Counter[str] = Counter()
        self._crashes: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()  # what actually fired, for /stats

    def inject_aws(self, service: str, count: int) -> None:
        if service not in AWS_ERRORS:
            raise ValueError(f"unknown AWS fault target {service!r}: use {sorted(AWS_ERRORS)}")
        with self._lock:
            self._aws[service] += count

    def inject_crash(self, logical_id: str, count: int) -> None:
        with self._lock:
            self._crashes[logical_id] += count

    def _take(self, counter: Counter[str], key: str, label: str) -> bool:
        with self._lock:
            if counter[key] <= 0:
                return False
            counter[key] -= 1
            self.injected[label] += 1
            return True

    def take_aws(self, service: str) -> bool:
        return self._take(self._aws, service, service)

    def take_crash(self, logical_id: str) -> bool:
        return self._take(self._crashes, logical_id, f"crash:{logical_id}")

    def install(self) -> None:
        """Route every botocore call of this process through the AWS fault check."""
        original = BaseClient._make_api_call
        if getattr(original, "leadscore_faults", None) is self:
            return
        faults = self

        def _make_api_call(client: BaseClient, operation_name: str, params: Any) -> Any:
            service = client.meta.service_model.service_name
            if not getattr(client, STACK_CLIENT, False) and faults.take_aws(service):
                code, message = AWS_ERRORS[service]
                raise ClientError({"Error": {"Code": code, "Message": message},
                                   "ResponseMetadata": {"HTTPStatusCode": 400}}, operation_name)
            return original(client, operation_name, params)

        _make_api_call.leadscore_faults = self  # type: ignore[attr-defined]
        _make_api_call.original = original  # type: ignore[attr-defined]
        BaseClient._make_api_call = _make_api_call  # type: ignore[method-assign]

    def uninstall(self) -> None:
        current = BaseClient._make_api_call
        if getattr(current, "leadscore_faults", None) is self:
            BaseClient._make_api_call = current.original  # type: ignore[attr-defined]
