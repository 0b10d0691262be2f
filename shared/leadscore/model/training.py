"""Training: labelled rows + features.toml → a model directory (see `leadscore.model.scoring`).

`train` takes the rows (`LabelledData`): `leadscore train` reads them from a CSV export
(`leadscore.cli.csv_files.train_csv`); a scheduled retrain builds them from stored snapshots.
Steps: learn the feature schema (categorical vocabularies), turn rows into features with the
same `Vectorizer` scoring uses, then:

1. hold back a stratified 20 % validation split; LightGBM (native categorical features)
   learns on the other 80 % with early stopping on the validation AUC, which picks the
   number of trees;
2. on that model's validation predictions (held-back data): Platt calibration, the
   percentile score scale, the per-tier conversion figures and the reported metrics (AUC,
   Brier, log loss);
3. the shipped model is retrained on all rows with the same parameters and number of
   trees, so the validation rows are not lost to it (its outputs are distributed like the
   80 % model's; the backtest on unseen data shows how well calibration carries over).

Class imbalance: the split is stratified, so validation holds its share of the rare class;
trees are chosen by AUC, which does not depend on the base rate; probabilities are
calibrated on held-back predictions; and the score is a percentile, so tiers keep their
meaning at 2 % or 40 % conversion. Positives are deliberately not up-weighted:
`scale_pos_weight = negatives/positives` lowered held-out AUC on both the synthetic and the
bank-marketing data (see `lightgbm_params`) and distorts raw outputs that calibration then
has to undo.

Deterministic: the same rows and features.toml give byte-identical files (fixed seeds and
split, one thread, `deterministic=True`, no wall-clock anywhere). Datetime ages are measured
from the latest timestamp in the export, recorded as `reference_time`.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import lightgbm as lgb
import numpy as np

from leadscore.model.backtest import brier, log_loss, roc_auc, tier_table
from leadscore.model.config import FeatureConfig, LabelledData
from leadscore.model.features import FeatureSchema, Vectorizer, learn_schema, reference_time
from leadscore.model.reference import training_reference
from leadscore.model.scoring import (
    CONFIG_FILE,
    METADATA_FILE,
    METADATA_FORMAT,
    MODEL_FILE,
    NativeBooster,
    PercentileScale,
    PlattCalibration,
    Tiers,
    merge_tiers,
)

SEED = 42
VALIDATION_SHARE = 0.2
MAX_ROUNDS = 1000
EARLY_STOPPING_ROUNDS = 30
MIN_PER_CLASS = 10
SCORE_KNOTS = 201
# Default tiers as shares of the lead population, best first; the rest is disqualified.
DEFAULT_TIER_SHARES = {"hot": 0.10, "warm": 0.20, "cold": 0.50}


def lightgbm_params(rows: int) -> dict:
    """LightGBM parameters for `rows` training rows (only `min_data_in_leaf` depends on it:
    1 % of the rows, between 10 and 50, so small exports can still split).

    Chosen on two unrelated data sets (synthetic contacts, bank-marketing) over four 80/20
    splits, not tuned to either. No `scale_pos_weight`: up-weighting positives by
    negatives/positives cost 0.002 AUC on both (means 0.7786 → 0.7764 and 0.7743 → 0.7719).
    """
    return {
        "objective": "binary",
        "metric": "auc",
        "learning_rate": 0.05,
        "num_leaves": 31,
        "min_data_in_leaf": min(50, max(10, rows // 100)),
        "feature_fraction": 0.7,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "lambda_l2": 1.0,
        # Categorical features: one-vs-rest splits up to 32 categories, LightGBM's sorted
        # many-vs-many splits above (smoothed, and only for categories with enough rows).
        "max_cat_to_onehot": 32,
        "min_data_per_group": 20,
        "cat_smooth": 10.0,
        "cat_l2": 10.0,
        "max_bin": 255,
        "deterministic": True,
        "force_col_wise": True,
        "num_threads": 1,
        "seed": SEED,
        "bagging_seed": SEED,
        "feature_fraction_seed": SEED,
        "data_random_seed": SEED,
        "verbosity": -1,
    }


def stratified_split(labels: np.ndarray, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) row indices with the label ratio kept in both; `share` of each
    class is held out."""
    rng = np.random.default_rng(seed)
    held_out = []
    for cls in (0, 1):
        members = rng.permutation(np.flatnonzero(labels == cls))
        held_out.append(members[: max(1, round(len(members) * share))])
    valid = np.sort(np.concatenate(held_out))
    train = np.setdiff1d(np.arange(len(labels)), valid)
    return train, valid


