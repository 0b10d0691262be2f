"""The monitoring report as one self-contained HTML page: inline CSS and SVG charts (drift per
feature, score distribution then vs now, tier conversion promised vs realised, realised AUC and
conversion rate by week, champion vs shadow challenger), no script and no network access, so
it opens offline. The figures are a `MonitorResult` (`leadscore.monitoring.monitor`); a chart
without figures says why instead of drawing nothing.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from leadscore.model.backtest_html import _CSS, _nice_max, _Plot, _table, _ticks
from leadscore.monitoring.drift import DRIFT_THRESHOLD, WindowDrift
from leadscore.monitoring.monitor import MonitorResult

_TRAINING, _RECENT, _OLDER, _BAD, _INK = "#9aa5b1", "#1565c0", "#7e57c2", "#c62828", "#1f2933"
REPORT_CSS = _CSS + ".problem { color: #c62828; } .chart-note { font-size: 12px; }\n"


def _pct(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{100 * value:.{digits}f}%"


def _num(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _empty(chart_id: str, title: str, why: str) -> str:
    plot = _Plot(chart_id, title, 1, 1)
    plot.text(plot.left + plot.width / 2, plot.top + plot.height / 2, why, size=12)
    return plot.svg()


def _grouped_bars(chart_id: str, title: str, labels: Sequence[str],
                  series: Sequence[tuple[str, str, Sequence[float | None]]], *,
                  y_title: str, percent: bool, line: tuple[str, float] | None = None,
                  slanted: bool = False) -> str:
    """Bars per label, one per series (name, colour, values); an optional dashed line."""
    values = [v for _, _, vs in series for v in vs if v is not None]
    top = _nice_max(max([*values, line[1] if line else 0.0, 0.01]) * 1.1)
    plot = _Plot(chart_id, title, len(labels), top)
    plot.y_axis(_ticks(top), (lambda v: _pct(v, 0)) if percent else (lambda v: f"{v:.2g}"),
                y_title)
    width = 0.8 / len(series)
    for i, label in enumerate(labels):
        for k, (name, colour, vs) in enumerate(series):
            if vs[i] is not None:
                x0 = i + 0.1 + k * width
                shown = _pct(vs[i]) if percent else f"{vs[i]:.3f}"
                plot.rect(x0, x0 + width * 0.9, vs[i], colour, f"{label} — {name}: {shown}")
    if line:
        plot.path([(0, line[1]), (len(labels), line[1])], _BAD, width=1, dash="4 3",
                  label=line[0])
    plot.legend([(name, colour, None) for name, colour, _ in series]
                + ([(line[0], _BAD, "4 3")] if line else []))
    if slanted:  # long names (features): slanted under their bars
        plot.x_axis([], "")
        base = plot.top + plot.height + 12
        for i, label in enumerate(labels):
            x = plot.x(i + 0.5)
            plot.parts.append(
                f'<text x="{x:.1f}" y="{base:.1f}" text-anchor="end" font-size="9" '
                f'fill="{_INK}" transform="rotate(-20 {x:.1f} {base:.1f})">'
                f"{html.escape(label[:24])}</text>")
    else:
        plot.x_axis([(i + 0.5, label) for i, label in enumerate(labels)], "")
    return plot.svg()


def drift_chart(result: MonitorResult) -> str:
    windows = [w for w in result.drift if w.features]
    title = "Drift per feature (PSI; above the line = shifted)"
    if not windows:
        why = next((w.note for w in result.drift if w.note), "no drift figures")
        return _empty("chart-feature-drift", title, why[:90])
    names = [f.name for f in windows[0].features]
    series = [(f"last {w.days} days ({w.leads:,} leads)", colour,
               [f.psi for f in w.features]) for w, colour in zip(windows, (_RECENT, _OLDER),
                                                                 strict=False)]
    return _grouped_bars("chart-feature-drift", title, names, series, y_title="PSI",
                         percent=False, line=("alarm threshold", DRIFT_THRESHOLD), slanted=True)


def score_chart(result: MonitorResult) -> str:
    window = next((w for w in result.drift if w.score is not None), None)
    title = "Score distribution: training vs recent leads"
    if window is None or window.score is None:
        return _empty("chart-score-distribution", title, "no recent leads to compare")
    bins = window.score.bins
    return _grouped_bars(
        "chart-score-distribution", title, [b.label for b in bins],
        [("training (held-back leads)", _TRAINING, [b.training for b in bins]),
         (f"last {window.days} days", _RECENT, [b.window for b in bins])],
        y_title="share of leads", percent=True)


def tier_chart(result: MonitorResult) -> str:
    accuracy = result.accuracy
    title = "Conversion by tier: promised at training vs realised"
    if accuracy is None or not accuracy.model_leads:
        why = accuracy.note if accuracy and accuracy.note else "no final outcomes yet"
        return _empty("chart-tier-conversion", title, why[:90])
    tiers = accuracy.tiers
    return _grouped_bars(
        "chart-tier-conversion", title, [t.tier for t in tiers],
        [("promised (training)", _TRAINING, [t.promised_rate for t in tiers]),
         ("realised", _RECENT, [t.conversion_rate for t in tiers])],
        y_title="conversion rate", percent=True)


def _trend_chart(result: MonitorResult, chart_id: str, title: str, field: str,
                 reference: float | None, percent: bool) -> str:
    points = [(p.week, getattr(p, field)) for p in result.trend
              if p.window_closed and getattr(p, field) is not None]
    if not points:
        return _empty(chart_id, title, "no week whose outcome windows have all closed yet")
    values = [v for _, v in points] + ([reference] if reference is not None else [])
    top = min(1.0, _nice_max(max(values) * 1.2)) if percent else 1.0  # AUC: 0 to 1
    plot = _Plot(chart_id, title, max(len(points) - 1, 1), top)
    plot.y_axis(_ticks(top), (lambda v: _pct(v, 0)) if percent else (lambda v: f"{v:.1f}"),
                "conversion rate" if percent else "AUC")
    xy = [(i, v) for i, (_, v) in enumerate(points)]
    plot.path(xy, _RECENT, label="realised")
    for (week, value), (x, y) in zip(points, xy, strict=True):
        plot.dot(x, y, _RECENT, f"week of {week}: {_pct(value) if percent else _num(value)}")
    if reference is not None:
        plot.path([(0, reference), (max(len(points) - 1, 1), reference)], _TRAINING, width=1.5,
                  dash="4 3", label="training")
    plot.legend([("realised (weeks of first scores)", _RECENT, None)]
                + ([("training", _TRAINING, "4 3")] if reference is not None else []))
    step = max(1, len(points) // 8)
    plot.x_axis([(i, week[5:]) for i, (week, _) in enumerate(points) if i % step == 0],
                "week the leads were first scored")
    return plot.svg()


def shadow_chart(result: MonitorResult) -> str:
    title = "Champion vs shadow challenger on the same leads (AUC)"
    judged = [c for c in result.shadow if c.champion_auc is not None
              and c.challenger_auc is not None]
    if not judged:
        why = ("no shadow challenger has scored leads" if not result.shadow
               else "no lead both scored has a final outcome yet")
        return _empty("chart-shadow", title, why)
    return _grouped_bars(
        "chart-shadow", title, [c.challenger_version for c in judged],
        [("champion", _TRAINING, [c.champion_auc for c in judged]),
         ("challenger", _RECENT, [c.challenger_auc for c in judged])],
        y_title="AUC", percent=False, line=("chance (0.5)", 0.5))


def _drift_table(windows: Sequence[WindowDrift]) -> str:
    measured = [w for w in windows if w.features]
    if not measured:
        return ""
    rows = []
    for i, feature in enumerate(measured[0].features):
        row: list[object] = [feature.name, feature.kind]
        row += [_num(w.features[i].psi) for w in measured]
        moved = max(feature.bins, key=lambda b: abs(b.window - b.training))
        row += [f"{moved.label}: {_pct(moved.training)} → {_pct(moved.window)}",
                "absent from every lead" if feature.absent else ""]
        rows.append(row)
    return _table(["feature", "kind", *[f"PSI {w.days} days" for w in measured],
                   f"bin that moved most ({measured[0].days} days)", "note"], rows)


def render_html(result: MonitorResult) -> str:
    drift = next((w for w in result.drift if w.days == result.config.drift_days), None)
    accuracy = result.accuracy
    model = result.model
    cards = [
        ("largest feature PSI, 7 days", f"{_num(drift.max_psi)} ({drift.max_feature})"
         if drift and drift.max_psi is not None else f"n/a ({drift.status if drift else '-'})"),
        ("score PSI, 7 days", _num(drift.score.psi) if drift and drift.score else "n/a"),
        ("leads first scored, 7 days", f"{drift.leads:,}" if drift else "n/a"),
        ("realised AUC / training", f"{_num(accuracy.realized_auc if accuracy else None)} / "
                                    f"{_num(model.training_auc)}"),
        ("conversion / training", f"{_pct(accuracy.conversion_rate if accuracy else None)} / "
                                  f"{_pct(model.training_conversion_rate)}"),
    ]
    card_html = "".join(f'<div class="card"><div class="k">{html.escape(k)}</div>'
                        f'<div class="v">{html.escape(v)}</div></div>' for k, v in cards)
    notes = [*(f"{w.days}-day window: {w.note}" for w in result.drift if w.note),
             *([f"realised accuracy: {accuracy.note}"] if accuracy and accuracy.note else []),
             *([f"{result.unreadable_snapshots} stored leads could not be read and were "
                "left out"] if result.unreadable_snapshots else []),
             *result.problems]
    note_html = "".join(f'<p class="note problem">{html.escape(n)}</p>' for n in notes)
    charts = "".join(chart for chart in (
        drift_chart(result), score_chart(result), tier_chart(result),
        _trend_chart(result, "chart-auc-trend", "Realised AUC by week", "realized_auc",
                     model.training_auc, percent=False),
        _trend_chart(result, "chart-conversion-trend", "Conversion rate by week",
                     "conversion_rate", model.training_conversion_rate, percent=True),
        shadow_chart(result)))
    tiers = _table(["tier", "leads", "converted", "realised", "promised"], [
        [t.tier, t.leads, t.conversions, _pct(t.conversion_rate), _pct(t.promised_rate)]
        for t in (accuracy.tiers if accuracy else [])])
    reliability = _table(["bin", "leads", "predicted", "observed"], [
        [i + 1, b.leads, _pct(b.mean_predicted), _pct(b.observed_rate)]
        for i, b in enumerate(accuracy.reliability if accuracy else [])])
    trend = _table(["week", "leads", "final outcomes", "windows closed", "conversion",
                    "realised AUC", "models"], [
        [p.week, p.leads, p.final, "yes" if p.window_closed else "no", _pct(p.conversion_rate),
         _num(p.realized_auc), ", ".join(p.versions)] for p in result.trend])
    shadow = _table(["challenger", "champion(s)", "leads", "mean |score diff|",
                     "same tier", "final", "champion AUC", "challenger AUC", "champion Brier",
                     "challenger Brier"], [
        [c.challenger_version, ", ".join(c.champion_versions), c.leads,
         c.mean_abs_score_difference, _pct(c.tier_agreement), c.final, _num(c.champion_auc),
         _num(c.challenger_auc), _num(c.champion_brier, 4), _num(c.challenger_brier, 4)]
        for c in result.shadow])
    cohort = (f"leads first scored {accuracy.cohort_from:%Y-%m-%d} to "
              f"{accuracy.cohort_to:%Y-%m-%d}: {accuracy.leads:,} leads, {accuracy.final:,} "
              f"with a final outcome, {accuracy.pending:,} never settled, {accuracy.prior:,} "
              f"converted before their first score (left out); "
              f"{accuracy.model_leads:,} scored by model {model.version}"
              if accuracy else "not computed")
    title = f"Model monitoring: model {model.version}, {result.now:%Y-%m-%d %H:%M} UTC"
    reference = ("training reference present" if model.reference
                 else f"no training reference ({model.reference_problem}): drift not measured")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title><style>{REPORT_CSS}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p class="meta">{result.snapshots_read:,} stored leads read; {html.escape(reference)};
outcome window {result.config.outcome_window_days} days. Drift compares leads first scored
in the window with the training data (features as stored at scoring, ages measured from each
lead's own scoring time); realised accuracy judges only leads whose outcome windows have all
closed.</p>
{note_html}
<div class="cards">{card_html}</div>
<div class="charts">{charts}</div>
<h2>Drift per feature</h2>
<p class="note">Population stability index against the training distribution: below 0.1
stable, 0.1–0.25 moving, above 0.25 shifted (the alarm's threshold). A category or level
the model never saw falls in "(other)" or the top bin and counts as drift.</p>
{_drift_table(result.drift)}
<h2>Realised accuracy</h2>
<p class="note">{html.escape(cohort)}. Conversion rate {_pct(accuracy.conversion_rate
if accuracy else None)} against {_pct(model.training_conversion_rate)} at training; realised
AUC {_num(accuracy.realized_auc if accuracy else None)} against
{_num(model.training_auc)}; Brier {_num(accuracy.brier if accuracy else None, 4)}.</p>
{tiers}
<h3>Calibration (ten equal-sized bins of predicted probability)</h3>
{reliability}
<h2>By week</h2>
{trend}
<h2>Champion vs shadow challenger</h2>
<p class="note">Leads both models scored at their first score; AUC and Brier on those whose
outcome is final (the same leads for both).</p>
{shadow}
</body></html>
"""
