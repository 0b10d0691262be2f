"""The backtest report as one self-contained HTML page: inline CSS and SVG charts (decile lift,
cumulative gains, calibration, conversion by tier), no script and no network access, so it
opens offline. The figures come from `leadscore.model.backtest`.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence

_W, _H = 560, 320
_PAD = {"left": 56, "right": 16, "top": 36, "bottom": 48}
_INK, _GRID, _MODEL, _MUTED, _GOOD = "#1f2933", "#d9dee3", "#1565c0", "#9aa5b1", "#2e7d32"
_TIER_COLOURS = {"hot": "#c62828", "warm": "#ef6c00", "cold": "#1565c0", "disqualified": "#78909c"}


def _n(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


class _Plot:
    """A chart area with linear axes: maps data to SVG coordinates and collects elements."""

    def __init__(self, chart_id: str, title: str, x_max: float, y_max: float) -> None:
        self.chart_id, self.title = chart_id, title
        self.x_max, self.y_max = x_max or 1.0, y_max or 1.0
        self.left, self.top = _PAD["left"], _PAD["top"]
        self.width = _W - _PAD["left"] - _PAD["right"]
        self.height = _H - _PAD["top"] - _PAD["bottom"]
        self.parts: list[str] = []

    def x(self, value: float) -> float:
        return self.left + self.width * value / self.x_max

    def y(self, value: float) -> float:
        return self.top + self.height * (1 - value / self.y_max)

    def text(self, x: float, y: float, text: str, *, anchor: str = "middle", size: int = 11,
             colour: str = _INK, weight: str = "normal") -> None:
        self.parts.append(
            f'<text x="{_n(x)}" y="{_n(y)}" text-anchor="{anchor}" font-size="{size}" '
            f'fill="{colour}" font-weight="{weight}">{html.escape(text)}</text>')

    def y_axis(self, ticks: Sequence[float], label: Callable[[float], str], title: str) -> None:
        for tick in ticks:
            y = self.y(tick)
            self.parts.append(f'<line x1="{self.left}" y1="{_n(y)}" x2="{self.left + self.width}"'
                              f' y2="{_n(y)}" stroke="{_GRID}" stroke-width="1"/>')
            self.text(self.left - 6, y + 4, label(tick), anchor="end", size=10)
        mid = self.top + self.height / 2
        self.parts.append(
            f'<text x="14" y="{_n(mid)}" text-anchor="middle" font-size="11" fill="{_INK}" '
            f'transform="rotate(-90 14 {_n(mid)})">{html.escape(title)}</text>')

    def x_axis(self, ticks: Sequence[tuple[float, str]], title: str) -> None:
        base = self.top + self.height
        self.parts.append(f'<line x1="{self.left}" y1="{_n(base)}" x2="{self.left + self.width}" '
                          f'y2="{_n(base)}" stroke="{_INK}" stroke-width="1"/>')
        for value, label in ticks:
            self.text(self.x(value), base + 16, label, size=10)
        self.text(self.left + self.width / 2, _H - 8, title)

    def path(self, points: Sequence[tuple[float, float]], colour: str, *, width: float = 2.0,
             dash: str | None = None, label: str = "") -> None:
        d = " ".join(f"{'M' if i == 0 else 'L'}{_n(self.x(px))},{_n(self.y(py))}"
                     for i, (px, py) in enumerate(points))
        extra = f' stroke-dasharray="{dash}"' if dash else ""
        self.parts.append(f'<path d="{d}" fill="none" stroke="{colour}" stroke-width="{width}"'
                          f'{extra} data-series="{html.escape(label)}"/>')

    def rect(self, x0: float, x1: float, value: float, colour: str, tip: str) -> None:
        top, bottom = self.y(max(value, 0.0)), self.y(0.0)
        self.parts.append(
            f'<rect x="{_n(self.x(x0))}" y="{_n(top)}" width="{_n(self.x(x1) - self.x(x0))}" '
            f'height="{_n(max(bottom - top, 0.0))}" fill="{colour}"><title>{html.escape(tip)}'
            f'</title></rect>')

    def dot(self, px: float, py: float, colour: str, tip: str) -> None:
        self.parts.append(f'<circle cx="{_n(self.x(px))}" cy="{_n(self.y(py))}" r="4" '
                          f'fill="{colour}"><title>{html.escape(tip)}</title></circle>')

    def legend(self, entries: Sequence[tuple[str, str, str | None]]) -> None:
        x = self.left + 8
        for label, colour, dash in entries:
            extra = f' stroke-dasharray="{dash}"' if dash else ""
            self.parts.append(f'<line x1="{x}" y1="{self.top + 8}" x2="{x + 18}" '
                              f'y2="{self.top + 8}" stroke="{colour}" stroke-width="2"{extra}/>')
            self.text(x + 22, self.top + 12, label, anchor="start", size=10)
            x += 30 + 6.2 * len(label)

    def svg(self) -> str:
        title = html.escape(self.title)
        return (
            f'<svg id="{self.chart_id}" class="chart" xmlns="http://www.w3.org/2000/svg" '
            f'viewBox="0 0 {_W} {_H}" width="{_W}" height="{_H}" role="img" '
            f'aria-label="{title}"><title>{title}</title>'
            f'<rect x="0" y="0" width="{_W}" height="{_H}" fill="#ffffff"/>'
            f'<text x="{_W / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold" '
            f'fill="{_INK}">{title}</text>' + "".join(self.parts) + "</svg>"
        )


def _nice_max(value: float) -> float:
    """A round axis maximum at or above `value`."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude


