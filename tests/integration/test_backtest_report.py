"""The backtest report opens in a real browser (Debian's headless Chromium) with its four
charts drawn, offline.

Without Chromium the tests skip, except under CI (`CI` set), where they fail: CI installs
the `chromium` package.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from leadscore.cli.csv_files import backtest_csv
from leadscore.cli.synthetic import generate_contacts
from leadscore.model.backtest import REPORT_HTML

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MODEL = ROOT / "layers/model/model"
CHART_IDS = ["chart-decile-lift", "chart-cumulative-gains", "chart-calibration", "chart-tiers"]
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    "--disable-default-apps", "--mute-audio", "--hide-scrollbars",
]

# Appended to a *copy* of the report (the report itself has no script): measures what the
# layout engine drew for every chart and writes it into the DOM for --dump-dom.
MEASURE = """
<script>
const out = {};
for (const svg of document.querySelectorAll("svg.chart")) {
  const box = svg.getBoundingClientRect();
  const marks = [...svg.querySelectorAll("path, rect, circle")].filter((el) => {
    const b = el.getBBox();
    return b.width > 0 || b.height > 0;
  });
  out[svg.id] = {width: box.width, height: box.height, marks: marks.length,
                 texts: svg.querySelectorAll("text").length};
}
const pre = document.createElement("pre");
pre.id = "measured";
pre.textContent = JSON.stringify(out);
document.body.appendChild(pre);
</script>
"""


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists()
                                      else None)
        if path:
            return path
    message = "headless Chromium not found (Debian package `chromium`)"
    if os.environ.get("CI"):
        pytest.fail(message + ": CI must install it")
    pytest.skip(message)


@pytest.fixture(scope="module")
def chromium(tmp_path_factory):
    binary = _chromium()
    profile = tmp_path_factory.mktemp("chromium-profile")

    def run(url: str, *extra: str) -> str:
        completed = subprocess.run(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, url],
            capture_output=True, text=True, timeout=120, check=False,
        )
        assert completed.returncode == 0, completed.stderr[-2000:]
        return completed.stdout

    return run


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("browser-backtest")
    contacts = generate_contacts(3000, seed=2024)
    data = work / "holdout.csv"
    with data.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(contacts[0]))
        writer.writeheader()
        writer.writerows(contacts)
    backtest_csv(DEFAULT_MODEL, data, work / "report", echo=lambda _: None)
    return work / "report"


def test_dom_has_the_four_charts(chromium, report_dir):
    dom = chromium((report_dir / REPORT_HTML).as_uri(), "--dump-dom")
    assert re.findall(r'<svg id="([^"]+)"', dom) == CHART_IDS
    for chart in re.findall(r"<svg .*?</svg>", dom, flags=re.S):
        assert chart.count("<path") + chart.count("<rect") + chart.count("<circle") >= 4


def test_charts_are_laid_out_and_drawn(chromium, report_dir, tmp_path):
    page = (report_dir / REPORT_HTML).read_text(encoding="utf-8")
    harness = tmp_path / "measure.html"
    harness.write_text(page.replace("</body>", MEASURE + "</body>"), encoding="utf-8")
    dom = chromium(harness.as_uri(), "--dump-dom")
    found = re.search(r'<pre id="measured">(.*?)</pre>', dom, flags=re.S)
    assert found, "the measuring script did not run"
    measured = json.loads(found.group(1).replace("&quot;", '"'))
    assert list(measured) == CHART_IDS
    for chart_id, figures in measured.items():
        assert figures["width"] > 300 and figures["height"] > 150, chart_id
        assert figures["marks"] >= 4 and figures["texts"] >= 5, (chart_id, figures)


def test_screenshot_is_not_blank(chromium, report_dir, tmp_path):
    """A screenshot of the report is far richer than one of an empty page (PNG size as a
    decoder-free proxy for drawn content). The file is kept for a human look at
    `<tmp>/report.png`."""
    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body></body></html>", encoding="utf-8")
    size = "--window-size=1200,1400"
    chromium(blank.as_uri(), size, f"--screenshot={tmp_path / 'blank.png'}")
    chromium((report_dir / REPORT_HTML).as_uri(), size, f"--screenshot={tmp_path / 'report.png'}")
    blank_bytes = (tmp_path / "blank.png").stat().st_size
    report_bytes = (tmp_path / "report.png").stat().st_size
    assert (tmp_path / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report_bytes > 10 * blank_bytes, (report_bytes, blank_bytes)
