"""Tooling: the `leadscore` command and what only operators and developers run. Not shipped to
Lambda (the shared layer's build leaves this subpackage out).

Owns: the command line (`commands`), train/score/backtest on CSV files (`csv_files`),
synthetic contacts (`synthetic`), `hubspot export` (`hubspot_export`), `backfill`, DLQ
inspection and redrive (`dlq`), DPDP report and lookup (`dpdp_report`), the right of access
(`dpdp_access`), the breach notice list (`dpdp_breach`), the privacy-notice facts `hubspot
setup` prints (`notice`), where a deployed or local stack keeps things (`stack_view`),
`model retrain | list | show | promote | rollback` (`model_cli`, `model_commands`), and the
model monitoring report (`monitor_report`).
May import: scoring, enrichment, learning, monitoring, dpdp, hubspot, model, base,
leadscore_local.
"""

from leadscore.cli.commands import main

__all__ = ["main"]
