"""Training: experiment tracking (trainers, splits and tuning follow)."""

from medops.training.tracking import MetricFilter, Run, RunInfo, Tracker, start_run

__all__ = ["MetricFilter", "Run", "RunInfo", "Tracker", "start_run"]
