"""Feature engineering: the one place where HubSpot property strings become model inputs.

Training (`leadscore.model.training`), `leadscore score`, the Lambdas and the sync API all go
through `Vectorizer`, so a model never sees a feature computed two ways.

Conventions, per kind of column in features.toml:

- numeric: a plain number ("23", "1,234", "4.5"); anything else is missing (NaN).
- categorical: compared case- and whitespace-insensitively. The vocabulary is learnt at
  training; values seen fewer than `MIN_CATEGORY_COUNT` times (or beyond the
  `MAX_CATEGORIES` most frequent) share one "other" code, and so does any value first
  seen at scoring time: the model's *unknown category*. Empty cells are missing. Codes
  are small integers, fed to LightGBM as native categorical features.
- boolean: true/false, yes/no, 1/0 in any case; anything else (or empty) is missing.
- datetime: ISO-8601 or epoch milliseconds (epoch seconds when below 1e11), turned into
  an age in days relative to a reference time `now` (never negative). Scoring uses the
  current UTC time unless told otherwise; training uses the latest timestamp in the
  export (recorded in the model metadata), so a model is a pure function of its data.
- email: 1.0 for a free-mail domain (gmail, yahoo, rediffmail...), 0.0 for a business
  domain, missing when there is no valid address. The address itself is never a feature.

Any column can also declare sentinel values that mean "missing" (`[missing]` in
features.toml, e.g. `pdays = ["999"]`): a cell equal to one (compared like categories, and
numerically for numeric columns, so "999.0" matches 999) is treated exactly like an empty
cell. Sentinels are part of the feature schema, so a model refuses a features.toml that
declares different ones.

How a feature's value reads to a sales rep (its reasons) is in `leadscore.model.reasons`.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import lru_cache

import numpy as np

from leadscore.model.config import (
    FeatureConfig,
    Kind,
    Properties,
    PropertyValue,
    cell_text,
    normalize_category,
)

MIN_CATEGORY_COUNT = 5
MAX_CATEGORIES = 200
SECONDS_PER_DAY = 86_400.0
_EPOCH_MS_THRESHOLD = 1e11  # below this a bare number is taken as epoch seconds
_LATEST_TIMESTAMP = 7_258_118_400.0  # 2200-01-01: anything later is a broken cell


# --------------------------------------------------------------------------- cell parsing

_TRUE = frozenset({"true", "yes", "1"})
_FALSE = frozenset({"false", "no", "0"})
_NAN = float("nan")


def parse_number(value: PropertyValue) -> float:
    text = cell_text(value)
    if not text:
        return _NAN
    try:
        number = float(text)
    except ValueError:
        try:
            number = float(text.replace(",", ""))
        except ValueError:
            return _NAN
    return number if math.isfinite(number) else _NAN


def parse_boolean(value: PropertyValue) -> float:
    text = cell_text(value).lower()
    if text in _TRUE:
        return 1.0
    if text in _FALSE:
        return 0.0
    return _NAN


def parse_timestamp(value: PropertyValue) -> float | None:
    """Epoch seconds from ISO-8601 (naive = UTC) or epoch ms; None when empty or unparsable."""
    text = cell_text(value)
    if not text:
        return None
    if len(text) >= 9 and text.replace(".", "", 1).isdigit():
        seconds = float(text)
        if seconds >= _EPOCH_MS_THRESHOLD:
            seconds /= 1000.0
    else:
        try:
            moment = datetime.fromisoformat(text)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            seconds = moment.timestamp()
        except (ValueError, OverflowError, OSError):
            return None
    return seconds if 0.0 <= seconds <= _LATEST_TIMESTAMP else None


FREE_MAIL_DOMAINS = frozenset(
    {
        "gmail.com", "googlemail.com", "yahoo.com", "yahoo.co.in", "yahoo.in", "ymail.com",
        "rocketmail.com", "outlook.com", "outlook.in", "hotmail.com", "live.com", "live.in",
        "msn.com", "aol.com", "icloud.com", "me.com", "mac.com", "protonmail.com", "proton.me",
        "pm.me", "gmx.com", "gmx.net", "gmx.de", "web.de", "mail.com", "email.com", "zoho.com",
        "zohomail.com", "zohomail.in", "yandex.com", "yandex.ru", "mail.ru", "rediffmail.com",
        "rediff.com", "indiatimes.com", "sify.com", "qq.com", "163.com", "126.com",
        "naver.com", "tutanota.com", "tuta.io", "fastmail.com", "hey.com", "inbox.com",
        "mailinator.com", "guerrillamail.com", "10minutemail.com", "tempmail.com",
    }
)
# Country variants of the big providers (yahoo.co.uk, hotmail.fr, outlook.de...).
_FREE_MAIL_PREFIXES = ("yahoo.", "hotmail.", "outlook.", "live.", "windowslive.", "gmx.", "yandex.")
_DOMAIN = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+$")


def email_domain(value: PropertyValue) -> str | None:
    text = cell_text(value).lower()
    local, at, domain = text.rpartition("@")
    if not at or not local or not _DOMAIN.match(domain):
        return None
    return domain


def is_free_mail(domain: str) -> bool:
    return domain in FREE_MAIL_DOMAINS or domain.startswith(_FREE_MAIL_PREFIXES)


def parse_email(value: PropertyValue) -> float:
    domain = email_domain(value)
    if domain is None:
        return _NAN
    return 1.0 if is_free_mail(domain) else 0.0


# --------------------------------------------------------------------------- schema


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """One model input. `vocabulary` (categorical only) lists the normalised values that
    get their own code (= index); every other non-empty value gets `other_code`.
    `missing` lists the normalised sentinel values that count as an empty cell."""

    name: str
    column: str
    kind: Kind
    vocabulary: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()

    @property
    def other_code(self) -> int:
        return len(self.vocabulary)

    def to_dict(self) -> dict:
        out: dict = {"name": self.name, "column": self.column, "kind": self.kind}
        if self.kind == "categorical":
            out["vocabulary"] = list(self.vocabulary)
        if self.missing:  # absent when unused, so older schemas keep their hash
            out["missing"] = list(self.missing)
        return out

    def is_missing(self, value: PropertyValue) -> bool:
        """True for an empty cell or a declared sentinel."""
        key = normalize_category(value)
        return key is None or _sentinel_test(self)(key)


@lru_cache(maxsize=256)
def _sentinel_test(spec: FeatureSpec) -> Callable[[str], bool]:
    """Tests a normalised, non-empty cell against the spec's sentinels (numerically too for
    numeric features, so "999.0" matches a declared "999")."""
    texts = frozenset(spec.missing)
    numbers = frozenset(
        n for n in (parse_number(t) for t in spec.missing) if not math.isnan(n)
    ) if spec.kind == "numeric" else frozenset()
    if not texts:
        return lambda _key: False
    if not numbers:
        return texts.__contains__
    return lambda key: key in texts or parse_number(key) in numbers


def _feature_name(column: str, kind: Kind) -> str:
    # LightGBM feature names must be plain identifiers.
    base = re.sub(r"[^0-9A-Za-z_]", "_", column)
    suffix = {"datetime": "_age_days", "email": "_free_mail"}.get(kind, "")
    return base + suffix


def layout(config: FeatureConfig) -> list[FeatureSpec]:
    """Every feature a config defines, in model order, before any vocabulary is learnt."""
    out: list[FeatureSpec] = []
    seen: set[str] = set()
    for column, kind in config.feature_columns:
        name = _feature_name(column, kind)
        while name in seen:  # two columns differing only in punctuation
            name += "_"
        seen.add(name)
        out.append(FeatureSpec(name=name, column=column, kind=kind,
                               missing=config.missing_values(column)))
    return out


@dataclass(frozen=True, slots=True)
class FeatureSchema:
    """Ordered model inputs plus learnt vocabularies; hashed into the model metadata."""

    features: tuple[FeatureSpec, ...]

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def categorical_indices(self) -> list[int]:
        return [i for i, f in enumerate(self.features) if f.kind == "categorical"]

    def to_dict(self) -> dict:
        return {"features": [f.to_dict() for f in self.features]}

    @classmethod
    def from_dict(cls, data: Mapping) -> FeatureSchema:
        return cls(
            tuple(
                FeatureSpec(
                    name=f["name"],
                    column=f["column"],
                    kind=f["kind"],
                    vocabulary=tuple(f.get("vocabulary", ())),
                    missing=tuple(f.get("missing", ())),
                )
                for f in data["features"]
            )
        )

    def sha256(self) -> str:
        return schema_hash(self.to_dict())

    def layout(self) -> list[FeatureSpec]:
        """The features without their learnt vocabularies: what a features.toml defines."""
        return [replace(f, vocabulary=()) for f in self.features]


def schema_hash(schema_dict: Mapping) -> str:
    canonical = json.dumps(schema_dict, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def learn_schema(
    config: FeatureConfig,
    rows: Sequence[Properties],
    *,
    min_count: int = MIN_CATEGORY_COUNT,
    max_categories: int = MAX_CATEGORIES,
) -> FeatureSchema:
    """The schema for `config` with categorical vocabularies learnt from `rows`: values seen
    at least `min_count` times, most frequent first (ties alphabetical), at most
    `max_categories` of them."""
    specs = []
    for spec in layout(config):
        if spec.kind == "categorical":
            counts: Counter[str] = Counter()
            for value, n in Counter(row.get(spec.column) for row in rows).items():
                if not spec.is_missing(value):
                    counts[normalize_category(value)] += n
            frequent = sorted(
                ((key, n) for key, n in counts.items() if n >= min_count),
                key=lambda item: (-item[1], item[0]),
            )
            spec = replace(spec, vocabulary=tuple(key for key, _ in frequent[:max_categories]))
        specs.append(spec)
    return FeatureSchema(tuple(specs))


def reference_time(config: FeatureConfig, rows: Iterable[Properties]) -> datetime | None:
    """The latest timestamp in the rows' datetime features: roughly when an export was
    taken, and the moment its datetime ages are measured from."""
    latest = None
    for row in rows:
        for column in config.features.datetime:
            seconds = parse_timestamp(row.get(column))
            if seconds is not None and (latest is None or seconds > latest):
                latest = seconds
    return datetime.fromtimestamp(latest, UTC) if latest is not None else None


# --------------------------------------------------------------------------- vectorizer


def to_epoch_seconds(now: datetime | float | None) -> float:
    if now is None:
        return datetime.now(UTC).timestamp()
    if isinstance(now, datetime):
        return (now if now.tzinfo else now.replace(tzinfo=UTC)).timestamp()
    return float(now)


def _categorical_parser(spec: FeatureSpec) -> Callable[[PropertyValue, float], float]:
    codes = {key: float(code) for code, key in enumerate(spec.vocabulary)}
    other = float(spec.other_code)

    def parse(value: PropertyValue, _now: float) -> float:
        key = normalize_category(value)
        if key is None:
            return _NAN
        return codes.get(key, other)

    return parse


def _age_days(value: PropertyValue, now: float) -> float:
    seconds = parse_timestamp(value)
    if seconds is None:
        return _NAN
    return max(0.0, (now - seconds) / SECONDS_PER_DAY)


# Parsed values of the most recent distinct strings, per feature (see `_memoized`).
MEMO_LIMIT = 4096


def _parser(spec: FeatureSpec) -> Callable[[PropertyValue, float], float]:
    parse = _kind_parser(spec)
    if spec.missing:
        parse = _unless_sentinel(spec, parse)
    # Numbers, categories and booleans repeat a lot and do not depend on `now`: remember
    # them. E-mail addresses are unique and datetimes depend on `now`: never.
    return _memoized(parse) if spec.kind in ("numeric", "categorical", "boolean") else parse


def _unless_sentinel(
    spec: FeatureSpec, parse: Callable[[PropertyValue, float], float]
) -> Callable[[PropertyValue, float], float]:
    sentinel = _sentinel_test(spec)

    def parse_unless_sentinel(value: PropertyValue, now: float) -> float:
        key = normalize_category(value)
        if key is None or sentinel(key):
            return _NAN
        return parse(value, now)

    return parse_unless_sentinel


def _memoized(
    parse: Callable[[PropertyValue, float], float]
) -> Callable[[PropertyValue, float], float]:
    """`parse` with the results for up to `MEMO_LIMIT` distinct strings kept (first come;
    for a value that ignores `now`). Same numbers, fewer string operations."""
    memo: dict[str, float] = {}

    def parse_remembered(value: PropertyValue, now: float) -> float:
        if type(value) is not str:
            return parse(value, now)
        known = memo.get(value)
        if known is not None:
            return known
        result = parse(value, now)
        if len(memo) < MEMO_LIMIT:
            memo[value] = result
        return result

    return parse_remembered


def _kind_parser(spec: FeatureSpec) -> Callable[[PropertyValue, float], float]:
    if spec.kind == "numeric":
        return lambda value, _now: parse_number(value)
    if spec.kind == "categorical":
        return _categorical_parser(spec)
    if spec.kind == "boolean":
        return lambda value, _now: parse_boolean(value)
    if spec.kind == "datetime":
        return _age_days
    if spec.kind == "email":
        return lambda value, _now: parse_email(value)
    raise ValueError(f"unknown feature kind {spec.kind!r}")


class Vectorizer:
    """Turns HubSpot property dicts into float64 rows in schema order (NaN = missing).

    `now` (datetime, epoch seconds or None for the current UTC time) is the reference for
    datetime ages; `transform` also takes one reference per row (point-in-time features: each
    stored lead aged from its own scoring time). `transform` is `transform_one` applied row by
    row, so both give the same numbers for the same input.
    """

    def __init__(self, schema: FeatureSchema) -> None:
        self.schema = schema
        self._steps = [(spec.column, _parser(spec)) for spec in schema.features]

    @property
    def width(self) -> int:
        return len(self._steps)

    def _values(self, properties: Properties, now: float) -> list[float]:
        get = properties.get
        return [parse(get(column), now) for column, parse in self._steps]

    def transform_one(self, properties: Properties, now: datetime | float | None = None):
        return np.array(self._values(properties, to_epoch_seconds(now)), dtype=np.float64)

    def transform(self, rows: Iterable[Properties],
                  now: datetime | float | Sequence[datetime | float] | None = None):
        rows = list(rows)
        if isinstance(now, Sequence | np.ndarray):
            if len(now) != len(rows):
                raise ValueError(f"{len(now)} reference times for {len(rows)} rows")
            times = [to_epoch_seconds(at) for at in now]
        else:
            times = [to_epoch_seconds(now)] * len(rows)
        values = [self._values(row, at) for row, at in zip(rows, times, strict=True)]
        if not values:
            return np.empty((0, self.width), dtype=np.float64)
        return np.array(values, dtype=np.float64)
