"""Training: labelled rows + features.toml → a model directory (see `leadscore.model.scoring`).

`train` takes the rows (`LabelledData`): `leadscore train` reads them from a CSV export
(`leadscore.cli.csv_files.train_csv`); a scheduled retrain builds them from stored snapshots.
Steps: learn the feature schema (categorical vocabularies), turn rows into features with the
same `Vectorizer` scoring uses, then:

1. the fitting recipe (`leadscore.model.fitting`): cross-validated LightGBM trees and an
   additive logistic regression (`leadscore.model.linear`), blended with a weight chosen on
   out-of-fold predictions, both refitted on all rows;
2. on the blended out-of-fold outputs (every row scored by models that did not see it; a 20 %
   hold-out above 200,000 rows): Platt calibration, the percentile score scale, the per-tier
   conversion figures and the reported metrics (AUC, Brier, log loss);
3. the directory: model.txt (the trees), metadata.json (schema, blend, calibration, scale,
   tiers, metrics, data fingerprint), features.toml.

Class imbalance: folds are stratified, so each holds its share of the rare class; fitting
and selection use log loss; probabilities are calibrated on out-of-fold predictions; and the
score is a percentile, so tiers keep their meaning at 2 % or 40 % conversion. Positives are
deliberately not up-weighted (see `fitting.lightgbm_params`).

Deterministic: the same rows and features.toml give byte-identical files (fixed seeds and
folds, one thread, `deterministic=True`, no wall-clock anywhere). Datetime ages are measured
from the latest timestamp in the export, recorded as `reference_time`.
"""

from __future__ import annotations

import hashlib
import json
import platform
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import lightgbm as lgb
import numpy as np

from leadscore.model.backtest import brier, log_loss, roc_auc, tier_table
from leadscore.model.config import FeatureConfig, LabelledData
from leadscore.model.features import FeatureSchema, Vectorizer, learn_schema, reference_time
from leadscore.model.fitting import (
    CV_FOLDS,
    CV_MAX_ROWS,
    EARLY_STOPPING_ROUNDS,
    SEED,
    fit_model,
    fit_platt,
    stratified_split,  # noqa: F401  (re-exported: the benchmarks and tests split with it)
)
from leadscore.model.reasons import missing_value_evidence
from leadscore.model.reference import training_reference
from leadscore.model.scoring import (
    CONFIG_FILE,
    METADATA_FILE,
    METADATA_FORMAT,
    MODEL_FILE,
    NativeBooster,
    PercentileScale,
    Tiers,
    merge_tiers,
)

MIN_PER_CLASS = 10
SCORE_KNOTS = 201
# Default tiers as shares of the lead population, best first; the rest is disqualified.
DEFAULT_TIER_SHARES = {"hot": 0.10, "warm": 0.20, "cold": 0.50}


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
    now: datetime | Sequence[datetime] | None = None,
) -> dict:
    """Train on labelled rows and write `out_dir` (model.txt, metadata.json, and `config_text`,
    the features.toml `config` was parsed from). `now` overrides the reference time for
    datetime ages: one for all rows, or one per row (point-in-time features: a stored lead
    aged from when it was scored; the latest is recorded as the reference). Returns the
    metadata."""
    out_dir = Path(out_dir)
    all_rows = list(data.rows)
    rows = _first_of_each_id(all_rows, config.id)
    row_times = None
    if isinstance(now, Sequence):
        if len(now) != len(all_rows):
            raise ValueError(f"{len(now)} reference times for {len(all_rows)} rows")
        kept = {id(row) for row in rows}
        row_times = [at for row, at in zip(all_rows, now, strict=True) if id(row) in kept]
        now = max(row_times, default=None)
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
    matrix = Vectorizer(schema).transform(
        rows, row_times or (reference.timestamp() if reference else 0.0))

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
    blend = fit.blend.to_dict()

    # Fitted on out-of-fold outputs, each from models that never saw the row.
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
        "train_auc": round(roc_auc(labels, fit.blend.raw(native.raw_many(matrix), matrix)), 6),
    }
    weight = fit.blend.gbm_weight
    final_model = (f"retrained on all rows: {fit.best_iteration} LightGBM trees of "
                   f"{fit.params['num_leaves']} leaves (weight {weight:g}) and a logistic "
                   f"regression with C = {fit.linear['c']:g} (weight {1 - weight:g})")
    schema_dict = schema.to_dict()
    schema_sha = schema.sha256()
    model_sha = hashlib.sha256(model_bytes).hexdigest()
    fingerprint = hashlib.sha256(
        model_bytes + schema_sha.encode() +
        json.dumps([calibration.to_dict(), scale.to_dict(), blend], sort_keys=True).encode()
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
        "blend": blend,
        "calibration": calibration.to_dict(),
        "score_scale": scale.to_dict(),
        "score_definition": "percentile of the raw model output among the out-of-fold "
                            "outputs of the training leads",
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
        # Whether a missing value may be a reason (leadscore.model.reasons).
        "missing_values": missing_value_evidence(schema, matrix, labels),
        "data": {"file": data.name, "sha256": data.sha256, "rows": len(all_rows)},
        "config_sha256": hashlib.sha256(config_bytes).hexdigest(),
        "training": {"params": fit.params, "seed": SEED, "cv_folds": CV_FOLDS,
                     "folds_trained": fit.folds, "cv_max_rows": CV_MAX_ROWS,
                     "early_stopping_rounds": EARLY_STOPPING_ROUNDS,
                     "candidates": fit.candidates, "linear": fit.linear,
                     "blend_log_loss": {f"{w:g}": loss for w, loss in
                                        fit.blend_log_loss.items()},
                     "final_model": final_model},
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
    how = (f"{fit.folds}-fold cross-validation" if fit.folds > 1 else
           f"one {100 // CV_FOLDS}% hold-out fold (more than {CV_MAX_ROWS:,} rows)")
    trees = ", ".join(f"{c['num_leaves']} leaves: log loss {c['cv_log_loss']:.4f}"
                      for c in fit.candidates)
    echo(f"{how}: trees ({trees}) → {fit.params['num_leaves']} leaves, "
         f"{fit.best_iteration} trees; logistic regression C = {fit.linear['c']:g}; "
         f"blend weight of the trees {weight:g}")
    echo(f"out-of-fold ({len(fit.validation_rows):,} rows): AUC {metrics['auc']:.3f}, Brier "
         f"{metrics['brier']:.4f} (base rate {metrics['brier_base_rate']:.4f}); shipped: "
         f"{final_model}")
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
