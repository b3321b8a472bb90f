"""Experiment tracking: logging, run creation and search against MLflow, and overhead on a LightGBM fit.

1. Logging: 10,000 values of one metric (``log_metric`` in a loop, steps 0..9999, the run
   started and ended inside the clock, so everything is flushed), and 100 runs with 10
   parameters each (started, 10 ``log_param`` calls, ended), through ``medops.start_run`` as a
   script calls it (the workspace from MEDOPS_HOME, the user from an API token; the first run
   of the process opens the workspace inside the clock). medops on SQLite and PostgreSQL
   against MLflow with a SQLite backend store (``sqlite:///.../mlflow.db``) doing the same
   work in the same run: its usual per-call fluent API (``mlflow.start_run``,
   ``mlflow.log_metric`` / ``mlflow.log_param``) and, as the fairer fast path, its batch API
   (``MlflowClient.create_run`` + ``log_batch`` in chunks of 1,000 + ``set_terminated``).
   Speed-up = MLflow time / medops time (aim: at least 5x against the per-call API).
2. Search: 20,000 runs (5 params, 3 tags, 3 latest metrics each) written straight into the
   tables with SQLAlchemy (medops: ``runs``, ``run_params``, ``run_tags``,
   ``run_latest_metrics``; MLflow: its own rows of one run made through its API, cloned with
   sqlite3), the same runs, ids and start times in both stores. Timed (median of 5 after a
   warm-up): ``Tracker.list_runs(tags={"model": "lgbm"}, metrics=[auroc>0.8], limit=100)``
   and with no practical limit (every match), against ``mlflow.search_runs(filter_string=
   "metrics.auroc > 0.8 and tags.model = 'lgbm'")`` with ``max_results=100`` and with its
   default (every match). Aim: medops under 1 s.
3. Overhead on a real training: ``lightgbm.LGBMClassifier(n_estimators=300)`` on 100,000 x 30
   synthetic rows (fixed seed), plain, with the training loss evaluated (training data as eval set) but not
   logged, and inside a medops run (SQLite) whose callback logs ``train_logloss`` at every
   iteration plus the model's parameters. Median of 3 each, interleaved in a rotating order,
   after a warm-up fit. Aim: under 5 %, judged on medops's own share: the time spent inside
   medops's calls during the tracked fit (start, parameters, every value, end), timed around
   each call, over the fit that evaluates the loss without logging it. The end-to-end
   difference between the two fits is printed too; on 2 cores it moves by more than the
   share itself from fit to fit. The total against the plain fit includes LightGBM's own
   cost of computing the training loss at every iteration.

MLflow is never installed into the project's environment: it lives in a venv of its own
(``--mlflow-venv``, made with ``python3 -m venv`` + ``pip install mlflow-skinny sqlalchemy
alembic pandas`` when missing) and runs as a subprocess that prints its timings as JSON. If
it can't be installed, its columns say so and the medops rows still run.
Both sides run from a small throw-away git repository, so both pay for their git lookup.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.common import (
    PG_ADMIN,
    environment,
    interleaved,
    load_average,
    medians,
    print_table,
    temp_dir,
    timed,
    workspace,
)

DEFAULT_VENV = Path("~/.cache/medops-bench/mlflow-venv").expanduser()
MLFLOW_PACKAGES = ["mlflow-skinny>=2.10", "sqlalchemy", "alembic", "pandas"]
SEARCH_FILTER = "metrics.auroc > 0.8 and tags.model = 'lgbm'"
MODELS = ("lgbm", "logreg", "rf", "xgb")
SPEEDUP_AIM = 5.0
SEARCH_AIM_S = 1.0
OVERHEAD_AIM = 5.0
SEARCH_REPEATS = 5
FIT_REPEATS = 3
BASE_TIME = datetime(2026, 1, 1, tzinfo=UTC)

# The MLflow side, a worker run by the MLflow venv's interpreter: argv[1] is a JSON config file; it
# prints {"ready": version}, then answers each JSON line on stdin ({"task": ..., "args": [...]}) with
# one JSON line {"result": ...}, so its rounds interleave with medops's in one process that stays warm.
MLFLOW_WORKER = r"""
import json, sqlite3, sys, time
import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric, Param

