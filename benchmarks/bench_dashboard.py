"""The dashboard's pages on a large workspace: each page's time, against the API call that reads the same
records as JSON (the floor a page can't go under).

`python -m benchmarks.bench_dashboard [--runs 20000 --models 50 --events 1000000 --requests 50 --demo-dir DIR]`

The workspace is the lifecycle demo's (``medops demo`` into a temporary folder, or ``--demo-dir``),
grown before the server starts: ``--runs`` finished runs (parameters, tags, latest metrics), ``--models``
registered models in all (copies of the demo's production version under new names) and ``--events``
audit events in all (appended through the trail, so the chain and its checkpoints hold). Then `medops
server` (1 worker) serves it on loopback; a client signed in through the page's own form asks each page
``--requests`` times after 5 warm-ups, the pages and their API counterparts interleaved, and reports
the median and p95 of the whole request as the client sees it. Aim (issue 22): p95 under 100 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.common import print_table, temp_dir

AIM_MS = 100.0


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def demo_workspace(base: Path, reuse: Path | None) -> Path:
    """A copy of the demo's folder to grow (the demo run here when no folder is given)."""
    import shutil

    from medops.demo import run_demo

    source = reuse
    if source is None:
        source = base / "demo"
        print("running the lifecycle demo once...", flush=True)
        run_demo(source)
    copy = base / "grown"
    shutil.copytree(source, copy)
    settings = copy / "workspace" / "medops.toml"
    settings.write_text(settings.read_text().replace(str(source), str(copy)))
    return copy


def grow(home: Path, runs: int, models: int, events: int) -> dict[str, float]:
    """Runs, models and audit events added until the workspace holds the sizes asked for; seconds each took."""
    from sqlalchemy import func, insert, select

    from benchmarks.bench_tracking import fill_medops, search_data
    from medops.audit import NewEvent
    from medops.store import migrate
    from medops.store.schema import AuditEvent, ModelVersion, RegisteredModel
    from medops.workspace import Workspace

    took: dict[str, float] = {}
    with Workspace.open(home / "workspace", check_schema=False) as old:  # a reused demo folder may be older
        migrate.upgrade(old.db)
    with Workspace.open(home / "workspace") as ws:
        took["runs"] = fill_medops(ws, search_data(runs))
        started = time.perf_counter()
        with ws.db.write() as session:
            production = session.execute(select(ModelVersion).where(ModelVersion.stage == "production")).scalar()
            assert production is not None
            have = session.scalar(select(func.count()).select_from(RegisteredModel)) or 0
            now = datetime.now(UTC)
            names = [f"bench_model_{i:03d}" for i in range(max(0, models - have))]
            if names:
                session.execute(
                    insert(RegisteredModel),
                    [{"name": n, "description": "", "created_by": "ada", "created_at": now} for n in names],
                )
                copied = {c.key: getattr(production, c.key) for c in ModelVersion.__table__.columns}
                session.execute(
                    insert(ModelVersion),
                    [{**copied, "model": n, "version": 1, "stage": "staging", "created_at": now} for n in names],
                )
        took["models"] = time.perf_counter() - started
        started = time.perf_counter()
        with ws.db.read() as session:
            have = session.scalar(select(func.count()).select_from(AuditEvent)) or 0
        actors = ("alice", "ming", "victor", "carol", "ada")
        for start in range(have, events, 20_000):
            batch = [
                NewEvent(actors[i % 5], "bench.read", "dataset", f"bench-{i % 997}", reason="seeded")
                for i in range(start, min(events, start + 20_000))
            ]
            ws.trail.record_many(batch)
            print(f"  audit events: {min(events, start + 20_000):,}", flush=True)
        took["events"] = time.perf_counter() - started
    return took


