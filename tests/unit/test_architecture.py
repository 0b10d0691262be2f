"""docs/ARCHITECTURE.md's import rules, checked on the source with `ast`: which part of the
leadscore package may import which, runtime never importing tooling or the local stack, numpy
and lightgbm only in the model, a docstring on every subpackage, no module over 500 lines."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from fakes import TEMPLATE

from leadscore_local.cfn_yaml import load_template

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "shared" / "leadscore"
FUNCTIONS = ROOT / "functions"
BASE_MODULES = {"__init__", "settings", "observability", "personal_data", "messaging", "timestamps"}
LOCAL_STACK = "leadscore_local"
NUMERIC = ("numpy", "lightgbm")
MAX_LINES = 500


def import_rules() -> dict[str, set[str]]:
    """The `import-rules` block of docs/ARCHITECTURE.md: part -> the parts it may import."""
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    block = re.search(r"```import-rules\n(.*?)```", text, re.DOTALL)
    assert block, "docs/ARCHITECTURE.md has no import-rules block"
    rules = {}
    for line in block.group(1).splitlines():
        part, *allowed = line.split()
        rules[part] = {name for name in allowed if name != "-"} | {part}
    return rules


RULES = import_rules()


def part_of(module: str) -> str | None:
    """`leadscore.scoring.pipeline` -> "scoring", `leadscore.settings` -> "base",
    `leadscore_local.stack` -> "leadscore_local"; None for anything else."""
    names = module.split(".")
    if names[0] == LOCAL_STACK:
        return LOCAL_STACK
    if names[0] != "leadscore":
        return None
    if len(names) == 1 or names[1] in BASE_MODULES:
        return "base"
    return names[1]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, *, top_level_only: bool = False) -> set[str]:
    """Absolute module names `path` imports; with `top_level_only`, what runs at import time
    (not inside functions or `if TYPE_CHECKING:`)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if top_level_only and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                ast.Lambda)):
            return
        if (top_level_only and isinstance(node, ast.If)
                and "TYPE_CHECKING" in ast.unparse(node.test)):
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against the importing module's package
                package = module_name(path).split(".")
                if path.name != "__init__.py":
                    package = package[:-1]
                base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_the_rules_name_every_part_and_nothing_else():
    subpackages = {path.parent.name for path in PACKAGE.glob("*/__init__.py")}
    assert set(RULES) == subpackages | {"base"}
    top_level = {path.stem for path in PACKAGE.glob("*.py")}
    assert top_level == BASE_MODULES, "a new top-level module belongs in a part, or in the docs"


def _relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_imports_follow_the_rules():
    broken = {}
    for path in SOURCES:
        part = part_of(module_name(path))
        forbidden = sorted(name for name in imports(path)
                           if (target := part_of(name)) is not None and target not in RULES[part])
        if forbidden:
            broken[_relative(path)] = forbidden
    assert not broken, f"imports against docs/ARCHITECTURE.md: {broken}"


def test_numpy_and_lightgbm_only_in_the_model():
    broken = {_relative(path): numeric for path in SOURCES
              if part_of(module_name(path)) not in ("model", "cli")
              and (numeric := sorted(name for name in imports(path)
                                     if name.split(".")[0] in NUMERIC))}
    assert not broken


def test_handlers_import_no_tooling():
    broken = {_relative(app): tooling for app in sorted(FUNCTIONS.glob("*/app.py"))
              if (tooling := sorted(name for name in imports(app)
                                    if part_of(name) in ("cli", LOCAL_STACK)))}
    assert not broken


def _import_time_closure(start: Path) -> set[str]:
    """Every module of leadscore (and third-party top-level name) imported when `start` is."""
    seen: set[str] = set()
    outside: set[str] = set()
    pending = [start]
    while pending:
        path = pending.pop()
        for name in imports(path, top_level_only=True):
            if part_of(name) is None:
                outside.add(name.split(".")[0])
                continue
            for candidate in _files_of(name):
                if str(candidate) not in seen:
                    seen.add(str(candidate))
                    pending.append(candidate)
    return outside


def _files_of(module: str) -> list[Path]:
    """The source files importing `module` runs (its packages' `__init__` too)."""
    if part_of(module) == LOCAL_STACK:
        return []
    names = module.split(".")
    files = []
    for depth in range(1, len(names) + 1):
        base = PACKAGE.parent.joinpath(*names[:depth])
        for candidate in (base / "__init__.py", base.with_suffix(".py")):
            if candidate.is_file():
                files.append(candidate)
    return files


def _without_model_layer() -> list[str]:
    resources = load_template(TEMPLATE)["Resources"]
    return sorted(
        Path(resource["Properties"]["CodeUri"]).name
        for resource in resources.values()
        if resource.get("Type") == "AWS::Serverless::Function"
        and "ModelLayer" not in str(resource["Properties"].get("Layers", [])))


def test_functions_without_the_model_layer_never_import_numpy():
    functions = _without_model_layer()
    assert {"ingest", "enrich", "consent_sweep", "retention_purge"} <= set(functions)
    broken = {function: sorted(outside & set(NUMERIC)) for function in functions
              if (outside := _import_time_closure(FUNCTIONS / function / "app.py"))
              & set(NUMERIC)}
    assert not broken


def test_every_subpackage_says_what_it_owns_and_may_import():
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        part = init.parent.name
        docstring = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        assert "Owns:" in docstring, part
        allowed = re.search(r"May import: ([^.]*)\.", docstring)
        assert allowed, f"{part}: no 'May import: ...' line"
        named = {name.strip() for name in allowed.group(1).split(",")} | {part}
        assert named == RULES[part], f"{part}'s docstring disagrees with docs/ARCHITECTURE.md"


def test_no_module_is_over_500_lines():
    long = {_relative(path): lines for path in SOURCES
            if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long
