"""Training: a labelled CSV export + features.toml → a model directory (see `leadscore.model`).

Steps: read and check the CSV, learn the feature schema (categorical vocabularies), turn
rows into features with the same `Vectorizer` scoring uses, split 80/20 stratified, train
LightGBM with early stopping on the validation AUC (positives up-weighted by
neg/pos), then on the validation split fit Platt calibration, the percentile score scale
and the per-tier conversion figures.

Deterministic: the same CSV and features.toml give byte-identical files (fixed seeds, one
thread, `deterministic=True`, no wall-clock anywhere). Datetime ages are measured from the
latest timestamp in the export, recorded as `reference_time`.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import lightgbm as lgb
import numpy as np

from leadscore.features import (
    FeatureConfig,
    FeatureSchema,
    Vectorizer,
    config_columns,
    learn_schema,
    parse_config,
    parse_timestamp,
    read_csv,
    require_columns,
)
from leadscore.model import (
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
EARLY_STOPPING_ROUNDS = 50
MIN_PER_CLASS = 10
SCORE_KNOTS = 201
# Default tiers as shares of the lead population, best first; the rest is disqualified.
DEFAULT_TIER_SHARES = {"hot": 0.10, "warm": 0.20, "cold": 0.50}


def lightgbm_params(positives: int, negatives: int) -> dict:
    return {
        "objective": "binary",
        "metric": "auc",
        "learning_rate": 0.05,
        "num_leaves": 15,
        "min_data_in_leaf": 20,
        "feature_fraction": 0.9,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "lambda_l2": 1.0,
        "max_cat_to_onehot": 4,
        "min_data_per_group": 20,
        "cat_smooth": 10.0,
        "cat_l2": 10.0,
        "max_bin": 255,
        # Imbalance: up-weight positives so trees look at them; calibration restores
        # honest probabilities afterwards.
        "scale_pos_weight": round(negatives / positives, 6),
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
    """(train, validation) row indices with the label ratio kept in both."""
    rng = np.random.default_rng(seed)
    validation = []
    for cls in (0, 1):
        members = rng.permutation(np.flatnonzero(labels == cls))
        validation.append(members[: max(1, round(len(members) * share))])
    valid = np.sort(np.concatenate(validation))
    train = np.setdiff1d(np.arange(len(labels)), valid)
    return train, valid


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mann-Whitney AUC with average ranks for ties."""
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    average = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(average, counts)
    positives = labels == 1
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    if not n_pos or not n_neg:
        return float("nan")
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


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


def tier_table(tiers: Tiers, scores: np.ndarray, labels: np.ndarray) -> list[dict]:
    """Share and conversion rate of each tier on the validation split."""
    base = float(labels.mean())
    names = np.array([tiers.tier_for(int(s)) for s in scores])
    table = []
    for name in ("hot", "warm", "cold", "disqualified"):
        members = names == name
        count = int(members.sum())
        rate = float(labels[members].mean()) if count else 0.0
        table.append({
            "tier": name,
            "leads": count,
            "share": round(count / len(scores), 4),
            "conversion_rate": round(rate, 4),
            "lift": round(rate / base, 3) if base else 0.0,
        })
    return table


def _reference_time(config: FeatureConfig, rows: list[dict[str, str]]) -> datetime | None:
    """The latest timestamp in the export's datetime features: roughly when it was taken."""
    latest = None
    for column in config.features.datetime:
        for row in rows:
            seconds = parse_timestamp(row.get(column))
            if seconds is not None and (latest is None or seconds > latest):
                latest = seconds
    return datetime.fromtimestamp(latest, UTC) if latest is not None else None


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _quality_report(
    schema: FeatureSchema,
    rows: list[dict[str, str]],
    matrix: np.ndarray,
) -> tuple[dict, list[str]]:
    """Missing/unparsable share per feature and vocabulary sizes, plus lines to echo."""
    report, lines = {}, ["missing share per feature:"]
    for j, spec in enumerate(schema.features):
        empty = sum(1 for row in rows if not (row.get(spec.column) or "").strip())
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


