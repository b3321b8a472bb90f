"""Prometheus metrics of one server process, in a registry of its own (not the global one)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
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
            "medops_predictions", "Rows scored, by decision", ["model", "version", "decision"], registry=self.registry
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

    def render(self) -> bytes:
        return generate_latest(self.registry)
