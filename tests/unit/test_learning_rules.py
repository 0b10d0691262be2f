"""The learning loop's rules, without AWS: what counts as an outcome (features.toml's [label]
and [outcome], the window, `prior`), training consent, the time split, the gate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from leadscore.hubspot.history import PropertyVersion
from leadscore.learning.dataset import (
    EMAIL_PLACEHOLDER,
    LabelledLead,
    missing_columns,
    time_split,
    training_row,
)
from leadscore.learning.gate import GatePolicy, ModelFigures, verdict
from leadscore.learning.outcomes import OutcomeRules, consent_allows_training
from leadscore.learning.snapshots import Outcome, OutcomeSource, Snapshot, reduce_email
from leadscore.model.config import parse_config

SCORED = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
CONFIG = parse_config("""
id = "hs_object_id"
[label]
column = "lifecyclestage"
positive = ["opportunity", "customer"]
[features]
numeric = ["hs_analytics_num_visits"]
categorical = ["jobtitle"]
email = "email"
[outcome]
positive = { hs_lead_status = ["OPEN_DEAL"] }
negative = { hs_lead_status = ["UNQUALIFIED", "BAD_TIMING"] }
""")
RULES = OutcomeRules.from_config(CONFIG, window_days=60)


def versions(*changes: tuple[str, datetime]) -> list[PropertyVersion]:
    return [PropertyVersion(value, int(at.timestamp() * 1000)) for value, at in changes]


def settle(history, now=SCORED + timedelta(days=90)):
    return RULES.from_history(history, SCORED, now)


# ------------------------------------------------------------------------------ the rule


def test_the_rule_comes_from_features_toml():
    assert RULES.properties == ["lifecyclestage", "hs_lead_status"]
    assert RULES.current({"lifecyclestage": " Customer "}) is Outcome.POSITIVE
    assert RULES.current({"hs_lead_status": "open_deal"}) is Outcome.POSITIVE
    assert RULES.current({"hs_lead_status": "UNQUALIFIED"}) is Outcome.NEGATIVE
    # Positive wins over a negative signal; nothing yet is None.
    assert RULES.current({"lifecyclestage": "customer",
                          "hs_lead_status": "UNQUALIFIED"}) is Outcome.POSITIVE
    assert RULES.current({"lifecyclestage": "lead"}) is None


def test_an_outcome_signal_may_not_be_a_feature():
    with pytest.raises(ValueError, match=r"\[outcome\] column\(s\) must not also be features"):
        parse_config("""
