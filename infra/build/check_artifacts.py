"""Check `sam build` output against what the Lambda python3.12 runtime can actually run.

For every function in ``.aws-sam/build/template.yaml``:

* size - unzipped function + all its layers; Lambda refuses more than 250 MB. Functions
  that carry the model (a layer with ``model/``) should stay under 150 MB for cold starts:
  exceeding that is reported as a target miss, not a failure.
* glibc - every ``*.so*`` in the function and its layers may need at most GLIBC_2.34 and
  GLIBCXX_3.4.29 (Amazon Linux 2023's glibc 2.34 and GCC 11 libstdc++). Read from the ELF
  version-needs section with a small stdlib parser, no binutils required.
* contents - nothing the runtime provides or only development needs (boto3, moto, pytest,
  pandas, scikit-learn, the local stack ``leadscore_local``), and no leadscore tooling: the
  ``leadscore/cli`` subpackage, or a shipped module importing it or the local stack.
* import - ``app`` is imported in a fresh ``python3.12 -I -S -B`` whose sys.path holds only
  the function, its layers' ``python/`` and a boto3 install (the runtime provides boto3),
  with ``LD_LIBRARY_PATH`` = the layers' ``lib/`` and ``/opt/...`` env values mapped onto the
  layers, as Lambda would. Native libraries the runtime lacks (libgomp, libgfortran, ...)
  must be loaded from a layer, not from this machine. Functions with ``MODEL_DIR`` also load
  the model with ``leadscore.model.load`` and score an empty contact.

Prints a table and exits non-zero on any failure::

    python infra/build/check_artifacts.py [.aws-sam/build] [--json figures.json]
    python infra/build/check_artifacts.py --glibc FILE_OR_DIR...   # only the glibc check
"""

from __future__ import annotations

import argparse
import ast
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MB = 1024 * 1024  # sizes are MiB, as in Lambda's limits (250 MB = 262,144,000 bytes)
LAMBDA_MAX_UNZIPPED_BYTES = 262_144_000  # "250 MB" function + layers, unzipped
MODEL_TARGET_BYTES = 150 * MB
# Lambda python3.12 = Amazon Linux 2023: glibc 2.34, libstdc++ of GCC 11.
MAX_VERSIONS = {"GLIBC": (2, 34), "GLIBCXX": (3, 4, 29)}
# Native libraries the runtime does not have: if they load, they must come from a layer.
NOT_IN_RUNTIME = re.compile(r"^lib(gomp|gfortran|quadmath|openblas|blas|lapack)\b")
# What the runtime provides and the import check borrows from this machine (boto3's closure).
RUNTIME_PROVIDED = ["boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six"]
RUNTIME_DISTRIBUTIONS = [
    "boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "urllib3", "six",
]  # fmt: skip
# Never shipped: the runtime's own copies, emulators, training-only and test dependencies.
FORBIDDEN_TOP_LEVEL = {
    "boto3", "botocore", "s3transfer", "leadscore_local", "moto", "pandas", "sklearn",
    "pytest", "_pytest",
}  # fmt: skip
# The leadscore package's tooling (docs/ARCHITECTURE.md): the CLI and what only it uses. The
# layer build leaves it out; no shipped module may import it or the local stack.
TOOLING_PACKAGE = "cli"
TOOLING_IMPORTS = ("leadscore.cli", "leadscore_local")
FAKE_ENV = {
    "AWS_REGION": "ap-south-1",
    "AWS_DEFAULT_REGION": "ap-south-1",
    "AWS_ACCESS_KEY_ID": "AKIACHECKARTIFACTS00",
    "AWS_SECRET_ACCESS_KEY": "check-artifacts-fake-secret",
    "AWS_SESSION_TOKEN": "check-artifacts-fake-token",
    # Nothing may reach AWS during import; an accidental call fails fast here.
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
    "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
    "_HANDLER": "app.lambda_handler",
    "LANG": "en_US.UTF-8",
    "TZ": ":UTC",
}
FAKE_ACCOUNT = "123456789012"


