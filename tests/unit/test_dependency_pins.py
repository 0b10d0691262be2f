"""The dev environment runs what the Lambda layers ship (issue 14, item 15).

The layers install hash-pinned locks (`layers/*/requirements*.txt`); the tests run in `.venv`.
A test passing against anthropic 2.16 says nothing about the 2.12 that Lambda runs, so every
package a layer ships must be installed here at its locked version, and pyproject's runtime
pins must be the layers' own (requirements.in).
"""

from __future__ import annotations

import importlib.metadata
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "infra" / "build"))

import layer_pins  # noqa: E402 - path set just above

# Build inputs, not runtime: the model layer copies libgomp out of scikit-learn's wheel; the
# dev environment installs scikit-learn for baselines. Either way it must be the same wheel.
BUILD_ONLY = frozenset({"scikit-learn"})


def installed(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def test_every_package_a_layer_ships_is_installed_at_its_locked_version():
    locked = layer_pins.locked_versions()
    assert {"anthropic", "pydantic", "hubspot-api-client", "lightgbm", "numpy"} <= set(locked)
    differing = {package: (version, installed(package)) for package, version in locked.items()
                 if installed(package) != version
                 and not (package in BUILD_ONLY and installed(package) is None)}
    assert not differing, (
        f"{differing} (locked, installed): run `make setup`, which installs with the layers' "
        "locks as constraints, or re-lock the layer (`make -C layers/<name> lock`)")


def test_pyproject_pins_the_layers_top_level_requirements():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pinned = layer_pins.pins_of(project["dependencies"])
    top_level = layer_pins.top_level_pins()
    shared = set(pinned) & set(top_level)
    assert {"anthropic", "pydantic", "hubspot-api-client", "aws-lambda-powertools"} <= shared
    assert {p: pinned[p] for p in shared} == {p: top_level[p] for p in shared}


def test_a_lock_disagreeing_with_the_environment_is_reported(tmp_path):
    # The check is only as good as its reading of the lock: a drifted pin must show.
    for name in layer_pins.LOCK_FILES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    (tmp_path / layer_pins.LOCK_FILES[0]).write_text(
        "anthropic[bedrock]==2.16.0 \\\n    --hash=sha256:00\n"
        "pydantic==2.14.3 ; python_version >= '3.9'\n")
    locked = layer_pins.locked_versions(tmp_path)
    assert locked == {"anthropic": "2.16.0", "pydantic": "2.14.3"}
    assert installed("anthropic") != locked["anthropic"]


def test_two_layers_locking_one_package_at_different_versions_is_an_error(tmp_path):
    for name, text in zip(layer_pins.LOCK_FILES, ("numpy==2.5.5\n", "numpy==2.4.0\n", ""),
                          strict=True):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    with pytest.raises(ValueError, match="numpy"):
        layer_pins.locked_versions(tmp_path)
