"""Prometheus metrics of one server process, in a registry of its own (not the global one)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

if TYPE_CHECKING:
    from medops.serving.models import ServedModel

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._children: dict[tuple[Any, tuple[str, ...]], Any] = {}  # see child
        self.requests = Counter(
            "medops_requests", "HTTP requests answered", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "medops_request_seconds",
            "Time to answer a request",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.errors = Counter(
            "medops_errors", "Requests that failed on the server's side (5xx)", ["route"], registry=self.registry
        )
        self.rejected = Counter(
            "medops_rejected_inputs",
            "Rows refused by input validation, by what was wrong",
            ["model", "version", "reason"],
            registry=self.registry,
        )
        self.predictions = Counter(
            "medops_predictions",
            "Rows scored, by decision and variant (champion, canary, shadow)",
            ["model", "version", "decision", "variant"],
            registry=self.registry,
        )
        self.shadow_failures = Counter(
            "medops_shadow_failures",
            "Requests a shadow could not score or log (the caller was answered by the champion), by error code",
            ["model", "version", "reason"],
            registry=self.registry,
        )
        self.flagged = Counter(
            "medops_flagged_inputs",
            "Rows scored outside the trained range under the flag policy",
            ["model", "version"],
            registry=self.registry,
        )
        self.model_info = Gauge(
            "medops_model_info",
            "The model version served",
            ["model", "version", "bundle_sha256"],
            registry=self.registry,
        )

        self.swaps = Counter(
            "medops_model_swaps",
            "Versions swapped in by following the registry, by the version swapped in",
            ["model", "version"],
            registry=self.registry,
        )
        self.swap_failures = Counter(
            "medops_model_swap_failures",
            "Registry checks that could not swap in the version named (the old one kept serving), by error code",
            ["model", "reason"],
            registry=self.registry,
        )
        self.registry_checks = Counter(
            "medops_registry_checks", "Passes of the follower over the followed models", registry=self.registry
        )

    def child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, remembered: prometheus_client checks and locks on every call (3 us),
        more than the count itself on a request's path. Label sets are bounded (routes, statuses, models)."""
        key = (metric, labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def served(self, model: ServedModel) -> None:
        self.model_info.labels(model.name, str(model.version), model.bundle_sha256).set(1)

    # the follower's listener (medops.serving.follow.FollowListener)
    def swapped(self, old: ServedModel, new: ServedModel) -> None:
        self.served(new)
        self.model_info.remove(old.name, str(old.version), old.bundle_sha256)  # one series per model served
        self.swaps.labels(new.name, str(new.version)).inc()

    def swap_failed(self, name: str, reason: str) -> None:
        self.swap_failures.labels(name, reason).inc()

    def registry_checked(self) -> None:
        self.registry_checks.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
