"""Online serving: `medops serve` against MLflow `models serve` and a bare FastAPI endpoint, over HTTP.

The model is the demo's (``medops demo`` is run into a temporary folder, or ``--demo-dir``
reuses one): ``readmission_30d``'s production version, a LightGBM booster behind median
imputation and one-hot encoding of five categorical features. The same booster is served by:

- medops: the real `medops serve readmission_30d` process (1 worker, and ``--workers 2``),
  called with the bearer token of a user holding only the ``predictor`` role; every request
  passes the token check, the input validation, the metrics and the prediction log (its default
  sync mode, ``background``: each answer's record written before it is sent, synced within
  50 ms). Beside it, "medops before_answer": the same command with
  ``MEDOPS_PREDICTION_LOG_SYNC=before_answer`` (each record on disk before its answer), and
  "medops no log": the same app with the log off (``benchmarks.serving_medops_nolog``; `medops
  serve` itself has no switch for it), to measure what logging costs in each mode.
- bare: FastAPI on the same uvicorn (``benchmarks.serving_bare``), an endpoint that only turns
  the same JSON row into the booster's matrix and calls ``predict``: no validation, no auth,
  no metrics. The ceiling medops is held to (aim: within 0.8x).
- MLflow: the booster saved with ``mlflow.lightgbm.save_model`` (no signature, so no schema
  enforcement: its fastest path) and served by `mlflow models serve --env-manager local`
  (uvicorn, with uvloop and httptools installed as for medops), 1 and 2 workers. MLflow has
  no preprocessing of its own here, so it is sent the already encoded matrix row as
  ``dataframe_split``: less work than the others do. MLflow lives in its own venv (the one
  bench_tracking makes), never in the project's.

Each side gets the same rows: one row per request (the model's example), and a batch of 100
rows per request (the example plus 99 synthetic rows inside the trained ranges). Before
timing, every side must give the same probabilities for the 100 rows.

The load: ``benchmarks.loadgen`` in a process of its own, a closed loop of keep-alive
HTTP/1.1 connections at a fixed concurrency (8 and 32 for single rows, 8 for batches),
loopback only, bounded in time. Each cell's ``--seconds`` are split into ``--slices`` slices
run in rotating order across the sides (each slice once every side is idle, as a medops
side's log drain goes on after its load, then after a 1 s warm-up), so load on the machine
falls on every side; the tables show the medians of the slices. The generator's own
ceiling is measured first against a trivial server (a fixed answer) and printed.

Then, in this process: where a medops request's time goes (each stage timed alone, the whole
ASGI app called directly, and a cProfile of it with the thread hops run inline), and batch
scoring against raw LightGBM through bench_scoring (``--no-scoring`` skips it).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.common import print_table, temp_dir

ROOT = Path(__file__).resolve().parent.parent
MODEL = "readmission_30d"
BATCH_ROWS = 100
AIM_VS_MLFLOW = 10.0
AIM_P99_MS = 10.0
AIM_LOG_COST = 0.10
AIM_VS_BARE = 0.8
SERVE_EXTRAS = ["uvloop", "httptools"]  # uvicorn's fast loop and parser, which medops's uvicorn has too

# Run by the MLflow venv's interpreter: save the booster in MLflow's LightGBM format.
MLFLOW_SAVE = r"""
import sys, lightgbm, mlflow, mlflow.lightgbm
booster = lightgbm.Booster(model_file=sys.argv[1])
mlflow.lightgbm.save_model(booster, sys.argv[2])
print(mlflow.__version__)
"""


# --- preparation -------------------------------------------------------------------------------


@dataclass
class Prepared:
    home: Path  # the workspace medops serves from
    secret: str  # a predictor's API token
    folder: Path  # model.txt and encoding.json for the bare app, mlflow-model/ for MLflow
    example: dict[str, Any]
    rows: list[dict[str, Any]]  # BATCH_ROWS rows, the example first
    matrix: list[list[float]]  # the same rows as the booster's input
    columns: list[str]
    expected: list[float]  # medops's probabilities for ``rows``, computed in this process


def _synthetic_rows(schema: dict[str, Any], example: dict[str, Any], n: int) -> list[dict[str, Any]]:
    """``n`` rows inside the trained ranges and categories (the example first); no patient's data."""
    rng = random.Random(18)
    rows = [dict(example)]
    for _ in range(n - 1):
        row: dict[str, Any] = {}
        for feature in schema["features"]:
            if feature["type"] == "number":
                low, high = float(feature["min"]), float(feature["max"])
                row[feature["name"]] = round(rng.uniform(low, high), 3)
                row[feature["name"]] = min(max(row[feature["name"]], low), high)
            else:
                row[feature["name"]] = rng.choice(feature["categories"])
        rows.append(row)
    return rows


