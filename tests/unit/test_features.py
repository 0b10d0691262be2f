"""Feature engineering: config parsing, cell parsing, the vectorizer and rep-readable words."""

import math
from datetime import UTC, datetime

import numpy as np
import pytest

from leadscore.cli.csv_files import config_columns, require_columns
from leadscore.model.config import parse_config
from leadscore.model.features import (
    FeatureSchema,
    Vectorizer,
    layout,
    learn_schema,
    parse_boolean,
    parse_email,
    parse_number,
    parse_timestamp,
)
from leadscore.model.reasons import describe, property_label

CONFIG = """
id = "hs_object_id"

[label]
column = "lifecyclestage"
positive = ["opportunity", "customer"]

[features]
numeric     = ["hs_analytics_num_visits"]
categorical = ["jobtitle", "hs_analytics_source"]
boolean     = ["hs_email_optout"]
datetime    = ["hs_analytics_last_visit_timestamp"]
email       = "email"

[tiers]
hot = 85
"""
NOW = datetime(2025, 6, 30, tzinfo=UTC)


def _rows() -> list[dict[str, str]]:
    titles = ["CEO"] * 6 + ["Student"] * 5 + ["Chief Happiness Officer"] * 2
    return [
        {
            "hs_object_id": str(i),
            "jobtitle": title,
            "hs_analytics_source": "ORGANIC_SEARCH" if i % 2 else "REFERRALS",
            "hs_analytics_num_visits": str(i),
            "hs_email_optout": "false",
            "hs_analytics_last_visit_timestamp": "2025-06-20T00:00:00Z",
            "email": f"p{i}@acme.io",
        }
        for i, title in enumerate(titles)
    ] + [{"hs_object_id": "99", "hs_analytics_source": "REFERRALS"}] * 5


@pytest.fixture
def config():
    return parse_config(CONFIG)


@pytest.fixture
def schema(config):
    return learn_schema(config, _rows())


def test_config_parses_design_format(config):
    assert config.id == "hs_object_id"
    assert config.is_positive(" Customer ") and not config.is_positive("lead")
    assert config.properties == [
        "hs_object_id", "hs_analytics_num_visits", "jobtitle", "hs_analytics_source",
        "hs_email_optout", "hs_analytics_last_visit_timestamp", "email",
    ]
    assert config.tiers.hot == 85 and config.tiers.warm is None
    assert [spec.kind for spec in layout(config)] == [
        "numeric", "categorical", "categorical", "boolean", "datetime", "email"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (CONFIG.replace('"jobtitle", ', '"jobtitle", "jobtitle", '), "more than once"),
        (CONFIG.replace("numeric ", "numerical "), "numerical"),
        (CONFIG.replace('email       = "email"', 'email = "hs_object_id"'), "must not also"),
        (CONFIG.replace("hot = 85", "hot = 150"), "tiers.hot"),
        (CONFIG.replace("[label]", "[label"), "not valid TOML"),
        (CONFIG + '[missing]\nfirstname = ["n/a"]\n', r"\[missing\] names .*firstname"),
        (CONFIG + '[missing]\njobtitle = "n/a"\n', "missing.jobtitle"),
    ],
)
def test_config_errors_are_clear(text, message):
    with pytest.raises(ValueError, match=message):
        parse_config(text)


def test_missing_configured_column_is_named(config):
    header = ["hs_object_id", "lifecyclestage", "jobtitle", "hs_analytics_source",
              "hs_email_optout", "hs_analytics_last_visit_timestamp", "email"]
    with pytest.raises(ValueError, match=r"'hs_analytics_num_visits' \(features\.numeric"):
        require_columns(header, config_columns(config, with_label=True), "export.csv")
    require_columns([*header, "hs_analytics_num_visits"],
                    config_columns(config, with_label=True), "export.csv")


@pytest.mark.parametrize(
    ("cell", "expected"),
    [("23", 23.0), (" 4.5 ", 4.5), ("1,234", 1234.0), (7, 7.0), ("", None), (None, None),
     ("lots", None), ("NaN", None), ("inf", None), ("1e400", None), ("--3", None)],
)
def test_parse_number(cell, expected):
    value = parse_number(cell)
    assert math.isnan(value) if expected is None else value == expected