def _ticks(top: float) -> list[float]:
    """0..top in 3 to 8 steps of a round size (1, 2, 5 or else 2.5 times a power of ten)."""
    for mantissa in (1.0, 2.0, 5.0, 2.5):
        for count in (5, 4, 6, 3, 8, 7):
            step = top / count
            if math.isclose(step / 10 ** math.floor(math.log10(step)), mantissa):
                return [top * i / count for i in range(count + 1)]
    return [top * i / 5 for i in range(6)]


def _percent(value: float) -> str:
    return f"{100 * value:.2f}".rstrip("0").rstrip(".") + "%"


def decile_lift_chart(report: dict) -> str:
    deciles = report["deciles"]
    top = _nice_max(max([row["lift"] for row in deciles] + [1.0]) * 1.05)
    plot = _Plot("chart-decile-lift", "Lift by decile (1 = best-ranked 10 %)", 10, top)
    plot.y_axis(_ticks(top), lambda v: f"{v:.1f}×", "lift over base rate")
    for row in deciles:
        d = row["decile"]
        plot.rect(d - 1 + 0.12, d - 0.12, row["lift"], _MODEL if row["lift"] >= 1 else _MUTED,
                  f"decile {d}: lift {row['lift']:.2f}, {100 * row['conversion_rate']:.1f}% "
                  f"convert ({row['conversions']} of {row['leads']})")
        plot.text(plot.x(d - 0.5), plot.y(row["lift"]) - 4, f"{row['lift']:.1f}", size=10)
    plot.path([(0, 1.0), (10, 1.0)], _INK, width=1, dash="4 3", label="random")
    plot.x_axis([(d - 0.5, str(d)) for d in range(1, 11)], "decile of leads ranked by score")
    return plot.svg()


def cumulative_gains_chart(report: dict) -> str:
    gains = report["cumulative_gains"]
    plot = _Plot("chart-cumulative-gains", "Cumulative gains", 1.0, 1.0)
    plot.y_axis(_ticks(1.0), _percent, "share of conversions captured")
    base = report["base_rate"] or 1.0
    plot.path([(0, 0), (min(base, 1.0), 1.0), (1.0, 1.0)], _GOOD, width=1.5, dash="2 3",
              label="perfect")
    plot.path([(0, 0), (1, 1)], _INK, width=1, dash="4 3", label="random")
    plot.path([(g["leads_share"], g["conversions_share"]) for g in gains], _MODEL, label="model")
    top20 = report["top_two_deciles_capture"]
    plot.dot(0.2, top20, _MODEL, f"top 20% of leads: {100 * top20:.0f}% of conversions")
    plot.text(plot.x(0.2) + 8, plot.y(top20) + 14, f"top 20% → {100 * top20:.0f}%", anchor="start")
    plot.legend([("model", _MODEL, None), ("random", _INK, "4 3"), ("perfect", _GOOD, "2 3")])
    plot.x_axis([(v, _percent(v)) for v in _ticks(1.0)], "share of leads worked, best first")
    return plot.svg()


