"""Training: data checks, determinism, calibration, score scale and what lands on disk."""

import csv
import hashlib
import json
from datetime import datetime
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest

from leadscore.cli.csv_files import read_csv, score_csv, train_csv
from leadscore.cli.synthetic import generate_contacts
from leadscore.model import fitting, load
from leadscore.model.config import load_config
from leadscore.model.features import Vectorizer
from leadscore.model.fitting import stratified_folds
from leadscore.model.training import (
    default_tiers,
    fit_percentile_scale,
    fit_platt,
    stratified_split,
)

FEATURES_TOML = """
id = "hs_object_id"

[label]
column = "lifecyclestage"
positive = ["opportunity", "customer"]

[features]
numeric     = ["hs_analytics_num_visits", "hs_analytics_num_page_views"]
categorical = ["hs_analytics_source", "country", "jobtitle", "numemployees"]
boolean     = ["hs_email_optout"]
datetime    = ["hs_analytics_last_visit_timestamp"]
email       = "email"
"""


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("training")


@pytest.fixture(scope="module")
def data(workdir) -> Path:
    rows = generate_contacts(1500, seed=3)
    rows[0]["hs_analytics_num_visits"] = "lots"  # bad cells must not stop training
    rows[1]["hs_analytics_last_visit_timestamp"] = "last week"
    rows.append(dict(rows[5]))  # a repeated contact
    return write_csv(workdir / "contacts.csv", rows)


@pytest.fixture(scope="module")
def config_path(workdir) -> Path:
    path = workdir / "features.toml"
    path.write_text(FEATURES_TOML)
    return path


@pytest.fixture(scope="module")
def trained(workdir, data, config_path):
    lines: list[str] = []
    metadata = train_csv(data, config_path, workdir / "model", echo=lines.append)
    return metadata, lines, workdir / "model"


