"""Prometheus metrics of the decision service, in the text exposition format, no dependency.

Counters and histograms keyed by label values; :meth:`Metrics.render` writes the text that
``GET /metrics`` returns (format 0.0.4). The service records:

- ``valuechain_requests_total{endpoint, status}``: HTTP requests answered;
- ``valuechain_request_duration_seconds{endpoint}``: histogram of the whole request;
- ``valuechain_stage_duration_seconds{stage}``: histogram per decision stage — ``features``
  (validation and online features), ``model`` (score and reasons), ``policy`` (action and
  real-time capacity), ``log`` (the durable append, group commit included);
- ``valuechain_decisions_total{action}`` and ``valuechain_capacity_overflow_total{action}``;
- ``valuechain_updates_total{kind}``: outcome and dimension rows applied;
- ``valuechain_bundle_info{bundle_version, policy_version}`` (always 1).

Every process has its own registry: with several replicas, scrape each one.

>>> m = Metrics()
>>> m.inc("valuechain_decisions_total", action="review")
>>> m.observe("valuechain_stage_duration_seconds", 0.0003, stage="model")
>>> text = m.render()
>>> 'valuechain_decisions_total{action="review"} 1' in text
True
>>> 'valuechain_stage_duration_seconds_bucket{stage="model",le="0.0005"} 1' in text
True
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Sequence
from typing import Final

__all__ = ["BUCKETS", "HELP", "Metrics"]

#: Histogram upper bounds in seconds (100 µs .. 1 s).
BUCKETS: Final = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                  0.25, 0.5, 1.0)

#: Name -> (type, help text) of every metric the service writes.
HELP: Final = {
    "valuechain_requests_total": ("counter", "HTTP requests answered, by endpoint and status."),
    "valuechain_request_duration_seconds": ("histogram", "Time to answer a request."),
    "valuechain_stage_duration_seconds": (
        "histogram", "Time per decision stage: features, model, policy, log."),
    "valuechain_decisions_total": ("counter", "Decisions returned, by action."),
    "valuechain_capacity_overflow_total": (
        "counter", "Decisions whose capacity was full: the overflow rule chose the action."),
    "valuechain_updates_total": ("counter", "Outcome and dimension rows applied, by kind."),
    "valuechain_bundle_info": ("gauge", "The bundle and policy being served (value 1)."),
}

Labels = tuple[tuple[str, str], ...]


class _Histogram:
    __slots__ = ("buckets", "count", "total")

    def __init__(self, n: int) -> None:
        self.buckets = [0] * n
        self.count = 0
        self.total = 0.0


class Metrics:
    """A small, thread-safe registry of counters, gauges and histograms."""

    def __init__(self, buckets: Sequence[float] = BUCKETS) -> None:
        self.bounds = tuple(buckets)
        self._lock = threading.Lock()
        self._counters: dict[str, dict[Labels, float]] = {}
        self._gauges: dict[str, dict[Labels, float]] = {}
        self._hists: dict[str, dict[Labels, _Histogram]] = {}

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        """Add ``amount`` to a counter."""
        key = tuple(labels.items())
        with self._lock:
            series = self._counters.setdefault(name, {})
            series[key] = series.get(key, 0.0) + amount

    def set(self, name: str, value: float, **labels: str) -> None:
        """Set a gauge."""
        with self._lock:
            self._gauges.setdefault(name, {})[tuple(labels.items())] = value

    def observe(self, name: str, seconds: float, **labels: str) -> None:
        """Record one observation in a histogram."""
        key = tuple(labels.items())
        index = bisect_left(self.bounds, seconds)
        with self._lock:
            series = self._hists.setdefault(name, {})
            hist = series.get(key)
            if hist is None:
                hist = series[key] = _Histogram(len(self.bounds))
            if index < len(self.bounds):
                hist.buckets[index] += 1
            hist.count += 1
            hist.total += seconds

    def value(self, name: str, **labels: str) -> float:
        """A counter's (or gauge's) current value; 0 when never set."""
        key = tuple(labels.items())
        with self._lock:
            for table in (self._counters, self._gauges):
                if key in table.get(name, {}):
                    return table[name][key]
        return 0.0

    def render(self) -> str:
        """The Prometheus text exposition of every metric."""
        lines: list[str] = []
        with self._lock:
            names = sorted({*self._counters, *self._gauges, *self._hists})
            for name in names:
                kind, text = HELP.get(name, ("untyped", name))
                lines.append(f"# HELP {name} {text}")
                lines.append(f"# TYPE {name} {kind}")
                for table in (self._counters, self._gauges):
                    for labels, value in sorted(table.get(name, {}).items()):
                        lines.append(f"{name}{_fmt(labels)} {_num(value)}")
                for labels, hist in sorted(self._hists.get(name, {}).items()):
                    running = 0
                    for bound, count in zip(self.bounds, hist.buckets, strict=True):
                        running += count
                        lines.append(f"{name}_bucket{_fmt((*labels, ('le', _num(bound))))} "
                                     f"{running}")
                    lines.append(f"{name}_bucket{_fmt((*labels, ('le', '+Inf')))} {hist.count}")
                    lines.append(f"{name}_sum{_fmt(labels)} {_num(hist.total)}")
                    lines.append(f"{name}_count{_fmt(labels)} {hist.count}")
        return "\n".join(lines) + "\n"


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(
        float(value))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _fmt(labels: Labels) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels) + "}"
