"""The scoring API on the shipped default model (layers/model/model, built by `make model`)."""

import csv
import json
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

import leadscore.model.features
import leadscore.model.scoring
from leadscore.cli import main
from leadscore.cli.csv_files import score_csv
from leadscore.cli.synthetic import SYNTHETIC_NOW, generate_contacts
from leadscore.model import ScoreResult, load
from leadscore.model.features import Vectorizer
from leadscore.scoring.score_api import request_properties, score_one

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MODEL = ROOT / "layers/model/model"
NOW = SYNTHETIC_NOW

ENGAGED_BUYER = {
    "hs_object_id": "1", "email": "priya.sharma@deccananalytics.in", "jobtitle": "CTO",
    "numemployees": "100-500", "country": "India", "hs_analytics_source": "REFERRALS",
    "hs_analytics_num_visits": "25", "hs_analytics_num_page_views": "80",
    "hs_analytics_last_visit_timestamp": "2025-06-29T10:00:00.000Z", "hs_email_optout": "false",
}
IDLE_STUDENT = {
    "hs_object_id": "2", "email": "rahul1234@gmail.com", "jobtitle": "Student",
    "numemployees": "", "country": "India", "hs_analytics_source": "SOCIAL_MEDIA",
    "hs_analytics_num_visits": "0", "hs_analytics_num_page_views": "0",
    "hs_analytics_last_visit_timestamp": "", "hs_email_optout": "false",
}


@pytest.fixture(scope="module")
def model():
    return load(DEFAULT_MODEL)


@pytest.fixture(scope="module")
def contacts():
    return generate_contacts(400, seed=9)


def test_default_model_loads(model):
    metadata = json.loads((DEFAULT_MODEL / "metadata.json").read_text())
    assert model.version == metadata["version"]
    assert model.properties[0] == "hs_object_id"
    assert {"jobtitle", "email", "hs_analytics_num_visits"} <= set(model.properties)
    assert "lifecyclestage" not in model.properties
    assert model.tiers.model_dump() == {"hot": 90, "warm": 70, "cold": 20}
    assert metadata["metrics"]["auc"] > 0.7


def test_engaged_business_lead_beats_idle_free_mail_student(model):
    buyer, student = model.score(ENGAGED_BUYER, now=NOW), model.score(IDLE_STUDENT, now=NOW)
    assert buyer.score >= student.score + 50
    assert buyer.probability > 3 * student.probability
    assert buyer.tier in ("hot", "warm") and student.tier == "disqualified"
    assert "Visited 25 times (+)" in buyer.reasons
    # Up to three reasons for, then up to two against: an engaged buyer has three for.
    assert [reason.endswith("(+)") for reason in buyer.reasons[:3]] == [True] * 3
    assert "Job title: Student (−)" in student.reasons


def test_every_path_sees_the_same_numbers(model, contacts):
    training_path = Vectorizer(model.schema).transform(contacts, NOW)
    one_by_one = np.vstack([model.vectorize(c, now=NOW) for c in contacts])
    np.testing.assert_array_equal(training_path, one_by_one)

    singles = [model.score(c, now=NOW) for c in contacts]
    assert model.score_many(contacts, now=NOW) == singles
    quick = model.score_many(contacts, with_reasons=False, now=NOW)
    assert [(r.score, r.probability, r.tier) for r in quick] == [
        (r.score, r.probability, r.tier) for r in singles]
    assert all(r.reasons == [] for r in quick)
    assert model.score_many([], now=NOW) == []
    probability, scores = model.predict(contacts, now=NOW)  # what backtests rank by
    assert scores.tolist() == [r.score for r in singles]
    assert np.round(probability, 4).tolist() == [r.probability for r in singles]


def _as_json_value(value: str):
    """How a HubSpot workflow may send a property: numbers and booleans typed, not strings."""
    if value in ("true", "false"):
        return value == "true"
    try:
        return int(value)
    except ValueError:
        return value or None


