"""The shadow challenger: a candidate model the score function runs beside the model in use on
new leads, so that both can be compared on the same live leads (the monitor report, the
learning loop's gate). Its scores are recorded next to the lead's feature snapshot and never
written to HubSpot.

Which challenger: the SSM parameter `SHADOW_CHALLENGER_PARAMETER` holds `{"version": V,
"prefix": "candidates/V/"}` (files in `MODEL_ARTIFACTS_BUCKET`: model.txt, metadata.json,
features.toml) or `none`. The learning loop sets it when a retrained candidate is not promoted.

Latency it may add to a score batch, by construction:
- finding and loading the challenger never happens on the batch's path: a background thread
  reads the parameter (at most every `REFRESH_SECONDS`), downloads the files to /tmp once per
  version and loads them (checked like any model directory); batches score with the
  challenger only once it is loaded;
- after the batch's HubSpot write and ledger, the batch's first-time leads only are scored
  (`score_many` without reasons) and recorded beside their snapshots (conditional updates, 8
  at a time); a batch whose shadow work (both) takes longer than `SHADOW_MAX_MILLISECONDS`
  pauses the challenger for `SHADOW_PAUSE_SECONDS` (`make bench` measures both per lead);
- nothing here raises into the score pipeline: a failure is logged and counted, and the
  champion's work goes on.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import boto3
from aws_lambda_powertools.metrics import MetricUnit
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from leadscore.model.contract import ScoringModel, load_model
from leadscore.monitoring.metrics import gauge, publish
from leadscore.monitoring.settings import ShadowSettings
from leadscore.observability import count, logger

WRITE_WORKERS = 8  # conditional updates in parallel, as the ledger's writes
REFRESH_SECONDS = 300  # how stale the challenger may be (as for the enrichment prompt)
MODEL_FILES = ("model.txt", "metadata.json", "features.toml")  # a model directory
# Fetching must not hang a container's background thread for long either.
AWS_CONFIG = Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 2})
NO_CHALLENGER = ("", "none")


class ChallengerRef(BaseModel):
    """The SSM parameter's value: which candidate, and where its files are."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    version: str = Field(min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    prefix: str = Field(pattern=r"^candidates/[A-Za-z0-9._-]+/$")

    @classmethod
    def parse(cls, value: str) -> ChallengerRef | None:
        """None for `none` (or empty); a ValueError naming the problem otherwise."""
        if value.strip().lower() in NO_CHALLENGER:
            return None
        try:
            return cls.model_validate_json(value)
        except ValidationError as exc:
            raise ValueError(f"shadow challenger parameter is neither 'none' nor "
                             f'{{"version", "prefix": "candidates/<version>/"}}: {exc}') from None


class ShadowResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    version: str
    score: int
    probability: float
    tier: str


class ChallengerSource(Protocol):
    def current(self) -> ChallengerRef | None: ...

    def fetch(self, ref: ChallengerRef, into: Path) -> None:
        """Writes the challenger's model directory files into `into`."""


class SsmS3Challengers:
    """The challenger named by an SSM parameter, its files in the artifacts bucket."""

    def __init__(self, parameter: str, bucket: str, *, ssm: Any = None, s3: Any = None):
        self.parameter, self.bucket = parameter, bucket
        self._ssm = ssm or boto3.client("ssm", config=AWS_CONFIG)
        self._s3 = s3 or boto3.client("s3", config=AWS_CONFIG)

    def current(self) -> ChallengerRef | None:
        value = self._ssm.get_parameter(Name=self.parameter)["Parameter"]["Value"]
        return ChallengerRef.parse(value)

    def fetch(self, ref: ChallengerRef, into: Path) -> None:
        for name in MODEL_FILES:
            self._s3.download_file(self.bucket, ref.prefix + name, str(into / name))


class ShadowRecorder(Protocol):
    def record(self, results: Mapping[str, ShadowResult]) -> int:
        """Stores the results; returns how many were stored."""


class SnapshotShadowRecorder:
    """Puts shadow scores on the leads' feature snapshots (FeatureSnapshotTable): only on a
    snapshot that exists and has none yet, i.e. the first score's, never creating one. One
    conditional UpdateItem per lead (DynamoDB has no batch update), `WRITE_WORKERS` at once."""

    def __init__(self, table_name: str, dynamodb: Any = None):
        self.table_name = table_name
        self._client = dynamodb or boto3.client(
            "dynamodb", config=Config(max_pool_connections=WRITE_WORKERS + 2))

    def record(self, results: Mapping[str, ShadowResult]) -> int:
        with ThreadPoolExecutor(max_workers=WRITE_WORKERS) as pool:
            return sum(pool.map(lambda item: self._record_one(*item), results.items()))

    def _record_one(self, contact_id: str, result: ShadowResult) -> bool:
        try:
            self._client.update_item(
                TableName=self.table_name, Key={"contact_id": {"S": contact_id}},
                UpdateExpression="SET shadow_version = :v, shadow_score = :s, "
                                 "shadow_probability = :p, shadow_tier = :t",
                ConditionExpression="attribute_exists(contact_id) AND "
                                    "attribute_not_exists(shadow_version)",
                ExpressionAttributeValues={
                    ":v": {"S": result.version}, ":s": {"N": str(result.score)},
                    ":p": {"N": str(round(result.probability, 6))}, ":t": {"S": result.tier}})
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True