def prepare(base: Path, demo_dir: Path | None) -> Prepared:
    """The demo's workspace (made now unless given), a predictor with a token, and the model in every form."""
    from medops.caller import Caller
    from medops.demo import DEMO_PASSWORD, run_demo
    from medops.identity.roles import Role
    from medops.registry.compiled import to_doc
    from medops.services import Services
    from medops.serving.validation import check_rows
    from medops.workspace import Workspace

    if demo_dir is None:
        demo_dir = base / "demo"
        print("building the demo workspace (medops demo, about 30 s)...", flush=True)
        run_demo(demo_dir)
    home = demo_dir / "workspace"
    with Workspace.open(home) as ws:
        services = Services(ws)
        admin = Caller("ada")
        user = f"bench-client-{os.getpid()}"
        services.identity.add_user(admin, user, "Benchmark client", DEMO_PASSWORD, [Role.PREDICTOR], reason="bench")
        _, secret = services.identity.create_token(admin, "bench", username=user, expires_in_days=1, reason="bench")
        model = services.serving.load([MODEL])[MODEL]
        compiled = model.predictor.compiled
        if compiled is None or compiled.booster is None or compiled.mean is not None:
            raise RuntimeError("the demo's model is not a compiled LightGBM booster without scaling")
        folder = base / "model"
        folder.mkdir()
        compiled.booster.save_model(str(folder / "model.txt"))
        (folder / "encoding.json").write_text(json.dumps(to_doc(compiled)))
        example = model.describe()["example"]
        rows = _synthetic_rows(model.input_schema, example, BATCH_ROWS)
        checked = check_rows(rows, model.input_schema)
        matrix = compiled.matrix_of(checked.columns, checked.rows)
        expected = [float(p) for p in compiled.booster.predict(matrix)]
        columns = list(compiled.booster.feature_name())
    return Prepared(home, secret, folder, example, rows, matrix.tolist(), columns, expected)


def ensure_mlflow_serving(venv: Path) -> tuple[Path | None, str]:
    """The MLflow venv's interpreter with LightGBM (the project's version) and uvicorn's extras."""
    import lightgbm

    from benchmarks.bench_tracking import ensure_mlflow

    python, version = ensure_mlflow(venv)
    if python is None:
        return None, version
    probe = [str(python), "-c", "import mlflow.lightgbm, lightgbm, uvloop, httptools; print(lightgbm.__version__)"]
    done = subprocess.run(probe, capture_output=True, text=True, check=False)
    if done.returncode != 0 or done.stdout.strip() != lightgbm.__version__:
        print(f"installing LightGBM and uvicorn's extras into {venv}...", flush=True)
        packages = [f"lightgbm=={lightgbm.__version__}", *SERVE_EXTRAS]
        try:
            subprocess.run(
                [str(python), "-m", "pip", "install", "-q", *packages],
                check=True,
                capture_output=True,
                text=True,
                timeout=1800,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            return None, f"MLflow's serving packages could not be installed ({type(exc).__name__})"
    return python, version


def _mlflow_env(venv: Path) -> dict[str, str]:
    env = dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true")
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"  # its CLI starts `uvicorn` by name
    env.pop("PYTHONPATH", None)
    return env


def save_mlflow_model(python: Path, venv: Path, folder: Path) -> str:
    script = folder / "mlflow_save.py"
    script.write_text(MLFLOW_SAVE)
    done = subprocess.run(
        [str(python), str(script), str(folder / "model.txt"), str(folder / "mlflow-model")],
        env=_mlflow_env(venv),
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"saving the model in MLflow's format failed:\n{done.stderr[-3000:]}")
    return done.stdout.strip().splitlines()[-1]


# --- server processes ------------------------------------------------------------------------


@dataclass
class Side:
    name: str
    kind: str  # medops, bare, mlflow
    workers: int
    command: list[str]
    env: dict[str, str]
    health: str
    path: str
    headers: dict[str, str]
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    results: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _project_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), str(ROOT), env.get("PYTHONPATH")) if p)
    return env


