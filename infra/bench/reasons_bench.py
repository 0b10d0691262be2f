"""What reps read in `ai_lead_reasons`, measured on the shipped model (layers/model/model).

On 20,000 fresh synthetic contacts (seed 99, ages measured from the synthetic clock):

- which "typical lead" the reasons' order should pivot on: the model's contributions are
  measured from its average output (log-odds), so their sum is negative exactly when a lead
  sits below that average. How often does that agree with "score below 50" and with
  "probability below the training base rate"? (`[reasons] typical_score`, ReasonConfig);
- with the chosen pivot: the share of `disqualified` leads whose first reason is negative and
  of `hot` leads whose first is positive, leads with nothing notable, leads whose first reason
  goes against their direction (no notable contribution their way), and how often a missing
  value the training data shows to be uninformative was listed (must be 0).

Prints a table and writes JSON (`--out`). Exit 1 when a target is missed.

    .venv/bin/python infra/bench/reasons_bench.py [--contacts 20000] [--out FILE]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "shared"))

import numpy as np  # noqa: E402
from benchkit import Row, exit_status, markdown, write_figures  # noqa: E402

from leadscore.cli.synthetic import SYNTHETIC_NOW, generate_contacts  # noqa: E402
from leadscore.model import load  # noqa: E402
from leadscore.model.reasons import NOTHING_STANDS_OUT, describe  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=99)
    parser.add_argument("--model", type=Path, default=ROOT / "layers/model/model")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    started = time.monotonic()

    model = load(args.model)
    contacts = generate_contacts(args.contacts, args.seed)
    now = SYNTHETIC_NOW.timestamp()
    matrix = model._vectorizer.transform(contacts, now)
    contributions = model._booster.contrib_many(matrix)[:, :-1]
    probability, scores = model.predict(contacts, now=SYNTHETIC_NOW)
    scores = np.floor(scores + 0.5)
    below_average = contributions.sum(axis=1) < 0
    base_rate = model.metadata["metrics"]["positive_rate"]
    typical = model.config.reasons.typical_score
    agree_score = float(np.mean(below_average == (scores < typical)))
    agree_base_rate = float(np.mean(below_average == (probability < base_rate)))

    results = model.score_many(contacts, now=SYNTHETIC_NOW)
    disqualified = [r for r in results if r.tier == "disqualified"]
    hot = [r for r in results if r.tier == "hot"]
    negative_first = np.mean([r.reasons[0].endswith("(−)") for r in disqualified])
    positive_first = np.mean([r.reasons[0].endswith("(+)") for r in hot])
    nothing = np.mean([r.reasons == [NOTHING_STANDS_OUT] for r in results])
    against = np.mean([bool(r.reasons) and r.reasons != [NOTHING_STANDS_OUT]
                       and r.reasons[0].endswith("(+)" if r.score < typical else "(−)")
                       for r in results])
    evidence = model.metadata.get("missing_values", {})
    min_z = model.config.reasons.missing_min_z
    # How each uninformative feature's absence would read, were it listed.
    absences = {j: describe(spec, float("nan"), None)
                for j, spec in enumerate(model.schema.features)
                if spec.name in evidence and abs(evidence[spec.name]["z"]) < min_z}
    listed = sum(
        any(reason[:-4] == absences[j] for j in absences if np.isnan(row[j])
            for reason in result.reasons)
        for row, result in zip(matrix, results, strict=True))

    n = f"{args.contacts:,} synthetic leads"
    rows = [
        Row("reasons", f"contribution sign agrees with score < {typical} ({n})",
            round(100 * agree_score, 1), "%", key="pivot_agreement_score"),
        Row("reasons", f"contribution sign agrees with probability < base rate ({n})",
            round(100 * agree_base_rate, 1), "%", key="pivot_agreement_base_rate"),
        Row("reasons", f"disqualified leads whose first reason is negative ({len(disqualified):,})",
            round(100 * float(negative_first), 1), "%", "100 %", bool(negative_first == 1.0),
            key="disqualified_negative_first"),
        Row("reasons", f"hot leads whose first reason is positive ({len(hot):,})",
            round(100 * float(positive_first), 1), "%", "100 %", bool(positive_first == 1.0),
            key="hot_positive_first"),
        Row("reasons", "leads with nothing notable (one plain statement)",
            round(100 * float(nothing), 2), "%", key="nothing_notable"),
        Row("reasons", "leads whose first reason goes against their direction",
            round(100 * float(against), 2), "%", key="first_reason_against_direction"),
        Row("reasons", "leads listing an uninformative missing value", listed, "", "0",
            listed == 0, key="uninformative_missing_listed"),
    ]
    print(markdown(rows))
    if args.out:
        write_figures(args.out, rows, time.monotonic() - started)
    return exit_status(rows)


if __name__ == "__main__":
    sys.exit(main())