def calibration_chart(report: dict) -> str:
    bins = report["calibration"]["bins"]
    top = _nice_max(max([b["observed_rate"] for b in bins] + [b["mean_predicted"] for b in bins]
                        + [0.01]) * 1.05)
    top = min(top, 1.0)
    plot = _Plot("chart-calibration", "Calibration: predicted vs observed conversion", top, top)
    plot.y_axis(_ticks(top), _percent, "observed conversion rate")
    plot.path([(0, 0), (top, top)], _INK, width=1, dash="4 3", label="perfect calibration")
    plot.path([(b["mean_predicted"], b["observed_rate"]) for b in bins], _MODEL, width=1.5,
              label="model")
    for b in bins:
        plot.dot(b["mean_predicted"], b["observed_rate"], _MODEL,
                 f"{b['leads']} leads: predicted {100 * b['mean_predicted']:.1f}%, observed "
                 f"{100 * b['observed_rate']:.1f}%")
    plot.legend([("model (10 equal-sized bins)", _MODEL, None),
                 ("perfect calibration", _INK, "4 3")])
    plot.x_axis([(v, _percent(v)) for v in _ticks(top)], "mean predicted probability")
    return plot.svg()


def tier_chart(report: dict) -> str:
    tiers = report["tiers"]
    top = _nice_max(max([t["conversion_rate"] for t in tiers] + [report["base_rate"], 0.01])
                    * 1.1)
    plot = _Plot("chart-tiers", "Conversion rate by tier", len(tiers), top)
    plot.y_axis(_ticks(top), _percent, "conversion rate")
    for i, row in enumerate(tiers):
        plot.rect(i + 0.2, i + 0.8, row["conversion_rate"], _TIER_COLOURS[row["tier"]],
                  f"{row['tier']}: {row['leads']} leads, {100 * row['conversion_rate']:.1f}% "
                  f"convert, lift {row['lift']:.2f}")
        plot.text(plot.x(i + 0.5), plot.y(row["conversion_rate"]) - 4,
                  f"{100 * row['conversion_rate']:.1f}%", size=10)
    plot.path([(0, report["base_rate"]), (len(tiers), report["base_rate"])], _INK, width=1,
              dash="4 3", label="base rate")
    plot.text(plot.x(len(tiers)) - 4, plot.y(report["base_rate"]) - 4,
              f"all leads {100 * report['base_rate']:.1f}%", anchor="end", size=10)
    plot.x_axis([(i + 0.5, f"{row['tier']} ({100 * row['share']:.0f}%)")
                 for i, row in enumerate(tiers)], "tier (share of leads)")
    return plot.svg()


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _pct(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{100 * value:.{digits}f}%"


_CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, "Noto Sans", Arial, sans-serif;
       color: #1f2933; margin: 24px auto; max-width: 1180px; padding: 0 16px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px; }
.meta { color: #52606d; font-size: 13px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 16px 0; }
.card { border: 1px solid #d9dee3; border-radius: 6px; padding: 10px 14px; min-width: 150px; }
.card .v { font-size: 22px; font-weight: bold; } .card .k { font-size: 12px; color: #52606d; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(560px, 1fr));
          gap: 16px; }
.chart { border: 1px solid #d9dee3; border-radius: 6px; max-width: 100%; height: auto; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { border-bottom: 1px solid #e4e7eb; padding: 4px 10px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
p.note { font-size: 13px; color: #52606d; max-width: 900px; }
"""


def render_html(report: dict) -> str:
    """The report as one self-contained HTML page (inline CSS and SVG, no script)."""
    model, data = report["model"], report["data"]
    auc = "n/a" if report["auc"] is None else f"{report['auc']:.3f}"
    cards = [
        ("AUC", auc),
        ("Brier score", f"{report['brier']:.4f} (base rate {report['brier_base_rate']:.4f})"),
        ("top 20 % of leads hold", f"{_pct(report['top_two_deciles_capture'], 0)} of conversions"),
        ("leads / converted", f"{report['rows']:,} / {report['conversions']:,} "
                              f"({_pct(report['base_rate'])})"),
        ("calibration error (ECE)", _pct(report["calibration"]["expected_calibration_error"], 2)),
    ]
    card_html = "".join(f'<div class="card"><div class="k">{html.escape(k)}</div>'
                        f'<div class="v">{html.escape(v)}</div></div>' for k, v in cards)
    precision = _table(
        ["top leads", "leads", "converted", "precision", "lift"],
        [[p["k"], p["leads"], p["conversions"], _pct(p["precision"]), f"{p['lift']:.2f}"]
         for p in report["precision_at_k"]])
    tiers = _table(
        ["tier", "min score", "leads", "share", "converted", "conversion", "lift",
         "share of conversions"],
        [[t["tier"], t["min_score"], t["leads"], _pct(t["share"]), t["conversions"],
          _pct(t["conversion_rate"]), f"{t['lift']:.2f}", _pct(t["capture"])]
         for t in report["tiers"]])
    deciles = _table(
        ["decile", "leads", "converted", "conversion", "lift", "cumulative capture"],
        [[d["decile"], d["leads"], d["conversions"], _pct(d["conversion_rate"]),
          f"{d['lift']:.2f}", _pct(d["cumulative_capture"])] for d in report["deciles"]])
    calibration = _table(
        ["bin", "leads", "predicted", "observed", "predicted range"],
        [[i + 1, b["leads"], _pct(b["mean_predicted"]), _pct(b["observed_rate"]),
          f"{_pct(b['min_predicted'])} – {_pct(b['max_predicted'])}"]
         for i, b in enumerate(report["calibration"]["bins"])])
    label = data["label"]
    charts = "".join(chart(report) for chart in (
        decile_lift_chart, cumulative_gains_chart, calibration_chart, tier_chart))
    title = f"Backtest of model {model['version']} on {data['file']}"
    trained_rows = f"{model['training_rows']:,}" if model["training_rows"] else "n/a"
    trained_auc = f"{model['training_auc']:.3f}" if model["training_auc"] is not None else "n/a"
    reference = (f"; datetime ages measured from {html.escape(data['reference_time'])}."
                 if data["reference_time"] else ".")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title><style>{_CSS}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p class="meta">Converted = <code>{html.escape(label['column'])}</code> in
{html.escape(', '.join(label['positive']))}. Model trained on
{html.escape(str(model['trained_on']))} ({trained_rows} rows, AUC {trained_auc} on its
held-back validation split). Data sha256 {html.escape(data['sha256'][:16])}…{reference}</p>
<div class="cards">{card_html}</div>
<div class="charts">{charts}</div>
<h2>Precision at k</h2>
<p class="note">Conversion rate among the best-ranked leads: what a rep working the list
from the top would see. Lift = that rate divided by the base rate.</p>
{precision}
<h2>Tiers</h2>
<p class="note">Tier thresholds on the 0–100 score: hot ≥ {model['tiers']['hot']},
warm ≥ {model['tiers']['warm']}, cold ≥ {model['tiers']['cold']}, disqualified below.</p>
{tiers}
<h2>Deciles</h2>
{deciles}
<h2>Calibration</h2>
<p class="note">Leads sorted by predicted probability into ten equal-sized bins: a
well-calibrated model has observed ≈ predicted in every bin.</p>
{calibration}
</body></html>
"""
