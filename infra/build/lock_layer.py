"""Resolve a Lambda layer's requirements.in into a fully pinned, hashed requirements.txt.

The layers install with ``pip install --no-deps --require-hashes``, so the lock file must
list the whole dependency closure - for the Lambda platform (manylinux x86_64, CPython 3.12),
not for the machine running this - minus what the python3.12 runtime already provides
(``--exclude``: boto3 and friends). pip's own resolver does the work (``--dry-run --report``).

    python3.12 infra/build/lock_layer.py layers/shared/requirements.in \
        layers/shared/requirements.txt --exclude boto3 botocore s3transfer jmespath

The layer Makefiles wrap this as ``make -C layers/<name> lock``.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

# Same target as the layer builds: Lambda python3.12 on x86_64 (Amazon Linux 2023, glibc 2.34).
# fmt: off
LAMBDA_PLATFORM_ARGS = [
    "--only-binary=:all:",
    "--platform", "manylinux_2_28_x86_64",
    "--platform", "manylinux2014_x86_64",
    "--python-version", "3.12",
    "--implementation", "cp",
    "--abi", "cp312",
]
# fmt: on


def canonical(name: str) -> str:
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def resolve(requirements_in: Path, python: str, no_deps: bool = False) -> list[dict]:
    """Run pip's resolver for the Lambda platform and return its install report entries."""
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch, "report.json")
        subprocess.run(
            [
                python,
                "-m",
                "pip",
                "install",
                "--dry-run",
                "--ignore-installed",
                "--quiet",
                "--disable-pip-version-check",
                "--report",
                str(report),
                "--target",
                str(Path(scratch, "target")),
                *LAMBDA_PLATFORM_ARGS,
                *(["--no-deps"] if no_deps else []),
                "-r",
                str(requirements_in),
            ],
            check=True,
        )
        return json.loads(report.read_text())["install"]


def lock_lines(entries: list[dict], exclude: set[str]) -> list[str]:
    lines = []
    for entry in sorted(entries, key=lambda e: canonical(e["metadata"]["name"])):
        name = canonical(entry["metadata"]["name"])
        if name in exclude:
            continue
        hashes = entry["download_info"].get("archive_info", {}).get("hashes", {})
        if "sha256" not in hashes:
            raise SystemExit(f"no sha256 for {name} in pip's report; cannot lock it")
        version = entry["metadata"]["version"]
        lines.append(f"{name}=={version} \\\n    --hash=sha256:{hashes['sha256']}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("requirements_in", type=Path)
    parser.add_argument("requirements_txt", type=Path)
    parser.add_argument("--exclude", nargs="*", default=[], help="projects the runtime provides")
    parser.add_argument("--python", default=sys.executable, help="interpreter whose pip resolves")
    parser.add_argument("--no-deps", action="store_true", help="lock only the listed projects")
    args = parser.parse_args(argv)

    exclude = {canonical(name) for name in args.exclude}
    lines = lock_lines(resolve(args.requirements_in, args.python, args.no_deps), exclude)
    header = [
        f"# Generated from {args.requirements_in.name} by infra/build/lock_layer.py"
        " (`make lock` in this directory). Do not edit by hand.",
        "# Platform: manylinux x86_64, CPython 3.12 (Lambda python3.12).",
    ]
    if exclude:
        header.append(f"# Excluded (provided by the Lambda runtime): {', '.join(sorted(exclude))}")
    args.requirements_txt.write_text("\n".join(header + lines) + "\n", encoding="utf-8")
    print(f"locked {len(lines)} projects into {args.requirements_txt}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
