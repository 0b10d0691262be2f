"""Keeps moto's server fast enough for a webhook burst through the local stack.

Without these, a 2,000-event burst takes the ingest function seconds per delivery:
- moto's server lists its own package directory (hundreds of `stat` calls) twice for every
  request, under a lock that serialises all requests: the listing is cached;
- moto computes every SQS queue attribute — three scans over all messages, each message
  checking the clock through datetime arithmetic — for every message it accepts, only to read
  `ContentBasedDeduplication`: the clock reads `time.time()` directly and the Approximate*
  counts are cached for COUNT_CACHE_SECONDS per queue (they are approximate in SQS too, and
  `/stats` polls them).
In-process patches; behaviour is unchanged.

`MotoServerProcess` runs moto's server, patched, in a process of its own: AWS's work then
runs beside the functions instead of competing with them for one interpreter's GIL, as it
does not in AWS either. The local stack uses it.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from typing import Any

COUNT_CACHE_SECONDS = 0.2
_COUNTS = ("approximate_number_of_messages", "approximate_number_of_messages_not_visible",
           "approximate_number_of_messages_delayed")


def apply() -> None:
    from moto import backends
    from moto.sqs import models

    if getattr(models, "_leadscore_speedups", False):
        return
    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules
    original_clock = models.unix_time_millis

    def unix_time_millis(dt: Any = None) -> float:
        return time.time() * 1000.0 if dt is None else original_clock(dt)

    models.unix_time_millis = unix_time_millis
    for name in _COUNTS:
        setattr(models.Queue, name, property(_cached(name, getattr(models.Queue, name).fget)))
    models._leadscore_speedups = True


def _cached(name: str, compute: Any) -> Any:
    def count(queue: Any) -> int:
        cache = queue.__dict__.setdefault("_leadscore_counts", {})
        value, at = cache.get(name, (0, -1.0))
        now = time.monotonic()
        if now - at > COUNT_CACHE_SECONDS:
            value = compute(queue)
            cache[name] = (value, now)
        return value

    return count


class MotoServerProcess:
    """moto's ThreadedMotoServer on 127.0.0.1 in a child process; `.start()`, `.stop()`,
    `.get_host_and_port()` like ThreadedMotoServer. The child exits when its stdin closes,
    so it never outlives the stack, even one that is killed."""

    def __init__(self, startup_timeout: float = 60.0):
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[str] | None = None
        self._port = 0

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()  # "port N" once listening
        if not line.startswith("port "):
            self.stop()
            raise RuntimeError("moto's server did not start")
        self._port = int(line.split()[1])

    def get_host_and_port(self) -> tuple[str, int]:
        return "127.0.0.1", self._port

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.stdin:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout:
            self.process.stdout.close()
        self.process = None


def _serve() -> None:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    # Short requests (an ingest's SendMessageBatch) between long ones (a score batch's
    # conditional ledger writes) get the GIL back sooner.
    sys.setswitchinterval(0.001)
    apply()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    print(f"port {server.get_host_and_port()[1]}", flush=True)
    sys.stdin.read()  # until the parent closes it (or dies)
    server.stop()


if __name__ == "__main__":
    _serve()
