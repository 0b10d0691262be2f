"""Runs `leadscore local up` as a subprocess and talks to it over HTTP only.

Used by the demo, the end-to-end tests and the benchmarks, so all three drive the stack
exactly as a developer's other tools would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REQUIRED_KEYS = {"webhook_url", "score_api_url", "hubspot_url", "hubspot_token",
                 "hubspot_client_secret", "aws_endpoint_url", "anthropic_url", "admin_url"}


class LocalStackProcess:
    def __init__(self, project_root: Path, startup_timeout: float = 90, *, slack: bool = True,
                 env: Mapping[str, str] | None = None):
        self.project_root = Path(project_root)
        self.slack = slack  # False: no Slack webhook URL in the secret, so nothing is posted
        self.env = dict(env or {})  # extra environment for the stack (e.g. its usage meter)
        self.startup_timeout = startup_timeout
        self.info: dict[str, str] = {}
        self.log_path: Path | None = None
        self._observer_token = ""

    def __enter__(self) -> LocalStackProcess:
        log = tempfile.NamedTemporaryFile(prefix="leadscore-local-", suffix=".log", delete=False)
        self.log_path = Path(log.name)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "leadscore.cli", "local", "--root", str(self.project_root),
             "up"],
            stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1",
                 **({} if self.slack else {"LEADSCORE_LOCAL_SLACK": "off"}), **self.env},
        )
        log.close()
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(self.process.stdout.readline()),
                                  daemon=True)
        reader.start()
        reader.join(self.startup_timeout)
        if not line or not line[0].strip():
            self._terminate()
            raise RuntimeError(f"local stack did not start; log:\n{self.log_tail()}")
        self.info = json.loads(line[0])
        missing = REQUIRED_KEYS - self.info.keys()
        if missing:
            self._terminate()
            raise RuntimeError(f"local stack JSON line lacks {sorted(missing)}")
        return self

    def __exit__(self, *exc: object) -> None:
        self._terminate()

    def _terminate(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout:
            self.process.stdout.close()

    def log_tail(self, lines: int = 60) -> str:
        if not self.log_path or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def admin(self, method: str, path: str, payload: Any = None, timeout: float = 30) -> Any:
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(
            self.info["admin_url"] + path, data=data, method=method,
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())

    def stats(self) -> dict[str, Any]:
        return self.admin("GET", "/stats")

    def observer_token(self) -> str:
        """A private app of the caller's own in the HubSpot emulator (made on first use): tests
        and benchmarks reading HubSpot's state must not spend the rate limit of the app under
        test. Each app has its own per-10-second limit, as in a real portal."""
        if not self._observer_token:
            request = urllib.request.Request(
                self.info["hubspot_url"] + "/_emulator/tokens", method="POST",
                data=json.dumps({"client": "observer"}).encode(),
                headers={"content-type": "application/json"})
            with urllib.request.urlopen(request, timeout=30) as response:
                self._observer_token = json.loads(response.read())["token"]
        return self._observer_token