def test_training_cli_lambda_and_api_build_the_same_vectors(tmp_path, monkeypatch):
    """One contact, four ways in: the matrix `leadscore train` learnt from, `leadscore score`
    on the CSV, the score Lambda (HubSpot batch-read dicts: absent properties are None, as the
    pipeline passes them to `score_many`) and `POST /score` (typed JSON values through
    `request_properties` and `score_one`). Every path must build the same feature row."""
    contacts = generate_contacts(400, seed=21)
    data = tmp_path / "contacts.csv"
    with data.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(contacts[0]))
        writer.writeheader()
        writer.writerows(contacts)
    config = tmp_path / "features.toml"
    config.write_text((DEFAULT_MODEL / "features.toml").read_text())

    matrices: list[np.ndarray] = []
    transform, transform_one = Vectorizer.transform, Vectorizer.transform_one

    def record_many(self, rows, now=None):
        matrices.append(transform(self, rows, now))
        return matrices[-1]

    def record_one(self, properties, now=None):
        matrices.append(transform_one(self, properties, now)[np.newaxis, :])
        return matrices[-1][0]

    monkeypatch.setattr(Vectorizer, "transform", record_many)
    monkeypatch.setattr(Vectorizer, "transform_one", record_one)

    assert main(["train", "--data", str(data), "--config", str(config),
                 "--out", str(tmp_path / "model")]) == 0
    trained = matrices.pop()
    assert trained.shape[0] == len(contacts) and not matrices
    model_dir = tmp_path / "model"
    reference = json.loads((model_dir / "metadata.json").read_text())["reference_time"]
    # Serving measures datetime ages from "now": pin it to the export's reference time.
    to_epoch_seconds = leadscore.model.features.to_epoch_seconds
    at = to_epoch_seconds(datetime.fromisoformat(reference))

    def pinned(now=None):
        return at if now is None else to_epoch_seconds(now)

    monkeypatch.setattr(leadscore.model.features, "to_epoch_seconds", pinned)

    assert main(["score", "--model", str(model_dir), "--data", str(data),
                 "--out", str(tmp_path / "scores.csv")]) == 0
    cli = matrices.pop()

    model = load(model_dir)
    wanted = [*model.properties, "dpdp_consent_purposes"]
    batch_read = [{p: (c.get(p) or None) for p in wanted} for c in contacts]
    lambda_results = model.score_many(batch_read, with_reasons=True)
    lambda_path = matrices.pop()

    api_answers = [
        score_one(request_properties(
            json.loads(json.dumps({"properties": {k: _as_json_value(v) for k, v in c.items()}})),
            wanted), model, "dpdp_consent_purposes")
        for c in contacts
    ]
    api_path = np.vstack(matrices)
    scored = [a["scored"] for a in api_answers]
    assert sum(scored) > 0.5 * len(contacts)  # those without lead_scoring consent are not
    np.testing.assert_array_equal(cli, trained)
    np.testing.assert_array_equal(lambda_path, trained)
    np.testing.assert_array_equal(api_path, trained[np.flatnonzero(scored)])
    assert [a["score"] for a in api_answers if a["scored"]] == [
        r.score for r, ok in zip(lambda_results, scored, strict=True) if ok]


def test_reasons_are_words_a_rep_understands(model, contacts):
    # Property ids that are not also plain English words ("email", "country").
    identifiers = ({f.name for f in model.schema.features} | set(model.properties)) - {
        "email", "country"}
    results = model.score_many(contacts, now=NOW)
    assert sum(bool(r.reasons) for r in results) > 0.9 * len(results)
    for result in results:
        assert len(result.reasons) <= 5
        signs = [reason[-3:] for reason in result.reasons]
        assert all(sign in ("(+)", "(−)") for sign in signs)
        # What explains the score's direction first, then the other side (test_reasons.py).
        leading = "(−)" if result.score < 50 else "(+)"
        assert signs == sorted(signs, key=lambda s: s != leading)
        for reason in result.reasons:
            assert "_" not in reason and not any(i in reason for i in identifiers)
    phrases = {reason for r in results for reason in r.reasons}
    assert any(p.startswith("Visited ") for p in phrases)
    assert {"Free-mail address (−)", "Business email domain (+)"} & phrases


def test_missing_and_broken_values_score_without_crashing(model):
    for properties in (
        {},
        {"email": None, "jobtitle": None},
        {"hs_analytics_num_visits": "lots", "hs_analytics_last_visit_timestamp": "soon",
         "email": "nope", "hs_email_optout": "maybe", "jobtitle": "Chief Vibes Officer",
         "numemployees": 12, "country": ""},
    ):
        result = model.score(properties)
        assert isinstance(result, ScoreResult)
        assert 0 <= result.score <= 100 and 0 < result.probability < 1
    # A job title never seen in training is the model's unknown category, not a crash.
    jobtitle = model.schema.names.index("jobtitle")
    row = model.vectorize({"jobtitle": "Chief Vibes Officer"}, now=NOW)
    assert row[jobtitle] == model.schema.features[jobtitle].other_code


