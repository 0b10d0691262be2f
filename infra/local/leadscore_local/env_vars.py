"""The functions' environment against the local stack, in-process and for `sam local invoke`.

`leadscore local up` sets it in its own process for the functions it runs; `leadscore local
env-vars` (`python -m leadscore_local.env_vars < stack.json > env.json`) writes the same values
as a `sam local invoke --env-vars` file, from the JSON line the stack printed (its `resources`
key holds what `!Ref` / `!GetAtt` give for every resource it provisioned). Both resolve the
template's variables with one `Resolver`, so a function in a container sees what the in-process
one sees, except `MODEL_DIR`: the container has the model layer at /opt/model, as in AWS.

SAM passes a function only the variables the template declares for it (`--env-vars` overrides
their values, other names are ignored), so the file names every declared variable of every
function, and the template declares `AWS_ENDPOINT_URL` (empty in AWS, which botocore ignores)
for this file to point at moto's server. The credentials and region are not template variables
(Lambda reserves them): SAM passes the container its own session's, i.e. samconfig.toml's
region ap-south-1, and the shell's AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (dummy values are
enough for moto; SAM_INVOKE_ENVIRONMENT holds the ones the project's tools use).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from leadscore_local.resources import REGION, Provisioned, Resolver
from leadscore_local.template import FunctionSpec, functions, load_template, parameter_defaults

# The environment for the `sam` process: dummy credentials for moto, and the region the local
# stack provisions in (SAM gives the container its own session's credentials and region).
SAM_INVOKE_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_REGION": REGION,
    "AWS_DEFAULT_REGION": REGION,
}


def local_parameters(template: Mapping[str, Any], *, hubspot_url: str,
                     webhook_url: str) -> dict[str, str]:
    """Template parameters as the local stack sets them: defaults, HubSpot and the LLM emulated."""
    return parameter_defaults(template) | {
        "HubSpotBaseUrl": hubspot_url,
        "LlmProvider": "anthropic",
        "WebhookPublicUrl": webhook_url,
    }


def local_overrides(*, hubspot_url: str, anthropic_url: str, webhook_url: str,
                    score_api_url: str, aws_endpoint_url: str) -> dict[str, str]:
    """Variables whose template value is for AWS only (a literal, or a parameter the local
    stack does not set) and that must point at the stack's emulators instead."""
    return {
        "AWS_ENDPOINT_URL": aws_endpoint_url,
        "HUBSPOT_BASE_URL": hubspot_url,
        "ANTHROPIC_BASE_URL": anthropic_url,
        "LLM_PROVIDER": "anthropic",
        "WEBHOOK_PUBLIC_URL": webhook_url,
        "SCORE_API_PUBLIC_URL": score_api_url,
    }


def function_environments(specs: Iterable[FunctionSpec], resolve: Resolver,
                          overrides: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """Logical id → every variable the template declares for that function, resolved."""
    return {
        spec.logical_id: {name: overrides.get(name) or resolve(raw)
                          for name, raw in spec.environment.items()}
        for spec in specs
    }


def sam_env_vars(stack: Mapping[str, Any],
                 template: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """The `--env-vars` file (SAM's per-function format) for the stack whose line is `stack`."""
    if "resources" not in stack:
        raise ValueError("the stack's JSON line has no `resources`: restart `leadscore local up` "
                         "from this version")
    parameters = local_parameters(template, hubspot_url=stack["hubspot_url"],
                                  webhook_url=stack["webhook_url"])
    resolve = Resolver(Provisioned.from_json(stack["resources"]), parameters)
    overrides = local_overrides(
        hubspot_url=stack["hubspot_url"], anthropic_url=stack["anthropic_url"],
        webhook_url=stack["webhook_url"], score_api_url=stack["score_api_url"],
        aws_endpoint_url=stack["aws_endpoint_url"],
    )
    try:  # only the environment is read; code directories do not matter here
        return function_environments(functions(dict(template), Path(".")), resolve, overrides)
    except KeyError as missing:
        raise ValueError(f"template.yaml refers to {missing}, which the stack's JSON line does "
                         "not list under `resources` (is the line from this project's "
                         "`leadscore local up`?)") from None


def main(argv: list[str] | None = None) -> int:
    """stdin: the JSON line of `leadscore local up`; stdout: the `--env-vars` JSON."""
    args = argv if argv is not None else sys.argv[1:]
    template_path = Path(args[0]) if args else Path("template.yaml")
    line = sys.stdin.readline()
    if not line.strip():
        print("leadscore local env-vars: no JSON line on standard input "
              "(pipe the output of `leadscore local up`)", file=sys.stderr)
        return 2
    env = sam_env_vars(json.loads(line), load_template(template_path))
    json.dump(env, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
