"""Train the default model shipped in the ModelLayer (what `make model` runs).

Generates synthetic HubSpot contacts with a fixed seed, writes them to a temporary CSV
and trains with layers/model/features.toml into layers/model/model/. Byte-for-byte
deterministic: running it twice leaves identical files.

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

from leadscore.synthetic import generate_contacts  # noqa: E402
from leadscore.training import train_csv  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--config", type=Path, default=ROOT / "layers/model/features.toml")
    parser.add_argument("--out", type=Path, default=ROOT / "layers/model/model")
    args = parser.parse_args(argv)

    contacts = generate_contacts(args.contacts, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        # A fixed file name: its name is recorded in the metadata.
        data = Path(tmp) / "synthetic_contacts.csv"
        with data.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(contacts[0]))
            writer.writeheader()
            writer.writerows(contacts)
        staged = Path(tmp) / "model"
        metadata = train_csv(data, args.config, staged, echo=print)
        # Replace the whole directory so no stale file survives a retrain.
        if args.out.exists():
            shutil.rmtree(args.out)
        shutil.copytree(staged, args.out)
    print(f"default model {metadata['version']} → {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
