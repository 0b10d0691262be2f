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

features.toml keys: `id` (optional: the column identifying a row, e.g. `hs_object_id`;
without it, rows are identified by their 1-based row number in the CSV), `[label]`,
`[features]`, `[tiers]` (optional) and `[missing]` (optional).

This module also renders a feature's value as words a sales rep understands
(`describe`), which the model uses for its reasons.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
import tomllib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Kind = Literal["numeric", "categorical", "boolean", "datetime", "email"]
PropertyValue = str | int | float | bool | None
Properties = Mapping[str, PropertyValue]

MIN_CATEGORY_COUNT = 5
MAX_CATEGORIES = 200
SECONDS_PER_DAY = 86_400.0
_EPOCH_MS_THRESHOLD = 1e11  # below this a bare number is taken as epoch seconds
_LATEST_TIMESTAMP = 7_258_118_400.0  # 2200-01-01: anything later is a broken cell


# --------------------------------------------------------------------------- config


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
        keys = (normalize_category(_text(v)) for v in self.missing.get(column, ()))
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


# --------------------------------------------------------------------------- CSV


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of a CSV export (UTF-8, an Excel BOM tolerated)."""
    with Path(path).open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = [name.strip() for name in next(reader, [])]
        rows = [dict(zip(header, record, strict=False)) for record in reader if any(record)]
    return header, rows


def require_columns(header: Sequence[str], columns: Iterable[tuple[str, str]], source: str) -> None:
    """Fail with the first configured column missing from a CSV header, naming it."""
    present = set(header)
    for column, role in columns:
        if column not in present:
            raise ValueError(
                f"column {column!r} ({role} in features.toml) is not in the header of {source}; "
                f"the header has: {', '.join(header) or '(nothing)'}"
            )


def config_columns(config: FeatureConfig, *, with_label: bool) -> list[tuple[str, str]]:
    """(column, role) pairs for `require_columns`."""
    pairs = [(config.id, "id")] if config.id else []
    if with_label:
        pairs.append((config.label.column, "label.column"))
    pairs += [(c, f"features.{kind}") for c, kind in config.feature_columns]
    return pairs


# --------------------------------------------------------------------------- cell parsing

_TRUE = frozenset({"true", "yes", "1"})
_FALSE = frozenset({"false", "no", "0"})
_NAN = float("nan")


def _text(value: PropertyValue) -> str:
    if value is None:
        return ""
    if type(value) is str:
        return value.strip()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip()


def parse_number(value: PropertyValue) -> float:
    text = _text(value)
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
    text = _text(value).lower()
    if text in _TRUE:
        return 1.0
    if text in _FALSE:
        return 0.0
    return _NAN


def parse_timestamp(value: PropertyValue) -> float | None:
    """Epoch seconds from ISO-8601 (naive = UTC) or epoch ms; None when empty or unparsable."""
    text = _text(value)
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


def normalize_category(value: PropertyValue) -> str | None:
    """The vocabulary key of a categorical cell: trimmed, inner whitespace collapsed,
    case-folded; None when empty."""
    text = _text(value)
    if not text:
        return None
    return " ".join(text.split()).casefold()


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
    text = _text(value).lower()
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
    datetime ages. `transform` is `transform_one` applied row by row, so both give the
    same numbers for the same input.
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

    def transform(self, rows: Iterable[Properties], now: datetime | float | None = None):
        at = to_epoch_seconds(now)
        values = [self._values(row, at) for row in rows]
        if not values:
            return np.empty((0, self.width), dtype=np.float64)
        return np.array(values, dtype=np.float64)


# --------------------------------------------------------------------------- words

# A label for HubSpot's standard contact properties; other columns get a humanised name.
PROPERTY_LABELS = {
    "jobtitle": "Job title",
    "numemployees": "Company size",
    "annualrevenue": "Annual revenue",
    "hs_analytics_source": "Source",
    "hs_analytics_source_data_1": "Source detail",
    "hs_latest_source": "Latest source",
    "country": "Country",
    "state": "State/region",
    "city": "City",
    "industry": "Industry",
    "company": "Company",
    "hs_lead_status": "Lead status",
    "lifecyclestage": "Lifecycle stage",
    "hs_persona": "Persona",
    "hs_language": "Preferred language",
    "job_function": "Job function",
    "seniority": "Seniority",
    "hs_seniority": "Seniority",
    "hs_buying_role": "Buying role",
    "hs_email_optout": "Email opt-out",
    "hs_email_bad_address": "Invalid email address",
    "email": "Email",
    "work_email": "Work email",
}

# How a count reads: (one, many, zero, missing); {n} is the formatted number.
_COUNT_PHRASES = {
    "hs_analytics_num_visits": (
        "Visited once", "Visited {n} times", "Never visited the website",
        "No website visits recorded",
    ),
    "hs_analytics_num_page_views": (
        "Viewed 1 page", "Viewed {n} pages", "No page views", "No page views recorded",
    ),
    "hs_analytics_num_event_completions": (
        "Completed 1 event", "Completed {n} events", "No events completed",
        "No event completions recorded",
    ),
    "hs_analytics_average_page_views": (
        "1 page per visit on average", "{n} pages per visit on average",
        "No pages per visit", "Pages per visit unknown",
    ),
    "num_conversion_events": (
        "Submitted 1 form", "Submitted {n} forms", "No form submissions",
        "No form submissions recorded",
    ),
    "num_unique_conversion_events": (
        "Converted on 1 form", "Converted on {n} different forms", "No form conversions",
        "No form conversions recorded",
    ),
    "hs_email_open": (
        "Opened 1 marketing email", "Opened {n} marketing emails",
        "Opened no marketing emails", "Email opens unknown",
    ),
    "hs_email_click": (
        "Clicked 1 marketing email", "Clicked {n} marketing emails",
        "Clicked no marketing emails", "Email clicks unknown",
    ),
    "hs_email_delivered": (
        "Received 1 marketing email", "Received {n} marketing emails",
        "Received no marketing emails", "Marketing emails received unknown",
    ),
    "hs_email_replied": (
        "Replied to 1 marketing email", "Replied to {n} marketing emails",
        "Replied to no marketing emails", "Email replies unknown",
    ),
    "hs_email_bounce": (
        "1 email bounced", "{n} emails bounced", "No bounced emails", "Bounces unknown",
    ),
    "num_contacted_notes": (
        "Contacted once by sales", "Contacted {n} times by sales", "Not yet contacted by sales",
        "Sales contact unknown",
    ),
    "num_notes": (
        "1 sales activity", "{n} sales activities", "No sales activities",
        "Sales activities unknown",
    ),
    "num_associated_deals": (
        "1 associated deal", "{n} associated deals", "No associated deals", "Deals unknown",
    ),
    "hs_social_num_broadcast_clicks": (
        "Clicked 1 social post", "Clicked {n} social posts", "No social clicks",
        "Social clicks unknown",
    ),
    "numemployees": (
        "Company size: 1 employee", "Company size: {n} employees", "Company size: 0 employees",
        "Company size unknown",
    ),
}

_DATETIME_PHRASES = {
    "hs_analytics_last_visit_timestamp": ("Last visited {ago}", "No website visit recorded"),
    "hs_analytics_first_visit_timestamp": ("First visited {ago}", "No website visit recorded"),
    "createdate": ("Became a contact {ago}", "Creation date unknown"),
    "recent_conversion_date": ("Last form submission {ago}", "No form submission"),
    "first_conversion_date": ("First form submission {ago}", "No form submission"),
    "hs_email_last_open_date": ("Last opened a marketing email {ago}", "Never opened an email"),
    "hs_email_last_click_date": ("Last clicked a marketing email {ago}", "Never clicked an email"),
    "notes_last_contacted": ("Last contacted by sales {ago}", "Never contacted by sales"),
    "notes_last_updated": ("Last sales activity {ago}", "No sales activity"),
    "hs_last_sales_activity_timestamp": ("Last sales activity {ago}", "No sales activity"),
    "hs_sales_email_last_replied": ("Last replied to a sales email {ago}", "No sales email reply"),
}

_BOOLEAN_PHRASES = {  # (true, false, missing)
    "hs_email_optout": (
        "Opted out of marketing email", "Accepts marketing email", "Email opt-out unknown",
    ),
    "hs_email_bad_address": (
        "Email address bounced", "Email address deliverable", "Email deliverability unknown",
    ),
}

_MISSING_CATEGORY = {
    "jobtitle": "No job title",
    "numemployees": "Company size unknown",
    "hs_analytics_source": "Source unknown",
    "country": "No country",
}

# HubSpot's labels for enumeration values a rep would otherwise see in CAPS.
_VALUE_LABELS = {
    "hs_analytics_source": {
        "ORGANIC_SEARCH": "Organic search",
        "PAID_SEARCH": "Paid search",
        "EMAIL_MARKETING": "Email marketing",
        "SOCIAL_MEDIA": "Organic social",
        "PAID_SOCIAL": "Paid social",
        "REFERRALS": "Referrals",
        "OTHER_CAMPAIGNS": "Other campaigns",
        "DIRECT_TRAFFIC": "Direct traffic",
        "OFFLINE": "Offline sources",
        "AI_REFERRALS": "AI referrals",
    },
    "hs_lead_status": {
        "NEW": "New",
        "OPEN": "Open",
        "IN_PROGRESS": "In progress",
        "OPEN_DEAL": "Open deal",
        "UNQUALIFIED": "Unqualified",
        "ATTEMPTED_TO_CONTACT": "Attempted to contact",
        "CONNECTED": "Connected",
        "BAD_TIMING": "Bad timing",
    },
}
_VALUE_LABELS["hs_latest_source"] = _VALUE_LABELS["hs_analytics_source"]
_ENUM_VALUE = re.compile(r"^[A-Z0-9]+(?:_[A-Z0-9]+)+$")


@lru_cache(maxsize=1024)
def property_label(column: str) -> str:
    """'Job title' for jobtitle, else the column humanised ('hs_form_fills' → 'Form fills')."""
    if column in PROPERTY_LABELS:
        return PROPERTY_LABELS[column]
    words = re.sub(r"^hs_", "", column).replace("_", " ").replace("-", " ").split()
    if words and words[0].lower() == "num":
        words = ["number", "of", *words[1:]]
    text = " ".join(words) or column
    return text[0].upper() + text[1:]


def _format_number(x: float) -> str:
    if x == int(x) and abs(x) < 1e15:
        return f"{int(x):,}"
    return f"{x:,.2f}".rstrip("0").rstrip(".") if abs(x) < 100 else f"{x:,.0f}"


def _ago(days: float) -> str:
    if days < 1:
        return "today"
    if days < 2:
        return "yesterday"
    if days < 14:
        return f"{int(days)} days ago"
    if days < 60:
        return f"{int(days // 7)} weeks ago"
    if days < 730:
        return f"{int(days // 30.44)} months ago"
    return f"{int(days // 365.25)} years ago"


def _category_text(column: str, raw: PropertyValue) -> str:
    text = " ".join(_text(raw).split())
    mapped = _VALUE_LABELS.get(column, {}).get(text.upper())
    if mapped:
        return mapped
    if _ENUM_VALUE.match(text):  # e.g. COMPUTER_SOFTWARE → Computer software
        return text.replace("_", " ").capitalize()
    return text


def describe(spec: FeatureSpec, value: float, raw: PropertyValue) -> str:
    """A rep-readable phrase for one feature of one lead: `value` is the vectorised
    number, `raw` the property string it came from."""
    column, missing = spec.column, math.isnan(value)
    label = property_label(column)
    if spec.kind == "numeric":
        one, many, zero, unknown = _COUNT_PHRASES.get(
            column, (f"{label}: 1", f"{label}: {{n}}", f"{label}: 0", f"{label} unknown")
        )
        if missing:
            return unknown
        phrase = zero if value == 0 else one if value == 1 else many
        return phrase.format(n=_format_number(value))
    if spec.kind == "categorical":
        if missing:
            return _MISSING_CATEGORY.get(column, f"No {label[0].lower()}{label[1:]}")
        text = _category_text(column, raw)
        if column == "numemployees":
            text += " employees"
        if value == spec.other_code:
            return f"{label}: {text} (uncommon)"
        return f"{label}: {text}"
    if spec.kind == "boolean":
        yes, no, unknown = _BOOLEAN_PHRASES.get(
            column, (f"{label}: yes", f"{label}: no", f"{label} unknown")
        )
        return unknown if missing else yes if value == 1.0 else no
    if spec.kind == "datetime":
        when, never = _DATETIME_PHRASES.get(column, (f"{label} {{ago}}", f"No {label.lower()}"))
        return never if missing else when.format(ago=_ago(value))
    if spec.kind == "email":
        if missing:
            return "No valid email address"
        return "Free-mail address" if value == 1.0 else "Business email domain"
    raise ValueError(f"unknown feature kind {spec.kind!r}")
