"""Generality benchmark: our pipeline vs scikit-learn's GradientBoostingClassifier and
logistic regression, on ranking (AUC) and calibration (Brier).

Data sets (`DATASETS`; all in the repository, so a clone with nothing beside it runs this):
bank-marketing (tests/fixtures/data, with infra/bench/bank-marketing.features.toml), our
synthetic HubSpot contacts (20,000, seed 42, with layers/model/features.toml) and two public
conversion data sets the recipe was never tuned on (tests/fixtures/data: Charles Book Club and
UniversalBank; sources and licences in tests/fixtures/data/README.md), plus any
`--extra NAME=CSV:FEATURES.toml`. For each, an 80/20 stratified split (seed 7 by default):

- ours: `leadscore train` on the 80 % (train_csv end to end: CSV parsing, features, the
  cross-validated trees + linear blend, calibration on out-of-fold outputs, files written),
  then `leadscore.model.load` and its calibrated probabilities on the 20 %;
- baselines, on the same feature matrix (our Vectorizer, so all see identical inputs):
  - `GradientBoostingClassifier(n_estimators=200, max_depth=4)` (the seed's model) after
    median imputation with missing indicators for numbers and one-hot for categories;
  - logistic regression after median imputation with missing indicators and
    standardisation for numbers and one-hot for categories, its L2 strength C chosen by
    5-fold stratified cross-validation on log loss among 11 values from 0.001 to 100
    (`LogisticRegressionCV`): a tuned baseline, stronger than a fixed C = 1 on data with many
    correlated columns.
  Their times are the pipelines' fits, without CSV parsing or vectorising.

Prints a table and writes JSON (`--out`, default $BENCH_OUT/generality.json when BENCH_OUT
is set). Exit status 1 if, on the seed-7 split of any data set, ours ranks worse (AUC) than
the better of the two baselines or calibrates worse (Brier) than the better of the two — no
tolerance —, or, on bank-marketing, stays below AUC 0.77. Training speed is reported, not
gated: issue 3's "3× faster than GBC" was given up for quality (issue 12 part 7; retraining is
monthly). What must hold is that a retrain fits the retrain Lambda: infra/bench/training_scale.py.

    .venv/bin/python infra/bench/generality.py [--seeds 7,1,2,3,4] [--out FILE] [--reports DIR]
        [--only bank-marketing,synthetic] [--extra caravan=/path/caravan.csv:/path/caravan.toml]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import tempfile
import time
import warnings
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "shared"))

import numpy as np  # noqa: E402

from leadscore.cli.csv_files import backtest_csv, read_csv, train_csv  # noqa: E402
from leadscore.cli.synthetic import generate_contacts  # noqa: E402
from leadscore.model import load  # noqa: E402
from leadscore.model.backtest import brier, roc_auc  # noqa: E402
from leadscore.model.config import load_config  # noqa: E402
from leadscore.model.features import Vectorizer  # noqa: E402
from leadscore.model.training import stratified_split  # noqa: E402

DATA = ROOT / "tests/fixtures/data"
SYNTHETIC = "synthetic"  # generated, not read from a file
DATASETS = {  # name -> (CSV, features.toml)
    "bank-marketing": (DATA / "bank-marketing.csv",
                       ROOT / "infra/bench/bank-marketing.features.toml"),
    SYNTHETIC: (None, ROOT / "layers/model/features.toml"),
    "charles-book-club": (DATA / "charles-book-club.csv", DATA / "charles-book-club.features.toml"),
    "universal-bank": (DATA / "universal-bank.csv", DATA / "universal-bank.features.toml"),
}
GBC_PARAMS = {"n_estimators": 200, "max_depth": 4}
LR_CS = np.logspace(-3, 2, 11)  # candidate C values for the logistic regression's CV
BANK_AUC_TARGET = 0.77  # on the 20 % of the seed-7 split
BENCHMARK_SEED = 7


def write_csv(path: Path, header: list[str], rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _encoder(matrix: np.ndarray, categorical: list[int], *, scale: bool):
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = [j for j in range(matrix.shape[1]) if j not in categorical]
    numbers = SimpleImputer(strategy="median", add_indicator=True)
    if scale:
        numbers = make_pipeline(numbers, StandardScaler())
    return ColumnTransformer([
        ("numbers", numbers, numeric),
        ("categories", OneHotEncoder(handle_unknown="ignore"), categorical),
    ])


def baseline_fit(matrix: np.ndarray, labels: np.ndarray, categorical: list[int]):
    """scikit-learn's textbook pipeline for a GradientBoostingClassifier on our features
    (infra/bench/model_bench.py imports it by this name)."""
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.pipeline import make_pipeline

    model = make_pipeline(_encoder(matrix, categorical, scale=False),
                          GradientBoostingClassifier(**GBC_PARAMS, random_state=0))
    return model.fit(_categories_filled(matrix, categorical), labels)


def logistic_fit(matrix: np.ndarray, labels: np.ndarray, categorical: list[int]):
    """Logistic regression, standard preprocessing, C by 5-fold CV on log loss."""
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline

    classifier = LogisticRegressionCV(
        Cs=LR_CS, cv=StratifiedKFold(5, shuffle=True, random_state=0), scoring="neg_log_loss",
        max_iter=5000)
    model = make_pipeline(_encoder(matrix, categorical, scale=True), classifier)
    with warnings.catch_warnings():  # scikit-learn 1.8+ announces attribute/default changes
        warnings.simplefilter("ignore", FutureWarning)
        return model.fit(_categories_filled(matrix, categorical), labels)


def _categories_filled(matrix: np.ndarray, categorical: list[int]) -> np.ndarray:
    """Category codes with "missing" as its own code (-1): one-hot needs no NaN."""
    filled = matrix.copy()
    filled[:, categorical] = np.nan_to_num(matrix[:, categorical], nan=-1.0)
    return filled


def compare(name: str, csv_path: Path, config_path: Path, seed: int, work: Path,
            reports: Path | None = None) -> dict:
    """Ours and both baselines on one 80/20 split of one data set."""
    header, rows = read_csv(csv_path)
    config = load_config(config_path)
    labels = np.array([config.is_positive(r.get(config.label.column)) for r in rows], np.int8)
    train_idx, test_idx = stratified_split(labels, 0.2, seed)
    train_rows = [rows[i] for i in train_idx]
    test_rows = [rows[i] for i in test_idx]
    y_test = labels[test_idx]
    train_file = write_csv(work / f"{name}-train.csv", header, train_rows)

    started = time.perf_counter()
    metadata = train_csv(train_file, config_path, work / f"{name}-model", echo=lambda _: None)
    ours_seconds = time.perf_counter() - started
    model = load(work / f"{name}-model")
    reference = metadata["reference_time"]
    now = datetime.fromisoformat(reference) if reference else 0.0
    probability, _ = model.predict(test_rows, now=now)
    if reports:
        test_file = write_csv(work / f"{name}-test.csv", header, test_rows)
        backtest_csv(work / f"{name}-model", test_file, reports / f"{name}-seed{seed}",
                     now=now if reference else None, echo=lambda _: None)

    vectorizer = Vectorizer(model.schema)
    categorical = model.schema.categorical_indices
    x_train = vectorizer.transform(train_rows, now)
    x_test = _categories_filled(vectorizer.transform(test_rows, now), categorical)
    started = time.perf_counter()
    gbc = baseline_fit(x_train, labels[train_idx], categorical)
    gbc_seconds = time.perf_counter() - started
    started = time.perf_counter()
    logistic = logistic_fit(x_train, labels[train_idx], categorical)
    lr_seconds = time.perf_counter() - started
    gbc_p = gbc.predict_proba(x_test)[:, 1]
    lr_p = logistic.predict_proba(x_test)[:, 1]

    y = y_test.astype(np.float64)
    ours_auc, gbc_auc, lr_auc = (roc_auc(y_test, p) for p in (probability, gbc_p, lr_p))
    ours_brier, gbc_brier, lr_brier = (brier(y, p) for p in (probability, gbc_p, lr_p))
    best_auc, best_brier = max(gbc_auc, lr_auc), min(gbc_brier, lr_brier)
    training = metadata["training"]
    return {
        "data": name, "seed": seed, "rows": len(rows), "train_rows": len(train_rows),
        "test_rows": len(test_rows), "positive_rate": round(float(labels.mean()), 4),
        "ours_auc": ours_auc, "gbc_auc": gbc_auc, "lr_auc": lr_auc,
        "ours_brier": ours_brier, "gbc_brier": gbc_brier, "lr_brier": lr_brier,
        "auc_vs_best": ours_auc - best_auc, "brier_vs_best": ours_brier - best_brier,
        "ranks_at_least_as_well": bool(ours_auc >= best_auc),
        "calibrates_at_least_as_well": bool(ours_brier <= best_brier),
        "lr_c": float(logistic[-1].C_[0]),
        "ours_train_seconds": round(ours_seconds, 2), "gbc_train_seconds": round(gbc_seconds, 2),
        "lr_train_seconds": round(lr_seconds, 2),
        "gbc_time_over_ours": round(gbc_seconds / ours_seconds, 2),
        "ours_trees": metadata["metrics"]["best_iteration"],
        "ours_num_leaves": training["params"]["num_leaves"],
        "ours_gbm_weight": metadata["blend"]["gbm_weight"],
        "ours_linear_c": training["linear"]["c"],
    }


def passes(result: dict) -> bool:
    """The benchmark's bar for one data set on one split."""
    return (result["ranks_at_least_as_well"] and result["calibrates_at_least_as_well"]
            and (result["data"] != "bank-marketing" or result["ours_auc"] >= BANK_AUC_TARGET))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default=str(BENCHMARK_SEED),
                        help="comma-separated split seeds (default 7)")
    parser.add_argument("--out", type=Path, help="JSON file to write")
    parser.add_argument("--reports", type=Path, help="also write our backtest reports here")
    parser.add_argument("--synthetic-contacts", type=int, default=20_000)
    parser.add_argument("--only", help="comma-separated data set names (default: all)")
    parser.add_argument("--extra", action="append", default=[], metavar="NAME=CSV:TOML",
                        help="another labelled data set and its features.toml (repeatable)")
    args = parser.parse_args(argv)
    out = args.out or (Path(os.environ["BENCH_OUT"]) / "generality.json"
                       if os.environ.get("BENCH_OUT") else None)
    seeds = [int(s) for s in args.seeds.split(",")]
    datasets = dict(DATASETS)
    for spec in args.extra:
        name, _, paths = spec.partition("=")
        data, _, config = paths.rpartition(":")
        if not (name and Path(data).is_file() and Path(config).is_file()):
            parser.error(f"--extra {spec!r}: expected NAME=CSV:FEATURES.toml, both existing")
        datasets[name] = (Path(data), Path(config))
    if args.only:
        unknown = set(args.only.split(",")) - set(datasets)
        if unknown:
            parser.error(f"--only: unknown data set(s) {sorted(unknown)}")
        datasets = {k: v for k, v in datasets.items() if k in args.only.split(",")}

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if SYNTHETIC in datasets:
            contacts = generate_contacts(args.synthetic_contacts, 42)
            synthetic_csv = write_csv(work / "synthetic.csv", list(contacts[0]), contacts)
            datasets[SYNTHETIC] = (synthetic_csv, datasets[SYNTHETIC][1])
        for seed in seeds:
            for name, (data, config) in datasets.items():
                results.append(compare(name, data, config, seed, work, args.reports))

    print(f"{'data':<18} {'seed':>4} {'rows':>7} {'AUC ours':>9} {'GBC':>7} {'LR':>7} "
          f"{'Brier ours':>11} {'GBC':>7} {'LR':>7} {'w':>5} {'train ours':>11} {'GBC':>7} "
          f"{'LR':>6}")
    for r in results:
        flag = ("" if r["ranks_at_least_as_well"] else " AUC<best") + (
            "" if r["calibrates_at_least_as_well"] else " Brier>best")
        print(f"{r['data']:<18} {r['seed']:>4} {r['rows']:>7,} {r['ours_auc']:>9.4f} "
              f"{r['gbc_auc']:>7.4f} {r['lr_auc']:>7.4f} {r['ours_brier']:>11.5f} "
              f"{r['gbc_brier']:>7.5f} {r['lr_brier']:>7.5f} {r['ours_gbm_weight']:>5.2f} "
              f"{r['ours_train_seconds']:>10.2f}s {r['gbc_train_seconds']:>6.2f}s "
              f"{r['lr_train_seconds']:>5.2f}s{flag}")
    ok = all(passes(r) for r in results if r["seed"] == BENCHMARK_SEED)
    report = {
        "benchmark": "generality",
        "baselines": {"gbc": f"sklearn GradientBoostingClassifier({GBC_PARAMS})",
                      "lr": "sklearn LogisticRegressionCV (L2, C by 5-fold CV on log loss "
                            "over 1e-3..1e2), median imputation + missing indicators + "
                            "standardisation, one-hot categories"},
        "results": results,
        "bank_auc_target": BANK_AUC_TARGET,
        "ours_at_least_as_good_as_best_baseline_on_seed_7": ok,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
    }
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"→ {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
