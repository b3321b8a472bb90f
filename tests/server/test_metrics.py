"""The server's metrics: a label set's series is looked up once, and is the one prometheus_client keeps."""

from __future__ import annotations

from medops.server.metrics import Metrics


def test_metric_children_are_remembered() -> None:
    metrics = Metrics()
    one = metrics.child(metrics.requests, "POST", "/x", "200")
    assert metrics.child(metrics.requests, "POST", "/x", "200") is one
    assert one is metrics.requests.labels("POST", "/x", "200")  # the same series prometheus_client keeps
    one.inc()
    assert b'medops_requests_total{method="POST",route="/x",status="200"} 1.0' in metrics.render()
