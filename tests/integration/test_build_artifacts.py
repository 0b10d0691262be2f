"""`sam build` output fits Lambda python3.12: infra/build/check_artifacts.py on .aws-sam/build.

The build-marked tests need `make build` first and are skipped without its output. The ELF
reader they rely on is checked against binutils' objdump on this machine's libraries.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD_DIR = ROOT / ".aws-sam" / "build"
CHECK = ROOT / "infra" / "build" / "check_artifacts.py"
sys.path.insert(0, str(CHECK.parent))

import check_artifacts  # noqa: E402 - path set just above

FUNCTIONS = {
    "IngestFunction", "ScoreFunction", "EnrichFunction", "ScoreApiFunction",
    "ConsentSweepFunction", "RetentionPurgeFunction", "SlackNotifyFunction",
    "ModelRetrainFunction", "ModelMonitorFunction",
}  # fmt: skip
# The functions that score: the model's runtime (lightgbm, numpy) and the model in two layers.
MODEL_FUNCTIONS = {"ScoreFunction", "ScoreApiFunction", "ModelRetrainFunction",
                   "ModelMonitorFunction"}


@pytest.fixture(scope="module")
def figures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if not (BUILD_DIR / "template.yaml").is_file():
        pytest.skip(f"no `sam build` output in {BUILD_DIR}: run `make build` first")
    report = tmp_path_factory.mktemp("artifacts") / "figures.json"
    completed = subprocess.run(
        [sys.executable, str(CHECK), str(BUILD_DIR), "--json", str(report)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    print(completed.stdout)  # the table, shown with -s or on failure
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return json.loads(report.read_text())


@pytest.mark.build
def test_every_function_was_built_and_imports(figures: dict[str, Any]) -> None:
    assert set(figures["functions"]) == FUNCTIONS
    for name, function in figures["functions"].items():
        assert function["ok"], f"{name}: {function['detail']}"
        assert function["import_ms"] is not None


@pytest.mark.build
def test_sizes_within_lambda_limit(figures: dict[str, Any]) -> None:
    for name, function in figures["functions"].items():
        assert function["size_bytes"] <= check_artifacts.LAMBDA_MAX_UNZIPPED_BYTES, name


@pytest.mark.build
def test_model_functions_carry_and_run_the_model(figures: dict[str, Any]) -> None:
    for name in MODEL_FUNCTIONS:
        function = figures["functions"][name]
        assert function["carries_model"], name
        assert function["layers"] == ["SharedLayer", "ModelRuntimeLayer", "ModelLayer"]
        assert function["model"].startswith("version "), f"{name}: {function['model']}"
    for name in FUNCTIONS - MODEL_FUNCTIONS:
        assert figures["functions"][name]["layers"] == ["SharedLayer"]


@pytest.mark.build
def test_native_code_within_lambda_glibc(figures: dict[str, Any]) -> None:
    assert figures["glibc_scanned"] > 0
    highest = tuple(int(p) for p in figures["glibc_highest"]["GLIBC"].split("."))
    assert highest <= check_artifacts.MAX_VERSIONS["GLIBC"]


@pytest.mark.build
def test_model_runtime_layer_carries_libgomp() -> None:
    if not (BUILD_DIR / "ModelRuntimeLayer").is_dir():
        pytest.skip(f"no ModelRuntimeLayer in {BUILD_DIR}: run `make build` first")
    libgomp = BUILD_DIR / "ModelRuntimeLayer" / "lib" / "libgomp.so.1"
    report = check_artifacts.check_symbol_versions([libgomp])
    assert report.scanned == 1 and report.problems == []


def _needs_via_objdump(path: Path) -> set[tuple[str, str]]:
    output = subprocess.run(
        ["objdump", "-p", str(path)], capture_output=True, text=True, check=True
    ).stdout
    needs, library = set(), ""
    for line in output.split("Version References:")[-1].splitlines():
        if match := re.match(r"\s+required from (\S+):", line):
            library = match.group(1)
        elif match := re.match(r"\s+0x[0-9a-f]+ 0x[0-9a-f]+ \d+ (\S+)", line):
            needs.add((library, match.group(1)))
    return needs


def test_elf_reader_agrees_with_objdump() -> None:
    if shutil.which("objdump") is None:
        pytest.skip("objdump (binutils) not installed")
    candidates = [
        Path(sys.executable).resolve(),
        *sorted(Path("/usr/lib/x86_64-linux-gnu").glob("libstdc++.so.6*")),
        *sorted(Path("/usr/lib/x86_64-linux-gnu").glob("libgomp.so.1*")),
    ]
    checked = 0
    for path in candidates:
        if not path.is_file() or path.read_bytes()[:4] != b"\x7fELF":
            continue
        assert check_artifacts.elf_version_needs(path) == _needs_via_objdump(path), path
        checked += 1
    if not checked:
        pytest.skip("no ELF binary with version references found on this machine")


def test_glibc_limit_is_enforced() -> None:
    """A library needing a newer glibc than Lambda's fails the check (if this machine has one)."""
    candidates = [
        *sorted(Path("/usr/lib/x86_64-linux-gnu").glob("libstdc++.so.6*")),
        *sorted(Path("/usr/lib/x86_64-linux-gnu").glob("libc.so.6")),
        Path(sys.executable).resolve(),
    ]
    newer = [
        path
        for path in candidates
        if path.is_file()
        and any(
            (v := check_artifacts.symbol_version(name)) and v[0] == "GLIBC" and v[1] > (2, 34)
            for _, name in _safe_needs(path)
        )
    ][:1]
    if not newer:
        pytest.skip("this machine has no library needing glibc > 2.34 to test with")
    report = check_artifacts.check_symbol_versions(newer)
    assert any("(Lambda python3.12 has 2.34)" in problem for problem in report.problems)


def _safe_needs(path: Path) -> set[tuple[str, str]]:
    try:
        return check_artifacts.elf_version_needs(path)
    except (check_artifacts.ElfError, struct.error, ValueError, IndexError):
        return set()


def test_tooling_in_the_layer_fails_the_check(tmp_path: Path) -> None:
    """The layer's leadscore without cli/ passes; a CLI module in it, or a shipped module
    importing the CLI or the local stack (even lazily), is reported as not to be shipped."""
    layer = tmp_path / "SharedLayer"
    package = layer / "python" / "leadscore"
    (package / "scoring").mkdir(parents=True)
    (package / "__init__.py").write_text('"""leadscore."""\n')
    (package / "scoring" / "ingest.py").write_text("from leadscore.hubspot import webhooks\n")
    assert check_artifacts.forbidden_contents([layer]) == []

    (package / "cli").mkdir()
    (package / "cli" / "commands.py").write_text("import argparse\n")
    (package / "scoring" / "demo.py").write_text("def run():\n    import leadscore_local.demo\n")
    assert check_artifacts.forbidden_contents([layer]) == [
        str(package / "cli"), f"{package / 'scoring' / 'demo.py'} (imports tooling)"]