[label]
column = "lifecyclestage"
positive = ["customer"]
[features]
categorical = ["hs_lead_status"]
[outcome]
negative = { hs_lead_status = ["UNQUALIFIED"] }
""")


def test_positive_within_the_window_from_history():
    settled = settle({"lifecyclestage": versions(("lead", SCORED - timedelta(days=1)),
                                                 ("customer", SCORED + timedelta(days=12)))})
    assert (settled.outcome, settled.at, settled.source) == (
        Outcome.POSITIVE, SCORED + timedelta(days=12), OutcomeSource.HISTORY)


def test_positive_after_the_window_is_a_negative_of_the_window():
    settled = settle({"lifecyclestage": versions(("lead", SCORED - timedelta(days=1)),
                                                 ("customer", SCORED + timedelta(days=61)))})
    assert (settled.outcome, settled.at, settled.source) == (
        Outcome.NEGATIVE, SCORED + timedelta(days=60), OutcomeSource.WINDOW)


def test_converted_before_the_first_score_is_prior():
    settled = settle({"lifecyclestage": versions(("customer", SCORED - timedelta(hours=1)))})
    assert settled.outcome is Outcome.PRIOR


def test_a_negative_signal_settles_early_and_wins_over_a_later_conversion():
    settled = settle({"hs_lead_status": versions(("UNQUALIFIED", SCORED + timedelta(days=5))),
                      "lifecyclestage": versions(("customer", SCORED + timedelta(days=20)))})
    assert (settled.outcome, settled.source) == (Outcome.NEGATIVE, OutcomeSource.HISTORY)
    # The other way round, the conversion came first.
    settled = settle({"hs_lead_status": versions(("UNQUALIFIED", SCORED + timedelta(days=30))),
                      "lifecyclestage": versions(("opportunity", SCORED + timedelta(days=20)))})
    assert settled.outcome is Outcome.POSITIVE


def test_an_extra_positive_signal_counts():
    settled = settle({"hs_lead_status": versions(("OPEN_DEAL", SCORED + timedelta(days=2)))})
    assert settled.outcome is Outcome.POSITIVE


def test_an_open_window_with_nothing_yet_stays_pending():
    assert settle({"lifecyclestage": versions(("lead", SCORED))},
                  now=SCORED + timedelta(days=59)) is None
    # ... but a conversion settles it before the window closes.
    settled = settle({"lifecyclestage": versions(("customer", SCORED + timedelta(days=3)))},
                     now=SCORED + timedelta(days=10))
    assert settled.outcome is Outcome.POSITIVE


def test_training_consent():
    prop = "dpdp_consent_purposes"
    assert consent_allows_training({prop: "lead_scoring"}, prop, None)
    assert not consent_allows_training({prop: "ai_enrichment"}, prop, None)
    assert not consent_allows_training({prop: "lead_scoring;sometimes"}, prop, None)  # malformed
    assert not consent_allows_training({prop: "lead_scoring"}, prop, "model_training")
    assert consent_allows_training({prop: "lead_scoring;model_training"}, prop, "model_training")
    assert not consent_allows_training({prop: "model_training"}, prop, "model_training")


# ------------------------------------------------------------------------------ snapshots


def test_a_snapshot_holds_the_email_domain_only():
    snapshot = Snapshot.take(
        contact_id="7", portal_id=1, scored_at=SCORED, model_version="m1", score=80,
        probability=0.31, tier="hot",
        properties={"email": "Asha.Rao@Example.IN", "jobtitle": "CEO", "firstname": "Asha"},
        columns=["email", "jobtitle"], email_column="email", schema_hash="abc",
        retention_days=180)
    assert snapshot.features == {"email": "@example.in", "jobtitle": "CEO"}
    assert "Asha" not in snapshot.model_dump_json()
    assert snapshot.expires_at == int((SCORED + timedelta(days=187)).timestamp())
    assert snapshot.scored_day == "2026-03-01" and snapshot.outcome is None
    assert reduce_email("not an address") is None


def test_a_training_row_reads_the_domain_as_the_model_does():
    from leadscore.model.features import parse_email

    row = training_row({"email": "@gmail.com", "jobtitle": "CEO"}, CONFIG, "customer", "7")
    assert row["email"] == f"{EMAIL_PLACEHOLDER}@gmail.com"
    assert parse_email(row["email"]) == 1.0  # free mail, as the original address was
    assert row["hs_object_id"] == "7" and CONFIG.is_positive(row["lifecyclestage"])


# ------------------------------------------------------------------------------ time split


def lead(day: float, positive: bool = False, row=None) -> LabelledLead:
    return LabelledLead(str(day), SCORED + timedelta(days=day), row or {}, positive, "m1")


def test_judge_on_the_newest_30_days_when_that_is_more_than_20_percent():
    leads = [lead(day) for day in range(100)]  # one a day: the newest 30 days are 30 %
    split = time_split(leads)
    assert len(split.judge) == 30 and split.judge[0].scored_at == SCORED + timedelta(days=70)
    assert split.train[-1].scored_at < split.judge[0].scored_at


def test_judge_on_the_newest_20_percent_when_30_days_hold_fewer():
    leads = [lead(day * 3) for day in range(100)]  # one every 3 days: 30 days are 10 leads
    assert len(time_split(leads).judge) == 20


def test_judge_on_at_most_half():
    leads = [lead(day / 100) for day in range(100)]  # all within a day
    split = time_split(leads)
    assert (len(split.train), len(split.judge)) == (50, 50)


def test_columns_a_snapshot_never_had_are_counted():
    leads = [lead(0, row={"jobtitle": "CEO", "email": None}),
             lead(1, row={"jobtitle": "CEO"})]
    assert missing_columns(leads, ["jobtitle", "email", "hs_analytics_num_visits"]) == {
        "email": 0.5, "hs_analytics_num_visits": 1.0}


# ------------------------------------------------------------------------------ the gate


def figures(auc: float | None, brier: float) -> ModelFigures:
    return ModelFigures(version="v", rows=100, conversions=20, auc=auc, brier=brier,
                        lift_top_decile=2.0, conversion_top_decile=0.4, tiers=[])


@pytest.mark.parametrize(("challenger", "passed"), [
    (figures(0.700, 0.150), True),  # the same
    (figures(0.696, 0.154), True),  # worse, within both tolerances
    (figures(0.694, 0.150), False),  # AUC worse beyond 0.005
    (figures(0.750, 0.156), False),  # better ranking, calibration worse beyond 0.005
    (figures(None, 0.100), False),  # one outcome only: no AUC, no promotion
])
def test_the_gate_and_its_tolerance(challenger, passed):
    result = verdict(figures(0.700, 0.150), challenger, GatePolicy())
    assert result.passed is passed
    assert len(result.reasons) == 2 and all(result.reasons)


def test_zero_tolerance_demands_no_loss():
    strict = GatePolicy(auc_tolerance=0, brier_tolerance=0)
    assert not verdict(figures(0.700, 0.150), figures(0.6999, 0.150), strict).passed
    assert verdict(figures(0.700, 0.150), figures(0.700, 0.150), strict).passed
