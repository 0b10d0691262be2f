"""The `leadscore` command line: train, score, the local stack and HubSpot setup.

Subcommands import their modules lazily, so `leadscore --help` stays fast and the
Lambda-side package never pulls in development-only code.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


class CliError(Exception):
    """An error the user can fix; printed without a traceback."""


def _existing_file(value: str) -> Path:
    path = Path(value)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"no such file: {value}")
    return path


def _existing_dir(value: str) -> Path:
    path = Path(value)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"no such directory: {value}")
    return path


def cmd_train(args: argparse.Namespace) -> int:
    from leadscore.training import train_csv

    metadata = train_csv(args.data, args.config, args.out, echo=print)
    print(f"model {metadata['version']} written to {args.out}")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from leadscore.model import score_csv

    rows = score_csv(args.model, args.data, args.out)
    print(f"{rows} rows scored → {args.out}")
    return 0


def cmd_local_up(args: argparse.Namespace) -> int:
    from leadscore_local.stack import run_foreground

    return run_foreground(project_root=args.root)


def cmd_local_demo(args: argparse.Namespace) -> int:
    from leadscore_local.demo import run_demo

    return run_demo(project_root=args.root, contacts=args.contacts, seed=args.seed)


def cmd_local_invoke(args: argparse.Namespace) -> int:
    from leadscore_local.invoke import invoke_once

    event = json.loads(args.event.read_text())
    response = invoke_once(project_root=args.root, logical_id=args.logical_id, event=event,
                           resign=not args.no_resign)
    print(json.dumps(response, indent=2, default=str))
    return 0


def cmd_hubspot_setup(args: argparse.Namespace) -> int:
    from hubspot import HubSpot

    from leadscore.hubspot_setup import WEBHOOK_SUBSCRIPTIONS_HELP, ensure_properties

    token = os.environ.get("HUBSPOT_TOKEN")
    if not token:
        raise CliError("set HUBSPOT_TOKEN to a private-app token with crm.schemas.contacts.write")
    client = HubSpot(access_token=token, host=args.base_url)
    ensure_properties(client, args.consent_property, args.consent_updated_property, echo=print)
    print(WEBHOOK_SUBSCRIPTIONS_HELP.format(purposes=args.consent_property))
    return 0


def _sqs_client(args: argparse.Namespace):
    import boto3

    return boto3.client("sqs", region_name=args.region, endpoint_url=args.endpoint_url)


def cmd_dlq_inspect(args: argparse.Namespace) -> int:
    from leadscore.dlq import inspect

    report = inspect(_sqs_client(args), args.queue, limit=args.limit)
    print(f"{report.queue_url}: about {report.approximate_messages} messages, "
          f"{report.inspected} inspected")
    for reason, count in report.reasons.most_common():
        print(f"{count:>7}  {reason}")
    if report.samples:
        print("samples (bodies not shown: they name contacts):")
        for sample in report.samples:
            print(f"  {sample.message_id}  sent {sample.sent_at}  "
                  f"received {sample.receive_count}x  {sample.reason}")
    return 0


def cmd_dlq_redrive(args: argparse.Namespace) -> int:
    from leadscore.dlq import redrive

    result = redrive(_sqs_client(args), args.queue, to=args.to, copy=args.copy)
    if result.method == "copy":
        print(f"moved {result.moved} messages to {result.destination}")
    else:
        print(f"SQS message move task {result.task_handle} started → {result.destination}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="leadscore", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a model from a labelled CSV export")
    train.add_argument("--data", type=_existing_file, required=True)
    train.add_argument("--config", type=_existing_file, required=True, help="features.toml")
    train.add_argument("--out", type=Path, required=True, help="model directory to write")
    train.set_defaults(func=cmd_train)

    score = commands.add_parser("score", help="score a CSV: id,score,probability,tier,reasons")
    score.add_argument("--model", type=_existing_dir, required=True)
    score.add_argument("--data", type=_existing_file, required=True)
    score.add_argument("--out", type=Path, required=True)
    score.set_defaults(func=cmd_score)

    local = commands.add_parser("local", help="the Docker-free local stack")
    local.add_argument("--root", type=_existing_dir, default=Path.cwd(),
                       help="project root holding template.yaml (default: current directory)")
    local_commands = local.add_subparsers(dest="local_command", required=True)
    up = local_commands.add_parser("up", help="run the stack until SIGINT/SIGTERM")
    up.set_defaults(func=cmd_local_up)
    demo = local_commands.add_parser("demo", help="score synthetic contacts end to end")
    demo.add_argument("--contacts", type=int, default=200)
    demo.add_argument("--seed", type=int, default=7)
    demo.set_defaults(func=cmd_local_demo)
    invoke = local_commands.add_parser("invoke", help="invoke one function with an event file")
    invoke.add_argument("logical_id", help="function logical id from template.yaml")
    invoke.add_argument("-e", "--event", type=_existing_file, required=True)
    invoke.add_argument("--no-resign", action="store_true",
                        help="keep a webhook event's recorded signature (it will be stale)")
    invoke.set_defaults(func=cmd_local_invoke)

    hubspot = commands.add_parser("hubspot", help="HubSpot portal set-up")
    hubspot_commands = hubspot.add_subparsers(dest="hubspot_command", required=True)
    setup = hubspot_commands.add_parser(
        "setup", help="create the ai_lead_scoring properties (idempotent); token in HUBSPOT_TOKEN"
    )
    setup.add_argument("--base-url", default="https://api.hubapi.com")
    setup.add_argument("--consent-property", default="dpdp_consent_purposes")
    setup.add_argument("--consent-updated-property", default="dpdp_consent_updated_at")
    setup.set_defaults(func=cmd_hubspot_setup)
    dlq = commands.add_parser("dlq", help="dead-letter queue operations")
    dlq.add_argument("--region", default="ap-south-1")
    dlq.add_argument("--endpoint-url", help="e.g. the local stack's aws_endpoint_url")
    dlq_commands = dlq.add_subparsers(dest="dlq_command", required=True)
    dlq_inspect = dlq_commands.add_parser("inspect", help="counts by reason and a sample")
    dlq_inspect.add_argument("queue", help="queue name or URL")
    dlq_inspect.add_argument("--limit", type=int, default=1000)
    dlq_inspect.set_defaults(func=cmd_dlq_inspect)
    dlq_redrive = dlq_commands.add_parser("redrive", help="send messages back to their queue")
    dlq_redrive.add_argument("queue", help="queue name or URL")
    dlq_redrive.add_argument("--to", help="destination queue (default: the DLQ's source queue)")
    dlq_redrive.add_argument("--copy", action="store_true",
                             help="move by receive/send/delete, for endpoints without SQS's "
                                  "message move (the local stack)")
    dlq_redrive.set_defaults(func=cmd_dlq_redrive)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (CliError, FileNotFoundError, ValueError) as exc:
        print(f"leadscore: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
