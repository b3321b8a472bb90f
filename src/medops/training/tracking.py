"""Experiment tracking: runs with parameters, metrics, tags, inputs and artifacts.

A run records who started it, where (host), from what (project file hash, git commit and
dirty flag, environment lock, seed, the dataset and feature versions it read) and how it
ended (finished, failed with the error, killed). git is asked when the run starts and its
answer recorded when the run ends, so the run never waits for it. Metrics and parameters are buffered and
written in batches (every ``FLUSH_EVERY`` values or ``FLUSH_SECONDS``, and at the end), so
a training loop pays for a transaction per batch, not per value. A batch that can't be
written stays buffered; a run whose last batch can't be written ends failed.

A heartbeat (one thread per process beats every open run) touches the run while it is open. A
run still "running" whose heartbeat is older than ``ABANDON_AFTER`` (its process was killed, or
its machine lost) is marked killed, as abandoned, the next time runs are listed or started:
nothing stays running forever. Starting and ending a run are audited; each metric value is not (it is data).
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, cast

from sqlalchemy import Row, Table, and_, bindparam, exists, func, insert, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import BindParameter

from medops.audit import NewEvent
from medops.clock import utc_now
from medops.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from medops.identity import Role
from medops.platform import Platform
from medops.store.database import dialect_insert
from medops.store.id_prefix import is_hex, starts_with
from medops.store.lineage import Edge, add_edges, dataset_node
from medops.store.schema import Run as RunRow
from medops.store.schema import RunArtifact, RunInput, RunLatestMetric, RunMetric, RunParam, RunTag
from medops.training.environment import GitState, environment_lock, host_name, start_git_state
from medops.training.heartbeats import HEART

RUN_ROLES = {Role.DATA_SCIENTIST, Role.ML_ENGINEER, Role.ADMIN}
STATES = ("running", "finished", "failed", "killed")
FLUSH_EVERY = 1000
FLUSH_SECONDS = 2.0
HEARTBEAT_SECONDS = 10.0
ABANDON_AFTER = timedelta(minutes=2)
MAX_ERROR = 2000
PARAM_HINT = "parameters describe the run and don't change; log a metric or a tag instead"
_KEY_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./:@ ")


def run_node(run_id: str) -> str:
    return f"run:{run_id}"


def check_key(kind: str, key: str) -> str:
    if not key or len(key) > 200 or not set(key) <= _KEY_CHARS:
        raise InvalidInput(
            f"{kind} name {key!r} is not valid", hint="use letters, digits and _ - . / : @ or spaces, at most 200"
        )
    return key


def as_text(value: Any) -> str:
    """Parameters and tags are stored as text; structures as canonical JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


