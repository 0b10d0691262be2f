"""HubSpot requests per contact on an import (issue 14, item 7): 2,000 contacts created through
HubSpot's batch create API, announced by the emulator as HubSpot does, scored (and enriched
where consented) by the functions of one `leadscore local up` subprocess.

    .venv/bin/python infra/bench/import_bench.py --out import.json [--contacts 2000]

Reports contacts per HubSpot request (the functions' `/stats` hubspot_requests) with the
breakdown by route and by function. Prints a markdown table; writes JSON to --out.
Exits 1 when a contact was left unscored, one was dead-lettered, or the figure misses ≥ 40.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from benchkit import ROOT, Row, exit_status, markdown, write_figures

from leadscore_local.import_scenario import run_import
from leadscore_local.process import LocalStackProcess

TARGET_CONTACTS_PER_REQUEST = 40


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--contacts", type=int, default=2000)
    args = parser.parse_args()

    started = time.monotonic()
    with LocalStackProcess(ROOT) as stack:
        outcome = run_import(stack, args.contacts)
    print(json.dumps(outcome.as_dict(), indent=2), file=sys.stderr, flush=True)
    per_request = round(outcome.contacts_per_request, 1)
    rows = [
        Row("import", f"{outcome.contacts} contacts by batch create ({outcome.events} events in "
            f"{outcome.deliveries} deliveries): contacts per HubSpot request", per_request, "",
            f"≥ {TARGET_CONTACTS_PER_REQUEST}", per_request >= TARGET_CONTACTS_PER_REQUEST,
            key="import_contacts_per_hubspot_request"),
        Row("import", "HubSpot requests by the functions", outcome.hubspot_requests, "",
            key="import_hubspot_requests"),
        Row("import", "contacts scored / consented", outcome.scored, f"of {outcome.consented}",
            f"= {outcome.consented}", outcome.scored == outcome.consented,
            key="import_scored"),
        Row("import", "contacts dead-lettered", outcome.dead_lettered, "", "0",
            outcome.dead_lettered == 0, key="import_dead_lettered"),
    ]
    rows += [Row("import", f"requests by route: {route}", n, "", key=f"import_route_{route}")
             for route, n in sorted(outcome.by_route.items())]
    rows += [Row("import", f"requests by function: {name}", n, "",
                 key=f"import_function_{name}")
             for name, n in sorted(outcome.by_function.items())]
    print(markdown(rows))
    write_figures(args.out, rows, time.monotonic() - started)
    return exit_status(rows)


if __name__ == "__main__":
    sys.exit(main())