# ----------------------------------------------------------------------------- ELF


class ElfError(ValueError):
    """Not an ELF file we can read."""


def elf_version_needs(path: Path) -> set[tuple[str, str]]:
    """Return {(needed library, version name)} from the ELF's SHT_GNU_verneed section."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF":
        raise ElfError(f"{path}: not an ELF file")
    elf_class, encoding = data[4], data[5]
    if elf_class not in (1, 2) or encoding not in (1, 2):
        raise ElfError(f"{path}: unsupported ELF class/encoding {elf_class}/{encoding}")
    end = "<" if encoding == 1 else ">"
    if elf_class == 2:
        shoff, shentsize, shnum = (
            struct.unpack_from(end + "Q", data, 0x28)[0],
            *struct.unpack_from(end + "HH", data, 0x3A),
        )
        section_fmt = end + "IIQQQQIIQQ"
    else:
        shoff, shentsize, shnum = (
            struct.unpack_from(end + "I", data, 0x20)[0],
            *struct.unpack_from(end + "HH", data, 0x2E),
        )
        section_fmt = end + "IIIIIIIIII"
    if shoff == 0 or shnum == 0:
        raise ElfError(f"{path}: no section headers")
    sections = [struct.unpack_from(section_fmt, data, shoff + i * shentsize) for i in range(shnum)]

    def string_at(table: tuple, offset: int) -> str:
        start = table[4] + offset
        return data[start : data.index(b"\0", start)].decode("ascii", "replace")

    needs: set[tuple[str, str]] = set()
    for section in sections:
        sh_type, sh_offset, sh_link, sh_info = section[1], section[4], section[6], section[7]
        if sh_type != 0x6FFFFFFE:  # SHT_GNU_verneed
            continue
        strtab = sections[sh_link]
        entry = sh_offset
        for _ in range(sh_info):
            _, count, file_off, aux_off, next_off = struct.unpack_from(end + "HHIII", data, entry)
            library = string_at(strtab, file_off)
            aux = entry + aux_off
            for _ in range(count):
                _, _, _, name_off, aux_next = struct.unpack_from(end + "IHHII", data, aux)
                needs.add((library, string_at(strtab, name_off)))
                aux += aux_next
            if not next_off:
                break
            entry += next_off
    return needs


def symbol_version(name: str) -> tuple[str, tuple[int, ...]] | None:
    """'GLIBC_2.17' -> ('GLIBC', (2, 17)); None for GLIBC_PRIVATE and the like."""
    match = re.fullmatch(r"([A-Z]+)_(\d+(?:\.\d+)*)", name)
    if not match:
        return None
    return match.group(1), tuple(int(part) for part in match.group(2).split("."))


def shared_objects(roots: Iterable[Path]) -> Iterator[Path]:
    for root in roots:
        if root.is_file():
            yield root
            continue
        for path in sorted(root.rglob("*")):
            if path.is_file() and re.search(r"\.so(\.\d+)*$", path.name):
                yield path


@dataclass
class GlibcReport:
    scanned: int = 0
    highest: dict[str, tuple[tuple[int, ...], Path]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def check_symbol_versions(roots: Iterable[Path]) -> GlibcReport:
    report = GlibcReport()
    for path in shared_objects(roots):
        report.scanned += 1
        try:
            needs = elf_version_needs(path)
        except (ElfError, struct.error, IndexError, ValueError) as error:
            report.problems.append(f"{path}: unreadable ELF ({error})")
            continue
        for _, name in sorted(needs):
            parsed = symbol_version(name)
            if parsed is None or parsed[0] not in MAX_VERSIONS:
                continue
            family, version = parsed
            if family not in report.highest or version > report.highest[family][0]:
                report.highest[family] = (version, path)
            if version > MAX_VERSIONS[family]:
                limit = ".".join(map(str, MAX_VERSIONS[family]))
                report.problems.append(f"{path}: needs {name} (Lambda python3.12 has {limit})")
    return report


def format_highest(report: GlibcReport) -> str:
    if not report.highest:
        return "no versioned glibc symbols"
    return ", ".join(
        f"{family}_{'.'.join(map(str, version))} ({path.name})"
        for family, (version, path) in sorted(report.highest.items())
    )


# ----------------------------------------------------------------------------- template


def tree_size(root: Path) -> int:
    total = 0
    for directory, _, files in os.walk(root, followlinks=True):
        for name in files:
            total += (Path(directory) / name).stat().st_size
    return total


def resolve_value(value: Any, template: dict[str, Any]) -> Any:
    """Best-effort value of an intrinsic with parameter defaults and fake resource ids."""
    if not isinstance(value, dict) or len(value) != 1:
        return value
    ((key, arg),) = value.items()
    parameters = template.get("Parameters", {})
    resources = template.get("Resources", {})
    if key == "Ref":
        if arg in ("AWS::Region",):
            return FAKE_ENV["AWS_REGION"]
        if arg == "AWS::AccountId":
            return FAKE_ACCOUNT
        if arg in parameters:
            default = parameters[arg].get("Default", "")
            return ",".join(default) if isinstance(default, list) else str(default)
        kind = resources.get(arg, {}).get("Type", "")
        region = FAKE_ENV["AWS_REGION"]
        return {
            "AWS::SQS::Queue": f"https://sqs.{region}.amazonaws.com/{FAKE_ACCOUNT}/{arg}",
            "AWS::SNS::Topic": f"arn:aws:sns:{region}:{FAKE_ACCOUNT}:{arg}",
            "AWS::SecretsManager::Secret": (
                f"arn:aws:secretsmanager:{region}:{FAKE_ACCOUNT}:secret:{arg}-AbCdEf"
            ),
        }.get(kind, arg)
    if key == "Fn::If":
        condition, when_true, when_false = arg
        chosen = when_true if evaluate_condition(condition, template) else when_false
        return resolve_value(chosen, template)
    if key == "Fn::GetAtt":
        return f"{arg[0]}.{arg[1]}"
    if key == "Fn::Sub":
        text = arg if isinstance(arg, str) else arg[0]
        return re.sub(
            r"\$\{([^}!]+)\}", lambda m: str(resolve_value({"Ref": m[1]}, template)), text
        )
    return str(value)


def evaluate_condition(name_or_expr: Any, template: dict[str, Any]) -> bool:
    if isinstance(name_or_expr, str):
        return evaluate_condition(template.get("Conditions", {})[name_or_expr], template)
    ((key, arg),) = name_or_expr.items()
    if key == "Condition":
        return evaluate_condition(arg, template)
    if key == "Fn::Equals":
        return str(resolve_value(arg[0], template)) == str(resolve_value(arg[1], template))
    if key == "Fn::Not":
        return not evaluate_condition(arg[0], template)
    if key == "Fn::And":
        return all(evaluate_condition(item, template) for item in arg)
    if key == "Fn::Or":
        return any(evaluate_condition(item, template) for item in arg)
    raise ValueError(f"unsupported condition {key}")


@dataclass
class Function:
    logical_id: str
    code_dir: Path
    layers: list[tuple[str, Path]]
    environment: dict[str, str]
    handler: str


def functions_in(build_dir: Path) -> list[Function]:
    # Imported here so that --glibc (run by the layer Makefiles) needs no PyYAML.
    from leadscore_local.cfn_yaml import load_template

    template = load_template(build_dir / "template.yaml")
    resources = template.get("Resources", {})
    globals_function = template.get("Globals", {}).get("Function", {})
    functions = []
    for logical_id, resource in resources.items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        properties = resource.get("Properties", {})
        # SAM Globals: lists are concatenated, maps merged, scalars overridden.
        layer_refs = globals_function.get("Layers", []) + properties.get("Layers", [])
        layers = []
        for ref in layer_refs:
            if isinstance(ref, dict) and "Fn::If" in ref:  # the promoted model or the built one
                condition, when_true, when_false = ref["Fn::If"]
                ref = when_true if evaluate_condition(condition, template) else when_false
            layer_id = ref["Ref"] if isinstance(ref, dict) else str(ref)
            content = resources.get(layer_id, {}).get("Properties", {}).get("ContentUri")
            if not isinstance(content, str):
                raise SystemExit(f"{logical_id}: layer {layer_id} has no local build output")
            layers.append((layer_id, (build_dir / content).resolve()))
        variables = {
            **globals_function.get("Environment", {}).get("Variables", {}),
            **properties.get("Environment", {}).get("Variables", {}),
        }
        environment = {name: str(resolve_value(v, template)) for name, v in variables.items()}
        functions.append(
            Function(
                logical_id=logical_id,
                code_dir=(build_dir / properties.get("CodeUri", logical_id)).resolve(),
                layers=layers,
                environment=environment,
                handler=properties.get("Handler", globals_function.get("Handler", "")),
            )
        )
    return functions


# ----------------------------------------------------------------------------- import probe

PROBE = r"""
import importlib, json, os, sys, time
config = json.loads(sys.argv[1])
sys.path[:0] = config["path"]
result = {}
started = time.perf_counter()
module = importlib.import_module(config["module"])
result["import_ms"] = (time.perf_counter() - started) * 1000
handler = getattr(module, config["handler"], None)
if not callable(handler):
    raise SystemExit(f"{config['module']}.{config['handler']} is not a callable")