class BufferedRun(ABC):
    """What every open run shares, wherever its values are written: a parameter is set once, a metric
    is finite and steps on by itself, values are buffered and written in batches (FLUSH_EVERY values or
    FLUSH_SECONDS) and go back into the buffer if a write fails, and a heartbeat keeps the run alive.
    Use it as a context manager: an exception inside marks it failed with the error."""

    flush_every = FLUSH_EVERY  # values per write

    def __init__(
        self,
        run_id: str,
        experiment: str,
        name: str,
        state: str,
        heartbeat_seconds: float,
        *,
        first_beat: float | None = None,
    ) -> None:
        self.id = run_id
        self.experiment = experiment
        self.name = name
        self.state = state
        self._lock = threading.Lock()
        self._params: dict[str, str] = {}
        self._pending_params: dict[str, str] = {}
        self._pending_tags: dict[str, str] = {}
        self._pending_metrics: list[tuple[str, int, float, datetime]] = []
        self._steps: dict[str, int] = {}
        self._last_flush = time.monotonic()
        HEART.add(self, heartbeat_seconds, heartbeat_seconds if first_beat is None else first_beat)

    # --- what a kind of run does: where values go, how it beats, how it ends -----------------

    @abstractmethod
    def _write(
        self, params: Mapping[str, str], tags: Mapping[str, str], metrics: Sequence[tuple[str, int, float, datetime]]
    ) -> None:
        """Store one batch of values where this kind of run keeps them."""

    @abstractmethod
    def _beat_once(self) -> None:
        """Say the run is alive."""

    @abstractmethod
    def end(self, state: Literal["finished", "failed", "killed"] = "finished", error: str | None = None) -> None:
        """End the run with its last values."""

    # --- logging ----------------------------------------------------------------------

    def log_param(self, key: str, value: Any) -> None:
        """A parameter is set once: logging it again with another value is an error, not an overwrite."""
        check_key("parameter", key)
        text = as_text(value)
        with self._lock:
            if key in self._params and self._params[key] != text:
                raise InvalidInput(
                    f"run {self.id[:12]}: parameter {key!r} is {self._params[key]!r} already, not {text!r}",
                    hint=PARAM_HINT,
                )
            if key not in self._params:
                self._params[key] = text
                self._pending_params[key] = text
        self._maybe_flush()

    def log_params(self, params: Mapping[str, Any]) -> None:
        for key, value in params.items():
            self.log_param(key, value)

    def set_tag(self, key: str, value: Any) -> None:
        check_key("tag", key)
        with self._lock:
            self._pending_tags[key] = as_text(value)
        self._maybe_flush()

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        for key, value in tags.items():
            self.set_tag(key, value)

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        """One value; ``step`` defaults to the next step of that metric (0, 1, 2, ...)."""
        check_key("metric", key)
        number = float(value)
        if math.isnan(number) or math.isinf(number):
            raise InvalidInput(f"run {self.id[:12]}: metric {key!r} is {number}, not a finite number")
        with self._lock:
            at = self._steps.get(key, -1) + 1 if step is None else int(step)
            self._steps[key] = max(at, self._steps.get(key, -1))
            self._pending_metrics.append((key, at, number, utc_now()))
        self._maybe_flush()

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        for key, value in metrics.items():
            self.log_metric(key, value, step)

    def _maybe_flush(self) -> None:
        pending = len(self._pending_metrics) + len(self._pending_params) + len(self._pending_tags)
        if pending >= self.flush_every or time.monotonic() - self._last_flush >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Write what is buffered, in one go."""
        with self._lock:
            params, self._pending_params = self._pending_params, {}
            tags, self._pending_tags = self._pending_tags, {}
            metrics, self._pending_metrics = self._pending_metrics, []
            self._last_flush = time.monotonic()
        if not (params or tags or metrics):
            return
        try:
            self._write(params, tags, metrics)
        except BaseException:
            self._restore((params, tags, metrics))
            raise

    def _take(self) -> tuple[dict[str, str], dict[str, str], list[tuple[str, int, float, datetime]]]:
        """Everything buffered, taken out (for the last write, with the end)."""
        with self._lock:
            batch = (self._pending_params, self._pending_tags, self._pending_metrics)
            self._pending_params, self._pending_tags, self._pending_metrics = {}, {}, []
        return batch

    def _restore(self, batch: tuple[Mapping[str, str], Mapping[str, str], Sequence[Any]]) -> None:
        with self._lock:  # nothing is lost: the values go back, ahead of any logged since
            self._pending_params = {**batch[0], **self._pending_params}
            self._pending_tags = {**batch[1], **self._pending_tags}
            self._pending_metrics = [*batch[2], *self._pending_metrics]

    def _stop_beating(self) -> None:
        HEART.remove(self)

    def __enter__(self) -> BufferedRun:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc is None:
            self.end("finished")
        elif isinstance(exc, KeyboardInterrupt):
            self.end("killed", "interrupted")
        else:
            self.end("failed", f"{type(exc).__name__}: {exc}"[:MAX_ERROR])


class Run(BufferedRun):
    """An open run written to this workspace's database."""

    def __init__(
        self,
        tracker: Tracker,
        row: RunInfo,
        *,
        owns_workspace: bool = False,
        git: Callable[[], GitState] = lambda: GitState(None, None),
    ) -> None:
        self.tracker = tracker
        self._git = git  # asked when the run started, read when it ends
        self.actor = row.created_by
        self._owns_workspace = owns_workspace
        super().__init__(row.id, row.experiment, row.name, row.state, tracker.heartbeat_seconds)

    def log_input(self, kind: str, name: str, version: str) -> None:
        """What the run read, with its version; written at once, with a lineage edge."""
        if kind not in ("dataset", "training_set", "featureview"):
            raise InvalidInput(f"input kind {kind!r} is not known", hint="dataset, training_set or featureview")
        node = f"featureview:{name}@{version}" if kind == "featureview" else dataset_node(name, version)
        with self.tracker.ws.db.write() as session:
            session.execute(
                dialect_insert(session)(RunInput)
                .values(run_id=self.id, kind=kind, name=name, version=version)
                .on_conflict_do_update(index_elements=["run_id", "kind", "name"], set_={"version": version})
            )
            add_edges(session, [Edge(node, run_node(self.id), "trained_on", {"kind": kind})], self.actor)

    def log_dataset(self, ref: str) -> None:
        """A dataset (or training set) by ``NAME`` or ``NAME@VERSION``, resolved to its full version."""
        from medops.data.datasets import get

        info = get(self.tracker.ws.db, ref)
        self.log_input("training_set" if info.kind == "training_set" else "dataset", info.name, info.version)

    def log_artifact(self, path: str, data: bytes | Path) -> str:
        """Store bytes (or a file) in the artifact store under the run's ``path``; returns its SHA-256."""
        check_key("artifact", path)
        digest = self.tracker.ws.artifacts.put(data)
        size = self.tracker.ws.artifacts.size(digest)
        with self.tracker.ws.db.write() as session:
            session.execute(
                dialect_insert(session)(RunArtifact)
                .values(run_id=self.id, path=path, digest=digest, size_bytes=size)
                .on_conflict_do_update(index_elements=["run_id", "path"], set_={"digest": digest, "size_bytes": size})
            )
        return digest

    # --- writing ----------------------------------------------------------------------

    def _write(
        self, params: Mapping[str, str], tags: Mapping[str, str], metrics: Sequence[tuple[str, int, float, datetime]]
    ) -> None:
        with self.tracker.ws.db.write() as session:
            _write_batch(session, self.id, params, tags, metrics)

    def _beat_once(self) -> None:
        with self.tracker.ws.db.write() as session:
            session.execute(
                update(RunRow).where(RunRow.id == self.id, RunRow.state == "running").values(heartbeat_at=utc_now())
            )

    # --- ending -----------------------------------------------------------------------

    def end(self, state: Literal["finished", "failed", "killed"] = "finished", error: str | None = None) -> None:
        if self.state != "running":
            return
        self._stop_beating()
        batch = self._take()
        try:
            self.tracker._finish(self, state, error, batch)  # the last values and the end: one transaction
        except Exception as exc:
            self._restore(batch)
            state, error = "failed", f"its last values could not be stored: {type(exc).__name__}: {exc}"[:MAX_ERROR]
            self.tracker._finish(self, state, error)
            raise
        finally:
            self.state = state
            if self._owns_workspace:
                self.tracker.ws.close()

    def __enter__(self) -> Run:
        return self

    def child(self, name: str, **kwargs: Any) -> Run:
        """A nested run (a tuning trial, say) of the same experiment."""
        return self.tracker.start_run(self.experiment, name, parent=self.id, actor=self.actor, **kwargs)


