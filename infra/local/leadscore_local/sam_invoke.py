"""`sam local invoke` of the built functions against a running local stack, in Lambda-style
containers (the image from infra/lambda_image/build.sh).

    python -m leadscore_local.sam_invoke seed < stack.json          # the contacts events/ name
    python -m leadscore_local.sam_invoke resign EVENT < stack.json  # a webhook event, signed now
    python -m leadscore_local.sam_invoke all --image TAG             # own stack, every event

`all` (`make sam-invoke`) starts `leadscore local up`, creates the sample contacts, writes the
`--env-vars` file (leadscore_local.env_vars) and invokes every function with each of its events
in events/ (webhook events re-signed for the stack, as `leadscore local invoke` does), printing
one line per invocation. The end-to-end test and the benchmark drive the same `SamLocal`.

Containers run on the host network and reach the stack on 127.0.0.1 only: SAM is run through
infra/lambda_image/sam, whose `--docker-network host` works (sam_host_network.py says why
plain `sam` needs that).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from leadscore_local.env_vars import SAM_INVOKE_ENVIRONMENT, sam_env_vars
from leadscore_local.invoke import resign_webhook, sample_contacts
from leadscore_local.template import load_template

ROOT = Path(__file__).resolve().parents[3]
SAM = ROOT / "infra" / "lambda_image" / "sam"
BUILD_IMAGE = ROOT / "infra" / "lambda_image" / "build.sh"
BUILT_TEMPLATE = ROOT / ".aws-sam" / "build" / "template.yaml"
# Enrichment before scoring (an enrichment older than the contact's score is skipped), scoring
# before the webhooks (whose events the stack's own score function would otherwise apply first).
INVOKE_ORDER = ["EnrichFunction", "ScoreFunction", "SlackNotifyFunction", "ScoreApiFunction",
                "IngestFunction", "ConsentSweepFunction", "RetentionPurgeFunction",
                "ModelMonitorFunction", "ModelRetrainFunction"]
# Functions whose events are signed HubSpot requests, and the stack URL they are signed for.
SIGNED_URL_KEYS = {"IngestFunction": "webhook_url", "ScoreApiFunction": "score_api_url"}

_REPORT = re.compile(r"^REPORT RequestId: \S+\s+(.*)$", re.M)
_REPORT_FIELD = re.compile(r"(Init Duration|Duration|Billed Duration): ([\d.]+) ms")
# The emulator's own measure of the runtime's init (logged with SAM_CLI_RIE_DEV=1): the time
# from starting /var/runtime/bootstrap to its first request for an event, i.e. importing the
# handler module. Its REPORT line's "Init Duration" is not that (about 0.03 ms here), because
# the emulator starts the runtime inside the first invoke.
_RIE_INIT = re.compile(r"INIT REPORT\(durationMs: ([\d.]+)\)")
_CONTAINER_ID = re.compile(r"SAM_CONTAINER_ID: ([0-9a-f]+)")


def build_image() -> str:
    """The image tag from infra/lambda_image/build.sh (cached: about a second when built)."""
    completed = subprocess.run([str(BUILD_IMAGE)], capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"image build failed:\n{completed.stderr[-3000:]}")
    return completed.stdout.strip().splitlines()[-1]


def docker_engine_answers() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=30,
                              check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def seed_sample_contacts(stack: Mapping[str, Any]) -> list[str]:
    """Create the contacts events/ name in the stack's HubSpot emulator, without webhooks (so
    only the invoked functions act on them). Their ids are 101... in a fresh emulator."""
    request = urllib.request.Request(
        stack["hubspot_url"] + "/_emulator/contacts", method="POST",
        data=json.dumps({"contacts": sample_contacts(), "announce": False}).encode(),
        headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["ids"]


def for_stack(logical_id: str, event: dict[str, Any], stack: Mapping[str, Any]) -> dict[str, Any]:
    """The event as the stack's endpoint would receive it now: a recorded HubSpot signature is
    re-signed with the stack's secret (a forged one stays forged); others are unchanged."""
    if logical_id not in SIGNED_URL_KEYS:
        return event
    return resign_webhook(event, stack[SIGNED_URL_KEYS[logical_id]],
                          stack["hubspot_client_secret"])


def sample_events(root: Path = ROOT) -> list[tuple[str, Path]]:
    """(function logical id, event file) for every file in events/, in INVOKE_ORDER then by
    name: a file belongs to the function whose code directory (functions/<dir>/) is the longest
    prefix of its name."""
    template = load_template(root / "template.yaml")
    directories = {
        Path(resource["Properties"]["CodeUri"]).name: logical_id
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }
    pairs = []
    for path in sorted((root / "events").glob("*.json")):
        owners = [d for d in directories if path.stem.startswith(d + "_")]
        if not owners:
            raise ValueError(f"{path.name}: no function's code directory prefixes its name")
        pairs.append((directories[max(owners, key=len)], path))
    order = {logical_id: i for i, logical_id in enumerate(INVOKE_ORDER)}
    return sorted(pairs, key=lambda pair: (order.get(pair[0], len(order)), pair[1].name))


@dataclass
class Invocation:
    logical_id: str
    response: Any  # the function's answer (stdout of `sam local invoke`), parsed
    wall_seconds: float  # the whole `sam local invoke`: SAM's image build, container, invoke
    duration_ms: float | None  # REPORT line: Duration
    report_init_ms: float | None  # REPORT line: Init Duration, as the emulator reports it
    runtime_init_ms: float | None  # the emulator's INIT REPORT: runtime start to ready
    log: str = field(repr=False)

    @property
    def error(self) -> str | None:
        """The error type when the function raised (SAM prints Lambda's error object)."""
        if isinstance(self.response, dict) and "errorType" in self.response:
            return self.response["errorType"]
        return None


