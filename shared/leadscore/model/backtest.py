"""Backtest: how well a trained model ranks labelled rows, as figures (JSON) and a report (HTML
with charts, `leadscore.model.backtest_html`) a RevOps engineer reads before switching the
model on.

`backtest(model, data)` computes the report and `write_report` writes `report.json` and
`report.html`; `leadscore backtest --model DIR --data FILE.csv --out REPORT_DIR` runs them on a
CSV export (`leadscore.cli.csv_files.backtest_csv`). The figures:

- `auc`: probability that a random converter ranks above a random non-converter.
- `brier`: mean squared error of the calibrated probability (lower is better), next to
  `brier_base_rate`, what always predicting the base rate scores.
- `precision_at_k`: conversion rate among the k best-ranked leads, for k = 25, 50, 100 and
  the top 10 % and 20 % (what a rep working the list top-down would see), with its lift
  over the base rate.
- `tiers`: leads, conversion rate, lift and share of all conversions per tier.
- `top_two_deciles_capture`: share of all conversions among the best-ranked 20 % of leads.
- `deciles`: the same per tenth of the ranking (decile 1 = best), with cumulative capture.
- `cumulative_gains`: share of conversions captured after working the best x % of leads,
  x = 0..100.
- `calibration`: predicted vs observed conversion in ten equal-sized bins of predicted
  probability, and the expected calibration error (their weighted mean gap).

Leads are ranked by calibrated probability (ties by row order), so the report is a pure
function of model and rows: no timestamps, no randomness. Datetime ages are measured from
the latest timestamp in the rows, as at training.

Only numpy and the model's own code: the metrics here are also what training reports.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from leadscore.model.backtest_html import render_html
from leadscore.model.config import LabelledData
from leadscore.model.features import reference_time

if TYPE_CHECKING:
    from leadscore.model.scoring import LeadModel

REPORT_JSON = "report.json"
REPORT_HTML = "report.html"
TIER_NAMES = ("hot", "warm", "cold", "disqualified")
PRECISION_AT = (25, 50, 100)
PRECISION_AT_SHARE = (0.10, 0.20)
CALIBRATION_BINS = 10


# --------------------------------------------------------------------------- metrics


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mann-Whitney AUC with average ranks for ties; NaN without both classes."""
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=np.float64)
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(scores), dtype=np.float64)
    _, first, counts = np.unique(scores[order], return_index=True, return_counts=True)
    ranks[order] = np.repeat(first + (counts + 1) / 2.0, counts)
    positives = labels == 1
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    if not n_pos or not n_neg:
        return float("nan")
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def brier(labels: np.ndarray, probability: np.ndarray) -> float:
    return float(np.mean((np.asarray(probability) - labels) ** 2))


def log_loss(labels: np.ndarray, probability: np.ndarray) -> float:
    p = np.clip(np.asarray(probability, dtype=np.float64), 1e-12, 1 - 1e-12)
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))


def _ratio(part: float, whole: float) -> float:
    return part / whole if whole else 0.0


def tier_table(tiers, scores: np.ndarray, labels: np.ndarray) -> list[dict]:
    """Per tier (hot, warm, cold, disqualified): leads, share of leads, conversions,
    conversion rate, lift over the base rate and share of all conversions. `tiers` is a
    `leadscore.model.scoring.Tiers`."""
    labels = np.asarray(labels)
    base, total = float(labels.mean()), int(labels.sum())
    names = np.array([tiers.tier_for(int(s)) for s in scores])
    table = []
    for name in TIER_NAMES:
        members = names == name
        leads, conversions = int(members.sum()), int(labels[members].sum())
        rate = _ratio(conversions, leads)
        table.append({
            "tier": name,
            "min_score": getattr(tiers, name) if name != "disqualified" else 0,
            "leads": leads,
            "share": round(_ratio(leads, len(labels)), 4),
            "conversions": conversions,
            "conversion_rate": round(rate, 4),
            "lift": round(_ratio(rate, base), 3),
            "capture": round(_ratio(conversions, total), 4),
        })
    return table


