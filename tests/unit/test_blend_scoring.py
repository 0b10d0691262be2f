"""Scoring with the trees + linear blend (metadata format 2), and model directories written
before it (format 1: the trees alone) still loading and scoring as they did."""

import csv
import json
import shutil
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest

from leadscore.cli.csv_files import train_csv
from leadscore.cli.synthetic import SYNTHETIC_NOW, generate_contacts
from leadscore.model import load
from leadscore.model.features import Vectorizer
from leadscore.model.reasons import choose_reasons, missing_value_signals, worded_reasons
from leadscore.model.scoring import PercentileScale, PlattCalibration

ROOT = Path(__file__).resolve().parents[2]
FORMAT_1 = ROOT / "tests/fixtures/models/format1-default"  # the shipped model before the blend


@pytest.fixture(scope="module")
def contacts():
    return generate_contacts(300, seed=11)


@pytest.fixture(scope="module")
def blended(tmp_path_factory):
    work = tmp_path_factory.mktemp("blend")
    rows = generate_contacts(3000, seed=4)
    with (work / "train.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    train_csv(work / "train.csv", ROOT / "layers/model/features.toml", work / "model",
              echo=lambda _: None)
    return work / "model"


def test_a_format_1_directory_scores_with_the_trees_alone(contacts):
    model = load(FORMAT_1)
    metadata = json.loads((FORMAT_1 / "metadata.json").read_text())
    assert metadata["format"] == 1 and "blend" not in metadata
    matrix = Vectorizer(model.schema).transform(contacts, SYNTHETIC_NOW)
    booster = lgb.Booster(model_str=(FORMAT_1 / "model.txt").read_text())
    raw = booster.predict(matrix, raw_score=True)
    np.testing.assert_allclose(model.raw_many(matrix), raw, rtol=0, atol=1e-12)
    np.testing.assert_allclose(model.contributions_many(matrix),
                               booster.predict(matrix, pred_contrib=True), rtol=0, atol=1e-12)
    probability = PlattCalibration.from_dict(metadata["calibration"])(raw)
    scores = PercentileScale.from_dict(metadata["score_scale"])(raw)
    results = model.score_many(contacts, now=SYNTHETIC_NOW)
    assert [r.probability for r in results] == np.round(probability, 4).tolist()
    assert [r.score for r in results] == scores.tolist()
    assert results == [model.score(c, now=SYNTHETIC_NOW) for c in contacts]


def test_blended_outputs_are_the_weighted_trees_and_line(blended, contacts):
    model = load(blended)
    metadata = model.metadata
    assert metadata["format"] == 2
    weight = metadata["blend"]["gbm_weight"]
    linear = model._blend.linear
    matrix = Vectorizer(model.schema).transform(contacts, SYNTHETIC_NOW)
    booster = lgb.Booster(model_str=(blended / "model.txt").read_text())
    expected_raw = (weight * booster.predict(matrix, raw_score=True)
                    + (1 - weight) * linear.raw(matrix))
    np.testing.assert_allclose(model.raw_many(matrix), expected_raw, rtol=0, atol=1e-12)
    contributions = model.contributions_many(matrix)
    expected = weight * booster.predict(matrix, pred_contrib=True)
    expected[:, :-1] += (1 - weight) * linear.contributions(matrix)
    expected[:, -1] += (1 - weight) * linear.intercept
    np.testing.assert_allclose(contributions, expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(contributions.sum(axis=1), expected_raw, atol=1e-9)
    # One lead at a time, many at once, with or without reasons: the same numbers.
    singles = [model.score(c, now=SYNTHETIC_NOW) for c in contacts]
    assert model.score_many(contacts, now=SYNTHETIC_NOW) == singles
    quick = model.score_many(contacts, with_reasons=False, now=SYNTHETIC_NOW)
    assert [(r.score, r.probability) for r in quick] == [(r.score, r.probability)
                                                         for r in singles]


def expected_reasons(model, contact, contributions, score: int) -> list[str]:
    """The reasons `leadscore.model.reasons` picks from these contributions."""
    row = model.vectorize(contact, now=SYNTHETIC_NOW)
    effects = contributions[:-1]
    signals = missing_value_signals(model.metadata.get("missing_values"), model.schema,
                                    model.config.reasons.missing_min_z)
    chosen = choose_reasons(effects, np.isnan(row), score, model.config.reasons, signals)
    return worded_reasons(chosen, effects, row, contact, model.schema)


@pytest.mark.parametrize("weight", [0.0, 0.5, 1.0])
def test_reasons_follow_the_blended_contributions(blended, contacts, tmp_path, weight):
    """Whatever the weight, the reasons are the largest blended contributions: with weight 0
    the linear model's exact terms alone, with weight 1 the trees' SHAP values alone."""
    directory = tmp_path / "model"
    shutil.copytree(blended, directory)
    metadata = json.loads((directory / "metadata.json").read_text())
    metadata["blend"]["gbm_weight"] = weight
    (directory / "metadata.json").write_text(json.dumps(metadata))
    model = load(directory)
    linear = model._blend.linear
    booster = lgb.Booster(model_str=(directory / "model.txt").read_text())
    for contact in contacts[:60]:
        matrix = model.vectorize(contact, now=SYNTHETIC_NOW)[np.newaxis]
        trees = booster.predict(matrix, pred_contrib=True)[0]
        line = np.append(linear.contributions(matrix)[0], linear.intercept)
        contributions = weight * trees + (1 - weight) * line
        result = model.score(contact, now=SYNTHETIC_NOW)
        assert result.reasons == expected_reasons(model, contact, contributions, result.score)


def test_the_linear_half_gives_readable_reasons(blended):
    directory = blended.parent / "line-only"
    shutil.copytree(blended, directory, dirs_exist_ok=True)
    metadata = json.loads((directory / "metadata.json").read_text())
    metadata["blend"]["gbm_weight"] = 0.0
    (directory / "metadata.json").write_text(json.dumps(metadata))
    model = load(directory)
    engaged = {"email": "a.rao@deccananalytics.in", "jobtitle": "CTO", "numemployees": "100-500",
               "country": "India", "hs_analytics_source": "REFERRALS",
               "hs_analytics_num_visits": "25", "hs_analytics_num_page_views": "80",
               "hs_analytics_last_visit_timestamp": "2025-06-29T10:00:00.000Z",
               "hs_email_optout": "false"}
    reasons = model.score(engaged, now=SYNTHETIC_NOW).reasons
    assert "Visited 25 times (+)" in reasons
    assert all(r.endswith(("(+)", "(−)")) and "nan" not in r for r in reasons)


def _edited(source: Path, target: Path, edit) -> Path:
    shutil.copytree(source, target)
    metadata = json.loads((target / "metadata.json").read_text())
    edit(metadata)
    (target / "metadata.json").write_text(json.dumps(metadata))
    return target


def test_inconsistent_blends_are_refused(blended, tmp_path):
    missing = _edited(blended, tmp_path / "missing", lambda m: m.pop("blend"))
    with pytest.raises(ValueError, match="no valid blend"):
        load(missing)

    def drop_a_level(metadata):
        feature = next(f for f in metadata["blend"]["linear"]["features"] if "levels" in f)
        feature["levels"].pop()

    with pytest.raises(ValueError, match="no valid blend: linear model: the levels of"):
        load(_edited(blended, tmp_path / "levels", drop_a_level))
    future = _edited(blended, tmp_path / "future", lambda m: m.update(format=3))
    with pytest.raises(ValueError, match="unsupported metadata format 3"):
        load(future)
