"""OpenTelemetry SDK providers with in-memory exporters, and ways to read what they recorded."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flask_livekit_onboarding.telemetry import Telemetry


@dataclass
class Recorded:
    """An app's :class:`Telemetry` on SDK providers, and what they recorded."""

    telemetry: Telemetry
    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader
    tracer_provider: TracerProvider
    meter_provider: MeterProvider

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        spans = list(self.exporter.get_finished_spans())
        return [s for s in spans if name is None or s.name == name]

    def span(self, name: str) -> ReadableSpan:
        (span,) = self.spans(name)
        return span

    def points(self, metric: str) -> list[Any]:
        """The data points of ``metric`` recorded so far (cumulative)."""
        data = self.reader.get_metrics_data()
        found: list[Any] = []
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for item in scope.metrics:
                    if item.name == metric:
                        found.extend(item.data.data_points)
        return found

    def value(self, metric: str, **attributes: Any) -> float:
        """The sum (counter) or count (histogram) of the points matching ``attributes``."""
        total = 0.0
        for point in self.points(metric):
            labels = dict(point.attributes or {})
            if all(labels.get(k.replace("__", ".")) == v for k, v in attributes.items()):
                total += getattr(point, "value", None) or getattr(point, "count", 0)
        return total

    def attribute_values(self) -> Iterator[str]:
        """Every attribute value of every span, span event and metric point, as text."""
        for span in self.spans():
            yield span.name
            yield from (str(v) for v in (span.attributes or {}).values())
            for event in span.events:
                yield from (str(v) for v in (event.attributes or {}).values())
            if span.status.description:
                yield span.status.description
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for item in scope.metrics:
                    for point in item.data.data_points:
                        yield from (str(v) for v in (point.attributes or {}).values())

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


def recorded(**options: Any) -> Recorded:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    telemetry = Telemetry(tracer_provider, meter_provider, **options)
    return Recorded(telemetry, exporter, reader, tracer_provider, meter_provider)
