"""The `leadscore` command line."""

from leadscore.cli.commands import main

__all__ = ["main"]
