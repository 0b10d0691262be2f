"""The linear half of the model (`leadscore.model.linear`): the fit, its exact per-feature
contributions, its stored form, and the blend with the trees."""

import json

import numpy as np
import pytest

from leadscore.model.features import FeatureSchema, FeatureSpec
from leadscore.model.fitting import stratified_folds
from leadscore.model.linear import Blend, LinearModel, _Design, fit_linear

SCHEMA = FeatureSchema((
    FeatureSpec("visits", "visits", "numeric"),
    FeatureSpec("source", "source", "categorical", vocabulary=("a", "b", "c")),
    FeatureSpec("optout", "optout", "boolean"),
    FeatureSpec("never_filled", "never_filled", "numeric"),
))


def make_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows in schema order and labels drawn from a known additive logit (returned too)."""
    rng = np.random.default_rng(seed)
    visits = rng.exponential(5.0, n)
    visits[rng.random(n) < 0.2] = np.nan  # missing visits convert less
    source = rng.integers(0, 4, n).astype(float)  # 3 = "other"
    source[rng.random(n) < 0.1] = np.nan
    optout = (rng.random(n) < 0.3).astype(float)
    matrix = np.column_stack([visits, source, optout, np.full(n, np.nan)])
    logit = (-2.0 + np.where(np.isnan(visits), -1.0, 0.25 * np.nan_to_num(visits))
             + np.select([source == 0, source == 1], [1.0, -1.0], 0.0) - 1.5 * optout)
    labels = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    return matrix, labels, logit


def folds_of(labels: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    everything = np.arange(len(labels))
    return [(np.setdiff1d(everything, valid), valid)
            for valid in stratified_folds(labels, 5, seed=1)]


@pytest.fixture(scope="module")
def fitted():
    matrix, labels, _ = make_data(20_000, seed=1)
    return fit_linear(matrix, labels, SCHEMA, folds_of(labels)), matrix, labels


def test_the_fit_recovers_a_known_additive_logit(fitted):
    line, _, _ = fitted
    test, _, truth = make_data(5_000, seed=2)
    contributions = line.model.contributions(test)
    # Every term differs from the truth by a constant only (the centring); compare shapes.
    visits = contributions[:, 0]
    present = ~np.isnan(test[:, 0]) & (test[:, 0] < 15)
    slope = np.polyfit(test[present, 0], visits[present], 1)[0]
    assert slope == pytest.approx(0.25, abs=0.03)
    assert visits[np.isnan(test[:, 0])].mean() < visits[present].mean()
    source = {code: contributions[test[:, 1] == code, 1][0] for code in (0, 1, 2)}
    assert source[0] - source[2] == pytest.approx(1.0, abs=0.15)
    assert source[1] - source[2] == pytest.approx(-1.0, abs=0.15)
    optout = contributions[:, 2]
    assert optout[test[:, 2] == 1][0] - optout[test[:, 2] == 0][0] == pytest.approx(-1.5, abs=0.15)
    assert np.all(contributions[:, 3] == 0.0)  # a feature never filled contributes nothing
    raw = line.model.raw(test)
    assert np.corrcoef(raw, truth)[0, 1] > 0.98
    assert line.c in (0.1, 0.31622776601683794, 1.0, 3.1622776601683795, 10.0, 31.622776601683793,
                      100.0)  # little data noise: weak regularisation wins the CV


def test_contributions_are_exact_and_centred(fitted):
    line, matrix, _ = fitted
    model = line.model
    contributions = model.contributions(matrix)
    np.testing.assert_allclose(contributions.sum(axis=1) + model.intercept, model.raw(matrix))
    np.testing.assert_allclose(contributions.mean(axis=0), 0.0, atol=1e-9)


def test_the_newton_fit_matches_scikit_learn():
    """Same objective as scikit-learn's LogisticRegression (C × summed log loss + ½‖β‖²) on the
    same design: the same coefficients."""
    from sklearn.linear_model import LogisticRegression

    matrix, labels, _ = make_data(3_000, seed=3)
    design = _Design(matrix, SCHEMA)
    rows = np.arange(len(labels))
    ours = design.fit(labels, rows, c=0.5)
    levels = design.coefficients - design.width - 1
    onehot = np.zeros((len(labels), levels))
    for k in range(design.codes.shape[1]):
        onehot[rows, design.codes[:, k] - design.width - 1] = 1.0
    x = np.column_stack([design.dense, onehot])
    theirs = LogisticRegression(C=0.5, tol=1e-10, max_iter=10_000).fit(x, labels)
    np.testing.assert_allclose(ours[:design.width], theirs.coef_[0][:design.width], atol=1e-5)
    np.testing.assert_allclose(ours[design.width + 1:], theirs.coef_[0][design.width:],
                               atol=1e-5)
    assert ours[design.width] == pytest.approx(theirs.intercept_[0], abs=1e-5)


def test_values_beyond_the_training_range_are_held_flat(fitted):
    line, matrix, _ = fitted
    top = np.nanmax(matrix[:, 0])
    rows = np.tile(matrix[:1], (3, 1))
    rows[:, 0] = [top, top * 10, 1e12]
    visits = line.model.contributions(rows)[:, 0]
    assert visits[0] == visits[1] == visits[2]


def test_stored_form_round_trips_and_is_checked(fitted):
    line, matrix, _ = fitted
    stored = json.loads(json.dumps(line.model.to_dict()))
    again = LinearModel.from_dict(stored, SCHEMA)
    np.testing.assert_array_equal(again.raw(matrix), line.model.raw(matrix))

    other = FeatureSchema((*SCHEMA.features[:1], FeatureSpec("source", "source", "categorical",
                                                              vocabulary=("a", "b")),
                           *SCHEMA.features[2:]))
    with pytest.raises(ValueError, match="levels of source do not match"):
        LinearModel.from_dict(stored, other)
    renamed = FeatureSchema((FeatureSpec("pages", "pages", "numeric"), *SCHEMA.features[1:]))
    with pytest.raises(ValueError, match="differ from the feature schema"):
        LinearModel.from_dict(stored, renamed)
    stored["features"][0]["knots"] = stored["features"][0]["knots"][::-1]
    with pytest.raises(ValueError, match="visits has no valid curve"):
        LinearModel.from_dict(stored, SCHEMA)


def test_blend_mixes_raw_outputs_and_contributions_alike(fitted):
    line, matrix, _ = fitted
    rows = matrix[:50]
    rng = np.random.default_rng(5)
    tree_contributions = rng.normal(size=(50, 5))
    tree_raw = tree_contributions.sum(axis=1)
    linear = line.model
    for weight in (0.0, 0.3, 1.0):
        blend = Blend(weight, linear)
        raw = blend.raw(tree_raw, rows)
        contributions = blend.contributions(tree_contributions, rows)
        np.testing.assert_allclose(contributions.sum(axis=1), raw)
        np.testing.assert_allclose(
            contributions[:, :-1],
            weight * tree_contributions[:, :-1] + (1 - weight) * linear.contributions(rows))
    np.testing.assert_allclose(Blend(1.0, linear).raw(tree_raw, rows), tree_raw)
    np.testing.assert_allclose(Blend(0.0, linear).raw(tree_raw, rows), linear.raw(rows))
    with pytest.raises(ValueError, match="outside"):
        Blend.from_dict({**Blend(0.5, linear).to_dict(), "gbm_weight": 1.5}, SCHEMA)
    with pytest.raises(ValueError, match="unsupported blend method"):
        Blend.from_dict({**Blend(0.5, linear).to_dict(), "method": "stacking"}, SCHEMA)


def test_out_of_fold_outputs_come_from_models_that_did_not_see_the_row(fitted):
    line, matrix, labels = fitted
    design = _Design(matrix, SCHEMA)
    train, valid = folds_of(labels)[2]
    beta = None
    for c in [c for c in sorted(line.cv_log_loss) if c <= line.c]:
        beta = design.fit(labels, train, c, beta)
    np.testing.assert_allclose(line.out_of_fold[valid], design.raw(beta, valid), atol=1e-6)


def test_one_row_and_a_batch_give_identical_numbers(fitted):
    """One lead takes a plain-float path (speed); it must match the batch path bit for bit,
    including missing values, knots and values beyond the training range."""
    line, matrix, _ = fitted
    rows = matrix[:500].copy()
    knots = line.model.knots[0]
    rows[:len(knots), 0] = knots  # exactly on every knot
    rows[-3:, 0] = [-5.0, knots[-1] * 3, np.nan]
    batch = line.model.contributions(rows)
    singles = np.vstack([line.model.contributions(row[np.newaxis]) for row in rows])
    assert np.array_equal(batch, singles)