def test_model_directory_contents(trained, data, config_path):
    metadata, _, model_dir = trained
    assert sorted(p.name for p in model_dir.iterdir()) == [
        "features.toml", "metadata.json", "model.txt"]
    assert (model_dir / "features.toml").read_bytes() == config_path.read_bytes()
    assert json.loads((model_dir / "metadata.json").read_text()) == metadata
    model_bytes = (model_dir / "model.txt").read_bytes()
    assert metadata["model_sha256"] == hashlib.sha256(model_bytes).hexdigest()
    assert metadata["data"]["sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    assert metadata["version"].startswith("20250630-")
    assert metadata["reference_time"].startswith("2025-06-30T")
    metrics = metadata["metrics"]
    assert metrics["rows"] == 1500 and metrics["best_iteration"] >= 1
    # Every row has an out-of-fold output under 5-fold cross-validation.
    assert metrics["validation_rows"] == 1500
    assert metrics["validation_positives"] == metrics["positives"]
    assert metrics["train_auc"] >= metrics["auc"]
    training = metadata["training"]
    assert training["cv_folds"] == training["folds_trained"] == 5
    candidates = {c["num_leaves"]: c for c in training["candidates"]}
    assert set(candidates) == {4, 31}
    chosen = min(candidates.values(), key=lambda c: (c["cv_log_loss"], c["num_leaves"]))
    assert training["params"]["num_leaves"] == chosen["num_leaves"]
    assert metrics["best_iteration"] == chosen["iterations"]
    # The blend weight is the one with the lowest out-of-fold log loss; C likewise.
    losses = training["blend_log_loss"]
    best = min(losses.values())
    assert metadata["blend"]["gbm_weight"] == max(float(w) for w, v in losses.items() if v == best)
    c_losses = training["linear"]["cv_log_loss"]
    assert f"{training['linear']['c']:g}" in c_losses
    assert c_losses[f"{training['linear']['c']:g}"] == min(c_losses.values())
    assert metadata["format"] == 2 and metadata["blend"]["method"] == "gbm+linear"
    assert 0.6 < metrics["auc"] <= 1.0 and 0 < metrics["brier"] < metrics["brier_base_rate"]
    assert metadata["calibration"]["method"] == "platt" and metadata["calibration"]["a"] > 0
    assert metadata["tiers"]["thresholds"] == {"hot": 90, "warm": 70, "cold": 20}
    assert metadata["tiers"]["source"] == "data"
    assert [row["tier"] for row in metadata["tiers"]["validation"]] == [
        "hot", "warm", "cold", "disqualified"]
    assert {"lightgbm", "numpy", "python"} <= set(metadata["libraries"])


def test_quality_summary_is_echoed(trained):
    metadata, lines, _ = trained
    text = "\n".join(lines)
    assert "1,500 rows" in text and "positives" in text
    assert "dropped 1 rows repeating" in text
    assert "ignored columns (not in features.toml): firstname, lastname, phone" in text
    assert "hs_analytics_num_visits" in text and "(1 unparsable cells)" in text
    assert "5-fold cross-validation: trees (4 leaves: log loss" in text
    assert "out-of-fold (1,500 rows): AUC" in text and "tiers: hot ≥ 90" in text
    assert "retrained on all rows" in text and "blend weight of the trees" in text
    assert metadata["data_quality"]["features"]["hs_analytics_num_visits"]["unparsable"] == 1


def test_same_data_same_bytes(trained, data, config_path, workdir):
    _, _, first = trained
    train_csv(data, config_path, workdir / "again", echo=lambda _: None)
    for name in ("model.txt", "metadata.json", "features.toml"):
        assert (workdir / "again" / name).read_bytes() == (first / name).read_bytes(), name


def test_missing_column_is_named(workdir, config_path):
    rows = [{k: v for k, v in row.items() if k != "jobtitle"} for row in generate_contacts(50, 1)]
    path = write_csv(workdir / "no_jobtitle.csv", rows)
    with pytest.raises(ValueError, match=r"'jobtitle' \(features\.categorical"):
        train_csv(path, config_path, workdir / "never", echo=lambda _: None)
    assert not (workdir / "never").exists()


def test_too_few_positives_is_refused(workdir, config_path):
    rows = generate_contacts(200, 1)
    for row in rows:
        row["lifecyclestage"] = "lead"
    path = write_csv(workdir / "no_positives.csv", rows)
    with pytest.raises(ValueError, match="need at least 10 converted"):
        train_csv(path, config_path, workdir / "never", echo=lambda _: None)


def test_tiers_in_config_are_recorded(workdir, data):
    config = workdir / "tiers.toml"
    config.write_text(FEATURES_TOML + "\n[tiers]\nhot = 75\nwarm = 40\n")
    metadata = train_csv(data, config, workdir / "tiered", echo=lambda _: None)
    assert metadata["tiers"]["thresholds"] == {"hot": 75, "warm": 40, "cold": 20}
    assert metadata["tiers"]["source"] == "features.toml"


def test_native_predictions_match_lightgbm(trained, data):
    """The ctypes serving path and LightGBM's own Python API agree exactly."""
    _, _, model_dir = trained
    model = load(model_dir)
    _, rows = read_csv(data)
    matrix = Vectorizer(model.schema).transform(rows[:300], 1.75e9)
    booster = lgb.Booster(model_str=(model_dir / "model.txt").read_text())
    np.testing.assert_allclose(
        model._booster.raw_many(matrix), booster.predict(matrix, raw_score=True),
        rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        model._booster.contrib_many(matrix), booster.predict(matrix, pred_contrib=True),
        rtol=0, atol=1e-12)
    assert booster.feature_name() == model.schema.names


def test_stratified_split_keeps_the_ratio():
    labels = np.array([1] * 100 + [0] * 900)
    train, valid = stratified_split(labels, 0.2, seed=1)
    assert len(valid) == 200 and labels[valid].sum() == 20
    assert not set(train) & set(valid) and len(train) + len(valid) == 1000
    assert np.array_equal(stratified_split(labels, 0.2, seed=1)[1], valid)


def test_stratified_folds_partition_the_rows_and_keep_the_ratio():
    labels = np.array([1] * 100 + [0] * 900)
    folds = stratified_folds(labels, 5, seed=1)
    assert sorted(np.concatenate(folds).tolist()) == list(range(1000))
    assert [len(f) for f in folds] == [200] * 5
    assert [int(labels[f].sum()) for f in folds] == [20] * 5
    again = stratified_folds(labels, 5, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(folds, again, strict=True))


def test_above_the_cv_ceiling_one_hold_out_fold_is_trained(workdir, data, config_path,
                                                           monkeypatch):
    monkeypatch.setattr(fitting, "CV_MAX_ROWS", 1000)
    metadata = train_csv(data, config_path, workdir / "large-model", echo=lambda _: None)
    assert metadata["training"]["folds_trained"] == 1
    assert metadata["metrics"]["validation_rows"] == 300  # the first stratified fold, 20 %
    model_text = (workdir / "large-model" / "model.txt").read_text()
    assert model_text.count("\nTree=") == metadata["metrics"]["best_iteration"]


def test_platt_calibration_is_monotonic_and_honest():
    rng = np.random.default_rng(1)
    raw = rng.normal(0, 2, 20_000)
    truth = 1 / (1 + np.exp(-(0.5 * raw - 2.0)))
    labels = (rng.random(raw.size) < truth).astype(int)
    calibration = fit_platt(raw, labels)
    assert calibration.a == pytest.approx(0.5, abs=0.05)
    assert calibration.b == pytest.approx(-2.0, abs=0.1)
    probabilities = calibration(np.linspace(-10, 10, 201))
    assert np.all(np.diff(probabilities) > 0)
    assert probabilities[0] > 0 and probabilities[-1] < 1
    # Useless scores: flat at the base rate, never decreasing.
    flat = fit_platt(rng.normal(size=1000), (rng.random(1000) < 0.1).astype(int)[::-1])
    assert np.all(np.diff(flat(np.linspace(-3, 3, 50))) >= 0)


def test_percentile_scale_ranks_against_validation():
    raw = np.arange(1000, dtype=float)
    scale = fit_percentile_scale(raw)
    assert scale(np.array([-5.0, 0.0, 499.5, 799.0, 999.0, 5000.0])).tolist() == [
        0, 0, 50, 80, 100, 100]
    assert np.all(np.diff(scale(np.linspace(-10, 1010, 500))) >= 0)
    constant = fit_percentile_scale(np.zeros(10))
    assert constant(np.array([-1.0, 0.0, 1.0])).tolist() == [50, 50, 50]


def test_default_tiers_are_population_shares():
    assert default_tiers().model_dump() == {"hot": 90, "warm": 70, "cold": 20}


def test_layer_config_is_valid():
    root = Path(__file__).resolve().parents[2]
    config = load_config(root / "layers/model/features.toml")
    assert config.label.column == "lifecyclestage" and config.features.email == "email"


def test_without_id_column_rows_are_numbered(workdir, data):
    config = workdir / "no_id.toml"
    config.write_text(FEATURES_TOML.replace('id = "hs_object_id"\n', ""))
    metadata = train_csv(data, config, workdir / "no_id", echo=lambda _: None)
    assert metadata["id_column"] is None
    assert metadata["metrics"]["rows"] == 1501  # no id: the repeated contact is kept
    rows = score_csv(workdir / "no_id", data, workdir / "no_id_scores.csv")
    with (workdir / "no_id_scores.csv").open() as handle:
        ids = [row["id"] for row in csv.DictReader(handle)]
    assert ids == [str(i) for i in range(1, rows + 1)]


def _at_base_rate(contacts: list[dict[str, str]], rate: float) -> list[dict[str, str]]:
    """The contacts with converted or unconverted ones dropped (every other one kept, in
    order) so that `rate` of those left converted."""
    positive = [c["lifecyclestage"] in ("opportunity", "customer") for c in contacts]
    n_pos, n_neg = sum(positive), len(contacts) - sum(positive)
    keep_pos = min(n_pos, round(rate * n_neg / (1 - rate)))
    keep_neg = min(n_neg, round(keep_pos * (1 - rate) / rate))
    kept, seen = [], {True: 0, False: 0}
    for contact, is_pos in zip(contacts, positive, strict=True):
        if seen[is_pos] < (keep_pos if is_pos else keep_neg):
            seen[is_pos] += 1
            kept.append(contact)
    return kept


@pytest.mark.parametrize("rate", [0.02, 0.40])
def test_default_tiers_mean_the_same_at_2_and_40_percent_conversion(tmp_path, config_path,
                                                                    rate):
    """Tiers are shares of the lead population, not probability cut-offs: on unseen leads
    hot is still about the best 10 %, and converts best, whatever the base rate."""
    train = write_csv(tmp_path / "train.csv", _at_base_rate(generate_contacts(8000, 5), rate))
    metadata = train_csv(train, config_path, tmp_path / "model", echo=lambda _: None)
    assert metadata["metrics"]["positive_rate"] == pytest.approx(rate, abs=0.005)
    model = load(tmp_path / "model")
    assert model.tiers.model_dump() == {"hot": 90, "warm": 70, "cold": 20}

    holdout = _at_base_rate(generate_contacts(8000, 6), rate)
    labels = np.array([c["lifecyclestage"] in ("opportunity", "customer") for c in holdout])
    results = model.score_many(holdout, with_reasons=False,
                               now=datetime.fromisoformat(metadata["reference_time"]))
    tiers = np.array([r.tier for r in results])
    shares = {t: float((tiers == t).mean()) for t in ("hot", "warm", "cold", "disqualified")}
    for tier, expected in {"hot": 0.1, "warm": 0.2, "cold": 0.5, "disqualified": 0.2}.items():
        assert shares[tier] == pytest.approx(expected, abs=0.05), (tier, shares)
    conversion = [labels[tiers == t].mean() for t in ("hot", "warm", "cold", "disqualified")]
    assert conversion == sorted(conversion, reverse=True), conversion
    assert conversion[0] >= 1.5 * labels.mean() and conversion[3] <= 0.5 * labels.mean()