@pytest.mark.parametrize(
    ("cell", "expected"),
    [("true", 1.0), ("TRUE", 1.0), ("Yes", 1.0), ("1", 1.0), (True, 1.0), ("false", 0.0),
     ("no", 0.0), (" 0 ", 0.0), ("", None), (None, None), ("maybe", None)],
)
def test_parse_boolean(cell, expected):
    value = parse_boolean(cell)
    assert math.isnan(value) if expected is None else value == expected


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("2025-06-20T00:00:00Z", datetime(2025, 6, 20, tzinfo=UTC)),
        ("2025-06-20T05:30:00+05:30", datetime(2025, 6, 20, tzinfo=UTC)),
        ("2025-06-20T00:00:00.000Z", datetime(2025, 6, 20, tzinfo=UTC)),
        ("2025-06-20", datetime(2025, 6, 20, tzinfo=UTC)),
        ("1750377600000", datetime(2025, 6, 20, tzinfo=UTC)),  # epoch ms
        ("1750377600", datetime(2025, 6, 20, tzinfo=UTC)),  # epoch seconds
        ("yesterday", None), ("", None), ("2025-13-45", None), ("99999999999999999999999", None),
        ("9999-01-01T00:00:00Z", None), ("1e12", None),
    ],
)
def test_parse_timestamp(cell, expected):
    seconds = parse_timestamp(cell)
    assert seconds == (expected.timestamp() if expected else None)


@pytest.mark.parametrize(
    ("cell", "expected"),
    [("ravi@gmail.com", 1.0), ("a@Yahoo.co.in", 1.0), ("x@rediffmail.com", 1.0),
     ("y@hotmail.fr", 1.0), ("cto@acme.io", 0.0), ("ceo@tata.co.in", 0.0),
     ("no-at-sign", None), ("@acme.io", None), ("a@localhost", None), ("", None)],
)
def test_email_is_business_or_free_mail(cell, expected):
    value = parse_email(cell)
    assert math.isnan(value) if expected is None else value == expected


def test_vocabulary_caps_rare_values(schema):
    jobtitle = schema.features[1]
    assert jobtitle.vocabulary == ("ceo", "student")  # Chief Happiness Officer: 2 < 5
    source = schema.features[2]
    assert source.vocabulary == ("referrals", "organic_search")  # most frequent first


def test_unseen_and_rare_categories_are_the_unknown_code(schema):
    vectorizer = Vectorizer(schema)
    other = schema.features[1].other_code
    unseen = vectorizer.transform_one({"jobtitle": "Head of Growth"}, NOW)
    rare = vectorizer.transform_one({"jobtitle": "chief happiness officer"}, NOW)
    assert unseen[1] == rare[1] == other
    assert math.isnan(vectorizer.transform_one({"jobtitle": "  "}, NOW)[1])
    # Case and spacing do not make a new category.
    assert vectorizer.transform_one({"jobtitle": "  ceo "}, NOW)[1] == 0.0


def test_same_vector_one_by_one_and_in_bulk(schema):
    rows = [*_rows(), {"jobtitle": "Founder", "hs_analytics_num_visits": "x", "email": "@"}]
    vectorizer = Vectorizer(schema)
    bulk = vectorizer.transform(rows, NOW)
    single = np.vstack([vectorizer.transform_one(row, NOW) for row in rows])
    np.testing.assert_array_equal(bulk, single)
    # A fresh vectorizer rebuilt from the stored schema gives the same numbers.
    rebuilt = Vectorizer(FeatureSchema.from_dict(schema.to_dict()))
    np.testing.assert_array_equal(rebuilt.transform(rows, NOW), bulk)


def test_each_row_can_be_aged_from_its_own_reference_time(schema):
    """Point-in-time features: a stored lead is vectorised as of when it was scored."""
    visit = {"hs_analytics_last_visit_timestamp": "2025-06-20T00:00:00Z"}
    vectorizer = Vectorizer(schema)
    later = datetime(2025, 7, 10, tzinfo=UTC)
    rows = vectorizer.transform([visit, visit], [NOW, later])
    np.testing.assert_array_equal(rows[0], vectorizer.transform_one(visit, NOW))
    np.testing.assert_array_equal(rows[1], vectorizer.transform_one(visit, later))
    assert rows[1][4] - rows[0][4] == 10.0  # ten days older at the later reference
    with pytest.raises(ValueError, match="2 reference times for 1 rows"):
        vectorizer.transform([visit], [NOW, later])


def test_bad_cells_never_crash(schema):
    junk = {
        "hs_analytics_num_visits": "twenty", "jobtitle": 42, "hs_analytics_source": None,
        "hs_email_optout": "perhaps", "hs_analytics_last_visit_timestamp": "last tuesday",
        "email": "not an email", "unrelated": object(),
    }
    row = Vectorizer(schema).transform_one(junk, NOW)
    assert row.shape == (6,)
    assert np.isnan(row[[0, 2, 3, 4, 5]]).all()
    assert row[1] == schema.features[1].other_code
    assert np.isnan(Vectorizer(schema).transform_one({}, NOW)).all()
    assert Vectorizer(schema).transform([], NOW).shape == (0, 6)


