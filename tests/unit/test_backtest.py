"""Backtest: the figures, the report files and the `leadscore backtest` command."""

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss, roc_auc_score

from leadscore.cli import main
from leadscore.cli.csv_files import backtest_csv
from leadscore.cli.synthetic import generate_contacts
from leadscore.model import Tiers
from leadscore.model.backtest import REPORT_HTML, REPORT_JSON, evaluate, roc_auc

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MODEL = ROOT / "layers/model/model"
TIERS = Tiers(hot=90, warm=70, cold=20)
CHART_IDS = ["chart-decile-lift", "chart-cumulative-gains", "chart-calibration", "chart-tiers"]


@pytest.fixture(scope="module")
def holdout(tmp_path_factory) -> Path:
    contacts = generate_contacts(2000, seed=77)
    path = tmp_path_factory.mktemp("backtest") / "holdout.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(contacts[0]))
        writer.writeheader()
        writer.writerows(contacts)
    return path


@pytest.fixture(scope="module")
def report(holdout, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    lines: list[str] = []
    figures = backtest_csv(DEFAULT_MODEL, holdout, out, echo=lines.append)
    return figures, lines, out


def test_roc_auc_matches_sklearn():
    rng = np.random.default_rng(0)
    labels = (rng.random(500) < 0.2).astype(int)
    scores = np.round(rng.normal(labels, 1.0), 1)  # with ties
    assert roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert np.isnan(roc_auc(np.zeros(5), np.arange(5.0)))


def test_figures_on_a_known_ranking():
    # 1,000 leads, probability = rank; the best 100 all converted, 50 more among the rest.
    n = 1000
    probability = np.linspace(0.99, 0.0, n)
    labels = np.zeros(n, dtype=int)
    labels[:100] = 1
    labels[500:550] = 1
    scores = np.round(100 * probability).astype(int)
    figures = evaluate(labels, probability, scores, TIERS)

    assert figures["rows"] == n and figures["conversions"] == 150 and figures["base_rate"] == 0.15
    assert figures["auc"] == pytest.approx(roc_auc_score(labels, probability), abs=1e-4)
    assert figures["brier"] == pytest.approx(brier_score_loss(labels, probability), abs=1e-4)
    precision = {row["k"]: row for row in figures["precision_at_k"]}
    assert list(precision) == ["25", "50", "100", "top 10%", "top 20%"]
    assert precision["100"]["precision"] == 1.0 and precision["top 10%"]["leads"] == 100
    assert precision["top 20%"]["conversions"] == 100
    assert precision["25"]["lift"] == pytest.approx(1 / 0.15, abs=1e-3)
    assert figures["top_two_deciles_capture"] == pytest.approx(100 / 150, abs=1e-4)

    deciles = figures["deciles"]
    assert [d["leads"] for d in deciles] == [100] * 10
    assert [d["conversions"] for d in deciles] == [100, 0, 0, 0, 0, 50, 0, 0, 0, 0]
    assert deciles[-1]["cumulative_capture"] == 1.0
    gains = [g["conversions_share"] for g in figures["cumulative_gains"]]
    assert len(gains) == 101 and gains[0] == 0.0 and gains[-1] == 1.0
    assert gains[10] == pytest.approx(100 / 150, abs=1e-4)
    assert np.all(np.diff(gains) >= 0)

    tiers = {t["tier"]: t for t in figures["tiers"]}
    assert sum(t["leads"] for t in tiers.values()) == n
    assert sum(t["conversions"] for t in tiers.values()) == 150
    assert tiers["hot"]["conversion_rate"] == 1.0 and tiers["hot"]["lift"] > 6

    bins = figures["calibration"]["bins"]
    assert len(bins) == 10 and sum(b["leads"] for b in bins) == n
    assert bins[0]["mean_predicted"] < bins[-1]["mean_predicted"]
    assert 0 <= figures["calibration"]["expected_calibration_error"] <= 1


def test_small_files_still_report():
    figures = evaluate(np.array([1, 0, 0]), np.array([0.9, 0.2, 0.1]), np.array([95, 40, 10]),
                       TIERS)
    assert [row["k"] for row in figures["precision_at_k"]] == ["top 10%", "top 20%"]
    assert figures["auc"] == 1.0 and len(figures["calibration"]["bins"]) == 3
    one_class = evaluate(np.zeros(4, dtype=int), np.full(4, 0.1), np.full(4, 30), TIERS)
    assert one_class["auc"] is None and one_class["top_two_deciles_capture"] == 0.0
    with pytest.raises(ValueError, match="no rows"):
        evaluate(np.array([]), np.array([]), np.array([]), TIERS)


def test_report_files(report):
    figures, lines, out = report
    assert sorted(p.name for p in out.iterdir()) == [REPORT_HTML, REPORT_JSON]
    assert json.loads((out / REPORT_JSON).read_text()) == figures
    assert figures["rows"] == 2000 and 0.7 < figures["auc"] < 0.9
    assert figures["model"]["version"] == json.loads(
        (DEFAULT_MODEL / "metadata.json").read_text())["version"]
    assert figures["data"]["file"] == "holdout.csv"
    assert figures["data"]["reference_time"].startswith("2025-06-30")
    hot = figures["tiers"][0]
    assert hot["tier"] == "hot" and hot["lift"] > 2
    assert any(line.startswith("AUC ") for line in lines)
    assert any(line.startswith("hot: ") for line in lines)


def test_html_is_self_contained_with_four_charts(report):
    _, _, out = report
    page = (out / REPORT_HTML).read_text()
    assert re.findall(r'<svg id="([^"]+)"', page) == CHART_IDS
    for chart in re.findall(r"<svg .*?</svg>", page, flags=re.S):
        marks = sum(chart.count(tag) for tag in ("<path", "<rect", "<circle")) - 1  # background
        assert marks >= 4
    # Offline: no script, no stylesheet or image fetched from anywhere.
    assert "<script" not in page.lower()
    assert not re.search(r"""(?:src|href)\s*=|@import|url\(""", page, flags=re.I)
    assert "https://" not in page and page.count("http://") == page.count(
        'xmlns="http://www.w3.org/2000/svg"')


def test_report_is_deterministic(report, holdout, tmp_path):
    _, _, first = report
    backtest_csv(DEFAULT_MODEL, holdout, tmp_path, echo=lambda _: None)
    for name in (REPORT_JSON, REPORT_HTML):
        assert (tmp_path / name).read_bytes() == (first / name).read_bytes()


def test_cli(holdout, tmp_path, capsys):
    assert main(["backtest", "--model", str(DEFAULT_MODEL), "--data", str(holdout),
                 "--out", str(tmp_path / "cli")]) == 0
    assert "report → " in capsys.readouterr().out
    assert (tmp_path / "cli" / REPORT_HTML).is_file()

    unlabelled = tmp_path / "unlabelled.csv"
    rows = list(csv.DictReader(holdout.open()))
    with unlabelled.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[k for k in rows[0] if k != "lifecyclestage"],
                                extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows[:10])
    assert main(["backtest", "--model", str(DEFAULT_MODEL), "--data", str(unlabelled),
                 "--out", str(tmp_path / "never")]) == 2
    assert "'lifecyclestage' (label.column" in capsys.readouterr().err
    assert not (tmp_path / "never").exists()
