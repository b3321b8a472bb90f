"""The platform server against MLflow's tracking server: logging and run search over HTTP.

Both servers run on this machine, on loopback, at the same time, each with a SQLite store:

- medops: the real `medops server` process (its defaults: 1 worker), on a fresh workspace
  (``--backend postgresql`` puts the workspace's database on PostgreSQL instead). The client is
  the public SDK path: ``medops.start_run`` with MEDOPS_SERVER_URL and MEDOPS_TOKEN (an admin's
  API token) set, which sends the values in batches of 1,000 per request.
- MLflow: `mlflow server --backend-store-uri sqlite:///... --default-artifact-root ...` (its
  defaults otherwise: uvicorn, 4 workers; ``--mlflow-workers`` changes that). The client runs
  in MLflow's own venv as a subprocess with MLFLOW_TRACKING_URI pointing at the server, and
  prints its timings as JSON. MLflow is never installed into the project's environment: the
  tracking server needs the full ``mlflow`` package (Flask and the rest), so it gets a venv of
  its own beside bench_tracking's (``--mlflow-venv``; made with ``pip install mlflow`` when
  missing, then checked by bench_tracking's ``ensure_mlflow``), and the skinny MLflow that
  bench_tracking and bench_serving measure is left as it is.

Timed, the same work on both sides, from the same throw-away git repository (both clients
look up its git state):

1. Logging: 10,000 values of one metric in one run (start, ``log_metric`` steps 0..9999, end,
   all inside the clock), and 100 runs of 10 parameters each (start, 10 ``log_param``, end).
   medops: ``medops.start_run``. MLflow: its per-call fluent API (``mlflow.start_run``,
   ``mlflow.log_metric`` / ``mlflow.log_param``) and its batch API (``MlflowClient.create_run``
   + ``log_batch`` in chunks of 1,000 + ``set_terminated``). Each MLflow process makes one
   untimed run of each kind first, as the medops side did once in this process. ``--rounds``
   rounds, the sides interleaved (the order alternates), medians reported. Speed-up = MLflow
   time / medops time; aim: at least 5x, against both MLflow modes.
2. Search: both stores hold the same 20,000 runs (5 params, 3 tags, 3 latest metrics;
   bench_tracking's ``search_data``), written before the servers start (medops: rows inserted
   by bench_tracking's ``fill_medops``; MLflow: bench_tracking's own MLflow script, which makes
   one run through MLflow's API and clones its rows with sqlite3, and checks its top 100).
   Timed per request, after a warm-up: medops ``GET /v1/runs?tag=model=lgbm&metric=auroc>0.8&
   limit=100`` with the bearer token on one keep-alive httpx client, against MLflow's
   ``MlflowClient().search_runs(experiment_ids, filter_string="metrics.auroc > 0.8 and
   tags.model = 'lgbm'", max_results=100)``. Both answers are checked against the expected 100
   runs, in order. p50 and p99 of each round's requests, medians over the rounds; aim: medops
   p99 under 100 ms.

Both servers are left to settle after they answer their probes, until neither uses more than 5 %
of a core (MLflow's other workers are still starting then), so no side is timed against the
other's start-up.

Each server's output goes to a log file (medops writes one JSON line per request); both are
stopped at the end, on error too (their process groups are killed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.bench_serving import ROOT, Side, _mlflow_env, _tail, start, stop, wait_idle, wait_ready
from benchmarks.bench_tracking import (
    DEFAULT_VENV,
    MLFLOW_PACKAGES,
    MODELS,
    SEARCH_FILTER,
    SPEEDUP_AIM,
    MlflowWorker,
    _expected,
    ensure_mlflow,
    fill_medops,
    git_repo,
    search_data,
)
from benchmarks.common import PASSWORD, environment, print_table, temp_dir, workspace

ADMIN = "admin"  # the first admin benchmarks.common.workspace makes, with PASSWORD
ROUNDS = 3
WARMUP_REQUESTS = 10
SEARCH_AIM_MS = 100.0
SEARCH_QUERY: tuple[tuple[str, str | int | float | bool | None], ...] = (
    ("tag", "model=lgbm"),
    ("metric", "auroc>0.8"),
    ("limit", "100"),
)
STEP_TIMEOUT = 1800  # seconds one MLflow client process may take (its per-call API is slow)
SERVER_VENV = DEFAULT_VENV.parent / "mlflow-server-venv"

# The MLflow client, run by the MLflow venv's interpreter against the server in
# MLFLOW_TRACKING_URI: argv[1] is a JSON config file, the last line printed is the JSON result.
MLFLOW_CLIENT = r"""
import json, statistics, sys, time
import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric, Param

