"""The retrain job (ModelRetrainFunction; monthly, and `leadscore model retrain`).

1. close outcome windows (the history path; every pending lead, so late webhooks are caught);
2. labelled set: snapshots with a positive or negative outcome whose window has closed;
3. refuse, with the reason, below `RetrainMinPositives`/`RetrainMinNegatives` (100/100), with
   only one outcome, or when the model's columns are missing from too many snapshots (a
   features.toml change between the versions that took them);
4. time split: judge on the newest leads (`dataset.time_split`), train on the older ones;
5. challenger = `leadscore.model.training.train` on those rows (as `leadscore train` does),
   each row aged as of its own first score;
6. champion (the model in use, from the model layer) and challenger score the judged leads;
7. the gate (`gate.verdict`);
8. the decision record (JSON, the HTML report, the candidate's files and layer.zip) in S3;
9. promotion when it passed and `ModelPromotion=auto`;
10. the shadow challenger (`shadow_pointer`, ShadowChallengerParameter): a candidate that
    ended `passed` or `rejected` becomes it (ScoreFunction scores live leads with it beside
    the model in use), `promoted` sets it to `none`; `refused`/`failed` leave it unchanged. A
    failure to set it never changes the decision: it is logged, counted
    (ShadowChallengerNotSet) and noted at the end of the decision's reason.

Every run ends in a decision record, whatever happens. A watchdog writes one before Lambda's
timeout (`seconds_left`) if the run is still busy, and the run then stops at its next step
and never promotes; a failed or timed-out run leaves the model in use untouched.

Metrics: RetrainPromoted, RetrainPassed (passed, manual promotion), RetrainRejected,
RetrainRefused, RetrainNeedsOperator (refused for bad data an operator must fix),
RetrainFailed; PromotionFailures (`promotion`); ShadowChallengerNotSet.
"""

from __future__ import annotations

import secrets
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from leadscore.dpdp.erasure import ContactEraser, ErasureReason
from leadscore.learning.dataset import (
    LabelledSet,
    Split,
    missing_columns,
    read_labelled,
    rows_and_times,
    time_split,
)
from leadscore.learning.gate import GatePolicy, judge_models, verdict
from leadscore.learning.outcomes import OutcomeCloser, OutcomeRules
from leadscore.learning.promotion import Promoter
from leadscore.learning.registry import ArtifactStore, DataSummary, Decision, run_id
from leadscore.learning.report_html import render_decision
from leadscore.learning.shadow_pointer import ShadowPointer
from leadscore.learning.snapshots import SnapshotStore
from leadscore.model.config import LabelledData, parse_config
from leadscore.model.scoring import CONFIG_FILE, LeadModel, load
from leadscore.model.training import train
from leadscore.observability import count, logger, metrics
from leadscore.timestamps import iso_millis

WATCHDOG_MARGIN_SECONDS = 45.0  # the decision is written this long before Lambda's timeout
MAX_MISSING_COLUMN_SHARE = 0.5  # beyond this, missing values cannot stand in for a column
# One metric per result (alarms and the dashboard need the names spelled out).
RESULT_METRICS: dict[str, Callable[[], None]] = {
    "promoted": lambda: count("RetrainPromoted"), "passed": lambda: count("RetrainPassed"),
    "rejected": lambda: count("RetrainRejected"), "refused": lambda: count("RetrainRefused"),
    "failed": lambda: count("RetrainFailed")}
# Which results set the shadow challenger: the candidate (passed, rejected) or none (promoted).
SHADOW_RESULTS = ("promoted", "passed", "rejected")


class RetrainPolicy(BaseModel):
    min_positives: int = Field(default=100, ge=1)
    min_negatives: int = Field(default=100, ge=1)
    gate: GatePolicy = GatePolicy()
    promotion: str = "auto"  # "auto" | "manual"
    max_missing_column_share: float = MAX_MISSING_COLUMN_SHARE


class Stop(Exception):
    """Ends a run early with a decision (refused, or failed for a known reason)."""

    def __init__(self, result: str, reason: str, operator_action: bool = False):
        super().__init__(reason)
        self.result, self.reason, self.operator_action = result, reason, operator_action


class Watchdog:
    """Calls `on_expiry` once, as soon as `seconds_left()` drops below `margin`, unless the run
    finished first (checked every `interval` seconds from a thread of its own)."""

    def __init__(self, seconds_left: Callable[[], float], margin: float,
                 on_expiry: Callable[[], None], interval: float = 1.0):
        self.expired = threading.Event()
        self._done = threading.Event()
        self._seconds_left, self._margin, self._interval = seconds_left, margin, interval
        self._on_expiry = on_expiry
        self._thread = threading.Thread(target=self._watch, daemon=True, name="retrain-watchdog")

    def _watch(self) -> None:
        while not self._done.wait(self._interval):
            if self._seconds_left() < self._margin:
                self.expired.set()
                self._on_expiry()
                return

    def __enter__(self) -> Watchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()