cfg = json.load(open(sys.argv[1]))
db = cfg["db"]
mlflow.set_tracking_uri("sqlite:///" + db)
client = MlflowClient()
exp = client.create_experiment("bench", artifact_location=cfg["artifacts"])
mlflow.set_experiment(experiment_id=exp)
search_exp = []


def warm_up():
    with mlflow.start_run(run_name="warm-up"):
        mlflow.log_param("p", 1)
        mlflow.log_metric("loss", 1.0, step=0)


def metrics_call(n):
    with mlflow.start_run(run_name="metrics"):
        for i in range(n):
            mlflow.log_metric("loss", 1.0 / (i + 1), step=i)


def metrics_batch(n):
    rid = client.create_run(exp, run_name="metrics-batch").info.run_id
    for start in range(0, n, 1000):
        batch = [Metric("loss", 1.0 / (i + 1), int(time.time() * 1000), i) for i in range(start, min(n, start + 1000))]
        client.log_batch(rid, metrics=batch)
    client.set_terminated(rid)


def runs_call(runs):
    for r in range(runs):
        with mlflow.start_run(run_name=f"run-{r}"):
            for j in range(10):
                mlflow.log_param(f"p{j}", (r * 10 + j) * 0.5)


def runs_batch(runs):
    for r in range(runs):
        rid = client.create_run(exp, run_name=f"batch-{r}").info.run_id
        client.log_batch(rid, params=[Param(f"p{j}", str((r * 10 + j) * 0.5)) for j in range(10)])
        client.set_terminated(rid)


def fill(path):
    # one run made through the API, cloned with sqlite3 into every run of the data: the same rows MLflow writes
    data = json.load(open(path))
    sexp = client.create_experiment("search", artifact_location=cfg["artifacts"] + "/search")
    search_exp.append(sexp)
    first = data[0]
    with mlflow.start_run(experiment_id=sexp, run_name="template") as template:
        mlflow.log_params(first["params"])
        mlflow.set_tags(first["tags"])
        mlflow.log_metrics(first["metrics"])
    tid = template.info.run_id
    t = time.perf_counter()
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    tables = [row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    tables = [t_ for t_ in tables if "run_uuid" in [c[1] for c in con.execute(f"PRAGMA table_info({t_})")]]
    rows = {t_: [dict(r) for r in con.execute(f"SELECT * FROM {t_} WHERE run_uuid = ?", (tid,))] for t_ in tables}
    rows = {t_: v for t_, v in rows.items() if v}
    with con:
        for t_, template_rows in rows.items():
            cols = list(template_rows[0])
            sql = f"INSERT INTO {t_} ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})"
            new = []
            for run in data:
                for row in template_rows:
                    row = dict(row, run_uuid=run["id"])
                    if t_ == "runs":
                        row["name"] = run["name"]
                        row["start_time"] = run["start_ms"]
                        row["end_time"] = run["start_ms"] + 60_000
                        if row.get("artifact_uri"):
                            row["artifact_uri"] = row["artifact_uri"].replace(tid, run["id"])
                    elif t_ in ("params", "tags"):
                        own = run[t_]
                        if row["key"] in own:
                            row["value"] = str(own[row["key"]])
                        elif row["key"] == "mlflow.runName":
                            row["value"] = run["name"]
                    elif t_ in ("metrics", "latest_metrics") and row["key"] in run["metrics"]:
                        row["value"] = run["metrics"][row["key"]]
                    new.append(tuple(row[c] for c in cols))
            con.executemany(sql, new)
        for t_ in tables:
            con.execute(f"DELETE FROM {t_} WHERE run_uuid = ?", (tid,))
    con.close()
    return {"seconds": time.perf_counter() - t, "tables": sorted(rows)}


def search(limit):
    kwargs = {} if limit is None else {"max_results": limit}
    found = mlflow.search_runs(experiment_ids=search_exp, filter_string=cfg["filter"], **kwargs)
    return list(found["run_id"])


TASKS = {f.__name__: f for f in (warm_up, metrics_call, metrics_batch, runs_call, runs_batch, fill, search)}
print(json.dumps({"ready": mlflow.__version__}), flush=True)
for line in sys.stdin:
    command = json.loads(line)
    print(json.dumps({"result": TASKS[command["task"]](*command.get("args", []))}), flush=True)
"""


def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_mlflow(venv: Path) -> tuple[Path | None, str]:
    """The MLflow venv's interpreter, installing it when missing; (None, why) when that fails."""
    python = _venv_python(venv)
    probe = [str(python), "-c", "import mlflow, sqlalchemy, alembic, pandas; print(mlflow.__version__)"]
    if python.exists():
        done = subprocess.run(probe, capture_output=True, text=True, check=False)
        if done.returncode == 0:
            return python, done.stdout.strip()
    print(f"installing MLflow into {venv} (once; never into the project's environment)...", flush=True)
    try:
        base = shutil.which("python3") or sys.executable
        subprocess.run([base, "-m", "venv", str(venv)], check=True, capture_output=True, text=True, timeout=300)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", *MLFLOW_PACKAGES],
            check=True,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        done = subprocess.run(probe, capture_output=True, text=True, check=True, timeout=300)
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", None) or str(exc)
        lines = [line for line in str(detail).strip().splitlines() if line.strip()]
        return None, f"MLflow could not be installed ({lines[-1] if lines else type(exc).__name__})"
    return python, done.stdout.strip()


class MlflowWorker:
    """The MLflow venv's interpreter running MLFLOW_WORKER in ``repo`` (both sides pay for their git lookup)."""

    def __init__(
        self, python: Path, repo: Path, base: Path, *, db: Path | None = None, artifacts: Path | None = None
    ) -> None:
        script = base / "mlflow_worker.py"
        script.write_text(MLFLOW_WORKER)
        config = {
            "db": str(db or base / "mlflow.db"),
            "artifacts": str(artifacts or base / "artifacts"),
            "filter": SEARCH_FILTER,
        }
        (base / "config.json").write_text(json.dumps(config))
        env = dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true", GIT_OPTIONAL_LOCKS="0")
        env.pop("PYTHONPATH", None)
        self._errors = (base / "mlflow_worker.err").open("w+")
        self._process = subprocess.Popen(
            [str(python), str(script), str(base / "config.json")],
            cwd=repo,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._errors,
            text=True,
        )
        self.version = str(self._answer()["ready"])

    def __call__(self, task: str, *args: Any) -> Any:
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps({"task": task, "args": list(args)}) + "\n")
        self._process.stdin.flush()
        return self._answer()["result"]

    def _answer(self) -> dict[str, Any]:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            self._errors.seek(0)
            raise RuntimeError(f"the MLflow worker stopped:\n{self._errors.read()[-3000:]}")
        return dict(json.loads(line))

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        self._process.wait(timeout=60)
        self._errors.close()


