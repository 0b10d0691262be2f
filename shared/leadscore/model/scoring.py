"""Scoring with a trained model directory (`load`): what the Lambdas, the sync API and
`leadscore score` call.

A model directory holds `model.txt` (LightGBM), `metadata.json` (version, feature schema and
its hash, calibration, score scale, tiers, metrics, data fingerprint and, from format 2, the
`blend`: the trees' weight and the linear half, `leadscore.model.linear`) and the
`features.toml` it was trained with. Format 1 directories (trees only) still load.

What the numbers mean:

- raw output: w × the trees' log-odds + (1 − w) × the linear model's (w = 1 in format 1).
- `probability`: the calibrated conversion probability (Platt scaling of the raw output,
  fitted on out-of-fold predictions of the training leads).
- `score` (0-100): the lead's percentile among the training leads' out-of-fold raw outputs:
  80 means "ranks above 80 % of historical leads". It does not drift with the base
  rate, so tiers stay meaningful whether 2 % or 40 % of leads convert.
- `tier`: `hot` / `warm` / `cold` at or above those thresholds, `disqualified` below `cold`.
  Defaults come from the data (top 10 % hot, next 20 % warm, next 50 % cold, bottom 20 %
  disqualified); `[tiers]` in the model's features.toml or `load(tiers=...)` override them.
- `reasons`: the feature contributions for this lead (the trees' SHAP values and the linear
  model's exact terms, blended with the same weight, in log-odds) that explain its score's
  direction, strongest first, worded for a rep: "Visited 23 times (+)", "Free-mail address
  (−)" (chosen and worded by `leadscore.model.reasons`).

Prediction calls LightGBM's C library directly (ctypes) instead of the Python package: the
single-row fast path skips the package's per-call overhead (a lead's raw score takes ~10 µs,
its SHAP contributions for the reasons most of the rest of a ~0.6 ms `score()`), and the
Lambda never imports scipy, scikit-learn or pandas (the lightgbm package imports them eagerly
when present).
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from leadscore.model.config import FeatureConfig, Properties, load_config
from leadscore.model.features import (
    FeatureSchema,
    FeatureSpec,
    Vectorizer,
    layout,
    schema_hash,
)
from leadscore.model.linear import Blend
from leadscore.model.reasons import choose_reasons, missing_value_signals, worded_reasons

MODEL_FILE = "model.txt"
METADATA_FILE = "metadata.json"
CONFIG_FILE = "features.toml"
# What training writes; format 1 (trees only, no `blend`) still loads. Code that knows only
# format 1 refuses format 2 instead of scoring without the linear half.
METADATA_FORMAT = 2
READABLE_FORMATS = (1, 2)


class ScoreResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    score: int = Field(ge=0, le=100)
    probability: float = Field(ge=0.0, le=1.0)
    tier: str
    reasons: list[str]


class Tiers(BaseModel):
    """Minimum score of each tier; below `cold` is `disqualified`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    hot: int = Field(ge=0, le=100)
    warm: int = Field(ge=0, le=100)
    cold: int = Field(ge=0, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> Tiers:
        if not self.cold <= self.warm <= self.hot:
            raise ValueError(
                f"tiers must satisfy cold <= warm <= hot, got hot={self.hot} "
                f"warm={self.warm} cold={self.cold}"
            )
        return self

    def tier_for(self, score: int) -> str:
        if score >= self.hot:
            return "hot"
        if score >= self.warm:
            return "warm"
        if score >= self.cold:
            return "cold"
        return "disqualified"


def merge_tiers(base: Tiers, override: Mapping[str, int | None] | BaseModel | None) -> Tiers:
    """`base` with the thresholds `override` sets (None/absent ones kept)."""
    if override is None:
        return base
    values = override.model_dump() if isinstance(override, BaseModel) else dict(override)
    merged = base.model_dump() | {k: v for k, v in values.items() if v is not None}
    return Tiers.model_validate(merged)


class PlattCalibration:
    """probability = 1 / (1 + exp(-(a * raw + b))); a >= 0 keeps it monotonic."""

    def __init__(self, a: float, b: float) -> None:
        self.a, self.b = float(a), float(b)

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        z = np.clip(self.a * np.asarray(raw, dtype=np.float64) + self.b, -35.0, 35.0)
        return 1.0 / (1.0 + np.exp(-z))

    def to_dict(self) -> dict:
        return {"method": "platt", "a": self.a, "b": self.b}

    @classmethod
    def from_dict(cls, data: Mapping) -> PlattCalibration:
        if data.get("method") != "platt":
            raise ValueError(f"unsupported calibration method {data.get('method')!r}")
        return cls(data["a"], data["b"])


class PercentileScale:
    """Raw model output → percentile (0-100) of the validation population, by linear
    interpolation between knots (raw value, mid-rank percentile)."""

    def __init__(self, raw: list[float], percentile: list[float]) -> None:
        if len(raw) < 2 or len(raw) != len(percentile):
            raise ValueError("score scale needs at least two (raw, percentile) knots")
        self.raw = np.asarray(raw, dtype=np.float64)
        self.percentile = np.asarray(percentile, dtype=np.float64)

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        """Integer scores 0-100 (half rounds up)."""
        pct = np.interp(np.asarray(raw, dtype=np.float64), self.raw, self.percentile, 0.0, 100.0)
        return np.clip(np.floor(pct + 0.5), 0, 100).astype(np.int64)

    def to_dict(self) -> dict:
        return {"raw": self.raw.tolist(), "percentile": self.percentile.tolist()}

    @classmethod
    def from_dict(cls, data: Mapping) -> PercentileScale:
        return cls(list(data["raw"]), list(data["percentile"]))


# --------------------------------------------------------------------------- LightGBM via ctypes

_C_API_DTYPE_FLOAT64 = 1
_C_API_PREDICT_RAW_SCORE = 1
_C_API_PREDICT_CONTRIB = 3
_PREDICT_PARAMETERS = b"num_threads=1"
_LIB: ctypes.CDLL | None = None
_LIB_LOCK = threading.Lock()


def _library() -> ctypes.CDLL:
    """lib_lightgbm from the installed lightgbm package, located without importing it."""
    global _LIB
    with _LIB_LOCK:
        if _LIB is not None:
            return _LIB
        spec = importlib.util.find_spec("lightgbm")
        bases = list(spec.submodule_search_locations or []) if spec else []
        names = ("lib_lightgbm.so", "lib_lightgbm.dylib", "lib_lightgbm.dll")
        candidates = [Path(b) / d / n for b in bases for d in ("lib", "bin", ".") for n in names]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise ImportError("lightgbm is not installed: lib_lightgbm not found")
        lib = ctypes.CDLL(str(found))
        vp, i32, i64p = ctypes.c_void_p, ctypes.c_int32, ctypes.POINTER(ctypes.c_int64)
        c_int = ctypes.c_int
        lib.LGBM_GetLastError.restype = ctypes.c_char_p
        lib.LGBM_BoosterLoadModelFromString.argtypes = [
            ctypes.c_char_p, ctypes.POINTER(c_int), ctypes.POINTER(vp)]
        lib.LGBM_BoosterGetNumFeature.argtypes = [vp, ctypes.POINTER(c_int)]
        lib.LGBM_BoosterPredictForMatSingleRowFastInit.argtypes = [
            vp, c_int, c_int, c_int, c_int, i32, ctypes.c_char_p, ctypes.POINTER(vp)]
        lib.LGBM_BoosterPredictForMatSingleRowFast.argtypes = [vp, vp, i64p, vp]
        lib.LGBM_BoosterPredictForMat.argtypes = [
            vp, vp, c_int, i32, i32, c_int, c_int, c_int, c_int, ctypes.c_char_p, i64p, vp]
        lib.LGBM_FastConfigFree.argtypes = [vp]
        lib.LGBM_BoosterFree.argtypes = [vp]
        _LIB = lib
        return lib


def _check(lib: ctypes.CDLL, status: int) -> None:
    if status != 0:
        raise RuntimeError(f"LightGBM: {lib.LGBM_GetLastError().decode(errors='replace')}")


class NativeBooster:
    """A LightGBM booster behind its C API: raw scores and SHAP contributions, one row
    (preinitialised fast path) or many. Thread-safe; the single-row buffers are shared."""

    def __init__(self, model_text: str, width: int) -> None:
        self._lib = lib = _library()
        self.width = width
        self._handle = ctypes.c_void_p()
        self._fast: dict[int, ctypes.c_void_p] = {}
        iterations = ctypes.c_int(0)
        _check(lib, lib.LGBM_BoosterLoadModelFromString(
            model_text.encode("utf-8"), ctypes.byref(iterations), ctypes.byref(self._handle)))
        n_features = ctypes.c_int(0)
        _check(lib, lib.LGBM_BoosterGetNumFeature(self._handle, ctypes.byref(n_features)))
        if n_features.value != width:
            raise ValueError(f"model.txt has {n_features.value} features, schema has {width}")
        for predict_type in (_C_API_PREDICT_RAW_SCORE, _C_API_PREDICT_CONTRIB):
            config = ctypes.c_void_p()
            _check(lib, lib.LGBM_BoosterPredictForMatSingleRowFastInit(
                self._handle, predict_type, 0, -1, _C_API_DTYPE_FLOAT64, width,
                _PREDICT_PARAMETERS, ctypes.byref(config)))
            self._fast[predict_type] = config
        self._out_len = ctypes.c_int64(0)
        self._raw_out = np.zeros(1, dtype=np.float64)
        self._contrib_out = np.zeros(width + 1, dtype=np.float64)
        self._lock = threading.Lock()

    def _one(self, predict_type: int, row: np.ndarray, out: np.ndarray) -> np.ndarray:
        row = np.ascontiguousarray(row, dtype=np.float64)
        if row.shape != (self.width,):
            raise ValueError(f"expected {self.width} features, got shape {row.shape}")
        with self._lock:
            _check(self._lib, self._lib.LGBM_BoosterPredictForMatSingleRowFast(
                self._fast[predict_type], row.ctypes.data, ctypes.byref(self._out_len),
                out.ctypes.data))
            return out.copy()

    def raw_one(self, row: np.ndarray) -> float:
        return float(self._one(_C_API_PREDICT_RAW_SCORE, row, self._raw_out)[0])

    def contrib_one(self, row: np.ndarray) -> np.ndarray:
        """Per-feature contributions, the last element being the expected value."""
        return self._one(_C_API_PREDICT_CONTRIB, row, self._contrib_out)

    def _many(self, predict_type: int, matrix: np.ndarray, per_row: int) -> np.ndarray:
        matrix = np.ascontiguousarray(matrix, dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[1] != self.width:
            raise ValueError(f"expected (n, {self.width}) features, got shape {matrix.shape}")
        out = np.zeros(matrix.shape[0] * per_row, dtype=np.float64)
        if matrix.shape[0] == 0:
            return out.reshape(0, per_row)
        out_len = ctypes.c_int64(0)
        _check(self._lib, self._lib.LGBM_BoosterPredictForMat(
            self._handle, matrix.ctypes.data, _C_API_DTYPE_FLOAT64, matrix.shape[0],
            matrix.shape[1], 1, predict_type, 0, -1, _PREDICT_PARAMETERS,
            ctypes.byref(out_len), out.ctypes.data))
        return out.reshape(matrix.shape[0], per_row)

    def raw_many(self, matrix: np.ndarray) -> np.ndarray:
        return self._many(_C_API_PREDICT_RAW_SCORE, matrix, 1)[:, 0]

    def contrib_many(self, matrix: np.ndarray) -> np.ndarray:
        return self._many(_C_API_PREDICT_CONTRIB, matrix, self.width + 1)

    def __del__(self) -> None:
        lib = getattr(self, "_lib", None)
        if lib is None:
            return
        for config in getattr(self, "_fast", {}).values():
            lib.LGBM_FastConfigFree(config)
        if getattr(self, "_handle", None):
            lib.LGBM_BoosterFree(self._handle)


# --------------------------------------------------------------------------- the model


class LeadModel:
    """A loaded model directory. Build with `load(path)`."""

    def __init__(
        self,
        *,
        config: FeatureConfig,
        schema: FeatureSchema,
        booster: NativeBooster,
        metadata: dict,
        tiers: Tiers,
        blend: Blend | None = None,
    ) -> None:
        self.config = config
        self.schema = schema
        self.metadata = metadata
        self.version: str = metadata["version"]
        self.tiers = tiers
        self.properties: list[str] = config.properties
        self._booster = booster
        self._blend = blend  # None: the trees alone (format 1)
        self._vectorizer = Vectorizer(schema)
        self._calibration = PlattCalibration.from_dict(metadata["calibration"])
        self._scale = PercentileScale.from_dict(metadata["score_scale"])
        self._missing_signals = missing_value_signals(
            metadata.get("missing_values"), schema, config.reasons.missing_min_z)

    def vectorize(self, properties: Properties, *, now: datetime | float | None = None):
        """The model's input row for one contact (NaN = missing)."""
        return self._vectorizer.transform_one(properties, now)

    def score(
        self, properties: Properties, *, now: datetime | float | None = None
    ) -> ScoreResult:
        """Score one contact (HubSpot property strings; absent or None = missing). `now` is
        the reference for datetime ages, the current UTC time by default."""
        matrix = self._vectorizer.transform_one(properties, now)[np.newaxis, :]
        raw = np.array([self._booster.raw_one(matrix[0])])
        contributions = self._booster.contrib_one(matrix[0])[np.newaxis]
        if self._blend is not None:
            raw, contributions = self._blend.raw_and_contributions(raw, contributions, matrix)
        return self._results(raw, matrix, [properties], contributions)[0]

    def score_many(
        self,
        rows: Iterable[Properties],
        with_reasons: bool = True,
        *,
        now: datetime | float | Sequence[datetime | float] | None = None,
    ) -> list[ScoreResult]:
        """Score many contacts at once (same numbers as `score`, one LightGBM call). `now` may
        be one reference time per row (a stored lead scored as of its own scoring time)."""
        rows = list(rows)
        matrix = self._vectorizer.transform(rows, now)
        raw = self.raw_many(matrix)
        contributions = self.contributions_many(matrix) if with_reasons else None
        return self._results(raw, matrix, rows, contributions)

    def predict(
        self, rows: Iterable[Properties], *,
        now: datetime | float | Sequence[datetime | float] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(calibrated probabilities, unrounded; 0-100 scores) of many contacts, without
        tiers or reasons: what backtests and benchmarks rank by."""
        raw = self.raw_many(self._vectorizer.transform(rows, now))
        return self._calibration(raw), self._scale(raw)

    def raw_many(self, matrix: np.ndarray) -> np.ndarray:
        """The raw output (log-odds, before calibration) of vectorised rows."""
        raw = self._booster.raw_many(matrix)
        return raw if self._blend is None else self._blend.raw(raw, matrix)

    def contributions_many(self, matrix: np.ndarray) -> np.ndarray:
        """Per-feature contributions to `raw_many` (log-odds), the expected value last."""
        contributions = self._booster.contrib_many(matrix)
        if self._blend is None:
            return contributions
        return self._blend.contributions(contributions, matrix)

    def _results(
        self,
        raw: np.ndarray,
        matrix: np.ndarray,
        rows: list[Properties],
        contributions: np.ndarray | None,
    ) -> list[ScoreResult]:
        probabilities = np.round(self._calibration(raw), 4).tolist()
        scores = self._scale(raw).tolist()
        tier_for = self.tiers.tier_for
        out = []
        for i, (score, probability) in enumerate(zip(scores, probabilities, strict=True)):
            reasons = (
                self._reasons(contributions[i], matrix[i], rows[i], score)
                if contributions is not None
                else []
            )
            out.append(ScoreResult.model_construct(
                score=score, probability=probability, tier=tier_for(score), reasons=reasons))
        return out

    def _reasons(
        self, contributions: np.ndarray, row: np.ndarray, properties: Properties, score: int
    ) -> list[str]:
        effects = contributions[:-1]  # the last one is the expected value, not a feature
        chosen = choose_reasons(effects, np.isnan(row), score, self.config.reasons,
                                self._missing_signals)
        return worded_reasons(chosen, effects, row, properties, self.schema)


def _feature_names(model_text: str) -> list[str]:
    for line in model_text.splitlines():
        if line.startswith("feature_names="):
            return line.split("=", 1)[1].split()
    raise ValueError("model.txt has no feature_names line")


def _spec_text(spec: FeatureSpec) -> str:
    text = f"{spec.column}:{spec.kind}"
    return text + (f" missing={list(spec.missing)}" if spec.missing else "")


def load(path: Path | str, *, tiers: Tiers | Mapping[str, int | None] | None = None) -> LeadModel:
    """Load a model directory, refusing one whose parts do not belong together (feature
    schema vs its hash, vs the directory's features.toml, vs model.txt).

    Tier thresholds: `tiers` if given, else `[tiers]` in the directory's features.toml,
    else those stored at training; partial overrides keep the other thresholds.
    """
    directory = Path(path)
    for name in (MODEL_FILE, METADATA_FILE, CONFIG_FILE):
        if not (directory / name).is_file():
            raise FileNotFoundError(f"{directory} is not a model directory: {name} is missing")
    metadata = json.loads((directory / METADATA_FILE).read_text(encoding="utf-8"))
    if metadata.get("format") not in READABLE_FORMATS:
        raise ValueError(f"{directory}: unsupported metadata format {metadata.get('format')!r}")
    config = load_config(directory / CONFIG_FILE)

    actual_hash = schema_hash(metadata["schema"])
    if actual_hash != metadata["schema_hash"]:
        raise ValueError(
            f"{directory}: feature schema hash mismatch (metadata says "
            f"{metadata['schema_hash'][:12]}, the schema hashes to {actual_hash[:12]})"
        )
    schema = FeatureSchema.from_dict(metadata["schema"])
    expected = layout(config)
    if schema.layout() != expected:
        trained = [_spec_text(spec) for spec in schema.layout()]
        configured = [_spec_text(spec) for spec in expected]
        raise ValueError(
            f"{directory}: the model's feature schema (hash {actual_hash[:12]}) does not match "
            f"its features.toml — trained on {trained}, configured {configured}; retrain or "
            "restore the features.toml it was trained with"
        )

    model_bytes = (directory / MODEL_FILE).read_bytes()
    if hashlib.sha256(model_bytes).hexdigest() != metadata["model_sha256"]:
        raise ValueError(f"{directory}: {MODEL_FILE} does not match metadata.json (sha256)")
    model_text = model_bytes.decode("utf-8")
    if _feature_names(model_text) != schema.names:
        raise ValueError(f"{directory}: {MODEL_FILE} feature names differ from the schema")

    resolved = merge_tiers(Tiers.model_validate(metadata["tiers"]["thresholds"]), config.tiers)
    resolved = merge_tiers(resolved, tiers)
    blend = None
    if metadata["format"] >= 2:
        try:
            blend = Blend.from_dict(metadata["blend"], schema)
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{directory}: metadata.json has no valid blend: {error}") from error
    booster = NativeBooster(model_text, len(schema.features))
    return LeadModel(
        config=config, schema=schema, booster=booster, metadata=metadata, tiers=resolved,
        blend=blend,
    )
