"""The metrics the functions emit, as CloudWatch would receive them: Powertools prints each
metric set as one Embedded Metric Format JSON line on stdout, which Lambda hands to CloudWatch
Logs and CloudWatch extracts. The local stack runs the functions in its own process, so it
tees its stdout through `EmfRecorder.tap` and keeps every metric of those lines, served as
`GET /metrics` on the admin API.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from typing import Any, TextIO


class EmfRecorder:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._points: list[dict[str, Any]] = []

    def observe(self, line: str) -> None:
        """Keeps the metrics of one EMF line; anything else (log lines) is ignored."""
        if '"_aws"' not in line:
            return
        try:
            blob = json.loads(line)
            directives = blob["_aws"]["CloudWatchMetrics"]
        except (ValueError, KeyError, TypeError):
            return
        points = []
        for directive in directives:
            dimensions = {name: blob.get(name) for group in directive.get("Dimensions", [])
                          for name in group}
            for metric in directive.get("Metrics", []):
                values = blob.get(metric["Name"])
                for value in values if isinstance(values, list) else [values]:
                    if isinstance(value, int | float):
                        points.append({"name": metric["Name"], "value": value,
                                       "unit": metric.get("Unit"),
                                       "namespace": directive.get("Namespace"),
                                       "dimensions": dimensions,
                                       "timestamp": blob["_aws"].get("Timestamp")})
        with self._lock:
            self._points.extend(points)

    def metrics(self) -> dict[str, list[float]]:
        """`{"MetricName": [value, ...]}` in the order they were emitted."""
        out: dict[str, list[float]] = defaultdict(list)
        with self._lock:
            for point in self._points:
                out[point["name"]].append(point["value"])
        return dict(out)

    def datapoints(self) -> list[dict[str, Any]]:
        """Each value with its unit, namespace, dimensions and timestamp."""
        with self._lock:
            return list(self._points)

    def tap(self, stream: TextIO) -> TextIO:
        return _Tee(stream, self)


class _Tee:
    """A text stream that writes through to `stream` and shows every complete line to the
    recorder. Functions print from many threads at once, and `print` writes a line in two
    calls (text, then newline), so lines are assembled per thread."""

    def __init__(self, stream: TextIO, recorder: EmfRecorder) -> None:
        self._stream, self._recorder = stream, recorder
        self._pending = threading.local()

    def write(self, text: str) -> int:
        written = self._stream.write(text)
        buffered = getattr(self._pending, "text", "") + text
        *lines, rest = buffered.split("\n")
        self._pending.text = rest
        for line in lines:
            self._recorder.observe(line)
        return written

    def __getattr__(self, name: str) -> Any:  # flush, fileno, encoding, isatty...
        return getattr(self._stream, name)