cfg = json.load(open(sys.argv[1]))
clock = time.perf_counter
client = MlflowClient()
out = {"version": mlflow.__version__}

if cfg["mode"] == "logging":
    exp = client.get_experiment_by_name("bench").experiment_id
    mlflow.set_experiment(experiment_id=exp)
    # first-use costs (imports, connections, the git lookup's modules) outside the clock
    with mlflow.start_run(run_name="warm-up"):
        mlflow.log_param("warm", 1)
        mlflow.log_metric("warm", 1.0, step=0)
    rid = client.create_run(exp, run_name="warm-up-batch").info.run_id
    client.log_batch(rid, metrics=[Metric("warm", 1.0, int(time.time() * 1000), 0)], params=[Param("warm", "1")])
    client.set_terminated(rid)
    n, runs = cfg["metrics"], cfg["runs"]

    t = clock()
    with mlflow.start_run(run_name="metrics") as run:
        for i in range(n):
            mlflow.log_metric("loss", 1.0 / (i + 1), step=i)
    out["metrics_call"] = clock() - t
    out["metrics_call_count"] = len(client.get_metric_history(run.info.run_id, "loss"))

    t = clock()
    rid = client.create_run(exp, run_name="metrics-batch").info.run_id
    for start in range(0, n, 1000):
        batch = [Metric("loss", 1.0 / (i + 1), int(time.time() * 1000), i) for i in range(start, min(n, start + 1000))]
        client.log_batch(rid, metrics=batch)
    client.set_terminated(rid)
    out["metrics_batch"] = clock() - t
    out["metrics_batch_count"] = len(client.get_metric_history(rid, "loss"))

    t = clock()
    for r in range(runs):
        with mlflow.start_run(run_name=f"run-{r}"):
            for j in range(10):
                mlflow.log_param(f"p{j}", (r * 10 + j) * 0.5)
    out["runs_call"] = clock() - t

    t = clock()
    for r in range(runs):
        rid = client.create_run(exp, run_name=f"batch-{r}").info.run_id
        client.log_batch(rid, params=[Param(f"p{j}", str((r * 10 + j) * 0.5)) for j in range(10)])
        client.set_terminated(rid)
    out["runs_batch"] = clock() - t
    out["runs_batch_params"] = len(client.get_run(rid).data.params)

if cfg["mode"] == "search":
    exp = client.get_experiment_by_name("search").experiment_id

    def search():
        return client.search_runs([exp], filter_string=cfg["filter"], max_results=100)

    for _ in range(cfg["warmup"]):
        found = search()
    out["ids"] = [r.info.run_id for r in found]
    samples = []
    for _ in range(cfg["requests"]):
        t = clock()
        search()
        samples.append(clock() - t)
    out["samples"] = samples