Batch = tuple[Mapping[str, str], Mapping[str, str], Sequence[tuple[str, int, float, datetime]]]
_RUN_ID = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class Ending:
    """How a run ended: its state, the error, the git state its client saw, and its last values."""

    state: str
    error: str | None
    git: GitState
    batch: Batch = ({}, {}, ())
    stored_error: str | None = None  # the error as the run's row keeps it (at most MAX_ERROR characters)

    def __post_init__(self) -> None:
        if self.state not in ("finished", "failed", "killed"):
            raise InvalidInput(f"a run ends finished, failed or killed, not {self.state!r}")

    @classmethod
    def of(cls, state: str, error: str | None, git: GitState, batch: Batch) -> Ending:
        """An end reported by a client, its error cut to what the row keeps."""
        return cls(state, error, git, batch, stored_error=(error or None) and error[:MAX_ERROR])


@dataclass(frozen=True)
class Ended:
    """What ending a run wrote: the event's ``after``, the end's time, the batch's newest metric values."""

    after: dict[str, Any]
    at: datetime
    newest: dict[str, float]


def _check_batch(
    session: Session,
    run_id: str,
    params: Mapping[str, str],
    tags: Mapping[str, str],
    metrics: Sequence[tuple[str, int, float, datetime]],
) -> None:
    """Values sent from elsewhere obey a local run's rules: valid names, and a parameter keeps its first value."""
    for key in [*params, *tags, *(m[0] for m in metrics)]:
        check_key("key", key)
    if not params:
        return
    held = {key: value for key, value in session.connection().execute(_HELD, {"run": run_id, "keys": list(params)})}
    changed = sorted(k for k, v in params.items() if k in held and held[k] != v)
    if changed:
        raise InvalidInput(
            f"run {run_id[:12]}: parameter {changed[0]!r} is {held[changed[0]]!r} already",
            hint=PARAM_HINT,
        )