model_dir = os.environ.get("MODEL_DIR")
if model_dir:
    try:
        from leadscore.model import load
    except ModuleNotFoundError as missing:
        result["model"] = f"skipped ({missing})"
    else:
        started = time.perf_counter()
        model = load(model_dir)
        scored = model.score({})
        result["model_ms"] = (time.perf_counter() - started) * 1000
        result["model"] = f"version {model.version}: empty contact -> {scored.score} {scored.tier}"
with open("/proc/self/maps") as maps:
    result["libraries"] = sorted({line.split()[-1] for line in maps if ".so" in line})
print("PROBE-RESULT " + json.dumps(result))
"""


def runtime_provided_dir(scratch: Path) -> Path:
    """A directory with only boto3 & co. from this interpreter: the runtime's share."""
    target = scratch / "runtime-site-packages"
    target.mkdir()
    for module in RUNTIME_PROVIDED:
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None:
            raise SystemExit(f"{module} is needed for the import check (pip install boto3)")
        origin = Path(spec.origin)
        source = origin.parent if spec.submodule_search_locations else origin
        (target / source.name).symlink_to(source)
    for name in RUNTIME_DISTRIBUTIONS:
        files = importlib.metadata.distribution(name).files or []
        info_dirs = {f.parts[0] for f in files if f.parts[0].endswith(".dist-info")}
        for info in info_dirs:
            path = Path(importlib.metadata.distribution(name).locate_file(info))
            if path.is_dir() and not (target / info).exists():
                (target / info).symlink_to(path)
    return target


