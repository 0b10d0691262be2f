"""`sam local invoke` figures (issue 17): building the Lambda-style python3.12 image, and each
function run in it by `sam local invoke` against the local stack.

    .venv/bin/python infra/bench/sam_invoke_bench.py --out sam.json [--no-cold-build]

1. Image build, cold: infra/lambda_image/build.sh under a repository name of its own, so
   nothing is cached (debootstrap from the Debian mirror, Python, /var/runtime, docker import);
   then the same build again, which must be a cache hit; then that image is removed.
2. One `sam local invoke` per function (its first sample event in leadscore_local.sam_invoke's
   order), against a fresh `leadscore local up` with the sample contacts: the wall time of the
   whole command (SAM adds the layers to the image on every invoke, most of the time), the
   REPORT line's Duration, and the cold init: the runtime interface emulator's INIT REPORT
   (starting /var/runtime/bootstrap until the runtime asks for its first event, i.e. Python
   start and the handler module's imports). The REPORT line's own "Init Duration" is shown as
   reported; the emulator starts the runtime inside the first invoke, so it is not that.

Needs root, a Docker engine and `make build`'s output. Prints a markdown table; writes JSON to
--out: `figures` (figure name -> value), `targets` and `rows` (benchkit.Row).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchkit import ROOT, Row, exit_status, markdown, write_figures

from leadscore_local.process import LocalStackProcess
from leadscore_local.sam_invoke import (
    BUILD_IMAGE,
    BUILT_TEMPLATE,
    SamLocal,
    build_image,
    docker_engine_answers,
    for_stack,
    sample_events,
    seed_sample_contacts,
    write_env_vars,
)


def timed_build(repository: str) -> tuple[float, str, str]:
    """(seconds, tag, the script's log) of one build.sh run under `repository`."""
    started = time.perf_counter()
    completed = subprocess.run([str(BUILD_IMAGE)], capture_output=True, text=True, check=False,
                               env={**os.environ, "LAMBDA_IMAGE_REPOSITORY": repository})
    seconds = time.perf_counter() - started
    if completed.returncode != 0:
        raise RuntimeError(f"image build failed:\n{completed.stderr[-3000:]}")
    return seconds, completed.stdout.strip().splitlines()[-1], completed.stderr


def build_rows() -> list[Row]:
    repository = f"leadscore-lambda-python3.12-bench-{os.getpid()}"
    cold, tag, _ = timed_build(repository)
    try:
        cached, again, log = timed_build(repository)
    finally:
        subprocess.run(["docker", "rmi", tag], capture_output=True, check=False)
    hit = again == tag and "cached:" in log
    return [
        Row("sam", "Lambda image build, cold (debootstrap, Python, runtime, import)",
            round(cold, 1), "s", key="image_build_cold_s"),
        Row("sam", "Lambda image build, cached (same inputs)", round(cached, 1), "s",
            "cache hit", hit, key="image_build_cached_s"),
    ]


def invoke_rows() -> list[Row]:
    first: dict[str, Path] = {}
    for logical_id, path in sample_events():
        first.setdefault(logical_id, path)
    image = build_image()
    rows: list[Row] = []
    with LocalStackProcess(ROOT) as stack, tempfile.TemporaryDirectory() as scratch:
        seed_sample_contacts(stack.info)
        env_file = Path(scratch) / "env.json"
        write_env_vars(stack.info, env_file)
        sam = SamLocal(image, env_file)
        try:
            for logical_id, path in first.items():
                print(f"== {logical_id} {path.name}", file=sys.stderr, flush=True)
                event = for_stack(logical_id, json.loads(path.read_text()), stack.info)
                run = sam.invoke(logical_id, event)
                if run.error:
                    raise RuntimeError(f"{logical_id} failed: {run.response}")
                rows += [
                    Row("sam", f"{logical_id} `sam local invoke` wall time ({path.name})",
                        round(run.wall_seconds, 1), "s", key=f"{logical_id}_wall_s"),
                    Row("sam", f"{logical_id} Duration (REPORT line)",
                        round(run.duration_ms or 0), "ms", key=f"{logical_id}_duration_ms"),
                    Row("sam", f"{logical_id} cold init (emulator's INIT REPORT)",
                        round(run.runtime_init_ms or 0), "ms", key=f"{logical_id}_init_ms"),
                    Row("sam", f"{logical_id} Init Duration as the REPORT line gives it",
                        run.report_init_ms or 0, "ms", key=f"{logical_id}_report_init_ms"),
                ]
        finally:
            sam.remove_containers()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--no-cold-build", action="store_true",
                        help="skip the from-scratch image build (about two minutes)")
    args = parser.parse_args()
    if not docker_engine_answers():
        print("sam_invoke_bench: no Docker engine answers `docker info` (start dockerd)",
              file=sys.stderr)
        return 2
    if not BUILT_TEMPLATE.is_file():
        print("sam_invoke_bench: no `sam build` output: run `make build`", file=sys.stderr)
        return 2
    started = time.monotonic()
    rows = [] if args.no_cold_build else build_rows()
    rows += invoke_rows()
    print(markdown(rows))
    write_figures(args.out, rows, time.monotonic() - started)
    return exit_status(rows)


if __name__ == "__main__":
    sys.exit(main())
