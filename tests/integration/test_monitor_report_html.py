"""The monitoring report opens in a real browser (Debian's headless Chromium), offline, with its
six charts drawn — with figures, and with none (a model without reference, no leads), where
each chart says why instead of drawing nothing.

Without Chromium the tests skip, except under CI (`CI` set), where they fail.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from test_backtest_report import CHROMIUM_FLAGS, MEASURE, _chromium

from leadscore.cli.monitor_report import REPORT_HTML, write
from leadscore.cli.synthetic import generate_contacts
from leadscore.model import load
from leadscore.monitoring.monitor import measure
from leadscore.monitoring.snapshots import parse_items
from leadscore.timestamps import iso_millis
from leadscore_local.snapshot_seed import as_of, never_seen, snapshot_items, spread

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
MODEL_DIR = ROOT / "layers/model/model"
NOW = datetime(2026, 3, 1, 6, 0, tzinfo=UTC)
CHARTS = ["chart-feature-drift", "chart-score-distribution", "chart-tier-conversion",
          "chart-auc-trend", "chart-conversion-trend", "chart-shadow"]


class Items:
    def __init__(self, items):
        self.items = items

    def snapshots(self, scored_from, scored_to):
        start, end = iso_millis(scored_from), iso_millis(scored_to)
        return parse_items(i for i in self.items if start <= i["scored_at"] < end)


def stored_leads(model) -> list[dict]:
    pool = generate_contacts(4000, seed=41, now=NOW)
    items = []
    for n, start, end, seed, shifted in ((300, NOW - timedelta(days=7), NOW, 1, True),
                                         (1500, NOW - timedelta(days=150),
                                          NOW - timedelta(days=7), 2, False)):
        contacts = random.Random(seed).sample(pool, n)
        contacts = never_seen(contacts, seed) if shifted else contacts
        times = spread(n, start, end, seed)
        contacts = [dict(c, hs_object_id=f"{seed}-{i}")
                    for i, c in enumerate(as_of(model, contacts, NOW, times))]
        items += snapshot_items(model, contacts, times, portal_id=7, now=NOW, seed=seed)
    rng = random.Random(3)
    for item in items[::2]:
        item |= {"shadow_version": "challenger-1", "shadow_score": item["score"],
                 "shadow_probability": min(1.0, float(item["probability"]) * rng.uniform(0.5, 2)),
                 "shadow_tier": item["tier"]}
    return items


@pytest.fixture(scope="module")
def chromium(tmp_path_factory):
    binary = _chromium()
    profile = tmp_path_factory.mktemp("chromium-profile")

    def run(url: str, *extra: str) -> str:
        import subprocess

        completed = subprocess.run(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, url],
            capture_output=True, text=True, timeout=120, check=False)
        assert completed.returncode == 0, completed.stderr[-2000:]
        return completed.stdout

    return run


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("monitor-reports")
    model = load(MODEL_DIR)
    full = measure(model, Items(stored_leads(model)), NOW)
    write(full, work / "full")
    # a model trained before references, and no stored lead at all
    old = work / "old-model"
    shutil.copytree(MODEL_DIR, old)
    metadata = json.loads((old / "metadata.json").read_text())
    del metadata["reference"]
    (old / "metadata.json").write_text(json.dumps(metadata))
    write(measure(load(old), Items([]), NOW), work / "empty")
    return {"full": work / "full" / REPORT_HTML, "empty": work / "empty" / REPORT_HTML}


def measured(chromium, page: Path, tmp_path: Path) -> dict:
    harness = tmp_path / f"measure-{page.parent.name}.html"
    harness.write_text(page.read_text(encoding="utf-8").replace("</body>", MEASURE + "</body>"),
                       encoding="utf-8")
    dom = chromium(harness.as_uri(), "--dump-dom")
    found = re.search(r'<pre id="measured">(.*?)</pre>', dom, flags=re.S)
    assert found, "the measuring script did not run"
    return json.loads(found.group(1).replace("&quot;", '"'))


def test_every_chart_is_laid_out_and_drawn(chromium, reports, tmp_path):
    figures = measured(chromium, reports["full"], tmp_path)
    assert list(figures) == CHARTS
    for chart_id, drawn in figures.items():
        assert drawn["width"] > 300 and drawn["height"] > 150, chart_id
        assert drawn["marks"] >= 4 and drawn["texts"] >= 5, (chart_id, drawn)


def test_without_figures_every_chart_says_why(chromium, reports, tmp_path):
    figures = measured(chromium, reports["empty"], tmp_path)
    assert list(figures) == CHARTS
    dom = chromium(reports["empty"].as_uri(), "--dump-dom")
    assert "no training reference" in dom
    assert "no week whose outcome windows have all closed yet" in dom
    for chart_id, drawn in figures.items():
        assert drawn["width"] > 300 and drawn["texts"] >= 2, (chart_id, drawn)


def test_screenshot_is_not_blank(chromium, reports, tmp_path):
    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body></body></html>", encoding="utf-8")
    size = "--window-size=1200,1600"
    chromium(blank.as_uri(), size, f"--screenshot={tmp_path / 'blank.png'}")
    chromium(reports["full"].as_uri(), size, f"--screenshot={tmp_path / 'report.png'}")
    report = (tmp_path / "report.png").read_bytes()
    assert report[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(report) > 10 * (tmp_path / "blank.png").stat().st_size
