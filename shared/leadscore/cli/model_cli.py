"""The `leadscore model` commands (the learning loop from an operator's machine; what they do:
`leadscore.cli.model_commands`)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _model_stack(args: argparse.Namespace):
    from leadscore.cli.model_commands import deployed_stack, local_stack

    return local_stack(args.local_stack) if args.local_stack else deployed_stack(
        args.stack_name, args.region)


def cmd_model_retrain(args: argparse.Namespace) -> int:
    from leadscore.cli.model_commands import decision_line
    from leadscore.learning.registry import Decision

    decision = Decision.model_validate(_model_stack(args).retrain(args.time))
    print(decision_line(decision))
    return 1 if decision.result == "failed" else 0


def cmd_model_list(args: argparse.Namespace) -> int:
    from leadscore.cli.model_commands import decision_line, promotion_line

    stack = _model_stack(args)
    print(f"in use: {stack.in_use()}")
    decisions = stack.artifacts.decisions()
    print(f"retrain runs ({len(decisions)}, newest first):")
    for decision in decisions[:args.limit]:
        print(decision_line(decision))
    promotions = stack.artifacts.promotions()
    if promotions:
        print("promotions and rollbacks (newest first):")
        for record in promotions[:args.limit]:
            print(promotion_line(record))
    return 0


def cmd_model_show(args: argparse.Namespace) -> int:
    from leadscore.cli.model_commands import decision_details

    stack = _model_stack(args)
    decision = stack.artifacts.decision(args.version)
    key = stack.artifacts.report_key(args.version)
    if args.report:
        args.report.write_bytes(stack.artifacts.report(args.version))
    for line in decision_details(decision, f"s3://{stack.artifacts.bucket}/{key}"):
        print(line)
    return 0


def cmd_model_promote(args: argparse.Namespace) -> int:
    from leadscore.cli.model_commands import promotion_line

    stack = _model_stack(args)
    record = stack.promoter().promote(args.version, by="cli")
    print(promotion_line(record))
    return _after_change(stack, record.status)


def cmd_model_rollback(args: argparse.Namespace) -> int:
    from leadscore.cli.model_commands import promotion_line

    stack = _model_stack(args)
    record = stack.promoter().rollback(by="cli", to_built=args.to_built)
    print(promotion_line(record))
    return _after_change(stack, record.status)


def _after_change(stack: Any, status: str) -> int:
    """A new champion by hand resets the shadow challenger, as a retrain's promotion does."""
    if status != "done":
        return 1
    try:
        print(stack.reset_shadow())
    except Exception as error:  # the model changed; say what is left to do
        print(f"the model changed, but the shadow challenger was not reset ({error}): "
              "set the ShadowChallengerParameter to `none` by hand")
        return 1
    return 0


def add_model_commands(commands: Any, _existing_file: Callable[[str], Path]) -> None:
    """`leadscore model retrain | list | show | promote | rollback` under `commands`."""
    model = commands.add_parser("model", help="the learning loop: retrain, candidates, promotion")
    where = argparse.ArgumentParser(add_help=False)  # which stack, for every model command
    where.add_argument("--stack-name", default="leadscore", help="the deployed stack")
    where.add_argument("--region", default="ap-south-1")
    where.add_argument("--local-stack", type=_existing_file, metavar="STACK_JSON",
                       help="the local stack instead: a file holding `leadscore local up`'s line")
    model_commands = model.add_subparsers(dest="model_command", required=True)
    retrain = model_commands.add_parser(
        "retrain", parents=[where], help="run the retrain now and print its decision")
    retrain.add_argument("--time", help="local stack only: the simulated clock (ISO-8601)")
    retrain.set_defaults(func=cmd_model_retrain)
    listing = model_commands.add_parser(
        "list", parents=[where], help="the model in use, every retrain decision and promotion")
    listing.add_argument("--limit", type=int, default=20)
    listing.set_defaults(func=cmd_model_list)
    show = model_commands.add_parser(
        "show", parents=[where], help="one candidate: its figures, the gate, why")
    show.add_argument("version")
    show.add_argument("--report", type=Path, help="also save its report.html here")
    show.set_defaults(func=cmd_model_show)
    promote = model_commands.add_parser(
        "promote", parents=[where], help="make a candidate the model in use")
    promote.add_argument("--version", required=True)
    promote.set_defaults(func=cmd_model_promote)
    rollback = model_commands.add_parser(
        "rollback", parents=[where], help="back to the model in use before the last promotion")
    rollback.add_argument("--to-built", action="store_true",
                          help="back to the model built into the stack instead")
    rollback.set_defaults(func=cmd_model_rollback)
