"""Tooling: the `leadscore` command and what only operators and developers run. Not shipped to
Lambda (the shared layer's build leaves this subpackage out).

Owns: the command line (`commands`), train/score/backtest on CSV files (`csv_files`),
synthetic contacts (`synthetic`), `hubspot export` (`hubspot_export`), `backfill`, DLQ
inspection and redrive (`dlq`), DPDP report and lookup (`dpdp_report`), the model monitoring
report (`monitor_report`).
May import: scoring, enrichment, dpdp, hubspot, model, monitoring, base, leadscore_local.
"""

from leadscore.cli.commands import main

__all__ = ["main"]
