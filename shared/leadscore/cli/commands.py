"""The `leadscore` command line: train, score, the local stack, HubSpot setup, backfill, DPDP.

Subcommands import their modules lazily, so `leadscore --help` stays fast; `leadscore local`
imports the local stack (`leadscore_local`, installed from infra/local with the dev setup).
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
    from leadscore.cli.csv_files import train_csv

    metadata = train_csv(args.data, args.config, args.out, echo=print)
    print(f"model {metadata['version']} written to {args.out}")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from leadscore.cli.csv_files import score_csv

    rows = score_csv(args.model, args.data, args.out)
    print(f"{rows} rows scored → {args.out}")
    return 0


def cmd_backtest(args: argparse.Namespace) -> int:
    from leadscore.cli.csv_files import backtest_csv
    from leadscore.model.backtest import REPORT_HTML, REPORT_JSON

    backtest_csv(args.model, args.data, args.out, echo=print)
    print(f"report → {args.out / REPORT_HTML} (figures in {args.out / REPORT_JSON})")
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


def cmd_local_env_vars(args: argparse.Namespace) -> int:
    from leadscore_local.env_vars import main as env_vars_main

    return env_vars_main([str(args.root / "template.yaml")])


def cmd_hubspot_setup(args: argparse.Namespace) -> int:
    from hubspot import HubSpot

    from leadscore.hubspot.properties import ai_property_specs
    from leadscore.hubspot.setup import WEBHOOK_SUBSCRIPTIONS_HELP, ensure_properties
    from leadscore.model import load
    from leadscore.scoring.descriptions import score_guide

    token = os.environ.get("HUBSPOT_TOKEN")
    if not token:
        raise CliError("set HUBSPOT_TOKEN to a private-app token with crm.schemas.contacts.write")
    client = HubSpot(access_token=token, host=args.base_url)
    specs = ai_property_specs(score_guide(load(args.model)))  # tooltips for this model's tiers
    ensure_properties(client, args.consent_property, args.consent_updated_property, echo=print,
                      specs=specs)
    print(WEBHOOK_SUBSCRIPTIONS_HELP.format(purposes=args.consent_property))
    if args.stack_name:  # the notice's facts come from the deployed stack's parameters
        from leadscore.cli.notice import notice_text
        from leadscore.cli.stack_view import StackNotReadable, from_cloudformation

        try:
            print(notice_text(from_cloudformation(args.stack_name, args.region).parameters))
        except StackNotReadable as error:
            raise CliError(str(error)) from None
    return 0


def cmd_hubspot_export(args: argparse.Namespace) -> int:
    from leadscore.cli.hubspot_export import REQUESTS_PER_SECOND, export_contacts
    from leadscore.hubspot.client import HubSpotClient, HubSpotError, RequestBudget
    from leadscore.model.config import load_config

    token = os.environ.get("HUBSPOT_TOKEN")
    if not token:
        raise CliError("set HUBSPOT_TOKEN to a private-app token with crm.objects.contacts.read")
    config = load_config(args.config)

    def progress(result) -> None:
        print(f"\r{result.written:,} contacts exported, {result.skipped_no_consent:,} skipped "
              f"(no lead_scoring consent), {result.requests:,} requests", end="",
              file=sys.stderr, flush=True)

    try:
        client = HubSpotClient(token, args.base_url, budget=RequestBudget(REQUESTS_PER_SECOND))
        result = export_contacts(client, config, args.out,
                                 consent_property=args.consent_property, progress=progress,
                                 as_of_days=args.as_of_days)
    except (HubSpotError, RuntimeError) as exc:
        print(file=sys.stderr)
        raise CliError(f"export stopped, {args.out} not written: {exc}") from None
    print(file=sys.stderr)
    print(f"{result.written:,} contacts → {args.out}")
    if args.as_of_days is not None:
        print(f"as of {args.as_of_days} days after creation; left out: {result.too_recent:,} "
              f"created more recently, {result.converted_before:,} already converted by then, "
              f"{result.no_history:,} without property history from then")
    return 0


def _sqs_client(args: argparse.Namespace):
    import boto3

    return boto3.client("sqs", region_name=args.region, endpoint_url=args.endpoint_url)


def cmd_dlq_inspect(args: argparse.Namespace) -> int:
    from leadscore.cli.dlq import inspect

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
    from leadscore.cli.dlq import redrive

    result = redrive(_sqs_client(args), args.queue, to=args.to, copy=args.copy)
    if result.method == "copy":
        print(f"moved {result.moved} messages to {result.destination}")
    else:
        print(f"SQS message move task {result.task_handle} started → {result.destination}")
    return 0


def _score_queue_url(args: argparse.Namespace) -> str:
    """`--queue-url`, else the ScoreQueueUrl output of the deployed stack."""
    if args.queue_url:
        return args.queue_url
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        stacks = boto3.client("cloudformation", region_name=args.region).describe_stacks(
            StackName=args.stack_name)["Stacks"]
    except (BotoCoreError, ClientError) as exc:
        raise CliError(f"cannot read stack {args.stack_name!r} ({exc}); pass --queue-url") from exc
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    if "ScoreQueueUrl" not in outputs:
        raise CliError(f"stack {args.stack_name!r} has no ScoreQueueUrl output; pass --queue-url")
    return outputs["ScoreQueueUrl"]


def cmd_backfill(args: argparse.Namespace) -> int:
    import boto3

    from leadscore.cli.backfill import DEFAULT_REQUESTS_PER_SECOND, backfill
    from leadscore.hubspot.client import HubSpotClient, HubSpotError, RequestBudget
    from leadscore.scoring.queues import EnqueueError, ScoreQueue

    token = os.environ.get("HUBSPOT_TOKEN")
    if not token:
        raise CliError("set HUBSPOT_TOKEN to a private-app token with crm.objects.contacts.read")
    queue = ScoreQueue(_score_queue_url(args), boto3.client(
        "sqs", region_name=args.region, endpoint_url=args.endpoint_url))
    hubspot = HubSpotClient(token, args.base_url,
                            budget=RequestBudget(args.requests_per_second
                                                 or DEFAULT_REQUESTS_PER_SECOND))
    try:
        checkpoint = backfill(hubspot=hubspot, queue=queue, checkpoint_path=args.checkpoint,
                              purposes_property=args.consent_property, portal_id=args.portal_id,
                              limit=args.limit, echo=print)
    except (HubSpotError, EnqueueError) as exc:
        raise CliError(f"{exc}; run the same command again to resume from "
                       f"{args.checkpoint}") from exc
    state = "complete" if checkpoint.complete else "stopped (run again to resume)"
    print(f"backfill {state}: {checkpoint.queued} contacts queued in total, "
          f"{hubspot.request_count} HubSpot requests this run")
    return 0


def _receipts_store(args: argparse.Namespace):
    import boto3

    from leadscore.dpdp.erasure import DynamoDBReceipts

    return DynamoDBReceipts(args.table, boto3.resource(
        "dynamodb", region_name=args.region, endpoint_url=args.endpoint_url))


def _date(value: str):
    from datetime import UTC, datetime

    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date: {value}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def cmd_dpdp_report(args: argparse.Namespace) -> int:
    from leadscore.cli.dpdp_report import build_report

    receipts = _receipts_store(args).scan(since=args.since, until=args.until)
    report = build_report(receipts, args.by, since=args.since, until=args.until)
    print(report.model_dump_json(indent=2) if args.json else report.table())
    return 0


def cmd_dpdp_lookup(args: argparse.Namespace) -> int:
    import boto3

    from leadscore.cli.dpdp_report import describe_receipt
    from leadscore.dpdp.erasure import subject_hash

    key = boto3.client("secretsmanager", region_name=args.region,
                       endpoint_url=args.endpoint_url).get_secret_value(
        SecretId=args.key_secret)["SecretString"]
    receipts = _receipts_store(args).for_subject(subject_hash(key.encode(), args.contact_id))
    if not receipts:
        print(f"no erasure receipts for contact {args.contact_id}")
    for item in receipts:
        print(describe_receipt(item))
    return 0


def _stack_view(args: argparse.Namespace):
    """The stack `--stack-name` or `--local-stack` names (see leadscore.cli.stack_view)."""
    from leadscore.cli.stack_view import StackNotReadable, from_cloudformation, from_local_line

    try:
        if args.local_stack:
            text = (sys.stdin.read() if args.local_stack == "-"
                    else Path(args.local_stack).read_text())
            return from_local_line(text)
        if args.stack_name:
            return from_cloudformation(args.stack_name, args.region, args.endpoint_url)
    except StackNotReadable as error:
        raise CliError(str(error)) from None
    return None


def cmd_dpdp_access(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError
    from hubspot.crm.contacts.exceptions import ApiException

    from leadscore.cli.dpdp_access import access_report

    view = _stack_view(args)
    if view is None:
        raise CliError("name the stack: --stack-name NAME, or --local-stack FILE")
    try:
        report = access_report(view, args.contact_id, key_secret=args.key_secret)
    except ApiException as error:  # status and reason only: the body may quote the contact
        raise CliError(f"HubSpot refused the request ({error.status} {error.reason}); check "
                       "the token (crm.objects.contacts.read)") from None
    except (BotoCoreError, ClientError) as error:
        raise CliError(f"cannot read the stack's stores: {error}") from None
    print(json.dumps(report, indent=2, default=str))
    return 0


def cmd_dpdp_affected(args: argparse.Namespace) -> int:
    from leadscore.cli.dpdp_breach import affected_report

    view = _stack_view(args)
    if view is None and not args.log_file:
        raise CliError("name the stack (--stack-name or --local-stack) or --log-file")
    report = affected_report(view, args.since, args.until, log_files=args.log_file or (),
                             cloudwatch=view is not None and not args.local_stack)
    if args.ids_only:
        print("\n".join(contact["contact_id"] for contact in report["contacts"]))
    else:
        print(json.dumps(report, indent=2, default=str))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from leadscore.cli.model_cli import add_model_commands

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

    backtest = commands.add_parser(
        "backtest", help="rank a labelled CSV with a model: report.html (charts) + report.json")
    backtest.add_argument("--model", type=_existing_dir, required=True)
    backtest.add_argument("--data", type=_existing_file, required=True,
                          help="labelled CSV the model was not trained on")
    backtest.add_argument("--out", type=Path, required=True, help="report directory to write")
    backtest.set_defaults(func=cmd_backtest)

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
    env_vars = local_commands.add_parser(
        "env-vars", help="stdin: `local up`'s JSON line; stdout: a `sam local invoke "
                         "--env-vars` file pointing every function at that stack")
    env_vars.set_defaults(func=cmd_local_env_vars)

    portal = argparse.ArgumentParser(add_help=False)  # every command that talks to HubSpot
    portal.add_argument("--base-url", default="https://api.hubapi.com")
    portal.add_argument("--consent-property", default="dpdp_consent_purposes")
    hubspot = commands.add_parser("hubspot", help="HubSpot portal set-up")
    hubspot_commands = hubspot.add_subparsers(dest="hubspot_command", required=True)
    setup = hubspot_commands.add_parser(
        "setup", parents=[portal],
        help="create the ai_lead_scoring properties (idempotent); token in HUBSPOT_TOKEN")
    setup.add_argument("--consent-updated-property", default="dpdp_consent_updated_at")
    setup.add_argument("--stack-name", help="deployed stack: print the privacy-notice facts "
                                            "(purposes, LLM destination, grievance officer)")
    setup.add_argument("--region", default="ap-south-1")
    setup.add_argument("--model", type=_existing_dir, default="layers/model/model",
                       help="the model directory in use: its tiers and label go into the "
                            "property descriptions (default: layers/model/model)")
    setup.set_defaults(func=cmd_hubspot_setup)
    export = hubspot_commands.add_parser(
        "export", parents=[portal],
        help="contacts with lead_scoring consent → a labelled CSV for `leadscore train`; token "
             "in HUBSPOT_TOKEN")
    export.add_argument("--config", type=_existing_file, required=True,
                        help="features.toml: which properties and label to export")
    export.add_argument("--out", type=Path, required=True, help="CSV file to write")
    export.add_argument("--as-of-days", type=int, metavar="N",
                        help="features as they were N days after each contact's creation "
                             "(property history), so the outcome does not leak into them")
    export.set_defaults(func=cmd_hubspot_export)
    backfill = commands.add_parser(
        "backfill", parents=[portal],
        help="queue every consented contact for scoring (resumable); token in HUBSPOT_TOKEN")
    backfill.add_argument("--queue-url", help="the ScoreQueue URL (default: from the stack)")
    backfill.add_argument("--stack-name", default="leadscore",
                          help="stack whose ScoreQueueUrl output to use without --queue-url")
    backfill.add_argument("--region", default="ap-south-1")
    backfill.add_argument("--endpoint-url", help="SQS endpoint, e.g. the local stack's "
                                                 "aws_endpoint_url")
    backfill.add_argument("--portal-id", type=int, default=0)
    backfill.add_argument("--checkpoint", type=Path, default=Path("leadscore-backfill.json"),
                          help="progress file; an interrupted backfill resumes from it")
    backfill.add_argument("--requests-per-second", type=float,
                          help="HubSpot search budget (default 4; HubSpot allows 5 per second)")
    backfill.add_argument("--limit", type=int, help="stop after about this many contacts")
    backfill.set_defaults(func=cmd_backfill)
    dpdp = commands.add_parser("dpdp", help="DPDP evidence from the erasure receipts")
    receipts = argparse.ArgumentParser(add_help=False)  # where the receipts are, for both
    receipts.add_argument("--table", required=True,
                          help="ErasureReceiptsTable name (stack output ErasureReceiptsTableName)")
    receipts.add_argument("--region", default="ap-south-1")
    receipts.add_argument("--endpoint-url", help="e.g. the local stack's aws_endpoint_url")
    dpdp_commands = dpdp.add_subparsers(dest="dpdp_command", required=True)
    dpdp_report = dpdp_commands.add_parser(
        "report", parents=[receipts],
        help="erasure counts by reason and period (no personal data)")
    dpdp_report.add_argument("--by", choices=["day", "week", "month"], default="month")
    dpdp_report.add_argument("--since", type=_date, help="ISO date/time, inclusive (UTC)")
    dpdp_report.add_argument("--until", type=_date, help="ISO date/time, exclusive (UTC)")
    dpdp_report.add_argument("--json", action="store_true", help="the figures as JSON")
    dpdp_report.set_defaults(func=cmd_dpdp_report)
    dpdp_lookup = dpdp_commands.add_parser(
        "lookup", parents=[receipts],
        help="one contact's erasure receipts (answers a data principal's request)")
    dpdp_lookup.add_argument("--contact-id", required=True, help="HubSpot record id")
    dpdp_lookup.add_argument("--key-secret", required=True,
                             help="the hashing key's secret (stack output "
                                  "ErasureReceiptKeySecretArn)")
    dpdp_lookup.set_defaults(func=cmd_dpdp_lookup)
    stack = argparse.ArgumentParser(add_help=False)  # which stack: deployed or local
    stack.add_argument("--stack-name", help="deployed stack (CloudFormation) to read")
    stack.add_argument("--local-stack", metavar="FILE",
                       help="the JSON line `leadscore local up` printed (- for stdin)")
    stack.add_argument("--region", default="ap-south-1")
    stack.add_argument("--endpoint-url", help="AWS endpoint for --stack-name (tests)")
    dpdp_access = dpdp_commands.add_parser(
        "access", parents=[stack],
        help="everything the stack holds or derived about one contact, and who received it "
             "(JSON; right of access). HubSpot token: HUBSPOT_TOKEN or the stack's secret")
    dpdp_access.add_argument("--contact-id", required=True, help="HubSpot record id")
    dpdp_access.add_argument("--key-secret", help="the receipt key's secret, if not the "
                                                  "stack's ErasureReceiptKeySecret")
    dpdp_access.set_defaults(func=cmd_dpdp_access)
    dpdp_affected = dpdp_commands.add_parser(
        "affected", parents=[stack],
        help="contacts whose data the stack held or processed in a time window, with the "
             "evidence (breach notice list; JSON)")
    dpdp_affected.add_argument("--since", type=_date, required=True,
                               help="ISO date/time, inclusive (UTC)")
    dpdp_affected.add_argument("--until", type=_date, required=True,
                               help="ISO date/time, exclusive (UTC)")
    dpdp_affected.add_argument("--log-file", type=_existing_file, action="append",
                               help="also read JSON log lines from this file (the local "
                                    "stack's log, a CloudWatch export); repeatable")
    dpdp_affected.add_argument("--ids-only", action="store_true",
                               help="one contact id per line instead of JSON")
    dpdp_affected.set_defaults(func=cmd_dpdp_affected)
    add_model_commands(commands, _existing_file)
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
    from leadscore.cli.monitor_report import add_parser as add_monitor_parser

    add_monitor_parser(commands)  # `leadscore monitor report` (model monitoring)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (CliError, FileNotFoundError, ValueError) as exc:
        print(f"leadscore: error: {exc}", file=sys.stderr)
        return 2