print(json.dumps(out))
"""


# --- MLflow: its venv, its store, its client -------------------------------------------------


def ensure_mlflow_server(venv: Path) -> tuple[Path | None, str]:
    """The interpreter of an MLflow venv with the tracking server (the full ``mlflow`` package).

    The tracking server needs the full package (Flask, its UI and handlers), which the venv of
    bench_tracking and bench_serving (mlflow-skinny) lacks; putting it there could change the
    MLflow version they measure, so this benchmark keeps a venv of its own by default. Once the
    package is in, bench_tracking's ``ensure_mlflow`` checks the venv and names the version.
    """
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import flask, mlflow.server.handlers"]
    ready = python.exists() and (venv / "bin" / "mlflow").exists()
    if not ready or subprocess.run(probe, capture_output=True, check=False).returncode != 0:
        print(f"installing MLflow with its tracking server into {venv} (once; never into the project's environment)...")
        try:
            if not python.exists():
                base = shutil.which("python3") or sys.executable
                subprocess.run([base, "-m", "venv", str(venv)], check=True, capture_output=True, text=True, timeout=300)
            subprocess.run(
                [str(python), "-m", "pip", "install", "-q", "mlflow", *MLFLOW_PACKAGES[1:]],
                check=True,
                capture_output=True,
                text=True,
                timeout=1800,
            )
            subprocess.run(probe, capture_output=True, text=True, check=True, timeout=300)
        except (OSError, subprocess.SubprocessError) as exc:
            detail = getattr(exc, "stderr", None) or str(exc)
            lines = [line for line in str(detail).strip().splitlines() if line.strip() and "WARNING" not in line]
            return (
                None,
                f"MLflow's tracking server could not be installed ({lines[-1] if lines else type(exc).__name__})",
            )
    return ensure_mlflow(venv)


def mlflow_process(python: Path, venv: Path, script: str, cfg: dict[str, Any], cwd: Path, **env: str) -> Any:
    """Run ``script`` in the MLflow venv with ``cfg``; the JSON it prints last."""
    (cwd / "mlflow_bench.py").write_text(script)
    (cwd / "mlflow_config.json").write_text(json.dumps(cfg))
    done = subprocess.run(
        [str(python), str(cwd / "mlflow_bench.py"), str(cwd / "mlflow_config.json")],
        cwd=cwd,
        env=_mlflow_env(venv) | {"GIT_OPTIONAL_LOCKS": "0", **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=STEP_TIMEOUT,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the MLflow client failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def fill_mlflow(python: Path, repo: Path, db: Path, artifacts: Path, data: list[dict[str, Any]]) -> dict[str, Any]:
    """bench_tracking's MLflow worker on ``db``: experiments bench and search, ``data`` cloned in, and its own
    check of the store (top 100 and every match), not a measurement here."""
    worker = MlflowWorker(python, repo, db.parent, db=db, artifacts=artifacts)
    try:
        (repo.parent / "search.json").write_text(json.dumps(data))
        filled = worker("fill", str(repo.parent / "search.json"))
        top, every = worker("search", 100), worker("search", None)
    finally:
        worker.close()
    return {"seconds": filled["seconds"], "tables": filled["tables"], "all": len(every), "top": top}


# --- medops: the server's workspace and the SDK client -------------------------------------------


def medops_token(ws: Any) -> str:
    """An API token of the workspace's admin, made as a user would (a login, then a token)."""
    from medops.services import Services

    identity = Services(ws).identity
    caller = identity.authenticate(identity.login(ADMIN, password=PASSWORD)[1])
    return identity.create_token(caller, "bench")[1]


def sdk_environment(url: str, token: str, cwd: Path) -> Any:
    """MEDOPS_SERVER_URL and MEDOPS_TOKEN set, and ``cwd`` the working directory, for the block."""
    return environment({"MEDOPS_SERVER_URL": url, "MEDOPS_TOKEN": token}, cwd)


def medops_logging(metrics: int, runs: int) -> dict[str, Any]:
    """Seconds to log ``metrics`` values in one run and to make ``runs`` runs of 10 params, via medops.start_run."""
    import medops

    out: dict[str, Any] = {}
    clock = time.perf_counter()
    with medops.start_run("bench", "metrics") as run:
        for i in range(metrics):
            run.log_metric("loss", 1.0 / (i + 1), step=i)
    out["metrics"] = time.perf_counter() - clock
    out["metrics_run"], out["metrics_state"] = run.id, run.state
    clock = time.perf_counter()
    for r in range(runs):
        with medops.start_run("bench", f"run-{r}") as run:
            for j in range(10):
                run.log_param(f"p{j}", (r * 10 + j) * 0.5)
    out["runs"] = time.perf_counter() - clock
    out["runs_last"], out["runs_state"] = run.id, run.state
    return out


def warm_medops() -> None:
    """One untimed run through the SDK: the environment lock (read once per process) and imports."""
    import medops

    with medops.start_run("bench", "warm-up") as run:
        run.log_param("warm", 1)
        run.log_metric("warm", 1.0, step=0)


def sdk_client_cost(url: str, token: str, repeats: int = 20) -> float:
    """Median seconds to make the SDK's client (``medops.start_run`` makes one per run) and close it."""
    import medops

    samples = []
    for _ in range(repeats):
        clock = time.perf_counter()
        medops.Client(url, token).close()
        samples.append(time.perf_counter() - clock)
    return statistics.median(samples)


def medops_search(url: str, token: str, requests: int) -> tuple[list[float], list[str]]:
    """Seconds per search request (after a warm-up) on one keep-alive client, and the ids found."""
    import httpx

    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as http:

        def search() -> dict[str, Any]:
            answer = http.get("/v1/runs", params=SEARCH_QUERY)
            answer.raise_for_status()
            return dict(answer.json())

        for _ in range(WARMUP_REQUESTS):
            page = search()
        samples = []
        for _ in range(requests):
            clock = time.perf_counter()
            search()
            samples.append(time.perf_counter() - clock)
    return samples, [item["id"] for item in page["items"]]


