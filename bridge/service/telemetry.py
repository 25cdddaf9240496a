"""The service's Prometheus metrics, behind one class with a method per thing that happens.

Every metric lives in the `Telemetry` instance's own `CollectorRegistry`, never the process-global one, so
tests and several services in one process do not clash. Label values are bounded: statuses and outcomes are
closed sets, and the free-form ones (template names, dead-letter error types) are folded into `"_other"` once
they leave the known set or pass a cap, because a message on a topic must not be able to create time series.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Final, Literal, get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

SuggestionOutcome = Literal["accepted", "dead_lettered", "duplicate", "replayed", "refused"]
RunStatus = Literal["succeeded", "failed", "stopped", "skipped"]
TransactionOutcome = Literal["committed", "aborted"]

# The text exposition format `generate_latest` writes; spelled out because prometheus-client's constant for it
# changed name and value across the versions pyproject allows.
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
OTHER: Final = "_other"
"""The label value that stands for every value past the known set or the cap."""

# From a cache hit answered at once (~10 ms) to a run that uses a whole one-hour timeout.
RUN_DURATION_BUCKETS: Final = (
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0,
)  # fmt: skip
# Configs per mapping operation; `batching.max_configs` defaults to 64, the top buckets show a raised cap.
BATCH_SIZE_BUCKETS: Final = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0)
# A transactional publish is a few broker round trips: milliseconds when healthy, seconds when not.
PUBLISH_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class _BoundedLabel:
    """Admits label values from `known` (when given) or the first `limit` distinct ones; folds the rest."""

    def __init__(self, known: Iterable[str] | None, limit: int) -> None:
        self._known = frozenset(known) if known is not None else None
        self._limit = limit
        self._seen: set[str] = set()

    def __call__(self, value: str) -> str:
        if self._known is not None:
            return value if value in self._known else OTHER
        if value in self._seen:
            return value
        if len(self._seen) < self._limit:
            self._seen.add(value)
            return value
        return OTHER


class Telemetry:
    """The bridge's metrics: what the service reports, and `render()` for the `/metrics` endpoint.

    `templates` names the configured templates; a suggestion naming any other one is counted under `"_other"`.
    Without it, the first `max_label_values` distinct template names are kept as they are. Dead-letter error
    types are capped the same way.
    """

    def __init__(
        self,
        *,
        templates: Iterable[str] | None = None,
        max_label_values: int = 100,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.registry: CollectorRegistry = registry if registry is not None else CollectorRegistry()
        self._template_label = _BoundedLabel(templates, max_label_values)
        self._error_type_label = _BoundedLabel(None, max_label_values)
        r = self.registry
        self._suggestions = Counter(
            "bridge_suggestions_received",
            "Suggested configs received, by template and what became of them "
            "(accepted, refused with a failed answer, dead_lettered, duplicate of one already seen).",
            ["template", "outcome"],
            registry=r,
        )
        self._runs_finished = Counter(
            "bridge_runs_finished",
            "Runs that reached a final status, by status and whether the result came from the cache.",
            ["status", "cached"],
            registry=r,
        )
        self._run_duration = Histogram(
            "bridge_run_duration_seconds",
            "Wall time of runs that executed (cache hits excluded), by final status.",
            ["status"],
            buckets=RUN_DURATION_BUCKETS,
            registry=r,
        )
        self._batch_size = Histogram(
            "bridge_operation_batch_size",
            "Configs per mapping operation built from a batch of suggestions.",
            buckets=BATCH_SIZE_BUCKETS,
            registry=r,
        )
        self._in_flight = Gauge("bridge_runs_in_flight", "Runs accepted and not yet finished.", registry=r)
        self._lag = Gauge(
            "bridge_consumer_lag",
            "Records between the consumer's position and the partition's end offset, by assigned topic partition"
            " (the suggestions and control topics have partitions of the same numbers).",
            ["topic", "partition"],
            registry=r,
        )
        self._dead_letters = Counter(
            "bridge_dead_letters",
            "Messages sent to the dead-letter topic, by error type.",
            ["type"],
            registry=r,
        )
        self._transactions = Counter(
            "bridge_publish_transactions",
            "Producer transactions that published results and committed offsets, by outcome.",
            ["outcome"],
            registry=r,
        )
        self._transaction_duration = Histogram(
            "bridge_publish_transaction_duration_seconds",
            "Time from beginning a publish transaction to its commit or abort.",
            buckets=PUBLISH_BUCKETS,
            registry=r,
        )
        self._paused = Gauge(
            "bridge_consumer_paused",
            "1 while consumption is paused for backpressure (max_in_flight reached), else 0.",
            registry=r,
        )
        self._precreate_closed_sets()

    def _precreate_closed_sets(self) -> None:
        # Series of closed label sets exist from the start at 0, so rate() and alerts see the first event.
        for status in get_args(RunStatus):
            self._run_duration.labels(status=status)
            for cached in ("true", "false"):
                self._runs_finished.labels(status=status, cached=cached)
        for outcome in get_args(TransactionOutcome):
            self._transactions.labels(outcome=outcome)

    def suggestion_received(self, template: str, outcome: SuggestionOutcome, count: int = 1) -> None:
        """Count `count` suggested configs for `template` that were accepted, refused, dead-lettered or duplicates."""
        self._suggestions.labels(template=self._template_label(template), outcome=outcome).inc(count)

    def run_finished(self, status: RunStatus, *, cached: bool, duration_s: float | None = None) -> None:
        """Count a run's final result; its duration is observed when it executed (not cached) and is known."""
        self._runs_finished.labels(status=status, cached="true" if cached else "false").inc()
        if not cached and duration_s is not None:
            self._run_duration.labels(status=status).observe(duration_s)

    def operation_created(self, configs: int) -> None:
        """Observe the size of a mapping operation built from a batch: `configs` runs."""
        self._batch_size.observe(configs)

    def set_runs_in_flight(self, runs: int) -> None:
        """Set how many runs are accepted and not yet finished."""
        self._in_flight.set(runs)

    def set_consumer_lag(self, topic: str, partition: int, lag: int) -> None:
        """Set the lag, in records, of an assigned input partition."""
        self._lag.labels(topic=topic, partition=str(partition)).set(lag)

    def forget_partition(self, topic: str, partition: int) -> None:
        """Drop a revoked partition's lag series, so a replica only reports the partitions it owns."""
        with contextlib.suppress(KeyError):  # never reported: nothing to drop
            self._lag.remove(topic, str(partition))

    def dead_lettered(self, error_type: str) -> None:
        """Count a message sent to the dead-letter topic, by its error type (e.g. `"invalid_json"`)."""
        self._dead_letters.labels(type=self._error_type_label(error_type)).inc()

    def publish_transaction(self, duration_s: float, outcome: TransactionOutcome = "committed") -> None:
        """Count one publish transaction and observe how long it took from begin to commit or abort."""
        self._transactions.labels(outcome=outcome).inc()
        self._transaction_duration.observe(duration_s)

    def set_consumer_paused(self, paused: bool) -> None:
        """Record whether consumption is paused for backpressure."""
        self._paused.set(1 if paused else 0)

    def render(self) -> tuple[bytes, str]:
        """The registry in Prometheus text format: `(body, content_type)`."""
        return generate_latest(self.registry), CONTENT_TYPE
