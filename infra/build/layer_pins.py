"""The versions the Lambda layers ship, as the dev environment must install them.

The layers' lock files (`layers/*/requirements*.txt`, made by `make lock` from the
`requirements.in` next to them) are the source of truth: the tests must exercise what ships.
`make setup` installs the project with these pins as pip constraints, so every package the
layers carry — top level and transitive — has the locked version in `.venv` too;
tests/unit/test_dependency_pins.py fails when they differ.

    python infra/build/layer_pins.py > constraints.txt      # name==version, one a line

Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Every lock a layer build installs from (the model layer takes libgomp from scikit-learn's).
LOCK_FILES = ("layers/shared/requirements.txt", "layers/model/requirements.txt",
              "layers/model/libgomp-requirements.txt")
IN_FILES = ("layers/shared/requirements.in", "layers/model/requirements.in")
_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*==\s*([^\s;\\#]+)")


def canonical(name: str) -> str:
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins_of(requirements: Iterable[str]) -> dict[str, str]:
    """The exact pins (`name==version`) among requirement lines; extras, markers and hashes
    dropped, other specifiers ignored."""
    found: dict[str, str] = {}
    for line in requirements:
        match = _PIN.match(line)
        if match:
            found[canonical(match.group(1))] = match.group(2)
    return found


def pins(path: Path) -> dict[str, str]:
    """The pins of a requirements file."""
    return pins_of(path.read_text().splitlines())


def locked_versions(root: Path = ROOT) -> dict[str, str]:
    """Every package a layer ships, at its locked version; a package locked at two different
    versions by two layers is an error (the dev environment can only have one)."""
    versions: dict[str, str] = {}
    for name in LOCK_FILES:
        for package, version in pins(root / name).items():
            if versions.setdefault(package, version) != version:
                raise ValueError(f"{package} is locked at {versions[package]} and {version}")
    return versions


def top_level_pins(root: Path = ROOT) -> dict[str, str]:
    """The layers' top-level requirements (their requirements.in files)."""
    return {package: version for name in IN_FILES for package, version in pins(root / name).items()}


def main() -> int:
    for package, version in sorted(locked_versions().items()):
        print(f"{package}=={version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
