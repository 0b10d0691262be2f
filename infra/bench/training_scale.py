"""Training at scale: wall time and peak memory of `leadscore.model.training.train` (the recipe a
scheduled retrain runs in Lambda) on 10k / 100k / 1M synthetic contacts.

Each size runs in its own process: the contacts are generated there (not timed), then `train`
runs on the rows (schema, features, cross-validated trees + linear blend, calibration, files);
the figures are its wall time, its CPU time (training is single-threaded, so on a shared
machine CPU time is the figure that load does not inflate) and the process's peak resident
memory (rows in memory + training), read from the kernel's high-water mark. Targets: the
retrain Lambda's limits with a margin — 1M rows in ≤ 600 s (two thirds of Lambda's 15 minutes:
its vCPUs may be slower than this machine's) and ≤ 3,008 MB peak.

    .venv/bin/python infra/bench/training_scale.py [--rows 10000,100000,1000000] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from benchkit import ROOT, Row, exit_status, markdown, write_figures

SECONDS_TARGET = 600  # at 1M rows
MEMORY_TARGET_MB = 3008
CONFIG = ROOT / "layers/model/features.toml"

_CHILD = r"""
import json, resource, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, sys.argv[1] + "/shared")
from leadscore.cli.synthetic import generate_contacts
from leadscore.model.config import LabelledData, parse_config
from leadscore.model.training import train
rows, config_path = int(sys.argv[2]), Path(sys.argv[3])
contacts = generate_contacts(rows, 42)
text = config_path.read_text(encoding="utf-8")
data = LabelledData(contacts, name=f"synthetic-{rows}", sha256="-")
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
with tempfile.TemporaryDirectory() as out:
    started, cpu_started = time.perf_counter(), cpu()
    metadata = train(data, parse_config(text), text, Path(out), echo=lambda _: None)
    seconds, cpu_seconds = time.perf_counter() - started, cpu() - cpu_started
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"rows": rows, "seconds": round(seconds, 1),
                  "cpu_seconds": round(cpu_seconds, 1), "peak_mb": round(peak_mb),
                  "folds": metadata["training"]["folds_trained"],
                  "trees": metadata["metrics"]["best_iteration"],
                  "num_leaves": metadata["training"]["params"]["num_leaves"],
                  "gbm_weight": metadata["blend"]["gbm_weight"],
                  "auc": metadata["metrics"]["auc"]}))
"""


def measure(rows: int) -> dict:
    done = subprocess.run([sys.executable, "-c", _CHILD, str(ROOT), str(rows), str(CONFIG)],
                          capture_output=True, text=True, timeout=3600, check=True,
                          stdin=subprocess.DEVNULL)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="10000,100000,1000000")
    parser.add_argument("--out", type=Path, default=Path("training-scale.json"))
    args = parser.parse_args()
    started = time.monotonic()
    rows: list[Row] = []
    for n in (int(r) for r in args.rows.split(",")):
        result = measure(n)
        print(json.dumps(result), file=sys.stderr, flush=True)
        largest = n >= 1_000_000
        rows.append(Row("training", f"train {n:,} synthetic contacts: wall time", result["seconds"],
                        "s", f"≤ {SECONDS_TARGET} s" if largest else "",
                        result["seconds"] <= SECONDS_TARGET if largest else None,
                        key=f"train_seconds_{n}"))
        rows.append(Row("training", f"train {n:,} synthetic contacts: CPU time (one thread; "
                        "what a busy machine does not inflate)", result["cpu_seconds"], "s",
                        key=f"train_cpu_seconds_{n}"))
        rows.append(Row("training", f"train {n:,} synthetic contacts: peak memory",
                        result["peak_mb"], "MB", f"≤ {MEMORY_TARGET_MB:,} MB",
                        result["peak_mb"] <= MEMORY_TARGET_MB, key=f"train_peak_mb_{n}"))
    print(markdown(rows))
    write_figures(args.out, rows, time.monotonic() - started)
    return exit_status(rows)


if __name__ == "__main__":
    sys.exit(main())