def test_probability_rises_with_score(model, contacts):
    results = sorted(model.score_many(contacts, with_reasons=False, now=NOW),
                     key=lambda r: (r.score, r.probability))
    assert [r.probability for r in results] == sorted(r.probability for r in results)
    grid = np.linspace(-8, 8, 400)
    assert np.all(np.diff(model._calibration(grid)) > 0)
    assert np.all(np.diff(model._scale(grid)) >= 0)


def _copy_model(tmp_path: Path) -> Path:
    return Path(shutil.copytree(DEFAULT_MODEL, tmp_path / "model"))


def test_config_changed_after_training_is_refused(tmp_path):
    model_dir = _copy_model(tmp_path)
    toml = model_dir / "features.toml"
    toml.write_text(toml.read_text().replace(', "numemployees"', ""))
    with pytest.raises(ValueError, match=r"does not match its features\.toml"):
        load(model_dir)


def test_tampered_schema_is_refused(tmp_path):
    model_dir = _copy_model(tmp_path)
    metadata = json.loads((model_dir / "metadata.json").read_text())
    metadata["schema"]["features"][2]["vocabulary"].reverse()
    (model_dir / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(ValueError, match="schema hash mismatch"):
        load(model_dir)


def test_swapped_model_file_is_refused(tmp_path):
    model_dir = _copy_model(tmp_path)
    text = (model_dir / "model.txt").read_text()
    (model_dir / "model.txt").write_text(text + "\n")
    with pytest.raises(ValueError, match=r"does not match metadata\.json"):
        load(model_dir)
    (model_dir / "model.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"model\.txt is missing"):
        load(model_dir)


def test_tiers_from_config_and_argument_override(tmp_path, contacts):
    model_dir = _copy_model(tmp_path)
    with (model_dir / "features.toml").open("a") as handle:
        handle.write("\n[tiers]\nhot = 60\nwarm = 40\n")
    tuned = load(model_dir)
    assert tuned.tiers.model_dump() == {"hot": 60, "warm": 40, "cold": 20}
    results = tuned.score_many(contacts, with_reasons=False, now=NOW)
    assert all((r.tier == "hot") == (r.score >= 60) for r in results)
    assert all((r.tier == "warm") == (40 <= r.score < 60) for r in results)
    assert all((r.tier == "disqualified") == (r.score < 20) for r in results)
    assert {"hot", "warm", "cold", "disqualified"} == {r.tier for r in results}

    explicit = load(model_dir, tiers={"hot": 95, "warm": 80, "cold": 5})
    assert explicit.tiers.model_dump() == {"hot": 95, "warm": 80, "cold": 5}
    with pytest.raises(ValueError, match="cold <= warm <= hot"):
        load(model_dir, tiers={"hot": 10, "warm": 80})


def test_score_csv(tmp_path, contacts):
    data = tmp_path / "contacts.csv"
    with data.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(contacts[0]))
        writer.writeheader()
        writer.writerows(contacts[:25])
    out = tmp_path / "out" / "scores.csv"
    assert score_csv(DEFAULT_MODEL, data, out) == 25
    with out.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["id", "score", "probability", "tier", "reasons"]
    assert [r["id"] for r in rows] == [c["hs_object_id"] for c in contacts[:25]]
    assert all(0 <= int(r["score"]) <= 100 and r["tier"] for r in rows)

    with data.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[k for k in contacts[0] if k != "country"],
                                extrasaction="ignore")
        writer.writeheader()
        writer.writerows(contacts[:5])
    with pytest.raises(ValueError, match=r"'country' \(features\.categorical"):
        score_csv(DEFAULT_MODEL, data, out)


def test_concurrent_scoring_is_consistent(model, contacts):
    expected = [model.score(c, now=NOW) for c in contacts[:100]]
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(lambda c: model.score(c, now=NOW), contacts[:100]))
    assert got == expected


def test_runtime_import_stays_light():
    """The Lambda path must not drag in the lightgbm package, scipy, sklearn or pandas."""
    code = (
        "import sys, leadscore.model as m\n"
        f"m.load({str(DEFAULT_MODEL)!r}).score({{'jobtitle': 'CEO'}})\n"
        "print(sorted({k.split('.')[0] for k in sys.modules} & "
        "{'lightgbm', 'scipy', 'sklearn', 'pandas'}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