@dataclass
class RetrainJob:
    store: SnapshotStore
    closer: OutcomeCloser
    artifacts: ArtifactStore
    champion_dir: Path
    policy: RetrainPolicy = field(default_factory=RetrainPolicy)
    promoter: Promoter | None = None  # None: record only (no stack to update)
    snapshot_eraser: ContactEraser | None = None  # erases feature snapshots alone
    seconds_left: Callable[[], float] = field(default=lambda: float("inf"))
    trainer: Callable[..., dict] = train  # leadscore.model.training.train (a seam for tests)
    workdir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()))
    shadow_pointer: ShadowPointer | None = None  # None: the stack names no parameter

    def run(self, now: datetime, *, trigger: str = "schedule") -> Decision:
        decision = Decision(run_id=run_id(now, secrets.token_hex(3)), result="failed",
                            reason="started", trigger=trigger, started_at=iso_millis(now),
                            policy=self.policy.gate, min_positives=self.policy.min_positives,
                            min_negatives=self.policy.min_negatives)
        recorded = threading.Lock()
        reports: dict[str, Any] = {}
        started = time.monotonic()

        def finish(result: str, reason: str, operator_action: bool) -> bool:
            """Records the decision once (the watchdog and the run race for it)."""
            if not recorded.acquire(blocking=False):
                return False
            decision.result, decision.reason = result, reason  # type: ignore[assignment]
            decision.operator_action = operator_action
            decision.finished_at = iso_millis(now + timedelta(seconds=time.monotonic() - started))
            html = (render_decision(decision, reports.get("champion"),
                                    reports.get("challenger"))
                    if decision.challenger_version else None)
            self.artifacts.save_decision(decision, html)
            RESULT_METRICS[result]()
            if operator_action and result == "refused":
                count("RetrainNeedsOperator")
            logger.info("Retrain decision", extra={
                "run_id": decision.run_id, "result": result, "reason": reason,
                "champion": decision.champion_version,
                "challenger": decision.challenger_version})
            return True

        def timed_out() -> None:
            if finish("failed", f"timed out during {decision.step or 'start-up'} with "
                                f"{decision.data.labelled:,} labelled leads (Lambda's 15-minute "
                                "limit was near); nothing was promoted. A portal this large "
                                "trains outside Lambda (README, \"Learning loop\")", True):
                metrics.flush_metrics()  # Lambda may end the process before the handler does

        watchdog = Watchdog(self.seconds_left, WATCHDOG_MARGIN_SECONDS, timed_out)
        try:
            with watchdog:
                result, reason, action = self._run(decision, now, reports, watchdog)
        except Stop as stop:
            result, reason, action = stop.result, stop.reason, stop.operator_action
        except Exception as error:  # an unexpected failure: record it, alarm, keep the model
            logger.exception("Retrain failed")
            result, reason, action = ("failed", f"{decision.step}: {type(error).__name__}: "
                                      f"{error}", True)
        reason += self._point_shadow(result, decision.challenger_version)
        finish(result, reason, action)
        return decision

    def _point_shadow(self, result: str, challenger: str | None) -> str:
        """Sets the shadow challenger for this result; what the reason must add (a failure)."""
        if self.shadow_pointer is None or result not in SHADOW_RESULTS or challenger is None:
            return ""
        version = None if result == "promoted" else challenger
        try:
            self.shadow_pointer.set(version)
        except Exception as error:  # the decision stands; the next retrain sets it again
            count("ShadowChallengerNotSet")
            logger.warning("Shadow challenger not set", extra={
                "challenger": version, "error": type(error).__name__})
            return (f" (shadow challenger not set to {version or 'none'}: "
                    f"{type(error).__name__})")
        logger.info("Shadow challenger set", extra={"challenger": version or "none"})
        return ""

    # ------------------------------------------------------------------ the steps
    @contextmanager
    def _step(self, decision: Decision, name: str, watchdog: Watchdog) -> Iterator[None]:
        if watchdog.expired.is_set():
            raise Stop("failed", "timed out")  # already recorded by the watchdog
        decision.step = name
        started = time.monotonic()
        yield
        decision.seconds[name] = round(time.monotonic() - started, 3)

    def _run(self, decision: Decision, now: datetime, reports: dict[str, Any],
             watchdog: Watchdog) -> tuple[str, str, bool]:
        with self._step(decision, "load champion", watchdog):
            champion = load(self.champion_dir)
            config_text = (self.champion_dir / CONFIG_FILE).read_text(encoding="utf-8")
            config = parse_config(config_text, str(self.champion_dir / CONFIG_FILE))
            decision.champion_version = champion.version
        with self._step(decision, "close outcome windows", watchdog):
            closing = self.closer.close(now, include_open=True)
            decision.outcomes = closing.model_dump(exclude={"withdrawn_ids"})
            if closing.withdrawn_ids and self.snapshot_eraser is not None:
                self.snapshot_eraser.erase(closing.withdrawn_ids,
                                           ErasureReason.TRAINING_CONSENT_WITHDRAWN,
                                           clear_hubspot=False, now=now)
        with self._step(decision, "read snapshots", watchdog):
            labelled = read_labelled(self.store, config, self.closer.rules, now)
            split = time_split(labelled.leads)
            decision.data = _summary(labelled, split, missing_columns(
                labelled.leads, [column for column, _ in config.feature_columns]))
        self._refuse_bad_data(decision, labelled, split, self.closer.rules)

        with self._step(decision, "train challenger", watchdog):
            rows, times = rows_and_times(split.train)
            out_dir = Path(tempfile.mkdtemp(prefix="challenger-", dir=self.workdir))
            self.trainer(LabelledData(rows=rows, name=f"feature snapshots ({decision.run_id})",
                                      sha256=decision.run_id), config, config_text, out_dir,
                         now=times, echo=lambda line: logger.info(line))
            challenger = load(out_dir)
            decision.challenger_version = challenger.version
        with self._step(decision, "judge", watchdog):
            decision.champion, reports["champion"] = _report(champion, split)
            decision.challenger, reports["challenger"] = _report(challenger, split)
            decision.gate = verdict(decision.champion, decision.challenger, self.policy.gate)
        with self._step(decision, "record candidate", watchdog):
            self.artifacts.save_candidate(challenger.version, out_dir)
        if not decision.gate.passed:
            return ("rejected", f"challenger {challenger.version} is worse than champion "
                    f"{champion.version}: " + "; ".join(decision.gate.reasons), False)
        if self.policy.promotion != "auto" or self.promoter is None:
            return ("passed", f"challenger {challenger.version} passed the gate; promotion is "
                    f"manual: leadscore model promote --version {challenger.version}", False)
        with self._step(decision, "promote", watchdog):
            record = self.promoter.promote(challenger.version, by=f"retrain {decision.run_id}",
                                           seconds_left=lambda: self.seconds_left()
                                           - WATCHDOG_MARGIN_SECONDS)
            decision.promotion = record
        if record.status != "done":
            return ("failed", f"challenger {challenger.version} passed the gate but was not "
                    f"promoted: {record.reason}; {champion.version} stays in use", True)
        return ("promoted", f"challenger {challenger.version} replaces {champion.version}: "
                + "; ".join(decision.gate.reasons), False)

    def _refuse_bad_data(self, decision: Decision, labelled: LabelledSet, split: Split,
                         rules: OutcomeRules) -> None:
        positives, negatives = labelled.positives, labelled.negatives
        policy = self.policy
        missing = {column: share for column, share in decision.data.missing_columns.items()
                   if share > policy.max_missing_column_share}
        if missing:
            versions = sorted({lead.model_version for lead in labelled.leads})
            raise Stop("refused", "the model's features.toml does not match the snapshots: "
                       + ", ".join(f"{column} missing from {100 * share:.0f}%"
                                   for column, share in sorted(missing.items()))
                       + f" of the labelled leads (taken by models {', '.join(versions)}); "
                       "retrain from an export instead (leadscore hubspot export --as-of-days) "
                       "or wait until enough leads were scored by this model", True)
        if (positives == 0 and negatives >= policy.min_negatives) or (
                negatives == 0 and positives >= policy.min_positives):
            kind = "converted" if negatives == 0 else "did not convert"
            raise Stop("refused", f"all {positives + negatives:,} labelled leads {kind}: check "
                       f"the outcome rule ([label] {rules.label_column} in "
                       f"{sorted(rules.positive[rules.label_column])}, [outcome], "
                       f"OutcomeWindowDays={rules.window_days})", True)
        if positives < policy.min_positives or negatives < policy.min_negatives:
            raise Stop("refused", f"too few labelled leads: {positives:,} converted and "
                       f"{negatives:,} not, with closed outcome windows; at least "
                       f"{policy.min_positives} and {policy.min_negatives} needed. "
                       f"{labelled.pending:,} leads still wait for an outcome and "
                       f"{labelled.window_open:,} are inside their {rules.window_days}-day "
                       "window")
        judged = {lead.positive for lead in split.judge}
        trained = {lead.positive for lead in split.train}
        if len(judged) < 2 or len(trained) < 2:
            part = "judged (newest)" if len(judged) < 2 else "training (older)"
            raise Stop("refused", f"the {part} leads hold only one outcome; "
                       "wait for more outcomes")


def _summary(labelled: LabelledSet, split: Split, missing: dict[str, float]) -> DataSummary:
    return DataSummary(
        snapshots=labelled.snapshots, pending=labelled.pending, prior=labelled.prior,
        window_open=labelled.window_open, labelled=len(labelled.leads),
        positives=labelled.positives, negatives=labelled.negatives,
        train_rows=len(split.train), judge_rows=len(split.judge),
        judged_from=iso_millis(split.judge[0].scored_at) if split.judge else None,
        judged_to=iso_millis(split.judge[-1].scored_at) if split.judge else None,
        missing_columns={column: round(share, 4) for column, share in missing.items()})


def _report(model: LeadModel, split: Split) -> tuple[Any, dict[str, Any]]:
    figures, report = judge_models(model, split.judge)
    trained = model.metadata.get("metrics", {})
    report = {"model": {"version": model.version,
                        "trained_on": model.metadata.get("data", {}).get("file"),
                        "training_rows": trained.get("rows"),
                        "training_auc": trained.get("auc"), "tiers": model.tiers.model_dump()},
              **report}
    return figures, report
