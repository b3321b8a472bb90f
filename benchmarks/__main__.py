"""Run every benchmark: `python -m benchmarks [--quick]`."""

from __future__ import annotations

import sys

from benchmarks import (
    bench_artifacts,
    bench_audit,
    bench_auth,
    bench_checkpoints,
    bench_cli,
    bench_dashboard,
    bench_deid_text,
    bench_demo,
    bench_evaluation,
    bench_features,
    bench_grid_bins,
    bench_ingest,
    bench_monitoring,
    bench_monitoring_log,
    bench_online,
    bench_pipeline,
    bench_platform_server,
    bench_registry,
    bench_report,
    bench_scoring,
    bench_serving,
    bench_synth,
    bench_tracking,
)

if __name__ == "__main__":
    extra = ["--quick"] if "--quick" in sys.argv[1:] else []
    bench_audit.main(extra)
    bench_checkpoints.main(extra)
    bench_artifacts.main(extra)
    bench_synth.main(extra)
    bench_ingest.main(extra)
    bench_deid_text.main(extra)
    bench_online.main(extra)
    bench_features.main(extra)
    bench_tracking.main(extra)
    bench_evaluation.main(extra)
    bench_registry.main(extra)
    bench_report.main(extra)
    bench_scoring.main(extra)
    bench_grid_bins.main(extra)
    bench_monitoring.main(extra)  # needs an Evidently environment (see its --help); skipped without one
    bench_monitoring_log.main(extra)  # writes 10M log rows first (about 6 minutes, 9 GB)
    bench_serving.main([*extra, "--no-scoring"])  # batch scoring ran just above
    bench_cli.main(extra)
    bench_auth.main(extra)
    bench_pipeline.main(extra)
    bench_platform_server.main(extra)
    bench_dashboard.main(extra)
    bench_demo.main(extra)