# a run's end, built once (see open_row): only a running run ends, once
_RUNS = cast(Table, RunRow.__table__)
_END = (
    update(_RUNS)
    .where(_RUNS.c.id == bindparam("run"), _RUNS.c.state == "running")
    .values(
        state=bindparam("to"),
        ended_at=bindparam("at"),
        error=bindparam("why"),
        git_commit=bindparam("commit"),
        git_dirty=bindparam("dirty"),
    )
)


def _write_batch(
    session: Session,
    run_id: str,
    params: Mapping[str, str],
    tags: Mapping[str, str],
    metrics: Sequence[tuple[str, int, float, datetime]],
) -> dict[str, tuple[int, float]]:
    """Store a batch; the batch's newest value of each metric (its highest step; the last logged for a step)."""
    # One statement, many parameter sets: compiling a statement with thousands of VALUES
    # rows cost more than running it. Into the tables, not through the ORM's bulk insert, which
    # spent more per row in bookkeeping than SQLite spent storing it.
    insert = dialect_insert(session)
    if params:
        session.connection().execute(
            insert(RunParam.__table__).on_conflict_do_nothing(index_elements=["run_id", "key"]),
            [{"run_id": run_id, "key": k, "value": v} for k, v in params.items()],
        )
    if tags:
        stmt = insert(RunTag)
        session.execute(
            stmt.on_conflict_do_update(index_elements=["run_id", "key"], set_={"value": stmt.excluded.value}),
            [{"run_id": run_id, "key": k, "value": v} for k, v in tags.items()],
        )
    newest: dict[str, tuple[int, float]] = {}
    if metrics:
        last: dict[tuple[str, int], tuple[float, datetime]] = {}
        for key, step, value, at in metrics:  # the last value logged for a step wins
            last[(key, step)] = (value, at)
        rows = [
            {"run_id": run_id, "key": k, "step": s, "value": v, "logged_at": at} for (k, s), (v, at) in last.items()
        ]
        stmt = insert(RunMetric.__table__)  # the table, not the entity: no ORM bookkeeping per row
        session.execute(
            stmt.on_conflict_do_update(
                index_elements=["run_id", "key", "step"],
                set_={"value": stmt.excluded.value, "logged_at": stmt.excluded.logged_at},
            ),
            rows,
        )
        for (key, step), (value, _at) in last.items():
            if key not in newest or step >= newest[key][0]:
                newest[key] = (step, value)
        stmt = insert(RunLatestMetric)
        session.execute(
            stmt.on_conflict_do_update(
                index_elements=["run_id", "key"],
                set_={"step": stmt.excluded.step, "value": stmt.excluded.value},
                where=RunLatestMetric.step <= stmt.excluded.step,
            ),
            [{"run_id": run_id, "key": k, "step": s, "value": v} for k, (s, v) in newest.items()],
        )
    return newest


ABANDON_ACTOR = "system:heartbeat"  # a run without a heartbeat is ended by the system, not by whoever reads next


@dataclass
class RunInfo:
    id: str
    experiment: str
    name: str
    parent_id: str | None
    state: str
    created_by: str
    host: str
    started_at: datetime
    ended_at: datetime | None
    error: str | None
    seed: int | None
    project_sha256: str | None
    git_commit: str | None
    git_dirty: bool | None
    env_digest: str | None
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    inputs: list[dict[str, str]] = field(default_factory=list)
    artifacts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def short(self) -> str:
        return self.id[:12]

    @property
    def duration(self) -> float | None:
        return (self.ended_at - self.started_at).total_seconds() if self.ended_at else None


# what a run holds besides its row, by run ids: built once, run on the reading session's connection
# (a statement made per call, and the ORM's rows, cost more than these small reads)
_OF: BindParameter[list[str]] = bindparam("ids", expanding=True)
_LATEST_OF = select(RunLatestMetric.run_id, RunLatestMetric.key, RunLatestMetric.value).where(
    RunLatestMetric.run_id.in_(_OF)
)
_TAGS_OF = select(RunTag.run_id, RunTag.key, RunTag.value).where(RunTag.run_id.in_(_OF))
_PARAMS_OF = select(RunParam.run_id, RunParam.key, RunParam.value).where(RunParam.run_id.in_(_OF))
_INPUTS_OF = select(RunInput.run_id, RunInput.kind, RunInput.name, RunInput.version).where(RunInput.run_id.in_(_OF))
_ARTIFACTS_OF = select(RunArtifact.run_id, RunArtifact.path, RunArtifact.digest, RunArtifact.size_bytes).where(
    RunArtifact.run_id.in_(_OF)
)
# the values a batch's parameters hold already (a parameter keeps its first value)
_HELD = select(RunParam.key, RunParam.value).where(
    RunParam.run_id == bindparam("run"), RunParam.key.in_(bindparam("keys", expanding=True))
)
# a remote run's owner and state, for the checks before its client's writes
_OWNER = select(_RUNS.c.created_by, _RUNS.c.state).where(_RUNS.c.id == bindparam("run"))