def fit_platt(raw: np.ndarray, labels: np.ndarray, iterations: int = 100) -> PlattCalibration:
    """Platt scaling by Newton's method, with Platt's smoothed targets so a perfectly
    separated validation set does not produce probabilities of exactly 0 or 1."""
    n_pos = float(labels.sum())
    n_neg = float(len(labels) - n_pos)
    target = np.where(labels == 1, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    x = raw.astype(np.float64)

    def loss(a: float, b: float) -> float:
        z = a * x + b
        return float(np.sum(np.logaddexp(0.0, z) - target * z))

    a, b = 1.0, 0.0
    current = loss(a, b)
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(a * x + b)))
        w = p * (1 - p)
        gradient = np.array([np.sum((p - target) * x), np.sum(p - target)])
        hessian = np.array([[np.sum(w * x * x) + 1e-9, np.sum(w * x)],
                            [np.sum(w * x), np.sum(w) + 1e-9]])
        step = np.linalg.solve(hessian, gradient)
        scale = 1.0
        while scale > 1e-6:  # backtracking keeps every step an improvement
            candidate = loss(a - scale * step[0], b - scale * step[1])
            if candidate <= current:
                break
            scale /= 2
        else:
            break
        a, b = a - scale * step[0], b - scale * step[1]
        improvement, current = current - candidate, candidate
        if improvement < 1e-10:
            break
    if a <= 0:  # a model no better than chance: a flat, still monotonic, base rate
        a, b = 0.0, math.log((n_pos + 1) / (n_neg + 1))
    return PlattCalibration(a, b)


def fit_percentile_scale(raw: np.ndarray, knots: int = SCORE_KNOTS) -> PercentileScale:
    """Knots (raw value, mid-rank percentile) of the validation outputs' distribution."""
    values, first, counts = np.unique(np.sort(raw), return_index=True, return_counts=True)
    percentile = 100.0 * (first + 0.5 * counts) / len(raw)
    if len(values) == 1:
        return PercentileScale([values[0] - 1.0, values[0] + 1.0], [50.0, 50.0])
    chosen = np.unique(np.round(np.linspace(0, len(values) - 1, knots)).astype(np.int64))
    return PercentileScale(values[chosen].tolist(), percentile[chosen].tolist())


def default_tiers() -> Tiers:
    cumulative, thresholds = 0.0, {}
    for name, share in DEFAULT_TIER_SHARES.items():
        cumulative += share
        thresholds[name] = round(100 * (1 - cumulative))
    return Tiers.model_validate(thresholds)


def _quality_report(
    schema: FeatureSchema,
    rows: list[Mapping[str, str | None]],
    matrix: np.ndarray,
) -> tuple[dict, list[str]]:
    """Missing/unparsable share per feature and vocabulary sizes, plus lines to echo."""
    report, lines = {}, ["missing share per feature (empty, declared missing or unparsable):"]
    for j, spec in enumerate(schema.features):
        cells = Counter(row.get(spec.column) for row in rows)
        empty = sum(n for value, n in cells.items() if spec.is_missing(value))
        missing = int(np.isnan(matrix[:, j]).sum())
        entry = {"kind": spec.kind, "missing_share": round(missing / len(rows), 4),
                 "unparsable": missing - empty}
        detail = f"  {spec.column:<36} {spec.kind:<11} {100 * missing / len(rows):5.1f}%"
        if missing > empty:
            detail += f"  ({missing - empty} unparsable cells)"
        if spec.kind == "categorical":
            uncommon = int((matrix[:, j] == spec.other_code).sum())
            entry |= {"categories": len(spec.vocabulary), "uncommon_rows": uncommon}
            detail += f"  {len(spec.vocabulary)} categories, {uncommon} rows uncommon → other"
        if missing == len(rows):
            detail += "  ALL MISSING: the model cannot use it"
        report[spec.name] = entry
        lines.append(detail)
    return report, lines


def _tier_line(tiers: Tiers, row: dict) -> str:
    name = row["tier"]
    bound = f"< {tiers.cold}" if name == "disqualified" else f"≥ {getattr(tiers, name)}"
    return (f"{name} {bound} ({100 * row['share']:.0f}% of leads, "
            f"{100 * row['conversion_rate']:.1f}% convert)")