def test_datetime_is_age_in_days_never_negative(schema):
    vectorizer = Vectorizer(schema)
    ten_days = vectorizer.transform_one(
        {"hs_analytics_last_visit_timestamp": "2025-06-20T00:00:00Z"}, NOW)[4]
    future = vectorizer.transform_one(
        {"hs_analytics_last_visit_timestamp": "2025-07-20T00:00:00Z"}, NOW)[4]
    assert ten_days == 10.0 and future == 0.0


def test_schema_hash_tracks_vocabulary(config, schema):
    same = learn_schema(config, _rows())
    assert same.sha256() == schema.sha256()
    fewer = learn_schema(config, _rows()[:8])
    assert fewer.sha256() != schema.sha256()


def test_descriptions_are_words(schema):
    spec = {f.column: f for f in schema.features}
    nan = float("nan")
    assert describe(spec["hs_analytics_num_visits"], 23.0, "23") == "Visited 23 times"
    assert describe(spec["jobtitle"], 0.0, "CEO") == "Job title: CEO"
    assert describe(spec["jobtitle"], nan, "") == "No job title given"  # worded as an absence
    assert describe(spec["jobtitle"], 2.0, "Head of Growth") == (
        "Job title: Head of Growth (uncommon)")
    assert describe(spec["hs_analytics_source"], 1.0, "ORGANIC_SEARCH") == "Source: Organic search"
    assert describe(spec["email"], 1.0, "a@gmail.com") == "Free-mail address"
    assert describe(spec["email"], 0.0, "a@acme.io") == "Business email domain"
    assert describe(spec["hs_email_optout"], 1.0, "true") == "Opted out of marketing email"
    assert describe(spec["hs_analytics_last_visit_timestamp"], 3.2, "") == "Last visited 3 days ago"
    assert describe(spec["hs_analytics_last_visit_timestamp"], nan, "") == (
        "No website visit recorded")


def test_unknown_columns_get_a_humanised_label():
    assert property_label("hs_num_form_fills") == "Number of form fills"
    assert property_label("favourite_colour") == "Favourite colour"
    config = parse_config(CONFIG.replace('"hs_analytics_num_visits"', '"webinar_attended_count"')
                          .replace('"jobtitle", ', '"industry", '))
    schema = learn_schema(config, [{"industry": "COMPUTER_SOFTWARE"}] * 5)
    spec = {f.column: f for f in schema.features}
    assert describe(spec["webinar_attended_count"], 4.0, "4") == "Webinar attended count: 4"
    assert describe(spec["industry"], 0.0, "COMPUTER_SOFTWARE") == "Industry: Computer software"
    assert describe(spec["industry"], float("nan"), None) == "No industry given"
    assert describe(spec["webinar_attended_count"], float("nan"), None) == (
        "No webinar attended count recorded")


def test_id_is_optional_and_rows_are_then_numbered():
    config = parse_config(CONFIG.replace('id = "hs_object_id"\n', ""))
    assert config.id is None
    assert config.properties[0] == "hs_analytics_num_visits"
    assert [column for column, _ in config_columns(config, with_label=True)][:2] == [
        "lifecyclestage", "hs_analytics_num_visits"]


SENTINELS = CONFIG + """
[missing]
hs_analytics_num_visits = ["999", -1]
jobtitle = ["Unknown", "N/A"]
"""


def test_declared_sentinels_are_missing_values():
    config = parse_config(SENTINELS)
    rows = _rows() + [{"jobtitle": "unknown"}] * 9 + [{"jobtitle": " N/A "}] * 6
    schema = learn_schema(config, rows)
    assert config.missing_values("jobtitle") == ("n/a", "unknown")
    assert schema.features[1].vocabulary == ("ceo", "student")  # sentinels never a category
    vectorizer = Vectorizer(schema)
    for cell in ("999", "999.0", " 999 ", "-1", "-1.00"):
        assert math.isnan(vectorizer.transform_one({"hs_analytics_num_visits": cell}, NOW)[0])
    assert vectorizer.transform_one({"hs_analytics_num_visits": "998"}, NOW)[0] == 998.0
    assert math.isnan(vectorizer.transform_one({"jobtitle": "UNKNOWN"}, NOW)[1])
    spec = schema.features[0]
    assert spec.is_missing("999") and spec.is_missing("") and not spec.is_missing("3")


def test_sentinels_are_part_of_the_schema(config):
    plain = learn_schema(config, _rows())
    with_sentinels = learn_schema(parse_config(SENTINELS), _rows())
    assert "missing" not in plain.to_dict()["features"][0]  # older schemas keep their hash
    assert with_sentinels.to_dict()["features"][0]["missing"] == ["-1", "999"]
    assert with_sentinels.sha256() != plain.sha256()
    assert FeatureSchema.from_dict(with_sentinels.to_dict()) == with_sentinels