def run_info(row: RunRow | Row[Any]) -> RunInfo:
    """The run's own fields; its values, inputs and artifacts are filled by the reader (a new run has none)."""
    return RunInfo(
        row.id,
        row.experiment,
        row.name,
        row.parent_id,
        row.state,
        row.created_by,
        row.host,
        row.started_at,
        row.ended_at,
        row.error,
        row.seed,
        row.project_sha256,
        row.git_commit,
        row.git_dirty,
        row.env_digest,
    )


@dataclass(frozen=True)
class MetricFilter:
    """``auc>0.8``, ``loss<=0.3``, ``accuracy=1``: a condition on a run's latest metric value."""

    key: str
    op: str
    value: float

    @classmethod
    def parse(cls, text: str) -> MetricFilter:
        for op in (">=", "<=", "!=", ">", "<", "="):
            key, sep, value = text.partition(op)
            if sep and key.strip():
                try:
                    return cls(key.strip(), op, float(value))
                except ValueError:
                    break
        raise InvalidInput(f"metric filter {text!r} is not METRIC<op>NUMBER", hint="for example: auroc>=0.8")


@dataclass
class Comparison:
    a: RunInfo
    b: RunInfo
    params: list[tuple[str, str | None, str | None]]
    metrics: list[tuple[str, float | None, float | None]]
    inputs: list[tuple[str, str | None, str | None]]
    code: list[tuple[str, Any, Any]]
    environment: list[str]


