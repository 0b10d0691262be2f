"""Which function made each HubSpot request, for the local stack's `/stats`.

In AWS every function uses the app's one token, and HubSpot counts their requests together; so
does the emulator (its `functions` client). Locally all functions share one process, so the
stack can tell them apart: `FunctionRuntime.invoke` marks the invoking thread with the
function's logical id, and every HTTP attempt a `leadscore.hubspot.client.RequestMeter` makes
(retries included, as HubSpot counts them) is counted under it. The mark is a context variable,
so threads a function runs its work on in a copy of its context (the enrichment worker's) count
for it too; attempts outside an invocation count as `other`.
"""

from __future__ import annotations

import contextvars
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from leadscore.hubspot.client import RequestMeter

_current: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "leadscore_local_function", default=None)


def current_function() -> str | None:
    """The logical id of the function whose invocation this code runs in, if any."""
    return _current.get()


class HubSpotRequestsByFunction:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._original: Any = None

    def install(self) -> None:
        """Counts every RequestMeter attempt of this process under the invoking function."""
        if self._original is not None:
            return
        original = RequestMeter.before_request
        attribution = self

        def before_request(meter: RequestMeter, retry: bool = False) -> None:
            with attribution._lock:
                attribution.counts[_current.get() or "other"] += 1
            original(meter, retry)

        self._original = original
        RequestMeter.before_request = before_request  # type: ignore[method-assign]

    def uninstall(self) -> None:
        if self._original is not None:
            RequestMeter.before_request = self._original  # type: ignore[method-assign]
            self._original = None

    @contextmanager
    def invoking(self, logical_id: str) -> Iterator[None]:
        token = _current.set(logical_id)
        try:
            yield
        finally:
            _current.reset(token)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.counts)
