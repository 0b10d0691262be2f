"""Scoring speed benchmark of the default model (layers/model/model), in one run:

- `score()` of one lead with reasons: p50/p99 latency (distinct synthetic contacts, after a
  warm-up), next to scikit-learn's `GradientBoostingClassifier(n_estimators=200,
  max_depth=4)` one-row `predict_proba` on an already-encoded row (its preprocessing is not
  timed; ours includes feature engineering from HubSpot strings and the reasons);
- `score_many` without reasons: leads per second on 20,000 contacts;
- model load + imports in a fresh process (`import leadscore.model` and `load()`, timed
  inside the process, median of several runs; the interpreter's own start-up is reported
  separately).

Targets (issue 3): score() p99 <= 1 ms and no slower than the GBC's p99; score_many >=
20,000 leads/s; load + imports <= 500 ms. Prints a table and writes JSON (`--out`, default
$BENCH_OUT/model_bench.json when BENCH_OUT is set). Exit status 1 if a target is missed.

    .venv/bin/python infra/bench/model_bench.py [--out FILE] [--calls 5000]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "shared"))
sys.path.insert(0, str(ROOT / "infra/bench"))

import numpy as np  # noqa: E402

from leadscore.cli.synthetic import SYNTHETIC_NOW, generate_contacts  # noqa: E402
from leadscore.model import load  # noqa: E402
from leadscore.model.features import Vectorizer  # noqa: E402

MODEL_DIR = ROOT / "layers/model/model"
TARGETS = {"score_p99_ms": 1.0, "score_many_per_second": 20_000, "load_and_imports_ms": 500}

LOAD_SNIPPET = """
import time
started = time.perf_counter()
import leadscore.model
model = leadscore.model.load({path!r})
model.score({{"jobtitle": "CEO"}})
print((time.perf_counter() - started) * 1000)
"""


def _percentiles(samples_ns: list[int]) -> tuple[float, float]:
    ms = np.array(samples_ns, dtype=np.float64) / 1e6
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def _latencies(call, inputs: list, calls: int, warmup: int = 300) -> list[int]:
    for i in range(warmup):
        call(inputs[i % len(inputs)])
    gc.disable()  # a collection pause is not the scorer's latency
    try:
        samples = []
        for i in range(calls):
            item = inputs[i % len(inputs)]
            started = time.perf_counter_ns()
            call(item)
            samples.append(time.perf_counter_ns() - started)
    finally:
        gc.enable()
    return samples


def bench_score(model, contacts: list[dict], calls: int) -> dict:
    p50, p99 = _percentiles(_latencies(lambda c: model.score(c, now=SYNTHETIC_NOW), contacts,
                                       calls))
    return {"p50_ms": round(p50, 4), "p99_ms": round(p99, 4), "calls": calls}


def bench_gbc(model, train: list[dict], contacts: list[dict], calls: int) -> dict:
    from generality import _categories_filled, baseline_fit

    vectorizer = Vectorizer(model.schema)
    labels = np.array([model.config.is_positive(c["lifecyclestage"]) for c in train], np.int8)
    categorical = model.schema.categorical_indices
    gbc = baseline_fit(vectorizer.transform(train, SYNTHETIC_NOW), labels, categorical)
    rows = _categories_filled(vectorizer.transform(contacts, SYNTHETIC_NOW), categorical)
    encoded = [rows[i:i + 1] for i in range(len(rows))]  # one-row 2-D arrays, as a caller has
    p50, p99 = _percentiles(_latencies(gbc.predict_proba, encoded, calls))
    return {"p50_ms": round(p50, 4), "p99_ms": round(p99, 4), "calls": calls,
            "trained_on": len(train)}


def bench_score_many(model, contacts: list[dict], repeats: int = 5) -> dict:
    model.score_many(contacts[:1000], with_reasons=False, now=SYNTHETIC_NOW)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        model.score_many(contacts, with_reasons=False, now=SYNTHETIC_NOW)
        times.append(time.perf_counter() - started)
    best = statistics.median(times)
    return {"leads": len(contacts), "median_seconds": round(best, 4),
            "per_second": round(len(contacts) / best)}


def bench_load(runs: int = 7) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "shared")}
    inside, whole = [], []
    for _ in range(runs):
        started = time.perf_counter()
        completed = subprocess.run(
            [sys.executable, "-c", LOAD_SNIPPET.format(path=str(MODEL_DIR))],
            capture_output=True, text=True, check=True, env=env)
        whole.append((time.perf_counter() - started) * 1000)
        inside.append(float(completed.stdout.strip()))
    return {"load_and_imports_ms": round(statistics.median(inside), 1),
            "process_wall_ms": round(statistics.median(whole), 1), "runs": runs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="JSON file to write")
    parser.add_argument("--calls", type=int, default=5000, help="timed one-lead calls each")
    args = parser.parse_args(argv)
    out = args.out or (Path(os.environ["BENCH_OUT"]) / "model_bench.json"
                       if os.environ.get("BENCH_OUT") else None)

    model = load(MODEL_DIR)
    contacts = generate_contacts(20_000, seed=99)
    score = bench_score(model, contacts[:2000], args.calls)
    gbc = bench_gbc(model, generate_contacts(5000, seed=42), contacts[:2000], args.calls)
    many = bench_score_many(model, contacts)
    loading = bench_load()

    checks = {
        "score_p99_within_1ms": score["p99_ms"] <= TARGETS["score_p99_ms"],
        "score_p99_not_slower_than_gbc": score["p99_ms"] <= gbc["p99_ms"],
        "score_many_at_least_20000_per_second":
            many["per_second"] >= TARGETS["score_many_per_second"],
        "load_and_imports_within_500ms":
            loading["load_and_imports_ms"] <= TARGETS["load_and_imports_ms"],
    }
    print(f"model {model.version} ({MODEL_DIR.relative_to(ROOT)})")
    print(f"{'measure':<46} {'p50':>10} {'p99':>10}")
    print(f"{'score() one lead, with reasons':<46} {score['p50_ms']:>8.3f}ms "
          f"{score['p99_ms']:>8.3f}ms")
    print(f"{'sklearn GBC(200, depth 4) predict_proba, 1 row':<46} {gbc['p50_ms']:>8.3f}ms "
          f"{gbc['p99_ms']:>8.3f}ms")
    print(f"{'score_many, no reasons':<46} {many['per_second']:>10,} leads/s "
          f"({many['leads']:,} leads in {many['median_seconds']:.3f}s)")
    print(f"{'model load + imports, fresh process':<46} {loading['load_and_imports_ms']:>8.1f}ms "
          f"(whole process {loading['process_wall_ms']:.0f}ms incl. interpreter start)")
    for name, ok in checks.items():
        print(f"  {'ok  ' if ok else 'MISS'} {name}")
    report = {
        "benchmark": "model", "model_version": model.version,
        "score": score, "gbc_predict_proba": gbc, "score_many": many, "load": loading,
        "targets": TARGETS, "checks": checks,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
    }
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"→ {out}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