def evaluate(labels: np.ndarray, probability: np.ndarray, scores: np.ndarray, tiers) -> dict:
    """Every backtest figure for leads with outcomes `labels` (1 = converted)."""
    labels = np.asarray(labels, dtype=np.int64)
    probability = np.asarray(probability, dtype=np.float64)
    n, total = len(labels), int(labels.sum())
    if n == 0:
        raise ValueError("nothing to evaluate: the file has no rows")
    base = total / n
    order = np.argsort(-probability, kind="stable")  # best first; ties keep row order
    ranked = labels[order]
    captured = np.concatenate([[0], np.cumsum(ranked)])  # conversions in the top i leads

    def top(k: int, name: str) -> dict:
        conversions = int(captured[k])
        return {"k": name, "leads": k, "conversions": conversions,
                "precision": round(conversions / k, 4),
                "lift": round(_ratio(conversions / k, base), 3)}

    precision = [top(k, str(k)) for k in PRECISION_AT if k <= n]
    precision += [top(max(1, round(n * share)), f"top {round(100 * share)}%")
                  for share in PRECISION_AT_SHARE]

    deciles = []
    edges = [round(n * d / 10) for d in range(11)]
    for d in range(10):
        lo, hi = edges[d], edges[d + 1]
        leads, conversions = hi - lo, int(captured[hi] - captured[lo])
        rate = _ratio(conversions, leads)
        deciles.append({
            "decile": d + 1, "leads": leads, "conversions": conversions,
            "conversion_rate": round(rate, 4), "lift": round(_ratio(rate, base), 3),
            "cumulative_capture": round(_ratio(int(captured[hi]), total), 4),
            "min_probability": round(float(probability[order[hi - 1]]), 4) if leads else None,
        })

    gains = [{"leads_share": i / 100,
              "conversions_share": round(_ratio(int(captured[round(n * i / 100)]), total), 4)}
             for i in range(101)]

    bins, by_probability = [], np.argsort(probability, kind="stable")
    count = min(CALIBRATION_BINS, n)
    bin_edges = [round(n * b / count) for b in range(count + 1)]
    for b in range(count):
        members = by_probability[bin_edges[b]:bin_edges[b + 1]]
        if not len(members):
            continue
        bins.append({
            "leads": len(members),
            "mean_predicted": round(float(probability[members].mean()), 4),
            "observed_rate": round(float(labels[members].mean()), 4),
            "min_predicted": round(float(probability[members].min()), 4),
            "max_predicted": round(float(probability[members].max()), 4),
        })
    ece = sum(row["leads"] * abs(row["observed_rate"] - row["mean_predicted"]) for row in bins)

    return {
        "rows": n,
        "conversions": total,
        "base_rate": round(base, 4),
        "auc": round(roc_auc(labels, probability), 4) if 0 < total < n else None,
        "brier": round(brier(labels, probability), 4),
        "brier_base_rate": round(brier(labels, np.full(n, base)), 4),
        "log_loss": round(log_loss(labels, probability), 4),
        "precision_at_k": precision,
        "top_two_deciles_capture": round(_ratio(int(captured[edges[2]]), total), 4),
        "tiers": tier_table(tiers, scores, labels),
        "deciles": deciles,
        "cumulative_gains": gains,
        "calibration": {"bins": bins, "expected_calibration_error": round(ece / n, 4)},
    }


# --------------------------------------------------------------------------- the report


def backtest(model: LeadModel, data: LabelledData, *, now: datetime | None = None) -> dict:
    """Score the labelled rows `data` with `model`: every figure, plus what was compared.
    `now` overrides the reference time for datetime ages (default: the latest timestamp in
    the rows)."""
    config = model.config
    rows = list(data.rows)
    labels = np.array([config.is_positive(r.get(config.label.column)) for r in rows], np.int64)
    reference = now or reference_time(config, rows)
    probability, scores = model.predict(rows, now=reference)
    figures = evaluate(labels, probability, scores, model.tiers)
    trained = model.metadata.get("metrics", {})
    return {
        "model": {
            "version": model.version,
            "trained_on": model.metadata.get("data", {}).get("file"),
            "training_rows": trained.get("rows"),
            "training_auc": trained.get("auc"),
            "tiers": model.tiers.model_dump(),
        },
        "data": {
            "file": data.name,
            "sha256": data.sha256,
            "label": {"column": config.label.column, "positive": config.label.positive},
            "reference_time": reference.isoformat().replace("+00:00", "Z") if reference else None,
        },
        **figures,
    }


def write_report(report: dict, out_dir: Path,
                 echo: Callable[[str], object] = lambda _line: None) -> None:
    """`report.json` and `report.html` into `out_dir`; the summary lines to `echo`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / REPORT_JSON).write_text(
        json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out_dir / REPORT_HTML).write_text(render_html(report), encoding="utf-8")
    for line in summary_lines(report):
        echo(line)


def summary_lines(report: dict) -> list[str]:
    auc = report["auc"]
    lines = [
        f"{report['rows']:,} leads, {report['conversions']:,} converted "
        f"({100 * report['base_rate']:.1f}%)",
        f"AUC {auc:.3f}" if auc is not None else "AUC n/a (needs both outcomes)",
        f"Brier {report['brier']:.4f} (base rate alone {report['brier_base_rate']:.4f})",
        f"top 20% of leads hold {100 * report['top_two_deciles_capture']:.0f}% of conversions",
        "precision@k: " + ", ".join(
            f"{row['k']} {100 * row['precision']:.1f}%" for row in report["precision_at_k"]),
    ]
    lines += [
        f"{row['tier']}: {100 * row['share']:.0f}% of leads, {100 * row['conversion_rate']:.1f}% "
        f"convert (lift {row['lift']:.2f}, {100 * row['capture']:.0f}% of conversions)"
        for row in report["tiers"]
    ]
    return lines