def map_opt_path(value: str, layers: list[tuple[str, Path]]) -> str:
    """/opt/x -> <layer>/x for the last layer that has it (later layers win in /opt)."""
    if not value.startswith("/opt/"):
        return value
    relative = value.removeprefix("/opt/")
    for _, layer_dir in reversed(layers):
        if (layer_dir / relative).exists():
            return str(layer_dir / relative)
    return value


@dataclass
class ImportResult:
    ok: bool
    import_ms: float | None = None
    detail: str = ""
    model: str = ""
    model_ms: float | None = None


def probe_import(function: Function, python: str, runtime_site: Path) -> ImportResult:
    module, _, handler = function.handler.rpartition(".")
    layer_dirs = [layer_dir for _, layer_dir in function.layers]
    env = {
        **FAKE_ENV,
        **{
            name: map_opt_path(value, function.layers)
            for name, value in function.environment.items()
        },
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": tempfile.gettempdir(),
        "LAMBDA_TASK_ROOT": str(function.code_dir),
        "AWS_LAMBDA_FUNCTION_NAME": function.logical_id,
        "LD_LIBRARY_PATH": ":".join(str(d / "lib") for d in layer_dirs),
    }
    config = {
        "module": module,
        "handler": handler,
        "path": [str(function.code_dir)]
        + [str(d / "python") for d in layer_dirs if (d / "python").is_dir()]
        + [str(runtime_site)],
    }
    completed = subprocess.run(
        [python, "-I", "-S", "-B", "-c", PROBE, json.dumps(config)],
        cwd=function.code_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    marker = [line for line in completed.stdout.splitlines() if line.startswith("PROBE-RESULT ")]
    if completed.returncode != 0 or not marker:
        lines = (completed.stderr or completed.stdout).strip().splitlines()
        return ImportResult(ok=False, detail=lines[-1] if lines else f"exit {completed.returncode}")
    data = json.loads(marker[-1].removeprefix("PROBE-RESULT "))
    allowed_roots = [str(function.code_dir), *map(str, layer_dirs)]
    foreign = [
        lib
        for lib in data["libraries"]
        if NOT_IN_RUNTIME.match(Path(lib).name) and not lib.startswith(tuple(allowed_roots))
    ]
    if foreign:
        return ImportResult(
            ok=False,
            import_ms=data["import_ms"],
            detail=f"loaded from this machine, absent in Lambda: {', '.join(foreign)}",
        )
    return ImportResult(
        ok=True,
        import_ms=data["import_ms"],
        model=data.get("model", ""),
        model_ms=data.get("model_ms"),
    )


# ----------------------------------------------------------------------------- main check


def forbidden_contents(roots: Iterable[Path]) -> list[str]:
    found = []
    for root in roots:
        for top in (root, root / "python"):
            if not top.is_dir():
                continue
            found += [
                str(entry)
                for entry in sorted(top.iterdir())
                if entry.name in FORBIDDEN_TOP_LEVEL and entry.is_dir()
            ]
            found += tooling_modules(top / "leadscore")
    return found


def tooling_modules(package: Path) -> list[str]:
    """Tooling in a shipped copy of the leadscore package: its `cli` subpackage (or module),
    and any module that imports the CLI or the local stack."""
    if not package.is_dir():
        return []
    found = [str(path) for path in (package / TOOLING_PACKAGE, package / f"{TOOLING_PACKAGE}.py")
             if path.exists()]
    for path in sorted(package.rglob("*.py")):
        if str(path) in found or path.is_relative_to(package / TOOLING_PACKAGE):
            continue
        imported = imported_modules(path)
        if any(name == prefix or name.startswith(prefix + ".")
               for name in imported for prefix in TOOLING_IMPORTS):
            found.append(f"{path} (imports tooling)")
    return found


def imported_modules(path: Path) -> set[str]:
    """Absolute module names a Python file imports, anywhere in it (lazy imports too)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError):
        return set()
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def default_python() -> str:
    if sys.version_info[:2] == (3, 12):
        return sys.executable
    return shutil.which("python3.12") or "python3.12"


def check_build(build_dir: Path, python: str, json_out: Path | None) -> int:
    if not (build_dir / "template.yaml").is_file():
        print(f"no build output at {build_dir} (run sam build first)", file=sys.stderr)
        return 2
    functions = functions_in(build_dir)
    failures: list[str] = []
    rows = []
    report: dict[str, Any] = {"functions": {}}

    all_roots = sorted(
        {f.code_dir for f in functions} | {d for f in functions for _, d in f.layers}
    )
    glibc = check_symbol_versions(all_roots)
    failures += glibc.problems
    failures += [f"must not be shipped: {path}" for path in forbidden_contents(all_roots)]

    with tempfile.TemporaryDirectory() as scratch:
        runtime_site = runtime_provided_dir(Path(scratch))
        for function in functions:
            size = tree_size(function.code_dir) + sum(tree_size(d) for _, d in function.layers)
            carries_model = any((d / "model").is_dir() for _, d in function.layers)
            result = probe_import(function, python, runtime_site)
            notes = []
            if size > LAMBDA_MAX_UNZIPPED_BYTES:
                failures.append(f"{function.logical_id}: {size / MB:.1f} MB unzipped > 250 MB")
                notes.append("TOO BIG")
            elif carries_model and size > MODEL_TARGET_BYTES:
                notes.append("target miss: > 150 MB")
            if not result.ok:
                failures.append(f"{function.logical_id}: import failed: {result.detail}")
            status = "ok" if result.ok and size <= LAMBDA_MAX_UNZIPPED_BYTES else "FAIL"
            if result.model:
                notes.append(f"model {result.model}")
            if result.model_ms is not None:
                notes.append(f"load+score {result.model_ms:.0f} ms")
            if not result.ok:
                notes.append(result.detail)
            rows.append(
                (
                    function.logical_id,
                    f"{size / MB:.1f}",
                    "+".join(layer_id for layer_id, _ in function.layers) or "-",
                    f"{result.import_ms:.0f}" if result.import_ms is not None else "-",
                    status,
                    "; ".join(notes),
                )
            )
            report["functions"][function.logical_id] = {
                "size_bytes": size,
                "layers": [layer_id for layer_id, _ in function.layers],
                "import_ms": result.import_ms,
                "ok": result.ok,
                "carries_model": carries_model,
                "model": result.model,
                "model_ms": result.model_ms,
                "detail": result.detail,
            }

    headers = ("function", "size MB", "layers", "import ms", "result", "notes")
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(5)]
    for row in [headers, *rows]:
        cells = [str(cell).ljust(width) for cell, width in zip(row[:5], widths, strict=True)]
        print("  ".join(cells) + ("  " + row[5] if row[5] else ""))
    layer_sizes = {layer_id: tree_size(d) for f in functions for layer_id, d in f.layers}
    print(
        "\nlayers: "
        + ", ".join(f"{layer_id} {size / MB:.1f} MB" for layer_id, size in layer_sizes.items())
    )
    print(f"shared objects scanned: {glibc.scanned}; highest needs: {format_highest(glibc)}")
    report.update(
        layer_size_bytes=layer_sizes,
        glibc_scanned=glibc.scanned,
        glibc_highest={k: ".".join(map(str, v[0])) for k, v in glibc.highest.items()},
        failures=failures,
    )
    if json_out:
        json_out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    if failures:
        print("\nFAILED:", *failures, sep="\n  ", file=sys.stderr)
        return 1
    print("all artifact checks passed")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build_dir", nargs="?", type=Path, default=Path(".aws-sam/build"))
    parser.add_argument("--python", default=default_python(), help="a CPython 3.12 interpreter")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    parser.add_argument(
        "--glibc", nargs="+", type=Path, metavar="PATH", help="only check these files/trees"
    )
    args = parser.parse_args(argv)
    if args.glibc:
        glibc = check_symbol_versions(args.glibc)
        if not glibc.scanned:
            print(f"no shared objects under {', '.join(map(str, args.glibc))}", file=sys.stderr)
            return 1
        print(f"{glibc.scanned} shared objects; highest needs: {format_highest(glibc)}")
        for problem in glibc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1 if glibc.problems else 0
    return check_build(args.build_dir, args.python, args.json)


if __name__ == "__main__":
    sys.exit(main())