def sides(
    prep: Prepared, mlflow: tuple[Path, Path] | None, workers: list[int], no_log: bool, omp: int | None
) -> list[Side]:
    out: list[Side] = []
    medops_env = _project_env() | {"MEDOPS_HOME": str(prep.home)}
    medops_env.pop("MEDOPS_TOKEN", None)
    auth = {"Authorization": f"Bearer {prep.secret}", "Content-Type": "application/json"}
    plain = {"Content-Type": "application/json"}
    serve = [sys.executable, "-m", "medops", "serve", MODEL, "--host", "127.0.0.1"]
    predict = f"/v1/models/{MODEL}/predict"
    for n in workers:
        out.append(
            Side(f"medops, {n}w", "medops", n, [*serve, "--workers", str(n)], medops_env, "/healthz", predict, auth)
        )
        if no_log:  # the log's strict mode beside the default, priced against the same unlogged app
            strict = medops_env | {"MEDOPS_PREDICTION_LOG_SYNC": "before_answer"}
            name = f"medops before_answer, {n}w"
            command = [*serve, "--workers", str(n)]
            out.append(Side(name, "medops-strict", n, command, strict, "/healthz", predict, auth))
        if no_log:  # the same app with ServerOptions(prediction_log=False): `medops serve` has no such switch
            command = [sys.executable, "-m", "uvicorn", "benchmarks.serving_medops_nolog:create", "--factory"]
            command += ["--host", "127.0.0.1", "--workers", str(n), "--log-level", "warning"]
            # as `medops serve` runs uvicorn
            command += ["--http", "medops.server.transport:HttpProtocol", "--no-access-log", "--no-server-header"]
            command += ["--no-proxy-headers"]
            env = medops_env | {"BENCH_MEDOPS_MODEL": MODEL}
            out.append(Side(f"medops no log, {n}w", "medops-nolog", n, command, env, "/healthz", predict, auth))
    bare_env = _project_env() | {"BENCH_BARE_MODEL": str(prep.folder)}
    for n in workers:
        command = [sys.executable, "-m", "uvicorn", "benchmarks.serving_bare:create", "--factory", "--host"]
        command += ["127.0.0.1", "--workers", str(n), "--log-level", "warning"]
        out.append(Side(f"bare FastAPI, {n}w", "bare", n, command, bare_env, "/healthz", "/predict", plain))
    if mlflow is not None:
        python, venv = mlflow
        for n in workers:
            command = [str(venv / "bin" / "mlflow"), "models", "serve", "-m", str(prep.folder / "mlflow-model")]
            command += ["--env-manager", "local", "-h", "127.0.0.1", "-w", str(n)]
            out.append(Side(f"MLflow, {n}w", "mlflow", n, command, _mlflow_env(venv), "/ping", "/invocations", plain))
    if omp is not None:  # the same OpenMP setting for every side: LightGBM's team size for each predict
        for side in out:
            side.env = side.env | {"OMP_NUM_THREADS": str(omp)}
    return out


def start(side: Side, logs: Path) -> None:
    side.port = _free_port()
    side.log = logs / f"{side.kind}-{side.workers}.log"
    command = [*side.command, "--port" if side.kind != "mlflow" else "-p", str(side.port)]
    with side.log.open("wb") as log:
        # a session of its own: stopping it stops the workers it started (uvicorn's, MLflow's)
        side.process = subprocess.Popen(
            command, env=side.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=logs
        )