# --- the medops side ---------------------------------------------------------------------


def git_repo(base: Path) -> Path:
    """A one-commit git repository in ``base`` to run from, as a real project would."""
    repo = base / "project"
    repo.mkdir()
    (repo / "train.py").write_text("# a project\n")
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid", "-c", "init.defaultBranch=main"]
    for args in (["init", "-q"], ["add", "train.py"], ["commit", "-q", "-m", "start"]):
        subprocess.run([*git, *args], cwd=repo, check=True, capture_output=True)
    return repo


def medops_sides(ws: Any, repo: Path, metrics: int, runs: int) -> tuple[dict[str, Callable[[], None]], float]:
    """The two logging tasks through ``medops.start_run`` as a user's script calls it (MEDOPS_HOME and an
    API token in the environment, the project's folder as the working directory), and the seconds of the
    process's first run, which opens the workspace (schema check, environment lock); the later runs reuse
    it, as they do in a user's process."""
    import medops

    _, token = ws.tokens.create("admin", "bench", expires_in_days=1)
    # its key folder too: the key folder of the workspace opened last is the one in the environment
    values = {
        "MEDOPS_HOME": str(ws.settings.home),
        "MEDOPS_TOKEN": token,
        "MEDOPS_KEY_DIR": str(Path(ws.settings.signing_key_file).parent),
    }

    def first() -> None:
        with environment(values, repo), medops.start_run("bench", "first") as run:
            run.log_param("p", 1)

    def log() -> None:
        with environment(values, repo), medops.start_run("bench", "metrics") as run:
            for i in range(metrics):
                run.log_metric("loss", 1.0 / (i + 1), step=i)

    def make() -> None:
        with environment(values, repo):
            for r in range(runs):
                with medops.start_run("bench", f"run-{r}") as run:
                    for j in range(10):
                        run.log_param(f"p{j}", (r * 10 + j) * 0.5)

    return {"metrics": log, "runs": make}, timed(first)[0]


