"""What the bench scripts share: the table row, percentiles, the markdown table, the JSON they
write, and running one script in its own process.

The scripts run as `python infra/bench/<name>.py`, so this directory is on `sys.path` and they
`import benchkit` directly.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Row:
    step: str
    figure: str
    value: float | str
    unit: str = ""
    target: str = ""
    met: bool | None = None
    key: str = ""  # stable name in the JSON `figures` object


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, math.ceil(pct / 100 * len(ordered)))  # the smallest value ≥ pct % of them
    return ordered[min(rank, len(ordered)) - 1]


def markdown(rows: list[Row]) -> str:
    lines = ["| figure | value | target | met |", "|---|---|---|---|"]
    for row in rows:
        value = f"{row.value:,}" if isinstance(row.value, int | float) else row.value
        met = {True: "yes", False: "**no**", None: ""}[row.met]
        lines.append(f"| {row.figure} | {value} {row.unit} | {row.target} | {met} |")
    return "\n".join(lines)


def write_figures(out: Path, rows: list[Row], seconds: float) -> None:
    """`figures` (key -> value), `targets` (key -> target) and `rows` (run_all's Row)."""
    out.write_text(json.dumps({
        "seconds": round(seconds, 1),
        "figures": {row.key or row.figure: row.value for row in rows},
        "targets": {row.key or row.figure: row.target for row in rows if row.target},
        "rows": [asdict(row) for row in rows],
    }, indent=2) + "\n")


def exit_status(rows: list[Row]) -> int:
    """1 when a figure misses its target (its figures still count)."""
    return 0 if all(row.met is not False for row in rows) else 1


def emulator(hubspot_url: str, method: str, action: str, payload: Any = None,
             timeout: float = 120) -> Any:
    """The HubSpot emulator's `/_emulator/<action>` test API (seeding, contacts, stats)."""
    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(f"{hubspot_url}/_emulator/{action}", data=data,
                                     method=method, headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def run_script(args: list[str], timeout: float) -> dict[str, Any]:
    """Run a bench script (in its own process, so timings do not share a warm interpreter)
    that writes JSON to the path given after --out. A script exits 1 when it misses a target;
    its figures still count (the table marks the miss)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "figures.json"
        done = subprocess.run([sys.executable, *args, "--out", str(out)], cwd=ROOT,
                              timeout=timeout, stdin=subprocess.DEVNULL, stdout=sys.stderr)
        if not out.exists():
            raise RuntimeError(f"{args[0]} wrote no figures (exit status {done.returncode})")
        return json.loads(out.read_text())


def slack_off(stack: Any) -> None:
    """Takes the Slack webhook URL out of the stack's secret, so the Slack notifier posts
    nothing and reads nothing from HubSpot: the figures of a bench that calls this are the
    score path's (hot leads reach Slack at about one per second, and each costs a HubSpot
    read; tests/e2e/test_what_reps_see.py covers that path)."""
    import boto3

    secret = stack.info["resources"]["SlackWebhookUrlSecret"]["Ref"]
    boto3.client("secretsmanager", region_name="ap-south-1",
                 endpoint_url=stack.info["aws_endpoint_url"], aws_access_key_id="x",
                 aws_secret_access_key="x").put_secret_value(SecretId=secret,
                                                             SecretString="off")

