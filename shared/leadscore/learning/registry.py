"""Decision records and candidate models in ModelArtifactsBucket (S3; no personal data).

    runs/<run id>.json                  every retrain run's decision: promoted, passed (manual
                                        promotion), rejected, refused or failed, and why
    candidates/<version>/model.txt      a trained challenger: the model directory ...
    candidates/<version>/metadata.json
    candidates/<version>/features.toml
    candidates/<version>/layer.zip      ... as a Lambda layer (`model/` = /opt/model)
    candidates/<version>/decision.json  its run's decision (figures, gate, reasons)
    candidates/<version>/report.html    champion vs challenger on the judged leads
    promotions/<at>-<action>.json       every promotion and rollback, done or failed

`leadscore model list|show` read these; the promoter reads `layer.zip` and the promotions log
(a rollback goes back to the model in use before the last promotion).

No numpy/lightgbm here.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import boto3
from botocore.exceptions import ClientError
from pydantic import BaseModel

from leadscore.learning.gate import GatePolicy, GateVerdict, ModelFigures

Result = Literal["promoted", "passed", "rejected", "refused", "failed"]
LAYER_ZIP = "layer.zip"
MODEL_FILES = ("model.txt", "metadata.json", "features.toml")
_ZIP_TIME = (2020, 1, 1, 0, 0, 0)  # fixed, so the same model gives the same layer bytes


class DataSummary(BaseModel):
    snapshots: int = 0
    pending: int = 0  # no outcome yet
    prior: int = 0  # converted before the first score (never used)
    window_open: int = 0  # outcome settled, window still open (used from a later run)
    labelled: int = 0
    positives: int = 0
    negatives: int = 0
    train_rows: int = 0
    judge_rows: int = 0
    judged_from: str | None = None  # first score of the oldest judged lead
    judged_to: str | None = None
    missing_columns: dict[str, float] = {}  # share of labelled snapshots without the column


class PromotionRecord(BaseModel):
    at: str
    action: Literal["promote", "rollback"]
    version: str | None  # None: the model built into the stack
    layer_version_arn: str  # "" = the built ModelLayer
    previous_layer_arn: str
    previous_version: str | None = None
    status: Literal["done", "failed"]
    reason: str = ""
    by: str = ""  # "retrain <run id>" or "cli"


class Decision(BaseModel):
    """One retrain run, whatever happened."""

    run_id: str
    result: Result
    reason: str
    operator_action: bool = False  # an operator must act: the run alarms
    trigger: str = "schedule"
    started_at: str
    finished_at: str | None = None
    champion_version: str | None = None
    challenger_version: str | None = None
    data: DataSummary = DataSummary()
    outcomes: dict[str, Any] = {}  # what closing the outcome windows did
    policy: GatePolicy = GatePolicy()
    min_positives: int = 0
    min_negatives: int = 0
    champion: ModelFigures | None = None
    challenger: ModelFigures | None = None
    gate: GateVerdict | None = None
    promotion: PromotionRecord | None = None
    step: str = ""  # the last step reached
    seconds: dict[str, float] = {}  # wall time per step


class CandidateMissing(ValueError):
    """The version names no candidate, or its layer.zip is gone."""


def layer_zip(model_dir: Path) -> bytes:
    """A Lambda layer with the model directory under `model/` (mounted at /opt/model)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in MODEL_FILES:
            info = zipfile.ZipInfo(f"model/{name}", date_time=_ZIP_TIME)
            info.external_attr = 0o644 << 16
            archive.writestr(info, (Path(model_dir) / name).read_bytes(),
                             compress_type=zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def candidate_prefix(version: str) -> str:
    """Where a candidate's files are in the bucket (the shadow challenger's `prefix` too)."""
    return f"candidates/{version}/"


def run_id(now: datetime, suffix: str) -> str:
    return f"{now.astimezone(UTC):%Y%m%dT%H%M%SZ}-{suffix}"


class ArtifactStore:
    def __init__(self, bucket: str, s3: Any | None = None):
        self.bucket = bucket
        self._s3 = s3 or boto3.client("s3")

    def _put(self, key: str, body: bytes | str, content_type: str) -> None:
        self._s3.put_object(Bucket=self.bucket, Key=key, ContentType=content_type,
                            Body=body.encode() if isinstance(body, str) else body)

    def _get(self, key: str) -> bytes:
        return self._s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def _keys(self, prefix: str) -> Iterator[str]:
        for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                       Prefix=prefix):
            for item in page.get("Contents", []):
                yield item["Key"]

    # ---------------------------------------------------------------- candidates
    def save_candidate(self, version: str, model_dir: Path) -> None:
        prefix = candidate_prefix(version)
        for name in MODEL_FILES:
            self._put(prefix + name, (Path(model_dir) / name).read_bytes(),
                      "application/json" if name.endswith(".json") else "text/plain")
        self._put(prefix + LAYER_ZIP, layer_zip(model_dir), "application/zip")

    def layer_location(self, version: str) -> tuple[str, str]:
        """(bucket, key) of a candidate's layer.zip; raises CandidateMissing."""
        key = candidate_prefix(version) + LAYER_ZIP
        try:
            self._s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if error.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                raise CandidateMissing(
                    f"no candidate {version!r}: s3://{self.bucket}/{key} does not exist "
                    "(`leadscore model list` shows the candidates)") from None
            raise
        return self.bucket, key

    def layer_bytes(self, version: str) -> bytes:
        return self._get(self.layer_location(version)[1])

    # ---------------------------------------------------------------- decisions
    def save_decision(self, decision: Decision, report_html: str | None = None) -> None:
        body = decision.model_dump_json(indent=2)
        self._put(f"runs/{decision.run_id}.json", body, "application/json")
        if decision.challenger_version:
            prefix = candidate_prefix(decision.challenger_version)
            self._put(prefix + "decision.json", body, "application/json")
            if report_html is not None:
                self._put(prefix + "report.html", report_html, "text/html; charset=utf-8")

    def decisions(self) -> list[Decision]:
        """Every run's decision, newest first."""
        keys = sorted(self._keys("runs/"), reverse=True)
        return [Decision.model_validate_json(self._get(key)) for key in keys]

    def decision(self, version: str) -> Decision:
        try:
            return Decision.model_validate_json(self._get(f"candidates/{version}/decision.json"))
        except ClientError as error:
            if error.response["Error"]["Code"] in ("404", "NoSuchKey"):
                raise CandidateMissing(f"no candidate {version!r} in s3://{self.bucket}") from None
            raise

    def report_key(self, version: str) -> str:
        return f"candidates/{version}/report.html"

    def report(self, version: str) -> bytes:
        return self._get(self.report_key(version))

    # ---------------------------------------------------------------- promotions
    def record_promotion(self, record: PromotionRecord) -> None:
        stamp = record.at.replace(":", "").replace("-", "")
        self._put(f"promotions/{stamp}-{record.action}.json", record.model_dump_json(indent=2),
                  "application/json")

    def promotions(self) -> list[PromotionRecord]:
        """Every promotion and rollback, newest first."""
        keys = sorted(self._keys("promotions/"), reverse=True)
        return [PromotionRecord.model_validate_json(self._get(key)) for key in keys]

    def version_of_layer(self, layer_arn: str) -> str | None:
        """The candidate version a published layer version carries (from the log)."""
        if not layer_arn:
            return None
        for record in self.promotions():
            if record.status == "done" and record.layer_version_arn == layer_arn:
                return record.version
        return None


def decision_json(decision: Decision) -> dict[str, Any]:
    return json.loads(decision.model_dump_json())