def _summarise(names: list[str], limit: int = 12) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" (+{len(names) - limit} more)" if len(names) > limit else "")


def train(
    data: LabelledData,
    config: FeatureConfig,
    config_text: str,
    out_dir: Path,
    *,
    echo: Callable[[str], object] = print,
    now: datetime | None = None,
) -> dict:
    """Train on labelled rows and write `out_dir` (model.txt, metadata.json, and `config_text`,
    the features.toml `config` was parsed from). `now` overrides the reference time for
    datetime ages. Returns the metadata."""
    out_dir = Path(out_dir)
    all_rows = list(data.rows)
    rows = _first_of_each_id(all_rows, config.id)
    duplicates = len(all_rows) - len(rows)
    labels = np.array([config.is_positive(r.get(config.label.column)) for r in rows], np.int8)
    positives, negatives = int(labels.sum()), int(len(labels) - labels.sum())
    if positives < MIN_PER_CLASS or negatives < MIN_PER_CLASS:
        raise ValueError(
            f"{data.name}: need at least {MIN_PER_CLASS} converted and {MIN_PER_CLASS} not "
            f"converted rows, got {positives} with {config.label.column} in "
            f"{config.label.positive} and {negatives} without"
        )

    reference = now.astimezone(UTC) if now else reference_time(config, rows)
    schema = learn_schema(config, rows)
    matrix = Vectorizer(schema).transform(rows, reference.timestamp() if reference else 0.0)

    used = {config.label.column, *config.properties}
    ignored = [c for c in data.all_columns() if c not in used]
    quality, quality_lines = _quality_report(schema, rows, matrix)
    echo(f"data: {data.name}: {len(rows):,} rows, {positives:,} positives "
         f"({100 * positives / len(rows):.1f}%, {config.label.column} in "
         f"{', '.join(config.label.positive)})")
    if duplicates:
        echo(f"dropped {duplicates:,} rows repeating an {config.id} already seen")
    seen_labels = {(r.get(config.label.column) or "").strip().casefold() for r in rows}
    missing_positive = [p for p in config.label.positive if p.strip().casefold() not in seen_labels]
    if missing_positive:
        echo(f"warning: positive label value(s) never seen: {', '.join(missing_positive)}")
    echo(f"ignored columns (not in features.toml): {_summarise(ignored) or 'none'}")
    for line in quality_lines:
        echo(line)
    if reference and config.features.datetime:
        echo(f"datetime ages measured from {reference.isoformat().replace('+00:00', 'Z')}")

    fit = fit_model(matrix, labels, schema)
    model_text = fit.model_text
    model_bytes = model_text.encode("utf-8")
    config_bytes = config_text.encode("utf-8")

    # Fitted on the held-back validation split, scored by the model that never saw it.
    held_back = labels[fit.validation_rows]
    calibration = fit_platt(fit.validation_raw, held_back)
    probability = calibration(fit.validation_raw)
    scale = fit_percentile_scale(fit.validation_raw)
    tiers = merge_tiers(default_tiers(), config.tiers)
    tier_rows = tier_table(tiers, scale(fit.validation_raw), held_back)
    y = held_back.astype(np.float64)
    native = NativeBooster(model_text, len(schema.features))  # the serving code path
    metrics = {
        "rows": len(rows),
        "positives": positives,
        "positive_rate": round(positives / len(rows), 6),
        "validation_rows": len(fit.validation_rows),
        "validation_positives": int(held_back.sum()),
        "best_iteration": fit.best_iteration,
        "auc": round(roc_auc(held_back, fit.validation_raw), 6),
        "brier": round(brier(y, probability), 6),
        "brier_base_rate": round(brier(y, np.full(len(y), y.mean())), 6),
        "log_loss": round(log_loss(y, probability), 6),
        "train_auc": round(roc_auc(labels, native.raw_many(matrix)), 6),
    }
    schema_dict = schema.to_dict()
    schema_sha = schema.sha256()
    model_sha = hashlib.sha256(model_bytes).hexdigest()
    fingerprint = hashlib.sha256(
        model_bytes + schema_sha.encode() +
        json.dumps([calibration.to_dict(), scale.to_dict()], sort_keys=True).encode()
    ).hexdigest()
    version = (f"{reference:%Y%m%d}-" if reference else "") + fingerprint[:8]
    metadata = {
        "format": METADATA_FORMAT,
        "version": version,
        "model_file": MODEL_FILE,
        "model_sha256": model_sha,
        "id_column": config.id,
        "label": {"column": config.label.column, "positive": config.label.positive},
        "schema": schema_dict,
        "schema_hash": schema_sha,
        "reference_time": reference.isoformat().replace("+00:00", "Z") if reference else None,
        "calibration": calibration.to_dict(),
        "score_scale": scale.to_dict(),
        "score_definition": "percentile of the raw model output among the held-back "
                            "validation leads",
        "tiers": {
            "thresholds": tiers.model_dump(),
            "source": "features.toml" if config.tiers else "data",
            "default_shares": DEFAULT_TIER_SHARES,
            "validation": tier_rows,
        },
        "metrics": metrics,
        # What monitoring compares live leads with: binned features and validation scores.
        "reference": training_reference(schema, matrix, scale(fit.validation_raw)),
        "data_quality": {"duplicates_dropped": duplicates, "ignored_columns": ignored,
                         "features": quality},
        "data": {"file": data.name, "sha256": data.sha256, "rows": len(all_rows)},
        "config_sha256": hashlib.sha256(config_bytes).hexdigest(),
        "training": {"params": fit.params, "seed": SEED, "validation_share": VALIDATION_SHARE,
                     "early_stopping_rounds": EARLY_STOPPING_ROUNDS,
                     "final_model": "retrained on all rows with best_iteration trees"},
        "libraries": {"lightgbm": lgb.__version__, "numpy": np.__version__,
                      "python": platform.python_version()},
    }

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MODEL_FILE).write_bytes(model_bytes)
    (out_dir / CONFIG_FILE).write_bytes(config_bytes)
    (out_dir / METADATA_FILE).write_text(
        json.dumps(metadata, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    echo(f"validation (held-back {100 * VALIDATION_SHARE:.0f}%, {len(fit.validation_rows):,} "
         f"rows): AUC {metrics['auc']:.3f}, Brier {metrics['brier']:.4f} (base rate "
         f"{metrics['brier_base_rate']:.4f}); {fit.best_iteration} trees, retrained on all rows")
    echo("tiers: " + ", ".join(_tier_line(tiers, row) for row in tier_rows))
    return metadata


def _first_of_each_id(rows: list[Mapping[str, str | None]],
                      id_column: str | None) -> list[Mapping[str, str | None]]:
    """HubSpot exports can repeat a contact: keep its first row (rows without an id, or all
    rows when there is no id column, are kept)."""
    if not id_column:
        return rows
    seen: set[str] = set()
    kept = []
    for row in rows:
        row_id = (row.get(id_column) or "").strip()
        if row_id and row_id in seen:
            continue
        seen.add(row_id)
        kept.append(row)
    return kept


@dataclass(frozen=True)
class Fit:
    model_text: str  # the shipped model, retrained on every row
    params: dict
    best_iteration: int
    validation_rows: np.ndarray  # indices of the held-back split
    validation_raw: np.ndarray  # its raw outputs from the model that did not see it


def fit_model(matrix: np.ndarray, labels: np.ndarray, schema: FeatureSchema) -> Fit:
    """Early stopping on a held-back validation split picks the number of trees; the
    shipped model is then retrained on all rows with that many."""
    train, valid = stratified_split(labels, VALIDATION_SHARE, SEED)
    params = lightgbm_params(len(train))

    def dataset(rows: np.ndarray, **kwargs) -> lgb.Dataset:
        return lgb.Dataset(matrix[rows], label=labels[rows], params=params, free_raw_data=False,
                           **kwargs)

    features = {"feature_name": schema.names, "categorical_feature": schema.categorical_indices}
    train_set = dataset(train, **features)
    booster = lgb.train(
        params, train_set, num_boost_round=MAX_ROUNDS,
        valid_sets=[dataset(valid, reference=train_set)],
        callbacks=[lgb.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False)],
    )
    best = booster.best_iteration or booster.current_iteration()
    validation_raw = booster.predict(matrix[valid], raw_score=True, num_iteration=best)
    final = lgb.train(params, dataset(np.arange(len(labels)), **features), num_boost_round=best)
    return Fit(model_text=final.model_to_string(), params=params, best_iteration=best,
               validation_rows=valid, validation_raw=validation_raw)
