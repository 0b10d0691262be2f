"""The reasons behind a score in words a sales rep understands.

Which reasons, in which order (`choose_reasons`): the model's per-feature contributions for the
lead (log-odds, measured from its average output) are the input; a contribution smaller than
`[reasons] min_effect` is noise, not a reason. A lead scoring below `typical_score` (default 50,
the median past lead) lists the strongest contributions against it first, any other lead those
for it; then up to `max_opposing` of the strongest the other way. Each keeps its sign, "(+)" or
"(−)". A lead without any notable contribution gets `NOTHING_STANDS_OUT` instead of noise.

A missing value is a reason only when the training data showed that its absence matters:
`missing_value_evidence` records, per feature, how often leads without the value converted
against leads with it, and `missing_value_signals` keeps the features where that difference is
significant, with its direction. A missing value whose contribution points the other way (an
artefact of where the trees send missing values) is not a reason. It is then worded as an
absence ("No website visit recorded", "No company size given").

How a value reads (`describe`): "Visited 25 times", "Free-mail address", "Last visited 3 days
ago".
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from functools import lru_cache

import numpy as np

from leadscore.model.config import PropertyValue, ReasonConfig, cell_text
from leadscore.model.features import FeatureSchema, FeatureSpec

POSITIVE_SIGN, NEGATIVE_SIGN = "(+)", "(−)"
NOTHING_STANDS_OUT = "Nothing stands out: close to a typical past lead"
# Too few leads without a value say nothing about its absence, whatever the z-score.
MIN_MISSING_ROWS = 30

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
        "No pages per visit", "No pages per visit recorded",
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
        "Opened no marketing emails", "No email opens recorded",
    ),
    "hs_email_click": (
        "Clicked 1 marketing email", "Clicked {n} marketing emails",
        "Clicked no marketing emails", "No email clicks recorded",
    ),
    "hs_email_delivered": (
        "Received 1 marketing email", "Received {n} marketing emails",
        "Received no marketing emails", "No marketing emails recorded",
    ),
    "hs_email_replied": (
        "Replied to 1 marketing email", "Replied to {n} marketing emails",
        "Replied to no marketing emails", "No email replies recorded",
    ),
    "hs_email_bounce": (
        "1 email bounced", "{n} emails bounced", "No bounced emails", "No bounces recorded",
    ),
    "num_contacted_notes": (
        "Contacted once by sales", "Contacted {n} times by sales", "Not yet contacted by sales",
        "No sales contact recorded",
    ),
    "num_notes": (
        "1 sales activity", "{n} sales activities", "No sales activities",
        "No sales activities recorded",
    ),
    "num_associated_deals": (
        "1 associated deal", "{n} associated deals", "No associated deals",
        "No deals recorded",
    ),
    "hs_social_num_broadcast_clicks": (
        "Clicked 1 social post", "Clicked {n} social posts", "No social clicks",
        "No social clicks recorded",
    ),
    "numemployees": (
        "Company size: 1 employee", "Company size: {n} employees", "Company size: 0 employees",
        "No company size given",
    ),
}

_DATETIME_PHRASES = {
    "hs_analytics_last_visit_timestamp": ("Last visited {ago}", "No website visit recorded"),
    "hs_analytics_first_visit_timestamp": ("First visited {ago}", "No website visit recorded"),
    "createdate": ("Became a contact {ago}", "No creation date recorded"),
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
        "Opted out of marketing email", "Accepts marketing email",
        "No email opt-out choice recorded",
    ),
    "hs_email_bad_address": (
        "Email address bounced", "Email address deliverable", "No email deliverability recorded",
    ),
}

_MISSING_CATEGORY = {
    "jobtitle": "No job title given",
    "numemployees": "No company size given",
    "hs_analytics_source": "No traffic source recorded",
    "country": "No country given",
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


def _lower(label: str) -> str:
    return label[0].lower() + label[1:]


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
    text = " ".join(cell_text(raw).split())
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
        one, many, zero, unknown = _COUNT_PHRASES.get(column, (
            f"{label}: 1", f"{label}: {{n}}", f"{label}: 0", f"No {_lower(label)} recorded"))
        if missing:
            return unknown
        phrase = zero if value == 0 else one if value == 1 else many
        return phrase.format(n=_format_number(value))
    if spec.kind == "categorical":
        if missing:
            return _MISSING_CATEGORY.get(column, f"No {_lower(label)} given")
        text = _category_text(column, raw)
        if column == "numemployees":
            text += " employees"
        if value == spec.other_code:
            return f"{label}: {text} (uncommon)"
        return f"{label}: {text}"
    if spec.kind == "boolean":
        yes, no, unknown = _BOOLEAN_PHRASES.get(
            column, (f"{label}: yes", f"{label}: no", f"No {_lower(label)} recorded")
        )
        return unknown if missing else yes if value == 1.0 else no
    if spec.kind == "datetime":
        when, never = _DATETIME_PHRASES.get(
            column, (f"{label} {{ago}}", f"No {_lower(label)} recorded"))
        return never if missing else when.format(ago=_ago(value))
    if spec.kind == "email":
        if missing:
            return "No valid email address"
        return "Free-mail address" if value == 1.0 else "Business email domain"
    raise ValueError(f"unknown feature kind {spec.kind!r}")


# --------------------------------------------------------------------------- choosing reasons


def missing_value_evidence(schema: FeatureSchema, matrix: np.ndarray,
                           labels: np.ndarray) -> dict[str, dict[str, float | int]]:
    """Per feature with missing values in training: how leads without a value converted
    against leads with one, and the two-proportion z-score of the difference. Stored in the
    model metadata (`missing_values`) at training."""
    evidence: dict[str, dict[str, float | int]] = {}
    y = np.asarray(labels, dtype=np.float64)
    rate = float(y.mean()) if len(y) else 0.0
    for j, spec in enumerate(schema.features):
        missing = np.isnan(matrix[:, j])
        n_missing, n_present = int(missing.sum()), int((~missing).sum())
        if n_missing == 0 or n_present == 0:
            continue
        when_missing, when_present = float(y[missing].mean()), float(y[~missing].mean())
        spread = math.sqrt(rate * (1 - rate) * (1 / n_missing + 1 / n_present))
        z = (when_missing - when_present) / spread if spread > 0 else 0.0
        evidence[spec.name] = {"rows_missing": n_missing,
                               "conversion_when_missing": round(when_missing, 6),
                               "conversion_when_present": round(when_present, 6),
                               "z": round(z, 3)}
    return evidence


def missing_value_signals(evidence: Mapping[str, Mapping[str, float]] | None,
                          schema: FeatureSchema, min_z: float) -> dict[int, int]:
    """Feature index → +1/−1: the features whose absence signalled more/fewer conversions in
    training (|z| ≥ `min_z`, at least MIN_MISSING_ROWS leads without a value). A model trained
    before this evidence was recorded has none: its missing values are never reasons."""
    if not evidence:
        return {}
    signals = {}
    for j, spec in enumerate(schema.features):
        entry = evidence.get(spec.name)
        if entry and entry["rows_missing"] >= MIN_MISSING_ROWS and abs(entry["z"]) >= min_z:
            signals[j] = 1 if entry["z"] > 0 else -1
    return signals


def choose_reasons(effects: np.ndarray, missing: np.ndarray, score: int,
                   config: ReasonConfig, missing_signals: Mapping[int, int]) -> list[int]:
    """Indices of the features to show, in order (see the module docstring). `effects` are
    the per-feature contributions (without the expected value), `missing` marks the lead's
    missing values."""
    notable = np.abs(effects) >= config.min_effect
    for j in np.flatnonzero(missing & notable):
        notable[j] = missing_signals.get(int(j)) == (1 if effects[j] > 0 else -1)
    order = np.argsort(-np.abs(effects), kind="stable")  # strongest first
    positive = [int(j) for j in order if notable[j] and effects[j] > 0]
    negative = [int(j) for j in order if notable[j] and effects[j] < 0]
    leading, opposing = ((negative, positive) if score < config.typical_score
                         else (positive, negative))
    return leading[:config.max_leading] + opposing[:config.max_opposing]


def worded_reasons(chosen: list[int], effects: np.ndarray, row: np.ndarray,
                   properties: Mapping[str, PropertyValue], schema: FeatureSchema) -> list[str]:
    """The chosen features as phrases with their sign; NOTHING_STANDS_OUT for none."""
    if not chosen:
        return [NOTHING_STANDS_OUT]
    features = schema.features
    return [f"{describe(features[j], row[j], properties.get(features[j].column))} "
            f"{POSITIVE_SIGN if effects[j] > 0 else NEGATIVE_SIGN}" for j in chosen]
