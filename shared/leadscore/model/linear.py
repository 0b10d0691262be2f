"""The linear half of the model: an L2-regularised additive logistic regression on the same
feature rows as the gradient-boosted trees, blended with them in log-odds (`Blend`).

Why: boosted trees approximate a smooth curve with steps. Where conversion rises smoothly
with a few counts (a book club's purchases, an insurer's policy counts), a logistic regression
ranks and calibrates about as well as or better than a tree ensemble; where it depends on
interactions, the trees win. Training (`leadscore.model.fitting`) cross-validates both and
picks the blend weight on out-of-fold predictions, so the data decide: trees only, the line
only, or a mix.

Inputs are the `Vectorizer`'s rows (schema order, NaN = missing), so nothing is computed two
ways:

- numeric, datetime, boolean and e-mail features: the value and hinge terms max(0, x − knot)
  at its training terciles (`INNER_KNOTS`), each standardised, plus a standardised missing
  indicator: a piecewise-linear curve per feature, flat beyond the training range (a value far
  beyond anything seen cannot dominate); a missing value sits at the mean;
- categorical features: one indicator per learnt category, one for "other" (uncommon or
  unseen at training) and one for missing.

An additive model's contribution per feature is exact: Σ coefficient × (term − training mean)
over the feature's own terms. Each feature's contribution is therefore one piecewise-linear
function of its value (or one number per category, or for missing), centred so its training
mean is zero; the raw output is `intercept` + the contributions, and the reasons add them to
the trees' SHAP values in the same log-odds space.

Serving needs numpy only; fitting (`fit_linear`) imports scipy's sparse matrices on first use,
so a scoring Lambda never loads scipy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from leadscore.model.features import FeatureSchema

# Inverse regularisation strengths cross-validation chooses from (scikit-learn's convention:
# C × summed log loss + ½‖β‖²), the same grid as the logistic-regression baseline.
C_GRID = tuple(float(c) for c in np.logspace(-3, 2, 11))
MAX_ITERATIONS = 100  # Newton steps per fit; a few suffice
# Bends per numeric curve, at the training values' inner quantiles (terciles). Measured on five
# data sets × five splits: 2 bends ranked best (mean AUC 0.7950 vs 0.7939 straight, 0.7940
# with 4), and straight lines cannot follow recency or saturating counts.
INNER_KNOTS = 2


@dataclass(frozen=True, eq=False)
class LinearModel:
    """Per-feature contributions of a fitted additive logistic regression (module docstring).

    A numeric-like feature j contributes `np.interp(x, knots[j], values[j])` when present — a
    piecewise-linear function, constant beyond the training range — and `missing[j]` when NaN.
    A categorical one contributes `levels[j][code]`, with "missing" after "other". Features in
    neither list (all missing at training) contribute nothing.
    """

    names: tuple[str, ...]
    intercept: float
    numeric: np.ndarray  # feature indices
    knots: tuple[np.ndarray, ...]
    values: tuple[np.ndarray, ...]
    missing: np.ndarray
    knot_table: np.ndarray  # (numeric features, most knots): each curve's knots, last repeated
    value_table: np.ndarray  # its values, likewise
    categorical: np.ndarray  # feature indices
    levels: np.ndarray  # (categorical features, widest vocabulary + 2), zero-padded
    missing_level: np.ndarray  # per categorical feature: its column in `levels` for NaN

    def contributions(self, matrix: np.ndarray) -> np.ndarray:
        """(rows, features) contributions in log-odds; each row sums to raw − intercept."""
        matrix = np.asarray(matrix, dtype=np.float64)
        if matrix.shape[0] == 1:  # one lead: plain floats beat a dozen tiny array operations
            return self._one(matrix[0].tolist())[np.newaxis, :]
        out = np.zeros(matrix.shape, dtype=np.float64)
        if len(self.numeric):
            out[:, self.numeric] = self._curves(matrix[:, self.numeric])
        if len(self.categorical):
            codes = matrix[:, self.categorical]
            index = np.where(np.isnan(codes), self.missing_level, np.nan_to_num(codes))
            columns = np.arange(len(self.categorical))
            out[:, self.categorical] = self.levels[columns, index.astype(np.int64)]
        return out

    def _one(self, row: list[float]) -> np.ndarray:
        """`contributions` of one row, by the same arithmetic in the same order (so one lead
        and a batch give identical numbers)."""
        out = [0.0] * len(row)
        for j, knots, curve, missing in self._numeric_rows:
            x = row[j]
            if x != x:  # NaN: missing
                out[j] = missing
                continue
            x = min(max(x, knots[0]), knots[-1])
            segment = sum(1 for knot in knots[1:-1] if x > knot)
            left, right = knots[segment], knots[segment + 1]
            width = right - left
            t = (x - left) / width if width > 0 else 0.0
            low = curve[segment]
            out[j] = low + t * (curve[segment + 1] - low)
        for j, table, missing_level in self._categorical_rows:
            x = row[j]
            out[j] = table[missing_level if x != x else int(x)]
        return np.array(out, dtype=np.float64)

    @cached_property
    def _numeric_rows(self) -> list[tuple[int, list[float], list[float], float]]:
        return [(j, self.knot_table[k].tolist(), self.value_table[k].tolist(),
                 float(self.missing[k])) for k, j in enumerate(self.numeric.tolist())]

    @cached_property
    def _categorical_rows(self) -> list[tuple[int, list[float], int]]:
        return [(j, self.levels[k].tolist(), int(self.missing_level[k]))
                for k, j in enumerate(self.categorical.tolist())]

    def _curves(self, values: np.ndarray) -> np.ndarray:
        """`np.interp` of every numeric feature at once (a few array operations whatever the
        number of features: one lead's reasons stay cheap)."""
        knots, curve = self.knot_table, self.value_table
        x = np.clip(values, knots[:, 0], knots[:, -1])
        segment = (x[:, :, None] > knots[None, :, 1:-1]).sum(axis=2)
        features = np.arange(knots.shape[0])
        left, right = knots[features, segment], knots[features, segment + 1]
        width = right - left
        t = np.divide(x - left, width, out=np.zeros_like(x), where=width > 0)
        low = curve[features, segment]
        interpolated = low + t * (curve[features, segment + 1] - low)
        return np.where(np.isnan(values), self.missing, interpolated)

    def raw(self, matrix: np.ndarray) -> np.ndarray:
        return self.intercept + self.contributions(matrix).sum(axis=1)

    def to_dict(self) -> dict:
        features: list[dict] = [{"name": name} for name in self.names]
        for k, j in enumerate(self.numeric.tolist()):
            features[j] |= {"knots": self.knots[k].tolist(), "values": self.values[k].tolist(),
                            "missing": float(self.missing[k])}
        for k, j in enumerate(self.categorical.tolist()):
            size = int(self.missing_level[k])
            features[j] |= {"levels": self.levels[k, :size].tolist(),
                            "missing": float(self.levels[k, size])}
        return {"intercept": float(self.intercept), "features": features}

    @classmethod
    def from_dict(cls, data: Mapping, schema: FeatureSchema) -> LinearModel:
        """The model stored by `to_dict`, checked against the feature schema it was fitted on."""
        features = data["features"]
        if [f["name"] for f in features] != schema.names:
            raise ValueError("the linear model's features differ from the feature schema")
        numeric, curves, categorical, tables = [], [], [], []
        for j, (stored, spec) in enumerate(zip(features, schema.features, strict=True)):
            if "levels" in stored:
                if spec.kind != "categorical" or len(stored["levels"]) != spec.other_code + 1:
                    raise ValueError(f"linear model: the levels of {spec.name} do not match "
                                     "its vocabulary")
                categorical.append(j)
                tables.append([*stored["levels"], stored["missing"]])
            elif "knots" in stored:
                knots = stored["knots"]
                if (spec.kind == "categorical" or len(knots) != len(stored["values"])
                        or not knots or np.any(np.diff(knots) <= 0)):
                    raise ValueError(f"linear model: {spec.name} has no valid curve")
                numeric.append(j)
                curves.append((knots, stored["values"], stored["missing"]))
        return cls.build(schema.names, float(data["intercept"]), numeric, curves, categorical,
                         tables)

    @classmethod
    def build(cls, names: Sequence[str], intercept: float, numeric: Sequence[int],
              curves: Sequence[tuple[Sequence[float], Sequence[float], float]],
              categorical: Sequence[int], tables: Sequence[Sequence[float]]) -> LinearModel:
        """From per-feature parts: `curves` = (knots, values, missing) per numeric feature,
        `tables` = one effect per category code, then missing, per categorical one."""
        widest = max((len(t) for t in tables), default=1)
        levels = np.zeros((len(tables), widest), dtype=np.float64)
        for k, table in enumerate(tables):
            levels[k, :len(table)] = table
        knots = tuple(np.asarray(c[0], dtype=np.float64) for c in curves)
        values = tuple(np.asarray(c[1], dtype=np.float64) for c in curves)
        most = max((len(k) for k in knots), default=2)
        most = max(most, 2)
        return cls(
            names=tuple(names), intercept=intercept,
            numeric=np.asarray(numeric, dtype=np.int64), knots=knots, values=values,
            missing=np.asarray([c[2] for c in curves], dtype=np.float64),
            knot_table=_padded(knots, most), value_table=_padded(values, most),
            categorical=np.asarray(categorical, dtype=np.int64), levels=levels,
            missing_level=np.asarray([len(t) - 1 for t in tables], dtype=np.int64),
        )


def _padded(rows: Sequence[np.ndarray], width: int) -> np.ndarray:
    """Rows of different lengths as one array, each row's last value repeated (a repeated knot
    is a segment of zero width, which `_curves` never interpolates across)."""
    out = np.zeros((len(rows), width), dtype=np.float64)
    for k, row in enumerate(rows):
        out[k] = np.concatenate([row, np.repeat(row[-1], width - len(row))])
    return out


@dataclass(frozen=True, eq=False)
class Blend:
    """raw = gbm_weight × trees' raw output + (1 − gbm_weight) × the linear model's; the
    contributions (the reasons) blend the same way, feature by feature."""

    gbm_weight: float
    linear: LinearModel

    def raw(self, gbm_raw: np.ndarray, matrix: np.ndarray) -> np.ndarray:
        w = self.gbm_weight
        return w * np.asarray(gbm_raw, dtype=np.float64) + (1.0 - w) * self.linear.raw(matrix)

    def contributions(self, gbm_contributions: np.ndarray, matrix: np.ndarray) -> np.ndarray:
        """(rows, features + 1), like LightGBM's: the last column is the expected value."""
        return self.raw_and_contributions(None, gbm_contributions, matrix)[1]

    def raw_and_contributions(self, gbm_raw: np.ndarray | None, gbm_contributions: np.ndarray,
                              matrix: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
        """Both at once, from one pass over the linear terms (the same numbers as `raw` and
        `contributions`)."""
        w = self.gbm_weight
        line = self.linear.contributions(matrix)
        out = w * np.asarray(gbm_contributions, dtype=np.float64)
        out[:, :-1] += (1.0 - w) * line
        out[:, -1] += (1.0 - w) * self.linear.intercept
        if gbm_raw is None:
            return None, out
        line_raw = self.linear.intercept + line.sum(axis=1)
        return w * np.asarray(gbm_raw, dtype=np.float64) + (1.0 - w) * line_raw, out

    def to_dict(self) -> dict:
        return {"method": "gbm+linear", "gbm_weight": self.gbm_weight,
                "linear": self.linear.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping, schema: FeatureSchema) -> Blend:
        if data.get("method") != "gbm+linear":
            raise ValueError(f"unsupported blend method {data.get('method')!r}")
        weight = float(data["gbm_weight"])
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"blend weight {weight} is outside [0, 1]")
        return cls(weight, LinearModel.from_dict(data["linear"], schema))


# --------------------------------------------------------------------------- fitting


class _Design:
    """The regression's inputs for every training row: a dense block of standardised numbers
    and missing indicators, and one level index per categorical feature, so a million rows
    with large vocabularies stay small. Coefficients: the dense block's, the intercept, then
    every categorical level's."""

    def __init__(self, matrix: np.ndarray, schema: FeatureSchema) -> None:
        n = matrix.shape[0]
        self.schema = schema
        # Per numeric-like feature: (index, knots, [(column, basis knot or None, mean, sd)],
        # indicator (column, missing share, scale) or None).
        self.numeric: list[tuple] = []
        blocks: list[np.ndarray] = []
        for j, spec in enumerate(schema.features):
            if spec.kind == "categorical":
                continue
            x = matrix[:, j]
            absent = np.isnan(x)
            present = x[~absent]
            if not len(present):
                continue
            inner = _inner_knots(present)
            terms = []
            for knot in (None, *inner):  # the value itself, then one hinge per inner knot
                basis = present if knot is None else np.maximum(present - knot, 0.0)
                mean, sd = float(basis.mean()), float(basis.std())
                if sd > 0:
                    column = np.zeros(n)
                    column[~absent] = (basis - mean) / sd
                    terms.append((len(blocks), knot, mean, sd))
                    blocks.append(column)
            share = float(absent.mean())
            scale = float(np.sqrt(share * (1 - share)))
            indicator = None
            if scale > 0:
                indicator = (len(blocks), share, scale)
                blocks.append((absent - share) / scale)
            knots = np.unique(np.concatenate([[present.min()], inner, [present.max()]]))
            self.numeric.append((j, knots, terms, indicator))
        self.dense = np.column_stack(blocks) if blocks else np.zeros((n, 0))
        self.categorical: list[tuple[int, int, int]] = []  # (feature, first level, levels)
        self.width = self.dense.shape[1]
        codes, first = [], self.width + 1
        for j in schema.categorical_indices:
            size = schema.features[j].other_code + 2  # categories, other, missing
            column = matrix[:, j]
            codes.append(np.where(np.isnan(column), size - 1, np.nan_to_num(column))
                         .astype(np.int64) + first)
            self.categorical.append((j, first, size))
            first += size
        self.codes = np.column_stack(codes) if codes else np.zeros((n, 0), dtype=np.int64)
        self.coefficients = first

    def raw(self, beta: np.ndarray, rows: np.ndarray) -> np.ndarray:
        out = self.dense[rows] @ beta[:self.width] + beta[self.width]
        if self.codes.shape[1]:
            out += beta[self.codes[rows]].sum(axis=1)
        return out

    def fit(self, labels: np.ndarray, rows: np.ndarray, c: float,
            start: np.ndarray | None = None) -> np.ndarray:
        """Coefficients minimising mean log loss + ‖β‖² / (2 C n) (intercept unpenalised), by
        Newton's method with backtracking: a handful of exact steps where first-order methods
        crawl along the nearly flat directions of weakly regularised one-hot columns."""
        from scipy import sparse  # training only: serving never loads scipy

        n, width = len(rows), self.width
        y = labels[rows].astype(np.float64)
        dense = np.column_stack([self.dense[rows], np.ones(n)])  # with the intercept
        codes = self.codes[rows] - (width + 1)
        levels = self.coefficients - (width + 1)
        per_row = codes.shape[1]
        onehot = sparse.csr_matrix(
            (np.ones(n * per_row), codes.ravel(), np.arange(n + 1) * per_row),
            shape=(n, levels))
        penalty = np.full(self.coefficients, 1.0 / (c * n))
        penalty[width] = 0.0

        def objective(beta: np.ndarray) -> tuple[float, np.ndarray]:
            z = dense @ beta[:width + 1] + onehot @ beta[width + 1:]
            return float(np.mean(np.logaddexp(0.0, z) - y * z)
                         + 0.5 * beta @ (penalty * beta)), z

        beta = np.zeros(self.coefficients) if start is None else start.copy()
        loss, z = objective(beta)
        for _ in range(MAX_ITERATIONS):
            p = 0.5 * (1.0 + np.tanh(0.5 * z))  # the logistic function, without overflow
            residual, weight = (p - y) / n, p * (1.0 - p) / n
            gradient = np.concatenate([dense.T @ residual, onehot.T @ residual])
            gradient += penalty * beta
            weighted = dense * weight[:, None]
            cross = np.asarray(onehot.T @ weighted)
            hessian = np.block([
                [dense.T @ weighted, cross.T],
                [cross, (onehot.T @ onehot.multiply(weight[:, None])).toarray()],
            ]) + np.diag(penalty)
            step = np.linalg.solve(hessian + 1e-12 * np.eye(len(beta)), gradient)
            decrement = float(gradient @ step)
            if decrement < 1e-12:  # converged: the Newton decrement is negligible
                break
            scale = 1.0
            while scale > 1e-8:  # backtracking (Armijo): every step lowers the objective
                candidate, candidate_z = objective(beta - scale * step)
                if candidate <= loss - 1e-4 * scale * decrement:
                    break
                scale /= 2
            else:
                break
            beta, loss, z = beta - scale * step, candidate, candidate_z
        return beta

    def model(self, beta: np.ndarray) -> LinearModel:
        """The fitted coefficients as per-feature contributions, centred on all rows."""
        intercept = float(beta[self.width])
        numeric, curves = [], []
        for j, knots, terms, indicator in self.numeric:
            # Every standardised column is zero-mean over the rows, so these are centred.
            values = np.zeros(len(knots))
            for column, knot, mean, sd in terms:
                basis = knots if knot is None else np.maximum(knots - knot, 0.0)
                values += beta[column] * (basis - mean) / sd
            missing = 0.0
            if indicator is not None:
                column, share, scale = indicator
                values -= beta[column] * share / scale
                missing = beta[column] * (1.0 - share) / scale
            numeric.append(j)
            curves.append((knots.tolist(), values.tolist(), float(missing)))
        categorical, tables = [], []
        for j, first, size in self.categorical:
            effects = beta[first:first + size]
            counts = np.bincount(self.codes[:, len(tables)] - first, minlength=size)
            centre = float(effects @ counts) / len(self.codes)
            intercept += centre
            categorical.append(j)
            tables.append((effects - centre).tolist())
        return LinearModel.build(self.schema.names, intercept, numeric, curves, categorical,
                                 tables)


def _inner_knots(present: np.ndarray) -> np.ndarray:
    """Where the curve may bend: distinct inner quantiles of the training values."""
    if INNER_KNOTS == 0:
        return np.empty(0)
    quantiles = np.quantile(present, np.arange(1, INNER_KNOTS + 1) / (INNER_KNOTS + 1))
    return np.unique(quantiles[(quantiles > present.min()) & (quantiles < present.max())])


@dataclass(frozen=True)
class LinearFit:
    model: LinearModel  # fitted on every row with the chosen C
    c: float
    out_of_fold: np.ndarray  # raw outputs of the held-out rows, in `folds` order of rows
    cv_log_loss: dict[float, float]  # per C


def fit_linear(matrix: np.ndarray, labels: np.ndarray, schema: FeatureSchema,
               folds: Sequence[tuple[np.ndarray, np.ndarray]]) -> LinearFit:
    """Cross-validate C over `C_GRID` on `folds` ((train rows, held-out rows) pairs), keep the
    C with the lowest out-of-fold log loss (ties: the stronger regularisation), refit on all
    rows. Each fold walks the grid from strong to weak regularisation, warm-starting from the
    previous solution. `out_of_fold` holds the chosen C's outputs for the held-out rows,
    ordered by row index."""
    design = _Design(matrix, schema)
    held_out = np.sort(np.concatenate([valid for _, valid in folds]))
    position = np.empty(len(labels), dtype=np.int64)
    position[held_out] = np.arange(len(held_out))
    out_of_fold = np.zeros((len(C_GRID), len(held_out)))
    for train, valid in folds:
        beta = None
        for k, c in enumerate(C_GRID):
            beta = design.fit(labels, train, c, beta)
            out_of_fold[k, position[valid]] = design.raw(beta, valid)
    y = labels[held_out].astype(np.float64)
    losses = [float(np.mean(np.logaddexp(0.0, z) - y * z)) for z in out_of_fold]
    best = int(np.argmin(losses))
    everything = np.arange(len(labels))
    beta = None
    for c in C_GRID[:best + 1]:
        beta = design.fit(labels, everything, c, beta)
    return LinearFit(model=design.model(beta), c=C_GRID[best],
                     out_of_fold=out_of_fold[best],
                     cv_log_loss={c: round(loss, 6) for c, loss in zip(C_GRID, losses,
                                                                        strict=True)})
