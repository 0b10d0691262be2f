"""The local stack's stand-in for a promotion's stack update (`POST {admin_url}/model-layer`).

In AWS a promotion publishes a model-layer version and changes the stack's `ModelLayerArn`, and
CloudFormation re-points the model functions at it (leadscore.learning.promotion). Here there is
no CloudFormation and no /opt: the promoter (`LocalStackTarget`, reached through the local-only
`LEADSCORE_LOCAL_PROMOTION_URL`) hands over the layer zip's place in moto's S3; the stack
extracts it, checks that the model loads and scores, points `MODEL_DIR` at it and loads the model
functions' handlers afresh — new containers — so the next scores use it, without a restart.
An empty `layer_arn` goes back to the model built into the stack (layers/model/model).
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import threading
import zipfile
from pathlib import Path
from typing import Any

from leadscore_local.lambda_runtime import FunctionRuntime
from leadscore_local.resources import local_client


class LocalModelLayers:
    def __init__(self, runtime: FunctionRuntime, built_model: Path, aws_endpoint_url: str):
        self.runtime = runtime
        self.built_model = built_model
        self.aws_endpoint_url = aws_endpoint_url
        self.layer_arn = ""
        self._scratch = Path(tempfile.mkdtemp(prefix="leadscore-local-layers-"))
        self._lock = threading.Lock()

    @property
    def model_functions(self) -> list[str]:
        """The functions that take the model layer: those with a MODEL_DIR."""
        return sorted(logical_id for logical_id, spec in self.runtime.specs.items()
                      if "MODEL_DIR" in spec.environment)

    def state(self) -> dict[str, Any]:
        return {"layer_arn": self.layer_arn, "model_dir": os.environ.get("MODEL_DIR", ""),
                "functions": self.model_functions}

    def point_to(self, layer_arn: str, bucket: str | None, key: str | None) -> dict[str, Any]:
        with self._lock:
            if layer_arn:
                if not bucket or not key:
                    raise ValueError("a layer version needs the bucket and key of its zip")
                model_dir = self._extract(layer_arn, bucket, key)
            else:
                model_dir = self.built_model
            from leadscore.model import load  # the stack's interpreter has the model's libraries

            load(model_dir).score({})  # refuse a model that does not load or score
            os.environ["MODEL_DIR"] = str(model_dir)
            self.runtime.reload(self.model_functions)
            self.layer_arn = layer_arn
            return self.state()

    def _extract(self, layer_arn: str, bucket: str, key: str) -> Path:
        body = local_client("s3", self.aws_endpoint_url).get_object(
            Bucket=bucket, Key=key)["Body"].read()
        target = self._scratch / layer_arn.rsplit(":", 2)[-2] / layer_arn.rsplit(":", 1)[-1]
        shutil.rmtree(target, ignore_errors=True)
        with zipfile.ZipFile(io.BytesIO(body)) as archive:
            archive.extractall(target)
        return target / "model"

    def stop(self) -> None:
        shutil.rmtree(self._scratch, ignore_errors=True)