def wait_ready(side: Side, timeout: float = 180.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout  # a bound on the wait for start-up, not a measurement
    while time.monotonic() < deadline:
        assert side.process is not None
        if side.process.poll() is not None:
            raise RuntimeError(f"{side.name} exited at start:\n{_tail(side.log)}")
        try:
            if httpx.get(f"http://127.0.0.1:{side.port}{side.health}", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{side.name} did not answer {side.health} within {timeout:.0f} s:\n{_tail(side.log)}")


def _cpu_seconds(group: int) -> float:
    """CPU seconds used so far by the live processes of a process group (a side's session), from /proc."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # exited meanwhile
        if int(fields[2]) == group:  # pgrp; utime and stime follow at 11 and 12
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def wait_idle(all_sides: list[Side], timeout: float = 120.0) -> None:
    """Until no side uses more than 5 % of a core: a server answers its probe before all its workers
    are up (MLflow's four import for about 8 s more, 14 CPU seconds on 2 cores), and a measurement
    that starts then times the other side against that start-up."""
    if not Path("/proc/self/stat").exists():
        return
    groups = [side.process.pid for side in all_sides if side.process is not None]
    deadline = time.monotonic() + timeout  # a bound on the wait, not a measurement
    used = sum(_cpu_seconds(g) for g in groups)
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = sum(_cpu_seconds(g) for g in groups)
        if now - used < 0.05:
            return
        used = now


def stop(side: Side) -> None:
    if side.process is None or side.process.poll() is not None:
        return
    os.killpg(side.process.pid, signal.SIGTERM)
    try:
        side.process.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(side.process.pid, signal.SIGKILL)
        side.process.wait(5)


def _tail(path: Path | None) -> str:
    if path is None or not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-30:])


@contextmanager
def running(all_sides: list[Side], logs: Path) -> Iterator[None]:
    try:
        for side in all_sides:
            start(side, logs)
        for side in all_sides:
            wait_ready(side)
        wait_idle(all_sides)
        yield
    finally:
        for side in all_sides:
            stop(side)


# --- bodies, checks and the load ---------------------------------------------------------------


def body(side: Side, prep: Prepared, batch: bool) -> str:
    if side.kind == "mlflow":
        data = prep.matrix if batch else prep.matrix[:1]
        return json.dumps({"dataframe_split": {"columns": prep.columns, "data": data}})
    return json.dumps(prep.rows if batch else prep.example)


def probabilities(side: Side, answer: dict[str, Any]) -> list[float]:
    if side.kind.startswith("medops"):
        return [float(p["probability"]) for p in answer["predictions"]]
    return [float(p) for p in answer["predictions"]]


def check_same(all_sides: list[Side], prep: Prepared) -> None:
    """Every side answers the 100 rows with medops's in-process probabilities, or nothing is timed."""
    import httpx

    for side in all_sides:
        answer = httpx.post(
            f"http://127.0.0.1:{side.port}{side.path}",
            content=body(side, prep, batch=True),
            headers=side.headers,
            timeout=30,
        )
        if answer.status_code != 200:
            raise RuntimeError(f"{side.name} answered {answer.status_code}: {answer.text[:500]}")
        got = probabilities(side, answer.json())
        worst = max(abs(a - b) for a, b in zip(got, prep.expected, strict=True))
        if worst > 1e-9:
            raise RuntimeError(f"{side.name} disagrees with medops's probabilities by up to {worst:g}")


def load(port: int, path: str, text: str, headers: dict[str, str], concurrency: int, seconds: float) -> dict[str, Any]:
    """One bounded run of the load generator in its own process."""
    with temp_dir("medops-bench-load-") as base:
        cfg = {
            "host": "127.0.0.1",
            "port": port,
            "path": path,
            "body": text,
            "headers": headers,
            "concurrency": concurrency,
            "seconds": seconds,
            "warmup": 1.0,
        }
        (base / "load.json").write_text(json.dumps(cfg))
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.loadgen", "run", str(base / "load.json")],
            env=_project_env(),
            capture_output=True,
            text=True,
            check=False,
            timeout=seconds + 60,
        )
    if done.returncode != 0:
        raise RuntimeError(f"the load generator failed:\n{done.stderr[-2000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def generator_ceiling(seconds: float, concurrencies: list[int], logs: Path) -> dict[int, dict[str, Any]]:
    """The generator against a server that answers without work: the most it can measure here."""
    port = _free_port()
    lifetime = str(len(concurrencies) * (seconds + 5) + 60)
    trivial = Side("trivial", "trivial", 1, [], _project_env(), "", "/", {})
    trivial.process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.loadgen", "trivial", str(port), lifetime],
        env=_project_env(),
        start_new_session=True,
        cwd=logs,
    )
    try:
        time.sleep(1.0)
        text = json.dumps({"x": 1})
        return {c: load(port, "/", text, {"Content-Type": "application/json"}, c, seconds) for c in concurrencies}
    finally:
        stop(trivial)


def cells(single: list[int], batch: list[int]) -> list[tuple[str, int]]:
    return [("single", c) for c in single] + [("batch", c) for c in batch]


def measure(all_sides: list[Side], prep: Prepared, plan: list[tuple[str, int]], seconds: float, slices: int) -> None:
    """Every side in every cell, in ``slices`` slices whose order rotates, so no side always runs first."""
    for side in all_sides:  # warm-up: caches, allocators, the first connections
        load(side.port, side.path, body(side, prep, batch=False), side.headers, 8, 1.0)
    per = seconds / slices
    order = list(all_sides)
    for s in range(slices):
        for kind, concurrency in plan:
            rotated = order[s % len(order) :] + order[: s % len(order)]
            for side in rotated:
                text = body(side, prep, batch=kind == "batch")
                # the side before may still be at work (a medops log's drain, MLflow's workers): not in this
                # side's time
                wait_idle(all_sides, timeout=30.0)
                result = load(side.port, side.path, text, side.headers, concurrency, per)
                side.results.setdefault(f"{kind}:{concurrency}", []).append(result)
        print(f"slice {s + 1}/{slices} done", flush=True)


def summary(side: Side, key: str) -> dict[str, float] | None:
    runs = side.results.get(key)
    if not runs:
        return None
    return {
        "rps": statistics.median(r["rps"] for r in runs),
        "p50": statistics.median(r["p50_ms"] for r in runs),
        "p99": statistics.median(r["p99_ms"] for r in runs),
        "bad": sum(r["requests"] - r["ok"] + r["errors"] for r in runs),
    }


# --- where a request's time goes -----------------------------------------------------------------


def _asgi_call(app: Any, path: str, text: bytes, headers: list[tuple[bytes, bytes]]) -> Callable[[], Any]:
    """A coroutine factory calling ``app`` once as uvicorn would, without the socket and HTTP parser."""

    async def call() -> int:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"127.0.0.1"), (b"content-length", str(len(text)).encode()), *headers],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
        }
        delivered = False
        status = 0

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": text, "more_body": False}
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])

        await app(scope, receive, send)
        return status

    return call