def _close_trackers() -> None:
    import medops

    medops._close_trackers()


def start_costs(repo: Path) -> tuple[float, float]:
    """Milliseconds that each start_run spends on the environment lock and on the git state (median of 5)."""
    from medops.training.environment import environment_lock, git_state

    def median_ms(fn: Callable[[], Any]) -> float:
        return statistics.median(timed(fn)[0] for _ in range(5)) * 1e3

    return median_ms(environment_lock), median_ms(lambda: git_state(repo))


def search_data(n: int) -> list[dict[str, Any]]:
    """``n`` runs with 5 params, 3 tags and 3 metrics, the same for medops and MLflow."""
    rng = random.Random(20)
    out = []
    base_ms = int(BASE_TIME.timestamp() * 1000)
    for i in range(n):
        out.append(
            {
                "id": f"{rng.getrandbits(128):032x}",
                "name": f"run-{i:05d}",
                "start_ms": base_ms + i * 1000,
                "params": {
                    "learning_rate": round(rng.choice([0.01, 0.03, 0.05, 0.1]), 3),
                    "num_leaves": rng.choice([15, 31, 63, 127]),
                    "n_estimators": rng.choice([100, 300, 1000]),
                    "seed": rng.randrange(1000),
                    "features": rng.choice(["labs", "labs+vitals", "all"]),
                },
                "tags": {
                    "model": rng.choice(MODELS),
                    "dataset": rng.choice(["readmit-v1", "readmit-v2", "readmit-v3"]),
                    "owner": f"user{rng.randrange(8)}",
                },
                "metrics": {
                    "auroc": round(rng.uniform(0.5, 0.95), 6),
                    "auprc": round(rng.uniform(0.1, 0.6), 6),
                    "logloss": round(rng.uniform(0.2, 0.7), 6),
                },
            }
        )
    return out


def _expected(data: list[dict[str, Any]]) -> list[str]:
    """The ids that match the search, newest first."""
    hits = [r for r in data if r["tags"]["model"] == "lgbm" and r["metrics"]["auroc"] > 0.8]
    return [r["id"] for r in sorted(hits, key=lambda r: (-r["start_ms"], r["id"]))]


def fill_medops(ws: Any, data: list[dict[str, Any]]) -> float:
    """Write ``data`` straight into medops's tables with SQLAlchemy; returns the seconds it took."""
    from sqlalchemy import insert

    from medops.store.schema import Run, RunLatestMetric, RunParam, RunTag

    def fill() -> None:
        chunk = 2000
        with ws.db.write() as session:
            for start in range(0, len(data), chunk):
                part = data[start : start + chunk]
                runs, params, tags, metrics = [], [], [], []
                for r in part:
                    began = datetime.fromtimestamp(r["start_ms"] / 1000, UTC)
                    runs.append(
                        {
                            "id": r["id"],
                            "experiment": "search",
                            "name": r["name"],
                            "parent_id": None,
                            "state": "finished",
                            "created_by": "admin",
                            "host": "bench",
                            "started_at": began,
                            "ended_at": began + timedelta(minutes=1),
                            "heartbeat_at": began + timedelta(minutes=1),
                            "error": None,
                            "seed": r["params"]["seed"],
                            "project_sha256": None,
                            "git_commit": None,
                            "git_dirty": None,
                            "env_digest": None,
                        }
                    )
                    params += [{"run_id": r["id"], "key": k, "value": str(v)} for k, v in r["params"].items()]
                    tags += [{"run_id": r["id"], "key": k, "value": v} for k, v in r["tags"].items()]
                    metrics += [{"run_id": r["id"], "key": k, "step": 0, "value": v} for k, v in r["metrics"].items()]
                session.execute(insert(Run), runs)
                session.execute(insert(RunParam), params)
                session.execute(insert(RunTag), tags)
                session.execute(insert(RunLatestMetric), metrics)

    return timed(fill)[0]


