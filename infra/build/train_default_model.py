"""Train the default model shipped in the ModelLayer (what `make model` runs).

Generates synthetic HubSpot contacts with a fixed seed, writes them to a temporary CSV and
trains with layers/model/features.toml into layers/model/model/. Then backtests it on a
held-out synthetic set drawn with another seed and writes the report to
layers/model/backtest/ (beside the model, not inside it: the report is not shipped in the
Lambda layer). Byte-for-byte deterministic: running it twice leaves identical files.

    .venv/bin/python infra/build/train_default_model.py [--contacts 20000] [--seed 42]
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "shared"))  # works without an installed leadscore too

from leadscore.cli.csv_files import backtest_csv, train_csv  # noqa: E402
from leadscore.cli.synthetic import generate_contacts  # noqa: E402


def write_contacts(path: Path, contacts: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(contacts[0]))
        writer.writeheader()
        writer.writerows(contacts)
    return path


def replace_dir(staged: Path, target: Path) -> None:
    """Swap in a whole directory, so no stale file survives a rerun."""
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(staged, target)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--holdout-contacts", type=int, default=10_000)
    parser.add_argument("--holdout-seed", type=int, default=4242)
    parser.add_argument("--config", type=Path, default=ROOT / "layers/model/features.toml")
    parser.add_argument("--out", type=Path, default=ROOT / "layers/model/model")
    parser.add_argument("--report", type=Path, default=ROOT / "layers/model/backtest")
    args = parser.parse_args(argv)
    if args.holdout_seed == args.seed:
        parser.error("--holdout-seed must differ from --seed: the backtest needs unseen contacts")

    with tempfile.TemporaryDirectory() as tmp:
        # Fixed file names: they are recorded in the metadata and the report.
        data = write_contacts(Path(tmp) / "synthetic_contacts.csv",
                              generate_contacts(args.contacts, args.seed))
        metadata = train_csv(data, args.config, Path(tmp) / "model", echo=print)
        replace_dir(Path(tmp) / "model", args.out)
        print(f"default model {metadata['version']} → {args.out}")

        holdout = write_contacts(Path(tmp) / "synthetic_holdout.csv",
                                 generate_contacts(args.holdout_contacts, args.holdout_seed))
        print(f"backtest on {args.holdout_contacts:,} held-out contacts "
              f"(seed {args.holdout_seed}):")
        backtest_csv(args.out, holdout, Path(tmp) / "report", echo=lambda line: print("  " + line))
        replace_dir(Path(tmp) / "report", args.report)
    print(f"backtest report → {args.report}/report.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