def train_csv(
    data: Path,
    config_path: Path,
    out_dir: Path,
    *,
    echo: Callable[[str], object] = print,
    now: datetime | None = None,
) -> dict:
    """Train on a labelled CSV export and write `out_dir` (model.txt, metadata.json, a copy
    of features.toml). `now` overrides the reference time for datetime ages. Returns the
    metadata."""
    data, config_path, out_dir = Path(data), Path(config_path), Path(out_dir)
    config_bytes = config_path.read_bytes()
    config = parse_config(config_bytes.decode("utf-8"), source=str(config_path))
    header, all_rows = read_csv(data)
    require_columns(header, config_columns(config, with_label=True), str(data))

    seen_ids: set[str] = set()
    rows: list[dict[str, str]] = []
    for row in all_rows:
        row_id = (row.get(config.id) or "").strip()
        if row_id and row_id in seen_ids:
            continue  # HubSpot exports can repeat a contact; keep its first row
        seen_ids.add(row_id)
        rows.append(row)
    duplicates = len(all_rows) - len(rows)

    labels = np.array([config.is_positive(r.get(config.label.column)) for r in rows], np.int8)
    positives, negatives = int(labels.sum()), int(len(labels) - labels.sum())
    if positives < MIN_PER_CLASS or negatives < MIN_PER_CLASS:
        raise ValueError(
            f"{data}: need at least {MIN_PER_CLASS} converted and {MIN_PER_CLASS} not converted "
            f"rows, got {positives} with {config.label.column} in {config.label.positive} and "
            f"{negatives} without"
        )

    reference = now.astimezone(UTC) if now else _reference_time(config, rows)
    schema = learn_schema(config, rows)
    matrix = Vectorizer(schema).transform(rows, reference.timestamp() if reference else 0.0)

    used = {config.label.column, *config.properties}
    ignored = [c for c in header if c not in used]
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

    train_idx, valid_idx = stratified_split(labels, VALIDATION_SHARE, SEED)
    params = lightgbm_params(int(labels[train_idx].sum()), int(len(train_idx) -
                                                               labels[train_idx].sum()))
    train_set = lgb.Dataset(
        matrix[train_idx], label=labels[train_idx], feature_name=schema.names,
        categorical_feature=schema.categorical_indices, params=params, free_raw_data=False,
    )
    valid_set = lgb.Dataset(
        matrix[valid_idx], label=labels[valid_idx], reference=train_set, params=params,
        free_raw_data=False,
    )
    booster = lgb.train(
        params, train_set, num_boost_round=MAX_ROUNDS, valid_sets=[valid_set],
        callbacks=[lgb.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False)],
    )
    best_iteration = booster.best_iteration or booster.current_iteration()
    model_text = booster.model_to_string(num_iteration=best_iteration)
    model_bytes = model_text.encode("utf-8")

    # Everything below is computed with the serving code path on the saved model.
    native = NativeBooster(model_text, len(schema.features))
    raw_valid = native.raw_many(matrix[valid_idx])
    y_valid = labels[valid_idx].astype(np.float64)
    calibration = fit_platt(raw_valid, labels[valid_idx])
    probability = calibration(raw_valid)
    scale = fit_percentile_scale(raw_valid)
    data_tiers = default_tiers()
    tiers = merge_tiers(data_tiers, config.tiers)
    tier_rows = tier_table(tiers, scale(raw_valid), labels[valid_idx])

    metrics = {
        "rows": len(rows),
        "positives": positives,
        "positive_rate": round(positives / len(rows), 6),
        "train_rows": len(train_idx),
        "validation_rows": len(valid_idx),
        "validation_positives": int(y_valid.sum()),
        "best_iteration": best_iteration,
        "auc": round(roc_auc(labels[valid_idx], raw_valid), 6),
        "brier": round(float(np.mean((probability - y_valid) ** 2)), 6),
        "brier_base_rate": round(float(np.mean((y_valid.mean() - y_valid) ** 2)), 6),
        "log_loss": round(float(-np.mean(
            y_valid * np.log(np.clip(probability, 1e-12, 1)) +
            (1 - y_valid) * np.log(np.clip(1 - probability, 1e-12, 1)))), 6),
        "train_auc": round(roc_auc(labels[train_idx], native.raw_many(matrix[train_idx])), 6),
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
        "score_definition": "percentile of the raw model output among validation leads",
        "tiers": {
            "thresholds": tiers.model_dump(),
            "source": "features.toml" if config.tiers else "data",
            "default_shares": DEFAULT_TIER_SHARES,
            "validation": tier_rows,
        },
        "metrics": metrics,
        "data_quality": {"duplicates_dropped": duplicates, "ignored_columns": ignored,
                         "features": quality},
        "data": {"file": data.name, "sha256": _file_sha256(data), "rows": len(all_rows)},
        "config_sha256": hashlib.sha256(config_bytes).hexdigest(),
        "training": {"params": params, "seed": SEED, "validation_share": VALIDATION_SHARE,
                     "early_stopping_rounds": EARLY_STOPPING_ROUNDS},
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
    echo(f"validation: AUC {metrics['auc']:.3f}, Brier {metrics['brier']:.4f} "
         f"(base rate {metrics['brier_base_rate']:.4f}), {len(valid_idx):,} rows, "
         f"best iteration {best_iteration}")
    echo("tiers: " + ", ".join(_tier_line(tiers, row) for row in tier_rows))
    return metadata