def medops_search(ws: Any, expected: list[str], limit: int) -> tuple[Callable[[], Any], bool]:
    """The search a user runs (``Tracker.list_runs`` with a tag and a metric filter, newest first), and
    whether its results are right (checked once, untimed)."""
    from medops.training.tracking import MetricFilter, Tracker

    tracker = Tracker(ws)
    flt = [MetricFilter.parse("auroc>0.8")]

    def search() -> list[Any]:
        return tracker.list_runs(tags={"model": "lgbm"}, metrics=flt, limit=limit)

    found = search()
    right = [r.id for r in found] == expected[:limit]
    right = right and all(r.tags.get("model") == "lgbm" and r.metrics["auroc"] > 0.8 for r in found)
    return search, right


# --- LightGBM ------------------------------------------------------------------------------


def lightgbm_overhead(ws: Any, repo: Path, rows: int, jobs: int | None, repeats: int) -> dict[str, float]:
    """Median seconds of a plain fit, a fit that evaluates the training loss, and a tracked fit."""
    import lightgbm
    from sklearn.datasets import make_classification

    from medops.training.tracking import Tracker

    x, y = make_classification(n_samples=rows, n_features=30, n_informative=15, random_state=7)
    settings: dict[str, Any] = {"n_estimators": 300, "random_state": 7, "verbose": -1}
    if jobs is not None:
        settings["n_jobs"] = jobs
    tracker = Tracker(ws)
    # the training data as the evaluation set (LightGBM reuses its scores: no extra prediction)
    newer = "eval_X" in inspect.signature(lightgbm.LGBMClassifier.fit).parameters
    on_train: dict[str, Any] = {"eval_X": x, "eval_y": y} if newer else {"eval_set": [(x, y)]}

    def plain() -> None:
        lightgbm.LGBMClassifier(**settings).fit(x, y)

    def evaluated() -> None:
        model = lightgbm.LGBMClassifier(**settings)
        model.fit(x, y, eval_metric="binary_logloss", **on_train)

    inside: list[float] = []  # per tracked fit: seconds spent in medops's own calls

    def tracked() -> None:
        model = lightgbm.LGBMClassifier(**settings)
        spent = 0.0
        clock = time.perf_counter()
        run = tracker.start_run("lightgbm", "fit", actor="admin", folder=repo)
        run.log_params(model.get_params())
        spent += time.perf_counter() - clock

        def log_loss(env: Any) -> None:
            nonlocal spent
            for _data, metric, value, _higher in env.evaluation_result_list:
                if metric == "binary_logloss":
                    began = time.perf_counter()
                    run.log_metric("train_logloss", value, step=env.iteration)
                    spent += time.perf_counter() - began

        with run:
            model.fit(x, y, eval_metric="binary_logloss", callbacks=[log_loss], **on_train)
            clock = time.perf_counter()
        spent += time.perf_counter() - clock  # the end: last values, state, git, audit event
        inside.append(spent)
        assert run.state == "finished"

    plain()  # warm-up
    samples: dict[str, list[float]] = {"plain": [], "evaluated": [], "tracked": []}
    fits: list[tuple[str, Callable[[], None]]] = [("plain", plain), ("evaluated", evaluated), ("tracked", tracked)]
    for i in range(repeats):  # the order rotates, so no variant always runs first or last
        for name, fit in fits[i % 3 :] + fits[: i % 3]:
            samples[name].append(timed(fit)[0])
    history = len(tracker.metric_history(tracker.list_runs(experiment="lightgbm", limit=1)[0].id, "train_logloss"))
    assert history == settings["n_estimators"], history
    return {
        **{name: statistics.median(values) for name, values in samples.items()},
        "inside": statistics.median(inside),
    }


# --- the report ----------------------------------------------------------------------------


def _pg_up() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN, connect_timeout=3):
            return True
    except Exception:  # noqa: BLE001 - any failure means: no PostgreSQL to measure
        return False


def _s(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f} s"


def _x(ref: float | None, value: float) -> str:
    return "" if ref is None else f"{ref / value:.1f}x"


def _aim_speedup(ref: float | None, value: float) -> str:
    if ref is None:
        return "n/a (no MLflow)"
    return f">= {SPEEDUP_AIM:g}x: {'ok' if ref / value >= SPEEDUP_AIM else 'MISSED'}"