class SamLocal:
    """Runs `sam local invoke` for the built template with one image and one env-vars file."""

    def __init__(self, image: str, env_file: Path, *, template: Path = BUILT_TEMPLATE,
                 timeout: float = 600):
        self.image, self.env_file, self.template, self.timeout = image, env_file, template, timeout
        self.container_ids: list[str] = []

    def invoke(self, logical_id: str, event: Mapping[str, Any],
               env_file: Path | None = None) -> Invocation:
        with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="sam-event-") as file:
            json.dump(event, file)
            file.flush()
            command = [
                str(SAM), "local", "invoke", logical_id, "-t", str(self.template),
                "-e", file.name, "--env-vars", str(env_file or self.env_file),
                "--invoke-image", self.image, "--skip-pull-image", "--docker-network", "host",
            ]
            environment = {**os.environ, **SAM_INVOKE_ENVIRONMENT, "SAM_CLI_TELEMETRY": "0",
                           "SAM_CLI_RIE_DEV": "1"}  # the emulator logs its init report
            started = time.perf_counter()
            completed = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True,
                                       text=True, timeout=self.timeout, stdin=subprocess.DEVNULL,
                                       check=False)
            wall = time.perf_counter() - started
        self.container_ids += _CONTAINER_ID.findall(completed.stderr)
        if completed.returncode != 0:
            raise RuntimeError(f"sam local invoke {logical_id} failed "
                               f"({completed.returncode}):\n{completed.stderr[-4000:]}")
        report = dict(_REPORT_FIELD.findall(" ".join(_REPORT.findall(completed.stderr))))
        rie_init = _RIE_INIT.search(completed.stderr)
        return Invocation(
            logical_id=logical_id,
            response=json.loads(completed.stdout) if completed.stdout.strip() else None,
            wall_seconds=wall,
            duration_ms=_float(report.get("Duration")),
            report_init_ms=_float(report.get("Init Duration")),
            runtime_init_ms=_float(rie_init.group(1) if rie_init else None),
            log=completed.stderr,
        )

    def remove_containers(self) -> list[str]:
        """Remove containers this object's invocations left (SAM removes them itself unless it
        was interrupted); returns the ids that were still there."""
        left = [cid for cid in self.container_ids if subprocess.run(
            ["docker", "container", "inspect", cid], capture_output=True,
            check=False).returncode == 0]
        for cid in left:
            subprocess.run(["docker", "rm", "-f", cid], capture_output=True, check=False)
        self.container_ids.clear()
        return left


def write_env_vars(stack: Mapping[str, Any], path: Path, root: Path = ROOT) -> dict[str, Any]:
    env = sam_env_vars(stack, load_template(root / "template.yaml"))
    path.write_text(json.dumps(env, indent=2, sort_keys=True) + "\n")
    return env


def summary(invocation: Invocation) -> str:
    response = invocation.response
    if invocation.error:
        return f"error {invocation.error}"
    if isinstance(response, dict) and "statusCode" in response:
        return f"HTTP {response['statusCode']} {response.get('body', '')}"[:100]
    if isinstance(response, dict) and "batchItemFailures" in response:
        failed = [f["itemIdentifier"] for f in response["batchItemFailures"]]
        return f"batchItemFailures {failed}"
    return json.dumps(response, default=str)[:100]


def _float(value: str | None) -> float | None:
    return float(value) if value is not None else None


def _read_stack_line() -> dict[str, Any]:
    line = sys.stdin.readline()
    if not line.strip():
        raise SystemExit("no JSON line on standard input (pipe the output of leadscore local up)")
    return json.loads(line)


def _run_all(image: str | None) -> int:
    from leadscore_local.process import LocalStackProcess

    image = image or build_image()
    with LocalStackProcess(ROOT) as stack, tempfile.TemporaryDirectory() as scratch:
        seed_sample_contacts(stack.info)
        env_file = Path(scratch) / "env.json"
        write_env_vars(stack.info, env_file)
        sam = SamLocal(image, env_file)
        try:
            for logical_id, path in sample_events():
                event = for_stack(logical_id, json.loads(path.read_text()), stack.info)
                invocation = sam.invoke(logical_id, event)
                print(f"{logical_id:24} {path.name:40} {invocation.wall_seconds:5.1f} s  "
                      f"init {invocation.runtime_init_ms or 0:6.0f} ms  {summary(invocation)}",
                      flush=True)
        finally:
            sam.remove_containers()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("seed", help="create the sample contacts in the stack on stdin")
    resign = commands.add_parser("resign", help="print EVENT re-signed for the stack on stdin")
    resign.add_argument("event", type=Path)
    resign.add_argument("--function", default="IngestFunction", choices=sorted(SIGNED_URL_KEYS))
    every = commands.add_parser("all", help="own stack; every function with each sample event")
    every.add_argument("--image", help="invoke image (default: build or reuse it)")
    args = parser.parse_args(argv)
    if args.command == "seed":
        print(json.dumps(seed_sample_contacts(_read_stack_line())))
    elif args.command == "resign":
        event = for_stack(args.function, json.loads(args.event.read_text()), _read_stack_line())
        print(json.dumps(event, indent=2))
    else:
        return _run_all(args.image)
    return 0


if __name__ == "__main__":
    sys.exit(main())