class ShadowChallenger:
    """Scores first-time leads with the current challenger, if one is loaded (see the module
    docstring for what it may cost a batch)."""

    def __init__(self, source: ChallengerSource, recorder: ShadowRecorder | None, *,
                 max_milliseconds: float, pause_seconds: float,
                 load: Callable[[str], ScoringModel] = load_model,
                 workdir: Path | None = None, background: bool = True,
                 clock: Callable[[], float] = time.monotonic):
        self.source, self.recorder = source, recorder
        self.max_milliseconds, self.pause_seconds = max_milliseconds, pause_seconds
        self.load = load
        self.workdir = workdir or Path(tempfile.gettempdir()) / "leadscore-shadow"
        self.background, self.clock = background, clock
        self.model: ScoringModel | None = None
        self._checked_at: float | None = None
        self._paused_until = 0.0
        self._scoring_ms = 0.0  # the current batch's, charged with its recording
        self._lock = threading.Lock()
        self._refreshing: threading.Thread | None = None

    # ------------------------------------------------------------------ the batch's path
    def score(self, leads: Sequence[tuple[str, Mapping[str, str | None]]]
              ) -> dict[str, ShadowResult]:
        """{contact id: the challenger's score} for these leads; {} while no challenger is
        loaded, while paused, or on any failure."""
        self._refresh_if_due()
        model = self.model
        if model is None or not leads or self.clock() < self._paused_until:
            return {}
        started = time.perf_counter()
        try:
            results = model.score_many([properties for _, properties in leads],
                                       with_reasons=False)
        except Exception as error:  # the champion's work must go on
            count("ShadowScoringFailures")
            logger.warning("Shadow scoring failed", extra={"version": model.version,
                                                           "error": type(error).__name__})
            return {}
        self._scoring_ms = (time.perf_counter() - started) * 1000
        count("ShadowScored", len(results))
        return {contact_id: ShadowResult(version=model.version, score=int(r.score),
                                         probability=float(r.probability), tier=r.tier)
                for (contact_id, _), r in zip(leads, results, strict=True)}

    def record(self, results: Mapping[str, ShadowResult]) -> None:
        """Stores the shadow scores of leads the score function recorded as scored, and
        charges the batch's shadow work (scoring and recording) to the budget."""
        started = time.perf_counter()
        if results and self.recorder is not None:
            try:
                recorded = self.recorder.record(results)
            except (BotoCoreError, ClientError) as error:
                recorded = 0
                logger.warning("Shadow scores not recorded",
                               extra={"error": type(error).__name__})
            count("ShadowNotRecorded", len(results) - recorded)
        if results:
            self._charge(self._scoring_ms + (time.perf_counter() - started) * 1000,
                         len(results))
        self._scoring_ms = 0.0

    def _charge(self, milliseconds: float, leads: int) -> None:
        publish([gauge("ShadowMilliseconds", milliseconds, unit=MetricUnit.Milliseconds)])
        if milliseconds > self.max_milliseconds:
            self._paused_until = self.clock() + self.pause_seconds
            count("ShadowOverBudget")
            logger.warning("Shadow challenger over its budget: paused", extra={
                "milliseconds": round(milliseconds, 1), "leads": leads,
                "pause_seconds": self.pause_seconds})

    # ------------------------------------------------------------------ off the batch's path
    def _refresh_if_due(self) -> None:
        now = self.clock()
        if self._checked_at is not None and now - self._checked_at < REFRESH_SECONDS:
            return
        with self._lock:
            if self._refreshing is not None and self._refreshing.is_alive():
                return
            self._checked_at = now
            if not self.background:
                self.refresh()
                return
            self._refreshing = threading.Thread(target=self.refresh, name="shadow-challenger",
                                                daemon=True)
            self._refreshing.start()

    def wait(self, timeout: float | None = None) -> None:
        """Waits for a background refresh to finish (tests and benchmarks)."""
        thread = self._refreshing
        if thread is not None:
            thread.join(timeout)

    def refresh(self) -> None:
        """Reads which challenger is current and loads it if it is new; keeps the one it has
        on any failure (counted as ShadowLoadFailures)."""
        try:
            ref = self.source.current()
            if ref is None:
                self.model = None
            elif self.model is None or self.model.version != ref.version:
                self.model = self._load(ref)
                logger.info("Shadow challenger loaded", extra={"version": ref.version})
        except Exception as error:
            count("ShadowLoadFailures")
            logger.warning("Shadow challenger not loaded", extra={
                "error": type(error).__name__, "detail": str(error)[:300]})

    def _load(self, ref: ChallengerRef) -> ScoringModel:
        target = self.workdir / ref.version
        if not target.is_dir():  # once per version per container; a partial download is never used
            self.workdir.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(dir=self.workdir, prefix=".incoming-"))
            try:
                self.source.fetch(ref, staging)
                os.replace(staging, target)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        model = self.load(str(target))
        if model.version != ref.version:
            raise ValueError(f"{ref.prefix} holds model {model.version}, not {ref.version}")
        return model


def shadow_challenger_from_env() -> ShadowChallenger | None:
    """The score function's shadow challenger, or None when the stack names no parameter."""
    settings = ShadowSettings.from_env()
    if not settings.shadow_challenger_parameter or not settings.model_artifacts_bucket:
        return None
    recorder = (SnapshotShadowRecorder(settings.feature_snapshot_table)
                if settings.feature_snapshot_table else None)
    return ShadowChallenger(
        SsmS3Challengers(settings.shadow_challenger_parameter, settings.model_artifacts_bucket),
        recorder, max_milliseconds=settings.shadow_max_milliseconds,
        pause_seconds=settings.shadow_pause_seconds)

