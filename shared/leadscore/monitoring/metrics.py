"""Monitoring's CloudWatch metrics: values (a PSI, an AUC, a rate) rather than counts, some
with a dimension of their own (`feature`, `tier`).

`gauge("Name", value)` describes one; `publish` emits them through Powertools: without a
dimension into the function's metric set (dimension `service`, as every custom metric and
alarm here), with one as a single-metric EMF blob carrying `service` and that dimension (a
metric set shares one dimension set, so each feature's PSI needs a blob of its own). Counts,
which skip zeros, stay `leadscore.observability.count`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from leadscore.observability import SERVICE, metrics


@dataclass(frozen=True)
class Gauge:
    name: str
    value: float
    unit: MetricUnit = MetricUnit.NoUnit
    dimension: tuple[str, str] | None = None  # (name, value)

    @property
    def key(self) -> str:
        """`Name`, or `Name[dimension=value]`: how reports and tests refer to it."""
        if self.dimension is None:
            return self.name
        return f"{self.name}[{self.dimension[0]}={self.dimension[1]}]"


def gauge(name: str, value: float, *, unit: MetricUnit = MetricUnit.NoUnit,
          dimension: tuple[str, str] | None = None) -> Gauge:
    return Gauge(name, float(value), unit, dimension)


def publish(gauges: Iterable[Gauge]) -> None:
    for item in gauges:
        if item.dimension is None:
            metrics.add_metric(name=item.name, unit=item.unit, value=item.value)
            continue
        with single_metric(name=item.name, unit=item.unit, value=item.value,
                           namespace=metrics.namespace,
                           default_dimensions={"service": SERVICE}) as metric:
            metric.add_dimension(name=item.dimension[0], value=item.dimension[1])
