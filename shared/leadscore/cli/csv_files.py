"""Train, score and backtest on CSV files: `leadscore train|score|backtest`, `make model` and the
benchmarks. A CSV export has HubSpot internal property names as its header (`leadscore
hubspot export` writes one); these wrappers read it, check the columns features.toml names,
and call the model code on its rows.

Tooling: not shipped to Lambda.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from leadscore.model.config import FeatureConfig, LabelledData, parse_config

# `leadscore hubspot export --as-of-days` writes each row's point in time here; training ages
# that row's datetime features from it.
AS_OF_COLUMN = "leadscore_as_of"


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of a CSV export (UTF-8, an Excel BOM tolerated)."""
    with Path(path).open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = [name.strip() for name in next(reader, [])]
        rows = [dict(zip(header, record, strict=False)) for record in reader if any(record)]
    return header, rows


def require_columns(header: Sequence[str], columns: Iterable[tuple[str, str]], source: str) -> None:
    """Fail with the first configured column missing from a CSV header, naming it."""
    present = set(header)
    for column, role in columns:
        if column not in present:
            raise ValueError(
                f"column {column!r} ({role} in features.toml) is not in the header of {source}; "
                f"the header has: {', '.join(header) or '(nothing)'}"
            )


def config_columns(config: FeatureConfig, *, with_label: bool) -> list[tuple[str, str]]:
    """(column, role) pairs for `require_columns`."""
    pairs = [(config.id, "id")] if config.id else []
    if with_label:
        pairs.append((config.label.column, "label.column"))
    pairs += [(c, f"features.{kind}") for c, kind in config.feature_columns]
    return pairs


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_labelled(path: Path, config: FeatureConfig) -> LabelledData:
    """A labelled CSV export, its columns checked against `config` (id, label, features)."""
    path = Path(path)
    header, rows = read_csv(path)
    require_columns(header, config_columns(config, with_label=True), str(path))
    return LabelledData(rows=rows, name=path.name, sha256=file_sha256(path), columns=header)


def train_csv(
    data: Path,
    config_path: Path,
    out_dir: Path,
    *,
    echo: Callable[[str], object] = print,
    now: datetime | None = None,
) -> dict:
    """`leadscore train`: train on a labelled CSV export and write `out_dir` (model.txt,
    metadata.json, a copy of features.toml). Returns the metadata."""
    from leadscore.model.training import train  # lightgbm: only when training

    config_path = Path(config_path)
    config_text = config_path.read_bytes().decode("utf-8")
    config = parse_config(config_text, source=str(config_path))
    labelled = read_labelled(data, config)
    if now is None and AS_OF_COLUMN in labelled.columns:
        return train(labelled, config, config_text, Path(out_dir), echo=echo,
                     now=[_as_of(row, number) for number, row in enumerate(labelled.rows, 2)])
    return train(labelled, config, config_text, Path(out_dir), echo=echo, now=now)


def _as_of(row: dict[str, str], line: int) -> datetime:
    try:
        moment = datetime.fromisoformat(row[AS_OF_COLUMN].replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"line {line}: {AS_OF_COLUMN} {row[AS_OF_COLUMN]!r} is not an "
                         "ISO-8601 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def score_csv(
    model_dir: Path, data: Path, out: Path, *, now: datetime | float | None = None
) -> int:
    """Score every row of a CSV export into `out` (columns id,score,probability,tier,reasons;
    reasons joined by "; "; id is the row number when features.toml names no id column).
    Returns the number of rows written."""
    from leadscore.model import load

    model = load(model_dir)
    header, rows = read_csv(data)
    require_columns(header, config_columns(model.config, with_label=False), str(data))
    results = model.score_many(rows, now=now)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "score", "probability", "tier", "reasons"])
        id_column = model.config.id
        for number, (row, result) in enumerate(zip(rows, results, strict=True), start=1):
            writer.writerow([
                row.get(id_column, "") if id_column else number,
                result.score,
                f"{result.probability:.4f}",
                result.tier,
                "; ".join(result.reasons),
            ])
    return len(results)


def backtest_csv(
    model_dir: Path,
    data: Path,
    out_dir: Path,
    *,
    now: datetime | None = None,
    echo: Callable[[str], object] = print,
) -> dict:
    """`leadscore backtest`: score the labelled CSV `data` with the model in `model_dir` and
    write `report.json` and `report.html` into `out_dir`. Returns the report."""
    from leadscore.model import load
    from leadscore.model.backtest import backtest, write_report

    model = load(model_dir)
    report = backtest(model, read_labelled(data, model.config), now=now)
    write_report(report, Path(out_dir), echo)
    return report