def server_times(log: Path | None, skip: int) -> tuple[dict[str, list[float]], int]:
    """The medops server's own milliseconds per route from its access log, past its first ``skip``
    lines; and the number of lines now."""
    time.sleep(0.5)  # the server writes a request's line after answering it
    lines = log.read_text(errors="replace").splitlines() if log is not None else []
    out: dict[str, list[float]] = {}
    for line in lines[skip:]:
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and {"method", "route", "ms"} <= doc.keys():
            out.setdefault(f"{doc['method']} {doc['route']}", []).append(float(doc["ms"]))
    return out, len(lines)


def _server_note(phase: str, times: dict[str, list[float]]) -> str:
    parts = [f"{route} {statistics.median(ms):.1f} ms (x{len(ms):,})" for route, ms in sorted(times.items())]
    return f"medops server's own time per request while {phase} (its access log, median): " + "; ".join(parts)


# --- the report ------------------------------------------------------------------------------


def _p(samples: list[float], q: int) -> float:
    """The q-th percentile (1..99), interpolated."""
    if len(samples) == 1:
        return samples[0]
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1]


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def _s(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f} s"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 1e3:.1f} ms"


def _x(ref: float | None, value: float) -> str:
    return "" if ref is None else f"{ref / value:.1f}x"


def _speedup_aim(call: float | None, batch: float | None, value: float) -> str:
    if call is None or batch is None:
        return "n/a (no MLflow)"
    verdict = [
        f"per-call {'ok' if call / value >= SPEEDUP_AIM else 'MISSED'}",
        f"batch {'ok' if batch / value >= SPEEDUP_AIM else 'MISSED'}",
    ]
    return f">= {SPEEDUP_AIM:g}x: " + ", ".join(verdict)


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def main(argv: list[str] | None = None) -> list[list[Any]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite", help="medops's database")
    parser.add_argument("--metrics", type=int, default=10_000, help="metric values logged in one run")
    parser.add_argument("--runs", type=int, default=100, help="runs of 10 parameters each")
    parser.add_argument("--runs-for-search", type=int, default=20_000, help="runs in both stores for the search")
    parser.add_argument("--search-requests", type=int, default=100, help="timed search requests per side per round")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="rounds per side (medians reported)")
    parser.add_argument("--mlflow-venv", type=Path, default=SERVER_VENV, help="the MLflow venv (made if missing)")
    parser.add_argument("--mlflow-workers", type=int, default=None, help="MLflow server workers (default: its own)")
    parser.add_argument("--no-mlflow", action="store_true", help="medops rows only")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.metrics, args.runs, args.runs_for_search, args.search_requests, args.rounds = 1_000, 10, 2_000, 20, 1
    if min(args.metrics, args.runs, args.runs_for_search, args.search_requests, args.rounds) < 1:
        parser.error("every size must be at least 1")
    os.environ["GIT_OPTIONAL_LOCKS"] = "0"  # git status never takes the index lock
    print(f"machine: {os.cpu_count()} cores; load average at start: {_load()}", flush=True)

    python, version = (None, "not run (--no-mlflow)") if args.no_mlflow else ensure_mlflow_server(args.mlflow_venv)
    if python is None:
        print(f"MLflow is unavailable: {version}; only the medops rows run")
    data = search_data(args.runs_for_search)
    expected = _expected(data)
    notes: list[str] = []
    sides: list[Side] = []
    with temp_dir("medops-bench-server-") as base, workspace(args.backend) as ws:
        try:
            repo = git_repo(base)
            logs = base / "logs"
            logs.mkdir()
            # the stores, filled before either server starts
            home = ws.settings.home
            token = medops_token(ws)
            fill_s = fill_medops(ws, data)
            ws.close()  # the server opens the workspace itself
            notes.append(
                f"medops ({args.backend}): {len(data):,} runs inserted with SQLAlchemy in {fill_s:.1f} s "
                f"(runs, run_params, run_tags, run_latest_metrics; tag model in {', '.join(MODELS)})"
            )
            medops_env = {k: v for k, v in os.environ.items() if k not in ("MEDOPS_SERVER_URL", "MEDOPS_TOKEN")}
            medops_env["MEDOPS_HOME"] = str(home)
            medops_env["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(ROOT / "src"), medops_env.get("PYTHONPATH")) if p
            )
            command = [sys.executable, "-m", "medops", "server"]
            sides.append(Side("medops server", "medops", 1, command, medops_env, "/readyz", "/v1/runs", {}))
            if python is not None:
                db, artifacts = base / "mlflow" / "mlflow.db", base / "mlflow" / "artifacts"
                artifacts.mkdir(parents=True)
                print(f"filling MLflow's store with {len(data):,} runs...", flush=True)
                filled = fill_mlflow(python, repo, db, artifacts, data)
                notes.append(
                    f"MLflow: {len(data):,} runs cloned by SQL from one made through its API in "
                    f"{filled['seconds']:.1f} s (tables {', '.join(filled['tables'])}); "
                    f"{filled['all']:,} matches in all (expected {len(expected):,}), top 100 "
                    f"{'as expected' if filled['top'] == expected[:100] else 'NOT as expected'}"
                )
                command = [str(args.mlflow_venv / "bin" / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{db}"]
                command += ["--default-artifact-root", str(artifacts), "--host", "127.0.0.1"]
                workers = 4  # MLflow's documented default
                if args.mlflow_workers is not None:
                    command += ["--workers", str(args.mlflow_workers)]
                    workers = args.mlflow_workers
                sides.append(
                    Side("MLflow server", "mlflow", workers, command, _mlflow_env(args.mlflow_venv), "/health", "", {})
                )
            for side in sides:
                start(side, logs)
            for side in sides:
                wait_ready(side)
            wait_idle(sides)
            medops_url = f"http://127.0.0.1:{sides[0].port}"
            mlflow_uri = f"http://127.0.0.1:{sides[1].port}" if python is not None else ""
            print(f"servers ready: {', '.join(f'{s.name} ({s.workers} worker(s))' for s in sides)}", flush=True)

            # 1. logging, interleaved
            mine: list[dict[str, Any]] = []
            theirs: list[dict[str, Any]] = []
            with sdk_environment(medops_url, token, repo):
                warm_medops()
            _, mark = server_times(sides[0].log, 0)
            for r in range(args.rounds):
                order = ["medops", "mlflow"] if r % 2 == 0 else ["mlflow", "medops"]
                for who in order:
                    if who == "medops":
                        with sdk_environment(medops_url, token, repo):
                            mine.append(medops_logging(args.metrics, args.runs))
                        print(
                            f"round {r + 1}: medops {mine[-1]['metrics']:.2f} s + {mine[-1]['runs']:.2f} s", flush=True
                        )
                    elif python is not None:
                        cfg = {"mode": "logging", "metrics": args.metrics, "runs": args.runs}
                        theirs.append(
                            mlflow_process(
                                python, args.mlflow_venv, MLFLOW_CLIENT, cfg, repo, MLFLOW_TRACKING_URI=mlflow_uri
                            )
                        )
                        got = theirs[-1]
                        print(
                            f"round {r + 1}: MLflow per-call {got['metrics_call']:.2f} s + {got['runs_call']:.2f} s, "
                            f"batch {got['metrics_batch']:.2f} s + {got['runs_batch']:.2f} s",
                            flush=True,
                        )
            logging_times, mark = server_times(sides[0].log, mark)
            # what the servers hold: every value and every parameter arrived
            import httpx

            with httpx.Client(base_url=medops_url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as http:
                history = http.get(f"/v1/runs/{mine[-1]['metrics_run']}/metrics/loss").json()
                last = http.get(f"/v1/runs/{mine[-1]['runs_last']}").json()
            values = history["steps"]
            params = last.get("params", {})
            ok = len(values) == args.metrics and len(params) == 10 and mine[-1]["metrics_state"] == "finished"
            notes.append(
                f"medops: the last round's run holds {len(values):,} values, the last run {len(params)} parameters, "
                f"state {mine[-1]['runs_state']}: {'right' if ok else 'WRONG'}"
            )
            if theirs:
                got = theirs[-1]
                ok = got["metrics_call_count"] == got["metrics_batch_count"] == args.metrics
                notes.append(
                    f"MLflow: {got['metrics_call_count']:,} values (per-call) and {got['metrics_batch_count']:,} "
                    f"(batch) stored: {'right' if ok else 'WRONG'}"
                )

            # 2. search, interleaved
            _, search_mark = server_times(sides[0].log, 0)
            found: dict[str, list[str]] = {}
            p50: dict[str, list[float]] = {"medops": [], "mlflow": []}
            p99: dict[str, list[float]] = {"medops": [], "mlflow": []}
            for r in range(args.rounds):
                order = ["mlflow", "medops"] if r % 2 == 0 else ["medops", "mlflow"]
                for who in order:
                    if who == "medops":
                        samples, found["medops"] = medops_search(medops_url, token, args.search_requests)
                    elif python is not None:
                        cfg = {"mode": "search", "filter": SEARCH_FILTER, "warmup": WARMUP_REQUESTS}
                        cfg["requests"] = args.search_requests
                        got = mlflow_process(
                            python, args.mlflow_venv, MLFLOW_CLIENT, cfg, repo, MLFLOW_TRACKING_URI=mlflow_uri
                        )
                        samples, found["mlflow"] = got["samples"], got["ids"]
                    else:
                        continue
                    p50[who].append(_p(samples, 50))
                    p99[who].append(_p(samples, 99))
                print(f"round {r + 1} of the search done", flush=True)
            for who, ids in found.items():
                notes.append(
                    f"{'medops' if who == 'medops' else 'MLflow'} search: {len(ids)} runs, "
                    f"{'the expected ones, in order' if ids == expected[:100] else 'NOT the expected ones'}"
                )
            for side in sides:
                assert side.process is not None
                if side.process.poll() is not None:
                    raise RuntimeError(f"{side.name} exited during the benchmark:\n{_tail(side.log)}")
            notes.append(_server_note("logging", logging_times))
            notes.append(
                "medops client: making the SDK's HTTP client, which medops.start_run does once per process and "
                f"credential, takes "
                f"{sdk_client_cost(medops_url, token) * 1e3:.1f} ms (median of 20)"
            )
            search_times, _ = server_times(sides[0].log, search_mark)
            notes.append(_server_note("searching", search_times))
        finally:
            for side in sides:
                stop(side)

    m_metrics = statistics.median(x["metrics"] for x in mine)
    m_runs = statistics.median(x["runs"] for x in mine)
    call_m = _median([x["metrics_call"] for x in theirs])
    batch_m = _median([x["metrics_batch"] for x in theirs])
    call_r = _median([x["runs_call"] for x in theirs])
    batch_r = _median([x["runs_batch"] for x in theirs])
    rows: list[list[Any]] = [
        [
            f"log {args.metrics:,} metric values in one run",
            _s(m_metrics),
            _s(call_m),
            _s(batch_m),
            _x(call_m, m_metrics),
            _x(batch_m, m_metrics),
            _speedup_aim(call_m, batch_m, m_metrics),
        ],
        [
            f"{args.runs:,} runs x 10 params",
            _s(m_runs),
            _s(call_r),
            _s(batch_r),
            _x(call_r, m_runs),
            _x(batch_r, m_runs),
            _speedup_aim(call_r, batch_r, m_runs),
        ],
    ]
    print_table(
        f"logging over HTTP: medops server ({args.backend}) vs MLflow {version} tracking server (SQLite); "
        f"median of {args.rounds} rounds; speed-up = MLflow / medops",
        ["benchmark", "medops", "MLflow per-call", "MLflow batch", "vs per-call", "vs batch", "aim"],
        rows,
    )
    m50, m99 = statistics.median(p50["medops"]), statistics.median(p99["medops"])
    f50, f99 = _median(p50["mlflow"]), _median(p99["mlflow"])
    search_rows: list[list[Any]] = [
        [
            f"p50, {args.search_requests} requests",
            _ms(m50),
            _ms(f50),
            _x(f50, m50),
            "",
        ],
        [
            "p99",
            _ms(m99),
            _ms(f99),
            _x(f99, m99),
            f"medops < {SEARCH_AIM_MS:g} ms: {'ok' if m99 * 1e3 < SEARCH_AIM_MS else 'MISSED'}",
        ],
    ]
    print_table(
        f"search of {args.runs_for_search:,} runs by a tag and a metric, top 100, over HTTP "
        f"(median of {args.rounds} rounds' percentiles; ratio = MLflow / medops)",
        ["request latency", "medops", "MLflow", "ratio", "aim"],
        search_rows,
    )
    for note in notes:
        print(f"- {note}")
    print(f"machine: {os.cpu_count()} cores; load average at the end: {_load()}")
    return rows + [["search " + r[0], *r[1:]] for r in search_rows]


if __name__ == "__main__":
    main()
