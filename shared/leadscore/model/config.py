"""features.toml: which columns (HubSpot internal property names) feed the model, which one is the
label, the tiers and the sentinels that mean "missing" — and the labelled rows training and
backtests run on (`LabelledData`).

features.toml keys: `id` (optional: the column identifying a row, e.g. `hs_object_id`;
without it, rows are identified by their 1-based row number in the CSV), `[label]`,
`[features]`, `[tiers]` (optional), `[missing]` (optional), `[reasons]` (optional: how the
reasons behind a score are chosen, `ReasonConfig`) and `[outcome]` (optional: extra signals the
learning loop reads a scored lead's outcome from, `leadscore.learning.outcomes`). Kinds of
feature columns and how their cells are read: `leadscore.model.features`.

No numpy here.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Kind = Literal["numeric", "categorical", "boolean", "datetime", "email"]
PropertyValue = str | int | float | bool | None
Properties = Mapping[str, PropertyValue]


def cell_text(value: PropertyValue) -> str:
    """A cell as trimmed text ("" when empty); booleans as "true"/"false"."""
    if value is None:
        return ""
    if type(value) is str:
        return value.strip()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip()


def normalize_category(value: PropertyValue) -> str | None:
    """The vocabulary key of a categorical cell: trimmed, inner whitespace collapsed,
    case-folded; None when empty."""
    text = cell_text(value)
    if not text:
        return None
    return " ".join(text.split()).casefold()


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LabelConfig(_Strict):
    column: str = Field(min_length=1)
    positive: list[str] = Field(min_length=1)


class FeatureColumns(_Strict):
    numeric: list[str] = []
    categorical: list[str] = []
    boolean: list[str] = []
    datetime: list[str] = []
    email: str | None = None


class TierConfig(_Strict):
    """`[tiers]` in features.toml: minimum 0-100 score of each tier (any may be omitted)."""

    hot: int | None = Field(default=None, ge=0, le=100)
    warm: int | None = Field(default=None, ge=0, le=100)
    cold: int | None = Field(default=None, ge=0, le=100)


class ReasonConfig(_Strict):
    """`[reasons]` in features.toml: how `ai_lead_reasons` is chosen (`leadscore.model.reasons`).

    A lead scoring below `typical_score` lists what speaks against it first, any other lead
    what speaks for it. 50 is the median past lead, and it is where the model's contributions
    change sign: they are measured from the model's average output (log-odds), which on the
    default model's validation-sized synthetic set agrees with "score below 50" for 98.6 % of
    leads and with "probability below the base rate" for only 87.5 %.
    """

    typical_score: int = Field(default=50, ge=1, le=100)
    min_effect: float = Field(default=0.1, ge=0.0)  # log-odds; smaller contributions are noise
    max_leading: int = Field(default=3, ge=1, le=10)  # reasons in the score's direction
    max_opposing: int = Field(default=2, ge=0, le=10)  # then the strongest the other way
    # A missing value is a reason only if, in training, leads without the value converted at a
    # rate this many standard errors away from leads with it (two-proportion z-test).
    missing_min_z: float = Field(default=3.0, gt=0.0)


class OutcomeConfig(_Strict):
    """`[outcome]` in features.toml: property values that settle a scored lead's outcome besides
    `[label]` (e.g. `positive = { hs_lead_status = ["OPEN_DEAL"] }`, `negative = {
    hs_lead_status = ["UNQUALIFIED"] }`). Compared case-insensitively, like the label."""

    positive: dict[str, list[str]] = {}
    negative: dict[str, list[str]] = {}

    @property
    def columns(self) -> list[str]:
        return list(dict.fromkeys([*self.positive, *self.negative]))


class FeatureConfig(_Strict):
    """features.toml: which CSV columns (HubSpot internal property names) feed the model.

    `id` is optional: without it a row is identified by its 1-based row number.
    `missing` maps a feature column to the cell values that mean "missing" there.
    """

    id: str | None = Field(default=None, min_length=1)
    label: LabelConfig
    features: FeatureColumns
    tiers: TierConfig | None = None
    missing: dict[str, list[str | int | float]] = {}
    reasons: ReasonConfig = ReasonConfig()
    outcome: OutcomeConfig = OutcomeConfig()

    @model_validator(mode="after")
    def _columns_are_distinct(self) -> FeatureConfig:
        columns = [column for column, _ in self.feature_columns]
        if not columns:
            raise ValueError("[features] names no column")
        repeated = sorted({c for c in columns if columns.count(c) > 1})
        if repeated:
            raise ValueError(f"column(s) listed more than once in [features]: {repeated}")
        for role, column in (("id", self.id), ("label.column", self.label.column)):
            if column in columns:
                raise ValueError(f"{role} column {column!r} must not also be a feature")
        strays = sorted(set(self.missing) - set(columns))
        if strays:
            raise ValueError(f"[missing] names column(s) that are not features: {strays}")
        # An outcome signal that is also an input would leak the label into the features.
        leaking = sorted(set(self.outcome.columns) & set(columns))
        if leaking:
            raise ValueError(f"[outcome] column(s) must not also be features: {leaking}")
        return self

    @property
    def feature_columns(self) -> list[tuple[str, Kind]]:
        """(column, kind) in the fixed feature order: numeric, categorical, boolean, datetime,
        email."""
        f = self.features
        pairs: list[tuple[str, Kind]] = [(c, "numeric") for c in f.numeric]
        pairs += [(c, "categorical") for c in f.categorical]
        pairs += [(c, "boolean") for c in f.boolean]
        pairs += [(c, "datetime") for c in f.datetime]
        if f.email:
            pairs.append((f.email, "email"))
        return pairs

    @property
    def properties(self) -> list[str]:
        """HubSpot properties needed to score a contact: the id (if any) and every feature
        column."""
        return [*([self.id] if self.id else []), *(column for column, _ in self.feature_columns)]

    def missing_values(self, column: str) -> tuple[str, ...]:
        """The sentinels `[missing]` declares for `column`, normalised like categories."""
        keys = (normalize_category(cell_text(v)) for v in self.missing.get(column, ()))
        return tuple(sorted({key for key in keys if key is not None}))

    def is_positive(self, value: str | None) -> bool:
        wanted = {p.strip().casefold() for p in self.label.positive}
        return (value or "").strip().casefold() in wanted


def parse_config(text: str, source: str = "features.toml") -> FeatureConfig:
    try:
        return FeatureConfig.model_validate(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{source}: not valid TOML: {exc}") from None
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ValueError(f"{source}: {problems}") from None


def load_config(path: Path) -> FeatureConfig:
    path = Path(path)
    return parse_config(path.read_text(encoding="utf-8"), source=str(path))


@dataclass(frozen=True)
class LabelledData:
    """Rows of HubSpot properties with their label column, and where they came from: what
    training and backtests run on. A CSV export (`leadscore.cli.csv_files`) or, in Lambda,
    rows built from stored snapshots."""

    rows: Sequence[Mapping[str, str | None]]
    name: str  # shown, and recorded in the model metadata or report (a CSV: its file name)
    sha256: str  # fingerprint of the source, recorded likewise
    columns: Sequence[str] = ()  # every column the source has; () = the rows' keys

    def all_columns(self) -> list[str]:
        if self.columns:
            return list(self.columns)
        return list(dict.fromkeys(key for row in self.rows for key in row))
