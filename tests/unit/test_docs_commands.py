"""Every `leadscore ...` command in the shell blocks of docs/dpdp.md (the breach runbook, the
evidence commands) parses with today's CLI: a runbook naming a command or an option that does
not exist fails here, not during an incident."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from leadscore.cli.commands import build_parser

DOC = Path(__file__).resolve().parents[2] / "docs" / "dpdp.md"
# Placeholders of the doc, as values the parser accepts.
PLACEHOLDERS = {"--since ...": "--since 2026-05-01", "--until ...": "--until 2026-05-08"}


def doc_commands() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", DOC.read_text(), flags=re.S)
    return [line.strip().split(" #")[0].split(" > ")[0].strip()
            for block in blocks for line in block.splitlines()
            if line.strip().startswith("leadscore ")]


def test_the_runbook_names_the_breach_commands():
    commands = doc_commands()
    assert sum(c.startswith("leadscore dpdp affected") for c in commands) >= 3
    assert any(c.startswith("leadscore dpdp lookup") for c in commands)


@pytest.mark.parametrize("command", doc_commands())
def test_doc_command_parses(command, tmp_path):
    for placeholder, value in PLACEHOLDERS.items():
        command = command.replace(placeholder, value)
    argv = shlex.split(command)[1:]
    argv = [tmp_path.joinpath(a).as_posix() if a.endswith(".jsonl") else a for a in argv]
    for path in argv:
        if path.endswith(".jsonl"):
            Path(path).write_text("")
    args = build_parser().parse_args(argv)
    assert callable(args.func)