def _per_call(fn: Callable[[], Any], n: int, statements: list[int]) -> tuple[float, float, float, float]:
    """p50, mean and p99 microseconds of ``fn`` over ``n`` calls timed one by one (after a warm-up),
    and the SQL statements it ran per call. The mean shows the spikes the median hides."""
    for _ in range(min(n, 200)):
        fn()
    clock = time.perf_counter
    samples = []
    before = statements[0]
    for _ in range(n):
        start = clock()
        fn()
        samples.append((clock() - start) * 1e6)
    samples.sort()
    per = (statements[0] - before) / n
    return samples[n // 2], statistics.fmean(samples), samples[min(n - 1, int(n * 0.99))], per


def profile(prep: Prepared, n: int, out: Path) -> tuple[list[list[Any]], str]:
    """Each stage of a medops request timed alone, the whole app called directly, and its profile."""
    from unittest import mock

    import sqlalchemy
    from fastapi.responses import JSONResponse

    from benchmarks import serving_bare
    from medops.server.app import create_app
    from medops.server.guard import ServerOptions
    from medops.services import Services
    from medops.serving.rollout import Routing
    from medops.serving.scoring import prediction
    from medops.serving.validation import check_rows
    from medops.workspace import Workspace

    text = json.dumps(prep.example).encode()
    auth = [(b"content-type", b"application/json"), (b"authorization", f"Bearer {prep.secret}".encode())]
    with Workspace.open(prep.home) as ws:
        services = Services(ws)
        model = services.serving.load([MODEL])[MODEL]
        compiled = model.predictor.compiled
        assert compiled is not None
        app = create_app(services, {MODEL: model}, ServerOptions())
        quiet = create_app(services, {MODEL: model}, ServerOptions(prediction_log=False))
        os.environ[serving_bare.MODEL_ENV] = str(prep.folder)
        bare = serving_bare.create()
        routing = Routing(model)
        caller = services.serving.admit(prep.secret)
        records = [json.loads(text)]
        checked = check_rows(records, model.input_schema)
        x = compiled.matrix_of(checked.columns, 1)
        answer = services.serving.predict(caller, routing, records).answers
        loop = asyncio.new_event_loop()
        # the served app's lifespan: its prediction spool runs (and drains at the end) as in `medops serve`
        lifespan = app.app.router.lifespan_context(app.app)
        loop.run_until_complete(lifespan.__aenter__())
        medops_call = _asgi_call(app, f"/v1/models/{MODEL}/predict", text, auth)
        quiet_call = _asgi_call(quiet, f"/v1/models/{MODEL}/predict", text, auth)
        bare_call = _asgi_call(bare, "/predict", text, [(b"content-type", b"application/json")])
        assert loop.run_until_complete(medops_call()) == 200
        assert loop.run_until_complete(quiet_call()) == 200
        assert loop.run_until_complete(bare_call()) == 200

        statements = [0]

        def count(*_args: Any) -> None:
            statements[0] += 1

        sqlalchemy.event.listen(ws.db.engine, "before_cursor_execute", count)
        lgbm = compiled.booster

        metrics = app.metrics
        stages: list[tuple[str, Callable[[], Any]]] = [
            (
                "token: ServingService.admit, remembered (1 read: the trail's newest id)",
                lambda: services.serving.admit(prep.secret),
            ),
            (
                "token: the full check (authenticate and authorize), as after an audited change",
                lambda: services.serving.admissions.check(prep.secret),
            ),
            ("json.loads of the body", lambda: json.loads(text)),
            ("check_rows (validation)", lambda: check_rows(records, model.input_schema)),
            ("model matrix (impute, one-hot)", lambda: compiled.matrix_of(checked.columns, 1)),
            ("booster.predict, 1 row (OpenMP, every core)", lambda: lgbm.predict(x)),
            ("booster.predict, 1 row, num_threads=1 (what medops calls)", lambda: lgbm.predict(x, num_threads=1)),
            ("response row (UUID v7, decision)", lambda: prediction(model, 0.5, [])),
            (
                "ServingService.predict (the four above + the row)",
                lambda: services.serving.predict(caller, routing, records),
            ),
            (
                "metrics: request count, latency, prediction count",
                lambda: (
                    metrics.requests.labels("POST", "/x", "200").inc(),
                    metrics.latency.labels("/x").observe(0.001),
                    metrics.predictions.labels(MODEL, "1", "0", "champion").inc(),
                ),
            ),
            ("JSONResponse of the answer", lambda: JSONResponse({"request_id": "0" * 32, "predictions": answer}).body),
            ("whole medops app, called directly (no socket)", lambda: loop.run_until_complete(medops_call())),
            ("whole medops app, prediction log off", lambda: loop.run_until_complete(quiet_call())),
            ("whole bare app, called directly (no socket)", lambda: loop.run_until_complete(bare_call())),
        ]
        rows = []
        for name, fn in stages:
            p50, mean, p99, per = _per_call(fn, n, statements)
            rows.append([name, f"{p50:,.0f}", f"{mean:,.0f}", f"{p99:,.0f}", f"{per:g}"])

        def whole() -> Any:
            return loop.run_until_complete(medops_call())

        async def inline(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            return fn(*args)

        # a what-if, labelled as one: the token check's read made on the event loop (no hop to a thread)
        with mock.patch("anyio.to_thread.run_sync", inline):
            assert whole() == 200
            p50, mean, p99, per = _per_call(whole, n, statements)
        rows.append(
            ["what-if: whole medops app, no thread hop", f"{p50:,.0f}", f"{mean:,.0f}", f"{p99:,.0f}", f"{per:g}"]
        )

        async def many() -> None:
            for _ in range(n):
                await medops_call()

        # The thread hops run inline, so that cProfile (which sees one thread) sees the work they carry.
        with mock.patch("anyio.to_thread.run_sync", inline), mock.patch("medops.server.app.run_in_threadpool", inline):
            profiler = cProfile.Profile()
            profiler.enable()
            loop.run_until_complete(many())
            profiler.disable()
        loop.run_until_complete(lifespan.__aexit__(None, None, None))
        loop.close()
    profiler.dump_stats(str(out))
    stream = io.StringIO()
    stats = pstats.Stats(profiler, stream=stream).strip_dirs().sort_stats("tottime")
    stats.print_stats(25)
    return rows, stream.getvalue()


# --- the report --------------------------------------------------------------------------------


def _ratio(a: float | None, b: float | None) -> str:
    return "" if a is None or b is None or not b else f"{a / b:.2f}x"


def report(all_sides: list[Side], plan: list[tuple[str, int]], seconds: float, slices: int) -> dict[str, Any]:
    by = {(s.kind, s.workers): s for s in all_sides}
    aims: dict[str, Any] = {}
    for kind, concurrency in plan:
        key = f"{kind}:{concurrency}"
        rows = []
        n_rows = BATCH_ROWS if kind == "batch" else 1
        for side in all_sides:
            got = summary(side, key)
            if got is None:
                continue
            ml = summary(by[("mlflow", side.workers)], key) if ("mlflow", side.workers) in by else None
            bare = summary(by[("bare", side.workers)], key) if ("bare", side.workers) in by else None
            rows.append(
                [
                    side.name,
                    f"{got['rps']:,.0f}",
                    f"{got['rps'] * n_rows:,.0f}",
                    f"{got['p50']:.2f}",
                    f"{got['p99']:.2f}",
                    str(got["bad"]),
                    _ratio(got["rps"], ml["rps"] if ml else None) if side.kind != "mlflow" else "",
                    _ratio(got["rps"], bare["rps"] if bare else None) if side.kind != "bare" else "",
                ]
            )
        what = "1 row" if kind == "single" else f"{BATCH_ROWS} rows"
        print_table(
            f"{what} per request, concurrency {concurrency}: median of {slices} slices of {seconds / slices:.1f} s",
            ["server", "req/s", "rows/s", "p50 ms", "p99 ms", "non-200", "vs MLflow", "vs bare"],
            rows,
        )
    for w in sorted({s.workers for s in all_sides}):
        med = summary(by[("medops", w)], "single:8") if ("medops", w) in by else None
        ml = summary(by[("mlflow", w)], "single:8") if ("mlflow", w) in by else None
        bare = summary(by[("bare", w)], "single:8") if ("bare", w) in by else None
        nolog = summary(by[("medops-nolog", w)], "single:8") if ("medops-nolog", w) in by else None
        strict = summary(by[("medops-strict", w)], "single:8") if ("medops-strict", w) in by else None
        if med is None:
            continue
        aims[f"{w}w vs MLflow"] = (med["rps"] / ml["rps"]) if ml else None
        aims[f"{w}w p99 ms"] = med["p99"]
        aims[f"{w}w vs bare"] = med["rps"] / bare["rps"] if bare else None
        aims[f"{w}w log cost"] = (1 - med["rps"] / nolog["rps"]) if nolog else None
        aims[f"{w}w strict log cost"] = (1 - strict["rps"] / nolog["rps"]) if nolog and strict else None
        aims[f"{w}w strict vs MLflow"] = (strict["rps"] / ml["rps"]) if ml and strict else None
    return aims


def print_aims(aims: dict[str, Any], scoring: float | None, no_log: bool) -> None:
    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    rows = []
    for w in (1, 2):
        if f"{w}w p99 ms" not in aims:
            continue
        vs_ml, p99, vs_bare, cost = (aims[f"{w}w {k}"] for k in ("vs MLflow", "p99 ms", "vs bare", "log cost"))
        rows.append(
            [
                f"{w} worker(s): req/s vs MLflow, concurrency 8",
                "n/a (no MLflow)" if vs_ml is None else f"{vs_ml:.1f}x",
                f">= {AIM_VS_MLFLOW:g}x" + ("" if vs_ml is None else f": {verdict(vs_ml >= AIM_VS_MLFLOW)}"),
            ]
        )
        rows.append(
            [f"{w} worker(s): p99, concurrency 8", f"{p99:.2f} ms", f"< {AIM_P99_MS:g} ms: {verdict(p99 < AIM_P99_MS)}"]
        )
        rows.append(
            [
                f"{w} worker(s): prediction log's cost",
                "n/a (not measured)" if not no_log or cost is None else f"{cost * 100:.1f} %",
                f"< {AIM_LOG_COST * 100:g} %" + ("" if cost is None else f": {verdict(cost < AIM_LOG_COST)}"),
            ]
        )
        strict_cost, strict_ml = aims.get(f"{w}w strict log cost"), aims.get(f"{w}w strict vs MLflow")
        if strict_cost is not None:  # not an aim: what the stricter mode costs, for whoever must choose it
            vs = "" if strict_ml is None else f", {strict_ml:.1f}x MLflow"
            what = f"{w} worker(s): the log's cost in before_answer"
            rows.append([what, f"{strict_cost * 100:.1f} %{vs}", "(no aim)"])
        rows.append(
            [
                f"{w} worker(s): req/s vs bare FastAPI, concurrency 8",
                "n/a" if vs_bare is None else f"{vs_bare:.2f}x",
                f">= {AIM_VS_BARE:g}x" + ("" if vs_bare is None else f": {verdict(vs_bare >= AIM_VS_BARE)}"),
            ]
        )
    rows.append(
        [
            "batch scoring vs raw LightGBM predict (bench_scoring)",
            "not run" if scoring is None else f"{scoring:.2f}x",
            f">= {AIM_VS_BARE:g}x" + ("" if scoring is None else f": {verdict(scoring >= AIM_VS_BARE)}"),
        ]
    )
    print_table("aims (issue 18), single rows", ["aim", "measured", "target"], rows)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from benchmarks.bench_tracking import DEFAULT_VENV

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--seconds", type=float, default=30.0, help="measured seconds per side and cell (0: no HTTP load, profile only)"
    )
    parser.add_argument("--slices", type=int, default=3, help="interleaved slices the seconds are split into")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 32], help="for one row per request")
    parser.add_argument("--batch-concurrency", type=int, nargs="*", default=[8], help="for 100 rows per request")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="server processes per side")
    parser.add_argument("--demo-dir", type=Path, default=None, help="a `medops demo --dir` folder to reuse")
    parser.add_argument("--mlflow-venv", type=Path, default=DEFAULT_VENV, help="the MLflow venv (made if missing)")
    parser.add_argument("--no-mlflow", action="store_true", help="medops and bare FastAPI only")
    parser.add_argument("--profile-requests", type=int, default=2000, help="in-process requests profiled (0: skip)")
    parser.add_argument("--scoring-rows", type=int, default=1_000_000, help="bench_scoring's rows (0: skip)")
    parser.add_argument("--no-scoring", action="store_true", help="skip batch scoring (run by bench_scoring too)")
    parser.add_argument(
        "--omp-threads", type=int, default=None, help="OMP_NUM_THREADS for every server (default: unset, every core)"
    )
    parser.add_argument("--quick", action="store_true", help="5 s per cell, 1 worker, 100k scoring rows")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.slices, args.workers, args.scoring_rows = 5.0, 1, [1], 100_000
        args.profile_requests = min(args.profile_requests, 500)
    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())} ({os.cpu_count()} CPUs)")
    no_log = True  # the log's cost: the same app with it off, beside `medops serve`
    mlflow: tuple[Path, Path] | None = None
    version = "not run (--no-mlflow)"
    if not args.no_mlflow and args.seconds > 0:
        python, version = ensure_mlflow_serving(args.mlflow_venv)
        if python is None:
            print(f"MLflow is unavailable: {version}; the medops and bare rows still run")
        else:
            mlflow = (python, args.mlflow_venv)
    plan = cells(args.concurrency, args.batch_concurrency)
    with temp_dir("medops-bench-serving-") as base:
        prep = prepare(base, args.demo_dir)
        if mlflow is not None:
            version = save_mlflow_model(mlflow[0], mlflow[1], prep.folder)
        aims: dict[str, Any] = {}
        ceiling: dict[int, dict[str, Any]] = {}
        if args.seconds > 0:
            logs = base / "logs"
            logs.mkdir()
            ceiling = generator_ceiling(min(args.seconds, 5.0), sorted(set(args.concurrency)), logs)
            all_sides = sides(prep, mlflow, args.workers, no_log, args.omp_threads)
            with running(all_sides, logs):
                check_same(all_sides, prep)
                print(f"all {len(all_sides)} servers give the same probabilities for the {BATCH_ROWS} rows", flush=True)
                measure(all_sides, prep, plan, args.seconds, args.slices)
            print_table(
                "the load generator's ceiling (a trivial loopback server, same machine)",
                ["concurrency", "req/s", "p50 ms", "p99 ms"],
                [[c, f"{r['rps']:,.0f}", f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}"] for c, r in ceiling.items()],
            )
            omp = "unset (LightGBM uses every core)" if args.omp_threads is None else str(args.omp_threads)
            print(f"MLflow {version}; OMP_NUM_THREADS {omp}; rates count 200 answers; p50/p99 include queueing")
            aims = report(all_sides, plan, args.seconds, args.slices)
        if args.profile_requests:
            stage_rows, stats = profile(prep, args.profile_requests, base / "serving.prof")
            print_table(
                "where a medops request's time goes (in-process, one row, microseconds per call)",
                ["stage", "p50 us", "mean us", "p99 us", "SQL statements"],
                stage_rows,
            )
            print("cProfile of the whole medops app called directly (thread hops inline, booster on 1 thread):")
            print("\n".join(stats.splitlines()[:45]))
    scoring = None
    if not args.no_scoring and args.scoring_rows:
        from benchmarks import bench_scoring

        scoring = bench_scoring.main(["--rows", str(args.scoring_rows), "--rounds", "3" if args.quick else "5"])
    print_aims(aims, scoring, no_log)
    print(f"load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return {"aims": aims, "scoring": scoring, "ceiling": ceiling}


if __name__ == "__main__":
    main()
