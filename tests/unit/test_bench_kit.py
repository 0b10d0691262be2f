"""infra/bench's shared pieces: percentiles, the table, the JSON, and run_all's step handling
(a failing or missing step is a failed row, the others still run)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "infra" / "bench"
sys.path.insert(0, str(BENCH))

import benchkit  # noqa: E402
import run_all  # noqa: E402


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert benchkit.percentile(values, 50) == 50
    assert benchkit.percentile(values, 99) == 99
    assert benchkit.percentile([3.0], 95) == 3.0
    assert benchkit.percentile([], 50) != benchkit.percentile([], 50)  # NaN


def test_markdown_marks_misses_and_formats_numbers():
    table = benchkit.markdown([
        benchkit.Row("s", "fast", 1234.5, "ms", "≤ 2,000 ms", True),
        benchkit.Row("s", "lost", 2, "", "0", False),
        benchkit.Row("s", "note", "text"),
    ])
    assert "| fast | 1,234.5 ms | ≤ 2,000 ms | yes |" in table
    assert "| lost | 2  | 0 | **no** |" in table
    assert "| note | text  |  |  |" in table


def test_written_figures_round_trip_into_run_all_rows(tmp_path):
    rows = [benchkit.Row("load", "offered rate", 50.1, "events/s", key="offered"),
            benchkit.Row("load", "events lost", 0, "", "0", True, key="lost")]
    out = tmp_path / "f.json"
    benchkit.write_figures(out, rows, 12.34)
    data = json.loads(out.read_text())
    assert data["figures"] == {"offered": 50.1, "lost": 0}
    assert data["targets"] == {"lost": "0"}
    assert [benchkit.Row(**row) for row in data["rows"]] == rows
    assert benchkit.exit_status(rows) == 0
    assert benchkit.exit_status([*rows, benchkit.Row("x", "y", 1, met=False)]) == 1


def test_a_missing_script_fails_its_step_and_the_run(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(run_all, "STEPS", {
        "gone": run_all.script_rows("infra/bench/no_such_bench.py", timeout=5),
        "fine": lambda: [benchkit.Row("fine", "figure", 1)],
    })
    out = tmp_path / "bench.json"
    monkeypatch.setattr(sys, "argv", ["run_all.py", "--out", str(out)])
    assert run_all.main() == 1
    rows = json.loads(out.read_text())["rows"]
    assert [(row["step"], row["met"]) for row in rows] == [("gone", False), ("fine", None)]
    assert "no_such_bench.py is missing" in rows[0]["figure"]
    assert "| figure | 1  |" in capsys.readouterr().out