def timed_requests(http: Any, calls: list[tuple[str, dict[str, str]]], requests: int) -> list[list[float]]:
    """Each (path, headers) ``requests`` times after 5 warm-ups, all of them interleaved; seconds per request."""
    for path, headers in calls:
        for _ in range(5):
            answer = http.get(path, headers=headers)
            assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
    times: list[list[float]] = [[] for _ in calls]
    for _ in range(requests):
        for i, (path, headers) in enumerate(calls):
            started = time.perf_counter()
            answer = http.get(path, headers=headers)
            times[i].append(time.perf_counter() - started)
            assert answer.status_code == 200, (path, answer.status_code)
    return times


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20_000)
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--demo-dir", type=Path, default=None, help="a `medops demo --dir` folder to reuse")
    parser.add_argument("--quick", action="store_true", help="2,000 runs, 10 models, 50,000 events, 10 requests")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.models, args.events, args.requests = 2_000, 10, 50_000, 10
    import httpx

    from benchmarks.bench_serving import Side, start, stop, wait_ready
    from medops.demo import DEMO_PASSWORD

    print(f"machine: {os.cpu_count()} cores; load average at start: {_load()}", flush=True)
    with temp_dir("medops-bench-dashboard-") as base:
        home = demo_workspace(base, args.demo_dir)
        os.environ["MEDOPS_KEY_DIR"] = str(home / "keys")
        took = grow(home, args.runs, args.models, args.events)
        env = {k: v for k, v in os.environ.items() if k not in ("MEDOPS_SERVER_URL", "MEDOPS_TOKEN")}
        env["MEDOPS_HOME"] = str(home / "workspace")
        server = Side(
            "medops server", "medops", 1, [sys.executable, "-m", "medops", "server"], env, "/readyz", "/ui/", {}
        )
        start(server, base)
        try:
            wait_ready(server)
            url = f"http://127.0.0.1:{server.port}"
            with httpx.Client(base_url=url, timeout=60) as http:
                signed = http.post("/ui/login", data={"username": "victor", "password": DEMO_PASSWORD, "next": "/ui/"})
                assert signed.status_code == 303, signed.text
                secret = signed.cookies["medops_session"]
                http.headers["Cookie"] = f"medops_session={secret}"
                api = {"Authorization": f"Bearer {secret}"}
                pages = {
                    "home": ("/ui/", "/v1/models"),
                    "model": ("/ui/models/readmission_30d", "/v1/models/readmission_30d"),
                    "version": ("/ui/models/readmission_30d/3", "/v1/models/readmission_30d:3"),
                    "runs": ("/ui/runs", "/v1/runs?limit=200"),
                    "data": ("/ui/data", "/v1/datasets?limit=200"),
                    "lineage": ("/ui/lineage?entity=readmission_30d:3", "/v1/lineage/readmission_30d:3"),
                    "monitoring": ("/ui/monitoring", "/v1/monitoring/windows?limit=100"),
                    "alerts": ("/ui/alerts", "/v1/alerts?limit=200"),
                    "audit": ("/ui/audit", "/v1/audit/events?limit=200"),
                    "audit, one actor": ("/ui/audit?actor=carol", "/v1/audit/events?limit=200&actor=carol"),
                    "admin": ("/ui/admin", "/v1/users"),
                }
                calls = [
                    (path, headers) for page, call in pages.values() for path, headers in ((page, {}), (call, api))
                ]
                measured = timed_requests(http, calls, args.requests)
        finally:
            stop(server)
    rows = []
    for i, name in enumerate(pages):
        page_times, api_times = measured[2 * i], measured[2 * i + 1]
        mid, worst = statistics.median(page_times) * 1000, p95(page_times) * 1000
        floor = statistics.median(api_times) * 1000
        verdict = "ok" if worst < AIM_MS else "MISSED"
        rows.append([name, f"{mid:.1f}", f"{worst:.1f}", f"{floor:.1f}", f"{mid / floor:.1f}x", verdict])
    print_table(
        f"dashboard pages on {args.runs:,} runs, {args.models} models, {args.events:,} audit events "
        f"(ms, {args.requests} requests each, loopback, 1 worker)",
        ["page", "p50", "p95", "API p50", "page / API", f"p95 < {AIM_MS:.0f} ms"],
        rows,
    )
    print(f"- grown in {took['runs']:.1f} s (runs), {took['models']:.1f} s (models), {took['events']:.1f} s (events)")
    print(f"machine: {os.cpu_count()} cores; load average at the end: {_load()}")


if __name__ == "__main__":
    sys.exit(main())