class Tracker:
    """Runs of one workspace."""

    def __init__(
        self,
        ws: Platform,
        *,
        heartbeat_seconds: float = HEARTBEAT_SECONDS,
        abandon_after: timedelta = ABANDON_AFTER,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.ws = ws
        self.heartbeat_seconds = heartbeat_seconds
        self.abandon_after = abandon_after
        self.clock = clock  # the time abandonment is judged at; a test moves it instead of sleeping
        self._env_digest: str | None = None
        self._swept_at = -math.inf  # time.monotonic() of this tracker's last look for abandoned runs

    def start_run(
        self,
        experiment: str,
        name: str | None = None,
        *,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        seed: int | None = None,
        parent: str | None = None,
        project: Any = None,
        actor: str,
        folder: Path | None = None,
        owns_workspace: bool = False,
    ) -> Run:
        """Open a run (audited). ``project`` is a loaded project file: its hash and folder are recorded."""
        where = folder or (project.folder if project is not None else Path.cwd())
        git = start_git_state(where)  # git answers while the run works; recorded when it ends
        if self._env_digest is None:  # one environment per process: stored once
            self._env_digest = self.ws.artifacts.put(environment_lock().encode())
        row = self.open_row(
            experiment,
            name,
            seed=seed,
            parent=parent,
            actor=actor,
            env_digest=self._env_digest,
            project_sha256=getattr(project, "sha256", None),
        )
        run = Run(self, row, owns_workspace=owns_workspace, git=git)
        if params:
            run.log_params(params)
        if seed is not None:
            run.log_param("seed", seed)
        if tags:
            run.set_tags(tags)
        return run

    def open_row(
        self,
        experiment: str,
        name: str | None,
        *,
        seed: int | None,
        parent: str | None,
        actor: str,
        env_digest: str,
        project_sha256: str | None = None,
        host: str | None = None,
        run_id: str | None = None,
        started_at: datetime | None = None,
        ending: Ending | None = None,
    ) -> RunInfo:
        """The run, made by ``actor`` if their roles allow it (audited as run.start).

        A client that logs from elsewhere may name the run (``run_id``, a new UUID in hex) and say
        when it began (``started_at``); with its ``ending`` too, the whole run is recorded at once:
        its start, its values and its end in one transaction (run.start, then run.STATE), and the
        answer is the run as ended, with this batch's values as its latest (it has no others).
        """
        check_key("experiment", experiment)
        if run_id is not None and not _RUN_ID.fullmatch(run_id):
            raise InvalidInput(f"{run_id[:40]!r} is not a run id", hint="32 lower-case hex digits: uuid4().hex")
        if parent is not None:
            self.get(parent)
        # Abandonment takes minutes without a heartbeat: looking once per heartbeat interval
        # (not per run: a search starts hundreds) finds every abandoned run in time.
        if time.monotonic() - self._swept_at >= self.heartbeat_seconds:
            self.mark_abandoned()
            self._swept_at = time.monotonic()
        named = run_id is not None
        run_id = run_id or uuid.uuid4().hex
        now = utc_now()
        began = started_at or now
        values = dict(
            id=run_id,
            experiment=experiment,
            name=name or f"{experiment}-{began.strftime('%Y%m%d-%H%M%S')}",
            parent_id=parent,
            state="running",
            created_by=actor,
            host=host or host_name(),
            started_at=began,
            heartbeat_at=now,
            seed=seed,
            project_sha256=project_sha256,
            env_digest=env_digest,
        )
        row = RunRow(**values)  # the caller's copy; never attached to a session
        with self.ws.users.authorized(actor, "run.start", "run", run_id, RUN_ROLES) as ch:
            connection = ch.session.connection()
            if named and connection.execute(_OWNER, {"run": run_id}).first() is not None:
                raise Conflict(f"run {run_id[:12]} exists already", code="run_exists", hint="give a new run a new id")
            # into the table on the session's connection: the ORM's unit of work cost more than the insert
            connection.execute(insert(_RUNS), values)
            if parent is not None:
                add_edges(ch.session, [Edge(run_node(parent), run_node(run_id), "trial", {})], actor)
            ch.after = {
                "experiment": experiment,
                "name": row.name,
                "parent": parent,
                "seed": seed,
                "project_sha256": row.project_sha256,
                "environment": env_digest,
                **({"started_at": began.isoformat()} if started_at is not None else {}),
            }
            info = run_info(row)  # just made: no values, inputs or artifacts to read back
            if ending is not None:  # nor any before these: the summary is the row as ended and this batch
                ended = self._write_end(ch.session, run_id, ending, checked=True)
                ch.then.append(NewEvent(actor, f"run.{ending.state}", "run", run_id, after=ended.after))
                info.state, info.ended_at, info.error = ending.state, ended.at, ending.stored_error
                info.git_commit, info.git_dirty = ending.git.commit, ending.git.dirty
                info.metrics, info.tags = ended.newest, dict(ending.batch[1])
        return info

    # --- a run logged from elsewhere (the platform API), by id -------------------------------

    def _owned_running(self, run_id: str, actor: str) -> None:
        """The run is ``actor``'s and running; a refusal is audited (outside any write: SQLite has one writer)."""
        with self.ws.db.read() as session:
            row = session.connection().execute(_OWNER, {"run": run_id}).first()
            owner, state = (row.created_by, row.state) if row is not None else (None, None)
        if owner is None:
            raise NotFound(f"no run {run_id[:12]}", code="run_not_found")
        if owner != actor:
            why = f"it is {owner!r}'s run"
            self.ws.trail.record(NewEvent(actor, "run.log.denied", "run", run_id, reason=why))
            raise PermissionDenied(f"{actor!r} may not log to run {run_id[:12]}: {why}")
        if state != "running":
            raise Conflict(f"run {run_id[:12]} is {state}: it takes no more values", code="run_not_running")

    def log_batch(
        self,
        run_id: str,
        actor: str,
        params: Mapping[str, str],
        tags: Mapping[str, str],
        metrics: Sequence[tuple[str, int, float, datetime]],
    ) -> None:
        """Values a run's owner logged elsewhere, in one transaction; a parameter keeps its first value."""
        self._owned_running(run_id, actor)
        with self.ws.db.write() as session:
            _check_batch(session, run_id, params, tags, metrics)
            _write_batch(session, run_id, params, tags, metrics)
            session.execute(update(RunRow).where(RunRow.id == run_id).values(heartbeat_at=utc_now()))

    def beat(self, run_id: str, actor: str) -> None:
        self._owned_running(run_id, actor)
        with self.ws.db.write() as session:
            session.execute(update(RunRow).where(RunRow.id == run_id).values(heartbeat_at=utc_now()))

    def finish(self, run_id: str, actor: str, ending: Ending) -> None:
        """End a run logged from elsewhere (audited as run.STATE), with the git state its client saw; its last
        values, if any, in the same transaction."""
        self._owned_running(run_id, actor)
        self._end(actor, run_id, ending, checked=True)

    def _finish(
        self,
        run: Run,
        state: str,
        error: str | None,
        batch: Batch | None = None,
    ) -> None:
        ending = Ending(state, error, run._git(), batch or ({}, {}, ()), stored_error=error)
        self._end(run.actor, run.id, ending, checked=False)

    def _end(self, actor: str, run_id: str, ending: Ending, *, checked: bool) -> None:
        """A run's last values and its end in one audited transaction (run.STATE), for a local run and one
        logged from elsewhere alike; ``checked``: the values came from elsewhere and obey a local run's rules."""
        with self.ws.trail.change(actor, f"run.{ending.state}", "run", run_id) as ch:
            ch.after = self._write_end(ch.session, run_id, ending, checked=checked).after

    @staticmethod
    def _write_end(session: Session, run_id: str, ending: Ending, *, checked: bool) -> Ended:
        """The last values and the end of a running run, in the caller's transaction."""
        newest: dict[str, tuple[int, float]] = {}
        if any(ending.batch):
            if checked:
                _check_batch(session, run_id, *ending.batch)
            newest = _write_batch(session, run_id, *ending.batch)
        git = ending.git
        at = utc_now()
        ended = {"run": run_id, "to": ending.state, "at": at, "why": ending.stored_error}
        session.connection().execute(_END, {**ended, "commit": git.commit, "dirty": git.dirty})
        after = {"state": ending.state, "error": ending.error, "git_commit": git.commit, "git_dirty": git.dirty}
        return Ended(after, at, {key: value for key, (_step, value) in newest.items()})

    def mark_abandoned(self, actor: str = ABANDON_ACTOR, now: datetime | None = None) -> list[str]:
        """Runs left "running" without a heartbeat for ``abandon_after`` become killed, audited."""
        cutoff = (now or self.clock()) - self.abandon_after
        with self.ws.db.read() as session:
            stale = session.execute(
                select(RunRow.id, RunRow.heartbeat_at).where(RunRow.state == "running", RunRow.heartbeat_at < cutoff)
            ).all()
        marked = []
        for run_id, beat in stale:
            reason = f"abandoned: no heartbeat since {beat.isoformat()}"
            with self.ws.trail.change(actor, "run.abandoned", "run", run_id) as ch:
                done = ch.session.execute(
                    update(RunRow)
                    .where(RunRow.id == run_id, RunRow.state == "running", RunRow.heartbeat_at < cutoff)
                    .values(state="killed", ended_at=beat, error=reason)
                )
                ch.after = {"state": "killed", "error": reason}
                if getattr(done, "rowcount", 1) == 0:
                    ch.after = {"state": "unchanged: it beat again"}
            marked.append(run_id)
        return marked

    # --- reading ----------------------------------------------------------------------

    def get(self, ref: str, *, full: bool = True) -> RunInfo:
        """A run by its id or an unambiguous prefix (at least 6 characters); ``full=False``: its latest metrics
        and tags only, without params, inputs and artifacts (a run's summary)."""
        ref = ref.strip().removeprefix("run:").lower()  # as typed or pasted: case does not matter
        if len(ref) < 6 or not is_hex(ref):
            raise InvalidInput(f"{ref!r} is not a run id", hint="give at least 6 hex characters of it")
        with self.ws.db.read() as session:
            rows = session.connection().execute(select(_RUNS).where(starts_with(_RUNS.c.id, ref)).limit(2)).all()
            if not rows:
                raise NotFound(f"no run {ref!r}", code="run_not_found")
            if len(rows) > 1:
                raise InvalidInput(f"{ref!r} matches more than one run", hint="give more characters of the id")
            info = run_info(rows[0])
            self._fill(session, [info], full=full)
        return info

    def list_runs(
        self,
        *,
        experiment: str | None = None,
        state: str | None = None,
        tags: Mapping[str, str] | None = None,
        metrics: Sequence[MetricFilter] = (),
        parent: str | None = None,
        top_level: bool = False,
        limit: int = 100,
    ) -> list[RunInfo]:
        """Newest first; every filter is applied in the database, so large stores stay fast."""
        if state is not None and state not in STATES:
            raise InvalidInput(f"state {state!r} is not known", hint=f"states: {', '.join(STATES)}")
        self.mark_abandoned()
        query = select(RunRow)
        if experiment:
            query = query.where(RunRow.experiment == experiment)
        if state:
            query = query.where(RunRow.state == state)
        if parent:
            query = query.where(RunRow.parent_id == parent)
        if top_level:
            # Not "parent_id IS NULL": SQLite then walks the parent index, which every top-level run matches,
            # and sorts them all, instead of walking started_at and stopping at the limit (7 ms, not 46, at 20k)
            query = query.where(func.coalesce(RunRow.parent_id, "") == "")
        for key, value in (tags or {}).items():
            query = query.where(
                exists().where(and_(RunTag.run_id == RunRow.id, RunTag.key == key, RunTag.value == value))
            )
        for f in metrics:
            column = RunLatestMetric.value
            condition = {
                ">": column > f.value,
                ">=": column >= f.value,
                "<": column < f.value,
                "<=": column <= f.value,
                "=": column == f.value,
                "!=": column != f.value,
            }[f.op]
            query = query.where(
                exists().where(and_(RunLatestMetric.run_id == RunRow.id, RunLatestMetric.key == f.key, condition))
            )
        query = query.order_by(RunRow.started_at.desc(), RunRow.id).limit(limit)
        with self.ws.db.read() as session:
            infos = [run_info(r) for r in session.execute(query).scalars()]
            self._fill(session, infos, full=False)
        return infos

    def _fill(self, session: Session, infos: list[RunInfo], *, full: bool) -> None:
        by_id = {i.id: i for i in infos}
        if not by_id:
            return
        on = session.connection()
        ids = {"ids": list(by_id)}
        for run_id, key, value in on.execute(_LATEST_OF, ids):
            by_id[run_id].metrics[key] = value
        for run_id, key, text in on.execute(_TAGS_OF, ids):
            by_id[run_id].tags[key] = text
        if not full:
            return
        for run_id, key, text in on.execute(_PARAMS_OF, ids):
            by_id[run_id].params[key] = text
        for run_id, kind, name, version in on.execute(_INPUTS_OF, ids):
            by_id[run_id].inputs.append({"kind": kind, "name": name, "version": version})
        for run_id, path, digest, size in on.execute(_ARTIFACTS_OF, ids):
            by_id[run_id].artifacts.append({"path": path, "digest": digest, "size": size})

    def set_tag(self, ref: str, key: str, value: Any) -> None:
        """Tag a run after the fact (a review note, the run it reproduces); tags are labels, not results."""
        run = self.get(ref)
        with self.ws.db.write() as session:
            _write_batch(session, run.id, {}, {check_key("tag", key): as_text(value)}, [])

    def metric_history(self, ref: str, key: str) -> list[tuple[int, float]]:
        run = self.get(ref)
        with self.ws.db.read() as session:
            rows = session.execute(
                select(RunMetric.step, RunMetric.value)
                .where(RunMetric.run_id == run.id, RunMetric.key == key)
                .order_by(RunMetric.step)
            ).all()
        return [(int(s), float(v)) for s, v in rows]

    def compare(self, a_ref: str, b_ref: str) -> Comparison:
        """Parameters, metrics, inputs, code and environment of two runs, side by side."""
        from medops.training.environment import lock_differences

        a, b = self.get(a_ref), self.get(b_ref)
        params = [
            (k, a.params.get(k), b.params.get(k))
            for k in sorted(a.params.keys() | b.params.keys())
            if a.params.get(k) != b.params.get(k)
        ]
        metrics = [(k, a.metrics.get(k), b.metrics.get(k)) for k in sorted(a.metrics.keys() | b.metrics.keys())]
        ins_a = {f"{i['kind']}:{i['name']}": i["version"] for i in a.inputs}
        ins_b = {f"{i['kind']}:{i['name']}": i["version"] for i in b.inputs}
        inputs = [(k, ins_a.get(k), ins_b.get(k)) for k in sorted(ins_a.keys() | ins_b.keys())]
        code = [
            (name, getattr(a, name), getattr(b, name))
            for name in ("git_commit", "git_dirty", "project_sha256", "seed")
            if getattr(a, name) != getattr(b, name)
        ]
        environment: list[str] = []
        if a.env_digest and b.env_digest and a.env_digest != b.env_digest:
            environment = lock_differences(
                self.ws.artifacts.read_bytes(a.env_digest).decode(), self.ws.artifacts.read_bytes(b.env_digest).decode()
            )
        return Comparison(a, b, params, metrics, inputs, code, environment)