def main(argv: list[str] | None = None) -> list[list[Any]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "all"], default="all")
    parser.add_argument("--metrics", type=int, default=10_000, help="metric values logged in one run")
    parser.add_argument("--runs", type=int, default=100, help="runs of 10 parameters each")
    parser.add_argument("--search-runs", type=int, default=20_000, help="runs in the store for the search")
    parser.add_argument("--lgbm-rows", type=int, default=100_000, help="rows of the LightGBM data (0: skip)")
    parser.add_argument("--lgbm-jobs", type=int, default=None, help="LightGBM n_jobs (default: its own, every core)")
    parser.add_argument("--fit-repeats", type=int, default=FIT_REPEATS, help="LightGBM fits per variant")
    parser.add_argument("--mlflow-venv", type=Path, default=DEFAULT_VENV, help="the MLflow venv (made if missing)")
    parser.add_argument("--no-mlflow", action="store_true", help="medops rows only")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the logging (medians)")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.metrics, args.runs, args.search_runs, args.lgbm_rows = 1_000, 10, 2_000, 20_000
    os.environ["GIT_OPTIONAL_LOCKS"] = "0"  # git status here never takes the index lock
    print(f"load average at start: {load_average()} ({os.cpu_count()} CPUs)")
    backends = ["sqlite", "postgresql"] if args.backend == "all" else [args.backend]
    if args.backend == "all" and not _pg_up():
        print(f"PostgreSQL at {PG_ADMIN} is unreachable: skipping the PostgreSQL rows")
        backends = ["sqlite"]

    python, version = (None, "not run (--no-mlflow)") if args.no_mlflow else ensure_mlflow(args.mlflow_venv)
    if python is None:
        print(f"MLflow is unavailable: {version}; only the medops rows run")
    data = search_data(args.search_runs)
    expected = _expected(data)
    notes: list[str] = [f"{args.rounds} rounds, the sides in a rotating order each round; medians"]
    rows: list[list[Any]] = []
    lgbm: dict[str, float] | None = None
    with temp_dir("medops-bench-tracking-") as base, ExitStack() as stack:
        repo = git_repo(base)
        worker: MlflowWorker | None = None
        if python is not None:
            (base / "mlflow").mkdir()
            worker = MlflowWorker(python, repo, base / "mlflow")
            stack.callback(worker.close)
            version = worker.version
            worker("warm_up")  # its first run: the store's tables and caches, as medops's first run below
        spaces = {backend: stack.enter_context(workspace(backend)) for backend in backends}
        stack.callback(_close_trackers)  # before the workspaces go: let go of the runs' connections
        env_ms, git_ms = start_costs(repo)
        notes.append(
            f"medops start_run fixed costs: environment lock {env_ms:.0f} ms, git state {git_ms:.0f} ms (median of 5)"
        )
        metric_sides: dict[str, Callable[[], Any]] = {}
        run_sides: dict[str, Callable[[], Any]] = {}
        for backend, ws in spaces.items():
            tasks, opening = medops_sides(ws, repo, args.metrics, args.runs)
            metric_sides[backend], run_sides[backend] = tasks["metrics"], tasks["runs"]
            notes.append(
                f"medops {backend}: the process's first start_run (opens the workspace) {opening * 1e3:.0f} ms"
            )
        if worker is not None:
            mlflow_worker = worker
            metric_sides["call"] = lambda: mlflow_worker("metrics_call", args.metrics)
            metric_sides["batch"] = lambda: mlflow_worker("metrics_batch", args.metrics)
            run_sides["call"] = lambda: mlflow_worker("runs_call", args.runs)
            run_sides["batch"] = lambda: mlflow_worker("runs_batch", args.runs)
        print("logging: the sides interleaved (MLflow's per-call API takes a while)...", flush=True)
        t_metrics = medians(interleaved(metric_sides, args.rounds, warmup=False))
        t_runs = medians(interleaved(run_sides, args.rounds, warmup=False))
        for backend in spaces:
            for label, took in (
                (f"log {args.metrics:,} metric values", t_metrics),
                (f"{args.runs:,} runs x 10 params", t_runs),
            ):
                mine, call, batch = took[backend], took.get("call"), took.get("batch")
                rows.append(
                    [
                        f"{backend}: {label}",
                        _s(mine),
                        _s(call),
                        _s(batch),
                        _x(call, mine),
                        _x(batch, mine),
                        _aim_speedup(call, mine),
                    ]
                )
        searches: dict[str, dict[str, float]] = {}
        if args.search_runs:
            for backend, ws in spaces.items():
                t_fill = fill_medops(ws, data)
                notes.append(
                    f"medops {backend}: {args.search_runs:,} runs inserted with SQLAlchemy into runs, run_params, "
                    f"run_tags, run_latest_metrics in {t_fill:.1f} s"
                )
            if worker is not None:
                (base / "search.json").write_text(json.dumps(data))
                filled = worker("fill", str(base / "search.json"))
                notes.append(
                    f"MLflow {version}: {args.search_runs:,} runs cloned by SQL from one made through its API in "
                    f"{filled['seconds']:.1f} s (tables {', '.join(filled['tables'])})"
                )
            for key, limit in (("100", 100), ("all", len(expected) + 1_000)):
                sides: dict[str, Callable[[], Any]] = {}
                for backend, ws in spaces.items():
                    sides[backend], right = medops_search(ws, expected, limit)
                    notes.append(f"medops {backend}, search limit {key}: results {'right' if right else 'WRONG'}")
                if worker is not None:
                    mlflow_worker, wanted = worker, None if key == "all" else limit
                    got = worker("search", wanted)
                    same = got == expected[:limit] if key == "100" else len(got) == len(expected)
                    notes.append(f"MLflow, search limit {key}: {len(got):,} runs, {'right' if same else 'WRONG'}")
                    sides["MLflow"] = lambda w=mlflow_worker, n=wanted: w("search", n)
                searches[key] = medians(interleaved(sides, SEARCH_REPEATS, warmup=False))
        for backend in spaces if searches else ():
            for key, label in (
                ("100", f"search {args.search_runs:,} runs, limit 100"),
                ("all", f"search, all {len(expected):,} matches"),
            ):
                mine, theirs = searches[key][backend], searches[key].get("MLflow")
                aim = f"< {SEARCH_AIM_S:g} s: {'ok' if mine < SEARCH_AIM_S else 'MISSED'}" if key == "100" else ""
                rows.append([f"{backend}: {label}", _s(mine), _s(theirs), "", _x(theirs, mine), "", aim])
        if args.lgbm_rows:
            with workspace("sqlite") as ws:
                lgbm = lightgbm_overhead(ws, repo, args.lgbm_rows, args.lgbm_jobs, args.fit_repeats)
    print_table(
        f"experiment tracking: medops vs MLflow {version} (SQLite store); speed-up = MLflow / medops",
        ["benchmark", "medops", "MLflow per-call", "MLflow batch", "speed-up", "vs batch", "aim"],
        rows,
    )
    if lgbm is not None:
        plain, evaluated, tracked = lgbm["plain"], lgbm["evaluated"], lgbm["tracked"]
        own = lgbm["inside"] / evaluated * 100  # timed inside the fit: not blurred by fit-to-fit noise
        total = (tracked / plain - 1) * 100
        notes.append(
            f"LightGBM: medops's own calls took {lgbm['inside'] * 1e3:.1f} ms per tracked fit (start, parameters, "
            f"300 values, end; median), {own:.2f} % of the fit; the whole tracked fit measured "
            f"{(tracked / evaluated - 1) * 100:+.1f} % against the untracked one (fit-to-fit noise included)"
        )
        lgbm_rows: list[list[Any]] = [
            ["plain fit", _s(plain), "", "", ""],
            [
                "+ train loss evaluated, not logged",
                _s(evaluated),
                "",
                f"{(evaluated / plain - 1) * 100:+.1f} %",
                "",
            ],
            [
                "+ medops run logging it per iteration",
                _s(tracked),
                f"{own:+.1f} %",
                f"{total:+.1f} %",
                f"< {OVERHEAD_AIM:g} %: {'ok' if own < OVERHEAD_AIM else 'MISSED'}",
            ],
        ]
        print_table(
            f"LightGBM, 300 trees on {args.lgbm_rows:,} x 30 rows, n_jobs={args.lgbm_jobs or 'default'} "
            f"(SQLite workspace; median of {args.fit_repeats}, order rotated)",
            ["fit", "seconds", "medops's share", "total vs plain", "aim"],
            lgbm_rows,
        )
        rows += [["lightgbm: " + r[0], *r[1:]] for r in lgbm_rows]
    for note in notes:
        print(f"- {note}")
    print(f"load average at end: {load_average()}")
    return rows


if __name__ == "__main__":
    main()
