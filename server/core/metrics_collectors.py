"""Prometheus collectors of our own (server/core/metrics.py registers them; imported only by
servers with metrics on, as prometheus_client is)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


class LabelledGauge(Collector):
    """A gauge whose labelled values are all read at scrape time."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labels: tuple[str, ...],
        read: Callable[[], Mapping[Any, float]],
    ) -> None:
        self._name = name
        self._documentation = documentation
        self._labels = labels
        self._read = read

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(self._name, self._documentation, labels=list(self._labels))
        for value, number in self._read().items():
            family.add_metric(list(value) if isinstance(value, tuple) else [value], number)
        yield family

    def describe(self) -> list[Metric]:
        return []
