"""SAM CLI with a `--docker-network host` that puts the function containers on the host network.

SAM CLI (checked: 1.170) accepts `--docker-network host` but creates the function container on
Docker's default bridge all the same: `Container.create` skips joining a network named "host"
and never sets `network_mode` (samcli/local/docker/container.py), so a function cannot reach
the local stack on 127.0.0.1 (aws/aws-sam-cli#4236, #7732). This runs SAM's own CLI with one
change, made where SAM asks docker-py to create a Lambda container and only when the command
line says `--docker-network host`: the container gets `network_mode="host"`, and the runtime
interface emulator inside it listens on 127.0.0.1 at the port SAM picked for it (a published
port means nothing on the host network) with its runtime API on another free loopback port
(not its default 9001, which two containers would share). Everything stays on 127.0.0.1.

Run it as `infra/lambda_image/sam ...` (the same arguments as `sam`), with .tools/sam's Python.
"""

from __future__ import annotations

import socket
import sys
from typing import Any

from docker.models.containers import ContainerCollection
from samcli.cli.main import cli
from samcli.local.docker.container import Container

LAMBDA_LABEL = ("sam.cli.container.type", "lambda")  # what SAM labels function containers with
RIE_PATH = "/var/rapid/aws-lambda-rie"


def _free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _host_network(kwargs: dict[str, Any]) -> dict[str, Any]:
    """docker-py `containers.create` arguments for a SAM Lambda container, moved to the host
    network. Fails loudly if SAM no longer builds them as this expects."""
    ports = kwargs.pop("ports", {})
    entrypoint = list(kwargs.get("entrypoint") or [])
    binding = ports.get(Container.RAPID_PORT_CONTAINER)
    if not binding or not entrypoint or entrypoint[0] != RIE_PATH:
        raise RuntimeError(
            "this SAM CLI creates Lambda containers differently than sam_host_network.py "
            f"expects (ports={ports!r}, entrypoint={entrypoint!r}); update it")
    _interface, host_port = binding
    kwargs["network_mode"] = "host"
    kwargs["entrypoint"] = [
        RIE_PATH,
        "--runtime-interface-emulator-address", f"127.0.0.1:{host_port}",
        "--runtime-api-address", f"127.0.0.1:{_free_loopback_port()}",
        *entrypoint[1:],
    ]
    return kwargs


def _install() -> None:
    create = ContainerCollection.create

    def create_on_host_network(self: ContainerCollection, image: str, command: Any = None,
                               **kwargs: Any) -> Any:
        labels = kwargs.get("labels") or {}
        if labels.get(LAMBDA_LABEL[0]) == LAMBDA_LABEL[1]:
            kwargs = _host_network(kwargs)
        return create(self, image, command, **kwargs)

    ContainerCollection.create = create_on_host_network


def _asks_for_host_network(argv: list[str]) -> bool:
    for i, arg in enumerate(argv):
        if arg == "--docker-network=host" or (
                arg == "--docker-network" and argv[i + 1:i + 2] == ["host"]):
            return True
    return False


if __name__ == "__main__":
    if _asks_for_host_network(sys.argv[1:]):
        _install()
    sys.argv[0] = "sam"
    sys.exit(cli())
