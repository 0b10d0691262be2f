"""The Docker-free local stack: template.yaml's functions wired in-process to moto's server,
the HubSpot emulator and the Anthropic emulator, all over real HTTP on 127.0.0.1.

`leadscore local up` prints one JSON line (the URLs and credentials below) once ready and
runs until SIGINT/SIGTERM.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from hubspot import HubSpot

from leadscore.hubspot.properties import ai_property_specs
from leadscore.hubspot.setup import ensure_properties
from leadscore.learning.settings import LOCAL_PROMOTION_SETTING
from leadscore.model import load as load_model
from leadscore.scoring.descriptions import score_guide
from leadscore.timestamps import SIMULATED_CLOCK_SETTING
from leadscore_local import moto_speedups
from leadscore_local.anthropic_emulator import AnthropicEmulator
from leadscore_local.emf import EmfRecorder
from leadscore_local.env_vars import function_environments, local_overrides, local_parameters
from leadscore_local.event_sources import HttpFront, Scheduler, SqsPoller
from leadscore_local.faults import AWS_ERRORS, Faults
from leadscore_local.hubspot_emulator import FAULT_RETRY_AFTER_SECONDS, HubSpotEmulator
from leadscore_local.lambda_runtime import FunctionRuntime
from leadscore_local.loopback import LoopbackServer, QuietHandler
from leadscore_local.model_layers import LocalModelLayers
from leadscore_local.resources import REGION, Resolver, local_client, provision
from leadscore_local.slack_receiver import SlackReceiver
from leadscore_local.template import functions, load_template

FUNCTIONS_CLIENT = "functions"  # the emulator counts this token's requests as the project's
OUTSIDE_CLIENT = "outside"
SWITCH_INTERVAL_SECONDS = 0.001
WEBHOOK_TYPES = ["contact.creation", "contact.propertyChange", "contact.deletion",
                 "contact.privacyDeletion", "contact.merge"]


@dataclass(frozen=True)
class StackInfo:
    """The JSON line `leadscore local up` prints (DESIGN.md, "Local stack"), plus `resources`:
    what `!Ref` and `!GetAtt` give for each resource provisioned in moto (`leadscore local
    env-vars` resolves the template's variables with it)."""

    webhook_url: str
    score_api_url: str
    hubspot_url: str
    hubspot_token: str
    hubspot_client_secret: str
    aws_endpoint_url: str
    anthropic_url: str
    admin_url: str
    resources: dict[str, dict[str, str]]
    slack_webhook_url: str  # the loopback receiver standing in for the sales team's channel


class LocalStack:
    def __init__(self, project_root: Path):
        self.root = project_root.resolve()
        self.stop_event = threading.Event()
        self.client_secret = secrets.token_urlsafe(24)
        self.functions_token = "pat-local-functions-" + secrets.token_hex(8)
        self.outside_token = "pat-local-outside-" + secrets.token_hex(8)
        self.pollers: list[SqsPoller] = []
        self._started: list[Any] = []  # things with .stop(), in start order

    # ------------------------------------------------------------------ lifecycle
    def start(self, event_sources: bool = True) -> StackInfo:
        """Start everything; without event_sources, no SQS pollers or schedule timers run."""
        template = load_template(self.root / "template.yaml")
        specs = functions(template, self.root)

        # Every function and the emulators share one interpreter here, where AWS gives each
        # function its own container. Switching threads every 1 ms instead of 5 ms keeps a
        # request-answering function (ingest, score_api) from queuing behind a CPU-bound
        # batch for the GIL on each of its AWS calls; moto runs in a process of its own.
        sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
        self.moto = moto_speedups.MotoServerProcess()
        self.moto.start()
        self._started.append(self.moto)
        host, port = self.moto.get_host_and_port()
        self.aws_endpoint_url = f"http://{host}:{port}"

        self.hubspot = HubSpotEmulator(tokens={
            self.functions_token: FUNCTIONS_CLIENT, self.outside_token: OUTSIDE_CLIENT,
        })
        self.hubspot.start()
        self._started.append(self.hubspot)
        self.anthropic = AnthropicEmulator()
        self.anthropic.start()
        self._started.append(self.anthropic)
        self.slack = SlackReceiver()
        self.slack.start()
        self._started.append(self.slack)

        # Functions print their metrics (EMF) to stdout: keep them for GET /metrics.
        self.emf = EmfRecorder()
        self._stdout = sys.stdout
        sys.stdout = self.emf.tap(sys.stdout)
        self.faults = Faults()
        self.faults.install()  # before any function creates an AWS client
        self.runtime = FunctionRuntime(specs, self.faults)
        self.runtime.hubspot_requests.install()
        self.front = HttpFront(self.runtime)
        webhook_url = self._route_url("IngestFunction")
        score_api_url = self._route_url("ScoreApiFunction")

        parameters = local_parameters(template, hubspot_url=self.hubspot.url,
                                      webhook_url=webhook_url)
        self.provisioned = provision(
            template, self.aws_endpoint_url, prefix="leadscore-local", parameters=parameters,
            secret_values={
                "HubSpotTokenSecret": self.functions_token,
                "HubSpotClientSecret": self.client_secret,
                "LlmApiKeySecret": "sk-ant-local-" + secrets.token_hex(8),
                # LEADSCORE_LOCAL_SLACK=off: the generated placeholder stays, nothing is posted
                # (as a stack whose operator never put a URL).
                "SlackWebhookUrlSecret": ("not-configured" if os.environ.get(
                    "LEADSCORE_LOCAL_SLACK") == "off" else self.slack.webhook_url),
            },
        )
        self._configure_environment(specs, parameters, webhook_url, score_api_url)
        self.runtime.load_all()

        # As an operator sets up a portal: `leadscore hubspot setup --model layers/model/model`
        # (the property descriptions state the model's tiers and base rate).
        built_model = load_model(self.root / "layers" / "model" / "model")
        ensure_properties(HubSpot(access_token=self.outside_token, host=self.hubspot.url),
                          specs=ai_property_specs(score_guide(built_model)))
        if event_sources:  # a one-off invoke must not trigger the other functions
            # As a deployed app is configured: property changes of the consent properties and
            # of the model's inputs (WATCHED_PROPERTIES).
            watched = [os.environ["CONSENT_PURPOSES_PROPERTY"],
                       os.environ["CONSENT_UPDATED_AT_PROPERTY"],
                       *filter(None, os.environ.get("WATCHED_PROPERTIES", "").split(","))]
            self.hubspot.subscribe(
                target_url=webhook_url, client_secret=self.client_secret, types=WEBHOOK_TYPES,
                property_names=list(dict.fromkeys(name.strip() for name in watched)),
            )

        for spec in specs if event_sources else []:
            for source in spec.sqs_sources:
                self.pollers.append(SqsPoller(
                    self.runtime, spec.logical_id, source,
                    queue_url=self.provisioned.queue_urls[source.queue],
                    queue_arn=self.provisioned.attributes[(source.queue, "Arn")],
                    endpoint_url=self.aws_endpoint_url, stop=self.stop_event,
                ))
        self.scheduler = Scheduler(self.runtime, self.stop_event)
        # Promotions re-point the model functions here (no CloudFormation locally).
        self.model_layers = LocalModelLayers(
            self.runtime, self.root / "layers" / "model" / "model", self.aws_endpoint_url)
        self._started.append(self.model_layers)
        self.admin = _AdminServer(self)

        self.front.start()
        self._started.append(self.front)
        self.admin.start()
        self._started.append(self.admin)
        os.environ[LOCAL_PROMOTION_SETTING] = f"{self.admin.url}/model-layer"
        for poller in self.pollers:
            poller.start()
        if event_sources:
            self.scheduler.start()
        return StackInfo(
            webhook_url=webhook_url,
            score_api_url=score_api_url,
            hubspot_url=self.hubspot.url,
            hubspot_token=self.outside_token,
            hubspot_client_secret=self.client_secret,
            aws_endpoint_url=self.aws_endpoint_url,
            anthropic_url=self.anthropic.url,
            admin_url=self.admin.url,
            resources=self.provisioned.to_json(),
            slack_webhook_url=self.slack.webhook_url,
        )

    def stop(self) -> None:
        self.stop_event.set()
        for poller in self.pollers:
            poller.join(timeout=5)
        if hasattr(self, "scheduler"):
            self.scheduler.join(timeout=2)
        for part in reversed(self._started):
            part.stop()
        self._started.clear()
        if hasattr(self, "faults"):
            self.faults.uninstall()
        if hasattr(self, "runtime"):
            self.runtime.hubspot_requests.uninstall()
        if hasattr(self, "_stdout"):
            sys.stdout = self._stdout

    # ------------------------------------------------------------------ wiring
    def _route_url(self, logical_id: str) -> str:
        spec = self.runtime.specs[logical_id]
        return self.front.url + spec.http_routes[0].path

    def _configure_environment(self, specs: list, parameters: dict[str, str], webhook_url: str,
                               score_api_url: str) -> None:
        """Set every function's environment in this process, resolved against local resources.

        Functions share one process, so a variable must mean the same in every function; a
        clash is a template bug and stops the stack rather than giving one function the
        other's value.
        """
        overrides = local_overrides(
            hubspot_url=self.hubspot.url, anthropic_url=self.anthropic.url,
            webhook_url=webhook_url, score_api_url=score_api_url,
            aws_endpoint_url=self.aws_endpoint_url,
        ) | {"MODEL_DIR": str(self.root / "layers" / "model" / "model")}  # no layer in-process
        per_function = function_environments(
            specs, Resolver(self.provisioned, parameters), overrides)
        environment: dict[str, str] = {}
        for variables in per_function.values():
            for name, value in variables.items():
                if environment.setdefault(name, value) != value:
                    raise ValueError(
                        f"environment variable {name} differs between functions "
                        f"({environment[name]!r} vs {value!r}); the local stack runs them "
                        "in one process"
                    )
        environment |= {
            "AWS_ENDPOINT_URL": self.aws_endpoint_url,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon locally
            # Schedules may run at a simulated time here (POST /schedules/<id>/run), never in AWS.
            SIMULATED_CLOCK_SETTING: "1",
        }
        os.environ.update(environment)

    # ------------------------------------------------------------------ admin
    def stats(self) -> dict[str, Any]:
        sqs = local_client("sqs", self.aws_endpoint_url)

        def depth(logical_id: str) -> int:
            attributes = sqs.get_queue_attributes(
                QueueUrl=self.provisioned.queue_urls[logical_id],
                AttributeNames=["ApproximateNumberOfMessages",
                                "ApproximateNumberOfMessagesNotVisible",
                                # Messages waiting out a delay (e.g. for HubSpot) are queued too.
                                "ApproximateNumberOfMessagesDelayed"],
            )["Attributes"]
            return sum(int(v) for v in attributes.values())

        dlqs = set(self.provisioned.dlq_of.values())
        queues = [q for q in self.provisioned.queue_urls if q not in dlqs]
        return {
            "hubspot_requests": self.hubspot.stats()["requests"].get(FUNCTIONS_CLIENT, 0),
            # The same requests by the function that made them (counted client-side).
            "hubspot_requests_by_function": self.runtime.hubspot_requests.snapshot(),
            "queues": {q: depth(q) for q in queues},
            "dlqs": {q: depth(q) for q in sorted(dlqs)},
            "invocations": dict(self.runtime.invocations),
            "errors": dict(self.runtime.errors),
            "faults_injected": dict(self.faults.injected),
            "busy": any(poller.busy.is_set() for poller in self.pollers),
            "webhooks": {k: v for k, v in self.hubspot.stats().items() if k != "requests"},
        }

    def inject_fault(self, target: str, status: int | str, count: int,
                     retry_after: int | None = FAULT_RETRY_AFTER_SECONDS) -> None:
        """The next `count` calls to `target` fail with `status`: HubSpot and the LLM as
        their emulators can (429, 500, 529, "timeout", "malformed"; the LLM also "refusal"),
        AWS services with "throttle", and a function (its logical id) with "crash" (faults.py).
        A HubSpot 429 carries `Retry-After: retry_after` (none when it is None)."""
        if target == "slack":  # the receiver: 429, 500, 404, 410, 403 or "timeout"
            self.slack.inject_fault(status, count)
        elif target in ("hubspot", "anthropic"):
            if status not in (429, 500, 529, "timeout", "malformed", "refusal") or (
                    status == "refusal" and target == "hubspot"):
                raise ValueError(f"unsupported status {status!r}")
            if target == "hubspot":
                self.hubspot.inject_fault(FUNCTIONS_CLIENT, status, count, retry_after)
            else:
                self.anthropic.inject_fault(status, count)
        elif target in AWS_ERRORS and status == "throttle":
            self.faults.inject_aws(target, count)
        elif target in self.runtime.specs and status == "crash":
            self.faults.inject_crash(target, count)
        else:
            raise ValueError(
                f"unknown fault {target!r}/{status!r}: use hubspot or anthropic with an HTTP "
                f"status, {' or '.join(AWS_ERRORS)} with 'throttle', or a function's logical "
                "id with 'crash'")


class _AdminServer(LoopbackServer):
    """POST /schedules/<LogicalId>/run [{"time": ISO-8601}], GET /stats, POST /faults,
    GET /slack (what was posted to the Slack receiver),
    GET|POST /model-layer (local promotions: `LocalModelLayers`),
    GET /metrics (`?detail=1`: every value with its dimensions)."""

    def __init__(self, stack: LocalStack):
        class Handler(QuietHandler):
            def _json(self, status: int, payload: Any) -> None:
                self.reply(status, {"content-type": "application/json"},
                           json.dumps(payload, default=str).encode())

            def do_GET(self) -> None:
                if self.path == "/stats":
                    self._json(200, stack.stats())
                elif self.path == "/slack":
                    self._json(200, stack.slack.report())
                elif self.path == "/model-layer":
                    self._json(200, stack.model_layers.state())
                elif self.path == "/metrics":
                    self._json(200, stack.emf.metrics())
                elif self.path == "/metrics?detail=1":
                    self._json(200, stack.emf.datapoints())
                else:
                    self._json(404, {"message": "Not Found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                parts = self.path.strip("/").split("/")
                try:
                    if len(parts) == 3 and parts[0] == "schedules" and parts[2] == "run":
                        at = json.loads(raw or b"{}").get("time")
                        at = datetime.fromisoformat(at).astimezone(UTC) if at else None
                        self._json(200, {"result": stack.scheduler.run_now(parts[1], at)})
                    elif self.path == "/model-layer":
                        layer = json.loads(raw or b"{}")
                        self._json(200, stack.model_layers.point_to(
                            str(layer.get("layer_arn") or ""), layer.get("bucket"),
                            layer.get("key")))
                    elif self.path == "/faults":
                        fault = json.loads(raw or b"{}")
                        status = fault["status"]
                        stack.inject_fault(fault["target"], status, int(fault.get("count", 1)),
                                           fault.get("retry_after", FAULT_RETRY_AFTER_SECONDS))
                        self._json(200, {"ok": True})
                    else:
                        self._json(404, {"message": "Not Found"})
                except KeyError as exc:
                    self._json(404 if parts[0] == "schedules" else 400,
                               {"message": f"unknown or missing: {exc}"})
                except (ValueError, TypeError) as exc:
                    self._json(400, {"message": str(exc)})
                except Exception as exc:  # the function failed: report, keep serving
                    self._json(500, {"message": f"{type(exc).__name__}: {exc}"})

        super().__init__(Handler, name="admin")


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[TextIO]:
    """Everything the functions print goes to stderr; yields a stream on the real stdout.

    Swapping sys.stdout is not enough: Powertools' log handler keeps the stream it was built
    with (at import), so file descriptor 1 itself points at stderr meanwhile. Unread logs
    on a piped stdout would otherwise fill the pipe and stall the stack.
    """
    sys.stdout.flush()
    real_stdout = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield real_stdout
    finally:
        sys.stdout.flush()
        os.dup2(real_stdout.fileno(), 1)
        real_stdout.close()


def run_foreground(project_root: Path) -> int:
    """`leadscore local up`: start, print the JSON line, run until SIGINT/SIGTERM."""
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    stack = LocalStack(project_root)
    with stdout_to_stderr() as json_out:
        try:
            info = stack.start()
            json_out.write(json.dumps(asdict(info)) + "\n")
            json_out.flush()
            while not stopping.wait(0.5):  # a bounded wait keeps signal delivery prompt
                pass
        finally:
            stack.stop()
    return 0
