"""Which reasons a lead gets and in which order (`leadscore.model.reasons`): what explains the
score's direction first, signs kept, noise left out, missing values only where their absence
carried signal in training. The end-to-end check through the local stack is
tests/e2e/test_what_reps_see.py."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from leadscore.cli.synthetic import SYNTHETIC_NOW, generate_contacts
from leadscore.model import load
from leadscore.model.config import ReasonConfig, parse_config
from leadscore.model.features import learn_schema
from leadscore.model.reasons import (
    NOTHING_STANDS_OUT,
    choose_reasons,
    missing_value_evidence,
    missing_value_signals,
)

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MODEL = ROOT / "layers/model/model"
DEFAULTS = ReasonConfig()
NO_MISSING = np.zeros(6, dtype=bool)
EFFECTS = np.array([0.40, -0.90, 0.05, -0.20, 0.70, -0.30])


@pytest.fixture(scope="module")
def model():
    return load(DEFAULT_MODEL)


@pytest.fixture(scope="module")
def scored(model):
    contacts = generate_contacts(3000, seed=11)
    return contacts, model.score_many(contacts, now=SYNTHETIC_NOW)


def test_below_the_typical_lead_what_speaks_against_it_comes_first():
    chosen = choose_reasons(EFFECTS, NO_MISSING, score=12, config=DEFAULTS, missing_signals={})
    assert chosen == [1, 5, 3, 4, 0]  # negatives by strength, then the two strongest positives


def test_at_or_above_the_typical_lead_what_speaks_for_it_comes_first():
    for score in (50, 93):
        chosen = choose_reasons(EFFECTS, NO_MISSING, score, DEFAULTS, {})
        assert chosen == [4, 0, 1, 5]  # 0.05 is below min_effect: noise, never listed


def test_a_lead_with_nothing_notable_says_so(model):
    tiny = np.array([0.09, -0.05, 0.0, 0.02, -0.099, 0.01])
    assert choose_reasons(tiny, NO_MISSING, 55, DEFAULTS, {}) == []
    # Worded by the model: one plain statement instead of noise (no sign: it is no factor).
    contributions = np.zeros(len(model.schema.features) + 1)
    row = model.vectorize({}, now=SYNTHETIC_NOW)
    assert model._reasons(contributions, row, {}, 50) == [NOTHING_STANDS_OUT]


def test_limits_and_typical_score_come_from_the_reasons_section():
    config = parse_config("""
[label]
column = "lifecyclestage"
positive = ["customer"]
[features]
numeric = ["visits"]
[reasons]
typical_score = 30
min_effect = 0.25
max_leading = 1
max_opposing = 0
""").reasons
    assert choose_reasons(EFFECTS, NO_MISSING, 40, config, {}) == [4]
    assert choose_reasons(EFFECTS, NO_MISSING, 20, config, {}) == [1]
    with pytest.raises(ValueError, match=r"reasons\.min_effect"):
        parse_config('[label]\ncolumn = "s"\npositive = ["c"]\n[features]\nnumeric = ["v"]\n'
                     '[reasons]\nmin_effect = -1\n')


def test_a_missing_value_is_a_reason_only_where_its_absence_carried_signal():
    effects = np.array([-0.6, 0.3, -0.4])
    missing = np.array([True, True, False])
    # Feature 0's absence went with fewer conversions in training, feature 1's with none.
    signals = {0: -1}
    assert choose_reasons(effects, missing, 10, DEFAULTS, signals) == [0, 2]
    # Same evidence, but the model's contribution points the other way: an artefact of where
    # the trees send missing values, not something the model learnt from the absence.
    assert choose_reasons(-effects, missing, 90, DEFAULTS, signals) == [2]
    assert choose_reasons(effects, missing, 10, DEFAULTS, {}) == [2]


def test_missing_value_evidence_separates_informative_from_random_absence():
    config = parse_config("""
[label]
column = "lifecyclestage"
positive = ["customer"]
[features]
numeric = ["informative", "random"]
""")
    rng = np.random.default_rng(3)
    labels = rng.random(4000) < 0.15
    informative = np.where(labels & (rng.random(4000) < 0.9), 1.0, np.nan)  # absent: rarely buys
    informative[~labels & (rng.random(4000) < 0.5)] = 1.0
    random = np.where(rng.random(4000) < 0.2, np.nan, 1.0)
    schema = learn_schema(config, [{"informative": "1", "random": "1"}])
    evidence = missing_value_evidence(schema, np.column_stack([informative, random]), labels)
    assert evidence["informative"]["z"] < -10
    assert abs(evidence["random"]["z"]) < 3
    assert evidence["informative"]["rows_missing"] == int(np.isnan(informative).sum())
    assert missing_value_signals(evidence, schema, 3.0) == {0: -1}
    assert missing_value_signals(None, schema, 3.0) == {}


def test_shipped_model_explains_disqualified_and_hot_leads_by_their_direction(scored):
    _, results = scored
    disqualified = [r for r in results if r.tier == "disqualified"]
    hot = [r for r in results if r.tier == "hot"]
    assert len(disqualified) > 300 and len(hot) > 100
    assert all(r.reasons[0].endswith("(−)") for r in disqualified)
    assert all(r.reasons[0].endswith("(+)") for r in hot)


def test_shipped_model_lists_informative_absences_and_never_random_ones(model, scored):
    contacts, results = scored
    evidence = model.metadata["missing_values"]
    # In the synthetic data a missing last visit means no visit, a missing company size mostly
    # a student; opt-out, job title and country are left empty at random.
    assert evidence["hs_analytics_last_visit_timestamp_age_days"]["z"] < -3
    assert abs(evidence["hs_email_optout"]["z"]) < 3
    phrases = [reason for r in results for reason in r.reasons]
    assert "No website visit recorded (−)" in phrases
    never = ("No email opt-out choice recorded", "No job title given", "No country given",
             "unknown")
    assert not [p for p in phrases if any(word in p for word in never)]
    idle = next(r for c, r in zip(contacts, results, strict=True)
                if not c["hs_analytics_last_visit_timestamp"] and r.tier == "disqualified")
    assert any(reason.startswith("No website visit recorded") for reason in idle.reasons)


def test_a_model_trained_before_the_evidence_was_recorded_never_lists_absences(
        tmp_path, model, scored):
    older = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL, older)
    metadata = json.loads((older / "metadata.json").read_text())
    del metadata["missing_values"]
    (older / "metadata.json").write_text(json.dumps(metadata))
    contacts, _ = scored

    def absences(scoring_model) -> list[str]:
        results = scoring_model.score_many(contacts[:500], now=SYNTHETIC_NOW)
        return [reason for r in results for reason in r.reasons if "recorded" in reason]

    assert absences(model)  # the same leads do get them from the current metadata
    assert absences(load(older)) == []
