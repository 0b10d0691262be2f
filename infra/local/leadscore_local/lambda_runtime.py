"""Runs Lambda handlers in-process: loads `functions/<name>/app.py`, builds a context, counts
invocations and errors (`/stats`) and, for the AWS cost benchmark, each invocation's billed
duration and the AWS requests it made (`usage_meter`, on with LEADSCORE_LOCAL_USAGE_FILE).

Every function's module is named `app`, so each is loaded from its file under a unique
module name instead of through sys.path.
"""

from __future__ import annotations

import importlib.util
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from leadscore_local.faults import Faults, InjectedCrash
from leadscore_local.request_attribution import HubSpotRequestsByFunction
from leadscore_local.resources import ACCOUNT, REGION
from leadscore_local.template import FunctionSpec
from leadscore_local.usage_meter import UsageMeter


@dataclass
class LambdaContext:
    function_name: str
    memory_limit_in_mb: int
    timeout_seconds: int
    aws_request_id: str
    invoked_function_arn: str
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = "local"

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_seconds
        self.log_group_name = f"/aws/lambda/{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class FunctionRuntime:
    """Loaded handlers plus the invocation and error counters /stats reports."""

    def __init__(self, specs: list[FunctionSpec], faults: Faults | None = None,
                 hubspot_requests: HubSpotRequestsByFunction | None = None):
        self.specs = {spec.logical_id: spec for spec in specs}
        self.faults = faults or Faults()
        self.hubspot_requests = hubspot_requests or HubSpotRequestsByFunction()
        self._handlers: dict[str, Callable[[Any, Any], Any]] = {}
        self._lock = threading.Lock()
        self.invocations: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.usage = UsageMeter()
        self.usage.start_from_environment()

    def load_all(self) -> None:
        for logical_id in self.specs:
            self.handler(logical_id)

    def handler(self, logical_id: str) -> Callable[[Any, Any], Any]:
        with self._lock:
            if logical_id not in self._handlers:
                spec = self.specs[logical_id]
                module_name, function_name = spec.handler.rsplit(".", 1)
                path = spec.code_dir / f"{module_name.replace('.', '/')}.py"
                import_spec = importlib.util.spec_from_file_location(
                    f"lambda_{logical_id}_{module_name}", path
                )
                if import_spec is None or import_spec.loader is None:
                    raise FileNotFoundError(f"{logical_id}: handler module not found at {path}")
                module = importlib.util.module_from_spec(import_spec)
                import_spec.loader.exec_module(module)
                self._handlers[logical_id] = getattr(module, function_name)
            return self._handlers[logical_id]

    def reload(self, logical_ids: list[str]) -> None:
        """New "containers": the handler modules are loaded afresh, so their per-container
        state (settings, clients, the model) is built again on the next invocation.
        Invocations already running finish with the old one."""
        with self._lock:
            for logical_id in logical_ids:
                self._handlers.pop(logical_id, None)
        for logical_id in logical_ids:
            self.handler(logical_id)

    def invoke(self, logical_id: str, event: Any) -> Any:
        """Invoke like Lambda does; an exception counts as an error and propagates."""
        spec = self.specs[logical_id]
        handler = self.handler(logical_id)
        context = LambdaContext(
            function_name=f"leadscore-local-{logical_id}",
            memory_limit_in_mb=spec.memory_mb,
            timeout_seconds=spec.timeout,
            aws_request_id=str(uuid.uuid4()),
            invoked_function_arn=(
                f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:leadscore-local-{logical_id}"
            ),
        )
        with self._lock:
            self.invocations[logical_id] += 1
        started = time.monotonic()
        try:
            with self.hubspot_requests.invoking(logical_id):
                result = handler(event, context)
            if self.faults.take_crash(logical_id):
                raise InjectedCrash(f"{logical_id} crashed after its handler ran (injected)")
            return result
        except Exception:
            with self._lock:
                self.errors[logical_id] += 1
            traceback.print_exc()
            raise
        finally:  # Lambda bills a failed invocation's time too
            self.usage.invoked(logical_id, time.monotonic() - started, event)
