"""A retrain decision as one self-contained HTML page: the verdict and its reasons, champion and
challenger side by side on the same judged leads, and each model's backtest charts (the
`leadscore backtest` charts, inline SVG, no script: it opens offline).
"""

from __future__ import annotations

import html

from leadscore.learning.gate import ModelFigures
from leadscore.learning.registry import Decision
from leadscore.model.backtest_html import (
    _CSS,
    calibration_chart,
    cumulative_gains_chart,
    decile_lift_chart,
    tier_chart,
)

_CHARTS = (decile_lift_chart, cumulative_gains_chart, calibration_chart, tier_chart)
_VERDICT_COLOUR = {"promoted": "#2e7d32", "passed": "#2e7d32", "rejected": "#c62828",
                   "refused": "#ef6c00", "failed": "#c62828"}


def _cell(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _comparison(champion: ModelFigures, challenger: ModelFigures) -> str:
    rows = [
        ("AUC (higher is better)", _cell(champion.auc), _cell(challenger.auc)),
        ("Brier score (lower is better)", _cell(champion.brier), _cell(challenger.brier)),
        ("lift in the top decile", _cell(champion.lift_top_decile, 2),
         _cell(challenger.lift_top_decile, 2)),
        ("conversion in the top decile", f"{100 * champion.conversion_top_decile:.1f}%",
         f"{100 * challenger.conversion_top_decile:.1f}%"),
    ]
    for mine, theirs in zip(champion.tiers, challenger.tiers, strict=True):
        rows.append((f"{mine.tier}: leads / conversion",
                     f"{mine.leads} / {100 * mine.conversion_rate:.1f}%",
                     f"{theirs.leads} / {100 * theirs.conversion_rate:.1f}%"))
    body = "".join(f"<tr><td>{html.escape(name)}</td><td>{a}</td><td>{b}</td></tr>"
                   for name, a, b in rows)
    return (f"<table><thead><tr><th>figure</th><th>champion {html.escape(champion.version)}"
            f"</th><th>challenger {html.escape(challenger.version)}</th></tr></thead>"
            f"<tbody>{body}</tbody></table>")


def _charts(name: str, report: dict) -> str:
    return "".join(chart(report).replace('<svg id="', f'<svg id="{name}-', 1)
                   for chart in _CHARTS)


def render_decision(decision: Decision, champion_report: dict | None = None,
                    challenger_report: dict | None = None) -> str:
    colour = _VERDICT_COLOUR[decision.result]
    data = decision.data
    title = f"Retrain {decision.run_id}: {decision.result}"
    parts = [
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="meta" style="color:{colour};font-weight:bold">'
        f"{html.escape(decision.reason)}</p>",
        f'<p class="meta">Judged on the newest {data.judge_rows:,} labelled leads (first scored '
        f"{html.escape(data.judged_from or '?')} to {html.escape(data.judged_to or '?')}); "
        f"the challenger was trained on the {data.train_rows:,} older ones. Labelled: "
        f"{data.labelled:,} ({data.positives:,} converted), {data.pending:,} still waiting for "
        f"an outcome, {data.window_open:,} settled but inside their window, {data.prior:,} "
        "converted before their first score (not used). Each lead is scored as of its own "
        "first score.</p>",
    ]
    if decision.gate is not None:
        policy = decision.policy
        parts.append(
            "<h2>Gate</h2><p class=\"note\">Promote only if the challenger's AUC is at least the "
            f"champion's minus {policy.auc_tolerance} and its Brier score at most the "
            f"champion's plus {policy.brier_tolerance}.</p><ul>"
            + "".join(f"<li>{html.escape(reason)}</li>" for reason in decision.gate.reasons)
            + "</ul>")
    if decision.champion is not None and decision.challenger is not None:
        parts.append("<h2>Champion vs challenger</h2>"
                     + _comparison(decision.champion, decision.challenger))
    for name, label, report in (("champion", "Champion", champion_report),
                                ("challenger", "Challenger", challenger_report)):
        if report is not None:
            parts.append(f"<h2>{label} {html.escape(report['model']['version'])}</h2>"
                         f'<div class="charts">{_charts(name, report)}</div>')
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
            + "\n".join(parts) + "</body></html>\n")
