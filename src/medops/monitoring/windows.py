"""Monitored windows: their boundaries, their computation over the prediction log, and their records.

A window of the prediction log is a calendar month (``calendar-month``) or a run of whole days
(``7d``, ``30d``) from a start day, in UTC. A dataset version scored in batch is a window of its
own: source ``dataset:NAME``, labelled ``NAME@VERSION`` and placed at the version's ingest time,
so the batches of one dataset follow one another as a log's months do. Only complete windows are
stored: a window still open would be judged on part of its rows and then again, differently, when
it closes. Each is judged against the reference profile of the version that made its predictions
(a month that saw a swap has one window per version), stored as a document in the artifact store
and an append-only row; a rerun of the same window adds a row, and the newest is the one shown.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial, reduce
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sqlalchemy import func, select

from medops.clock import duration, utc_now
from medops.data.duck_connections import DuckConnections, duck
from medops.data.prefetch import prefetch
from medops.errors import InvalidInput, NotFound
from medops.evaluation.spec import AttributeSpec
from medops.features.executor import open_executor
from medops.identity.roles import Role
from medops.monitoring.drift import judge
from medops.monitoring.labels import load as load_labels
from medops.monitoring.performance import (
    Labeled,
    attribute_labels,
    join_labels,
    judge_performance,
    merge_labeled,
)
from medops.monitoring.profile import ReferenceProfile
from medops.monitoring.profiles import load
from medops.monitoring.sources import Chunk, dataset_chunks, prediction_chunks
from medops.monitoring.spec import MonitorSpec, PerformanceSpec
from medops.monitoring.window import Window
from medops.platform import Platform
from medops.store.schema import MonitorWindow, Prediction

if TYPE_CHECKING:
    from medops.features.executor import Executor
    from medops.registry.predictor import Predictor
    from medops.store.database import Database

MONITOR_ROLES = {Role.ML_ENGINEER, Role.DATA_SCIENTIST, Role.ADMIN}
_DAYS = re.compile(r"^([1-9][0-9]{0,2})d$")
PREDICTIONS = "predictions"


@dataclass(frozen=True)
class Span:
    label: str
    start: datetime
    end: datetime  # exclusive


def spans(kind: str, start: datetime, until: datetime) -> list[Span]:
    """The complete windows of ``kind`` from ``start``'s day (or month) up to ``until``."""
    day = datetime(start.year, start.month, start.day, tzinfo=UTC)
    out: list[Span] = []
    if kind == "calendar-month":
        at = datetime(start.year, start.month, 1, tzinfo=UTC)
        while True:
            following = datetime(at.year + at.month // 12, at.month % 12 + 1, 1, tzinfo=UTC)
            if following > until:
                return out
            out.append(Span(f"{at:%Y-%m}", at, following))
            at = following
    match = _DAYS.match(kind)
    if match is None:
        raise InvalidInput(
            f"--window {kind!r}: not a window", hint="calendar-month, or a number of days such as 7d or 30d"
        )
    length = timedelta(days=int(match.group(1)))
    while day + length <= until:
        out.append(Span(f"{day:%Y-%m-%d}+{kind}", day, day + length))
        day += length
    return out


@dataclass(frozen=True)
class WindowInfo:
    id: str
    model: str
    version: int
    source: str
    label: str
    start: datetime
    end: datetime
    rows: int
    judged: bool
    drifted: list[str]
    metrics: dict[str, float]
    document: str
    created_at: datetime
    created_by: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model": self.model,
            "version": self.version,
            "source": self.source,
            "window": self.label,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "rows": self.rows,
            "judged": self.judged,
            "drifted": self.drifted,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
        }


def first_prediction(ws: Platform, model: str) -> datetime | None:
    with ws.db.read() as session:
        found = session.scalar(select(func.min(Prediction.at)).where(Prediction.model == model))
    return None if found is None else found.astimezone(UTC)


def versions_in(ws: Platform, model: str, span: Span) -> list[int]:
    """The versions that made predictions in the window."""
    query = (
        select(Prediction.version)
        .where(Prediction.model == model, Prediction.at >= span.start, Prediction.at < span.end)
        .distinct()
    )
    with ws.db.read() as session:
        return sorted(int(v) for v in session.scalars(query))


def compute(
    ws: Platform,
    model: str,
    version: int,
    span: Span,
    spec: MonitorSpec,
    as_of: datetime | None = None,
    executor: Executor | None = None,
) -> dict[str, Any]:
    """One window's document: the version's logged rows in the span, judged against its profile; with
    outcomes configured, its performance on the labels available by ``as_of`` (default: now). With an
    ``executor`` of more than one partition, the span is split in time and summarized by its tasks."""
    profile = load(ws, model, version)
    outcomes = Outcomes.start(ws, spec, profile, span) if spec.performance is not None else None
    when = as_of or utc_now()
    if executor is None or executor.partitions <= 1:
        window, labeled = summarize(
            ws.db, profile, model, version, span.start, span.end, outcomes, when, databases=duck(ws)
        )
    else:
        slices = time_slices(span.start, span.end, executor.partitions)
        parts = executor.map(
            _summarize_at, [(ws.db.url, profile, model, version, a, b, outcomes, when) for a, b in slices]
        )
        window, labeled = reduce(Window.merge, [w for w, _ in parts]), merge_labeled([part for _, part in parts])
    doc = judge(profile, window, spec)
    if outcomes is not None:
        outcomes.labeled = labeled
        doc["performance"] = outcomes.judge(profile, spec, seed=int(span.start.timestamp()))
        doc["metrics"] = dict(sorted({**doc["metrics"], **performance_metrics(doc["performance"])}.items()))
    return _document(model, version, PREDICTIONS, span.label, span.start, span.end, spec, doc)


def summarize(
    db: Database,
    profile: ReferenceProfile,
    model: str,
    version: int,
    start: datetime,
    end: datetime,
    outcomes: Outcomes | None,
    as_of: datetime,
    databases: DuckConnections | None = None,
) -> tuple[Window, Labeled]:
    """The version's logged rows in [start, end) counted on the profile's grids, and those that met their
    label (``outcomes`` is not changed: each call, local or a task's, gathers its own)."""
    window = Window.start(profile)
    mine = None if outcomes is None else outcomes.fresh()
    for chunk in prefetch(prediction_chunks(db, profile, model, version, start, end, databases)):
        window.add(chunk.columns, chunk.scores, profile)
        if mine is not None:
            mine.add(chunk, as_of)
    return window, Labeled() if mine is None else mine.labeled


def _summarize_at(url: str, *args: Any) -> tuple[Window, Labeled]:
    """A task: ``summarize`` on a worker, which opens the metadata store by its URL (the same store)."""
    from medops.store.database import Database

    db = Database(url)
    try:
        return summarize(db, *args)
    finally:
        db.dispose()


def time_slices(start: datetime, end: datetime, parts: int) -> list[tuple[datetime, datetime]]:
    """[start, end) cut into ``parts`` consecutive half-open slices, to the microsecond: none overlaps
    another, none is missed."""
    bounds = [start + (end - start) * k // parts for k in range(parts)] + [end]
    return [(a, b) for a, b in zip(bounds, bounds[1:], strict=False) if a < b]


def _document(
    model: str,
    version: int,
    source: str,
    label: str,
    start: datetime,
    end: datetime,
    spec: MonitorSpec,
    judged: dict[str, Any],
) -> dict[str, Any]:
    """A window's stored document: where its rows came from, the spec it was judged under, the verdicts."""
    return {
        "model": model,
        "version": version,
        "source": source,
        "window": label,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "spec": spec.model_dump(),
        **judged,
    }


def _profiled(
    compute: Callable[[], dict[str, Any]], version: int, skipped: list[tuple[int, str]] | None
) -> dict[str, Any] | None:
    """The window's document, or None for a version without a reference profile (noted in ``skipped``)."""
    try:
        return compute()
    except NotFound as exc:
        if exc.code != "no_profile":
            raise
        if skipped is not None:
            skipped.append((version, str(exc)))
        return None


def scored_by(ws: Platform, model: str, dataset_node: str) -> list[int]:
    """The versions of ``model`` that scored the dataset version in batch, from lineage."""
    from medops.store.lineage import walk

    found: set[int] = set()
    prefix = f"model:{model}:"
    for edge in walk(ws.db, dataset_node, "down", depth=1):
        if edge.relation != "scored_as":
            continue
        for made in walk(ws.db, edge.dst, "up", depth=1):
            if made.relation == "predicted" and made.src.startswith(prefix) and made.src[len(prefix) :].isdigit():
                found.add(int(made.src[len(prefix) :]))
    return sorted(found)


def compute_dataset(
    ws: Platform, model: str, version: int, dataset: Any, spec: MonitorSpec, executor: Executor | None = None
) -> dict[str, Any]:
    """The window of a dataset version (a ``DatasetInfo``) scored in batch by ``model``:``version``; with an
    ``executor`` of more than one partition, its row groups are scored and summarized by tasks."""
    from medops.registry.predictor import load_model

    profile = load(ws, model, version)
    path = ws.artifacts.local_path(dataset.version)  # checked against its SHA-256
    if executor is None or executor.partitions <= 1:
        predictor = load_model(ws, (model, version))  # verified: signature and every checksum
        window = _summarize_dataset(profile, predictor, path, None)
    else:
        window = _dataset_on(executor, ws, model, version, profile, path)
    at = dataset.created_at.astimezone(UTC)
    label = f"{dataset.name}@{dataset.version[:12]}"
    doc = _document(model, version, f"dataset:{dataset.name}", label, at, at, spec, judge(profile, window, spec))
    return {**doc, "dataset": dataset.ref}


def _summarize_dataset(
    profile: ReferenceProfile, predictor: Predictor, path: Path, row_groups: tuple[int, ...] | None
) -> Window:
    window = Window.start(profile)
    for chunk in prefetch(dataset_chunks(profile, predictor, path, row_groups=row_groups)):  # next one scored meanwhile
        window.add(chunk.columns, chunk.scores, profile)
    return window


def _dataset_on(
    executor: Executor, ws: Platform, model: str, version: int, profile: ReferenceProfile, path: Path
) -> Window:
    """The dataset's row groups in partitions, each scored and summarized by a task. As batch scoring
    does (medops.serving.batch_parts), the bundle is verified here before its bytes go anywhere, and
    each task checks their digest and verifies them again before it builds its predictor."""
    import pyarrow.parquet as pq

    from medops.registry.predictor import load_bundle_bytes
    from medops.registry.transfer import trusted_keys
    from medops.registry.versions import get as get_version
    from medops.serving.batch_parts import group_row_groups

    digest = get_version(ws, model, version).artifact_sha256
    trusted = trusted_keys(ws)
    bundle = ws.artifacts.read_bytes(digest)  # hashed against its name as it is read
    load_bundle_bytes(bundle, digest, trusted)
    meta = pq.ParquetFile(path).metadata
    groups = group_row_groups([meta.row_group(i).num_rows for i in range(meta.num_row_groups)], executor.partitions)
    tasks = [(profile, bundle, digest, trusted, str(path), g) for g in groups]
    parts = executor.map(_dataset_task, tasks)
    return reduce(Window.merge, parts) if parts else Window.start(profile)


def _dataset_task(
    profile: ReferenceProfile,
    bundle: bytes,
    digest: str,
    trusted: dict[str, str],
    path: str,
    row_groups: tuple[int, ...],
) -> Window:
    """A task: its row groups scored by the bundle it verified itself, and summarized."""
    from medops.registry.predictor import load_bundle_bytes

    return _summarize_dataset(profile, load_bundle_bytes(bundle, digest, trusted), Path(path), row_groups)


def run_dataset(
    ws: Platform,
    model: str,
    dataset: Any,
    *,
    versions: list[int],
    spec: MonitorSpec,
    actor: str,
    keep: bool = True,
    skipped: list[tuple[int, str]] | None = None,
) -> list[WindowInfo]:
    """Judge and store the dataset version's window for each of ``versions``; a version without a
    reference profile goes to ``skipped``, as in ``run``."""
    stored: list[WindowInfo] = []
    with _workspace_executor(ws, bool(versions)) as executor:
        for version in versions:
            judged = partial(compute_dataset, ws, model, version, dataset, spec, executor=executor)
            doc = _profiled(judged, version, skipped)
            if doc is not None:
                stored.append(store(ws, doc, actor=actor) if keep else unstored(doc, actor))
    return stored


class Outcomes:
    """A window's predictions joined, chunk by chunk, to the labels available by the time it is judged."""

    def __init__(
        self, spec: PerformanceSpec, labels: pd.DataFrame, attributes: dict[str, AttributeSpec], within: timedelta
    ) -> None:
        self.spec = spec
        self.labels = labels
        self.attributes = attributes
        self.within = within
        self.labeled = Labeled()

    def fresh(self) -> Outcomes:
        """The same labels and rules, with nothing gathered yet (a task's own, or a local pass's)."""
        return Outcomes(self.spec, self.labels, self.attributes, self.within)

    @classmethod
    def start(cls, ws: Platform, spec: MonitorSpec, profile: ReferenceProfile, span: Span) -> Outcomes:
        assert spec.performance is not None
        within = duration(spec.performance.match_within) or timedelta(days=1)
        labels = load_labels(ws, spec.performance, span.start, span.end, within)
        declared = profile.performance.get("attributes") or {}
        # a subgroup the log can tell: its column is a feature the model reads (a joined source is not in the log)
        usable = {
            name: AttributeSpec.model_validate(attr)
            for name, attr in declared.items()
            if not attr.get("source") and (attr.get("column") or name) in profile.features
        }
        return cls(spec.performance, labels, usable, within)

    def add(self, chunk: Chunk, as_of: datetime) -> None:
        size = len(chunk.scores)
        self.labeled.rows += size
        named = pd.Series(chunk.entity.to_pylist(), dtype=object)
        key = named.str.partition("=")
        mine = (key[0] == self.spec.entity).to_numpy()
        self.labeled.with_entity += int(mine.sum())
        frame = pd.DataFrame(
            {
                "entity": key[2].where(mine),
                "at": pd.to_datetime(chunk.at.to_numpy(zero_copy_only=False), utc=True),
            }
        )
        outcome = join_labels(frame, self.labels, as_of=as_of, match_within=self.within).to_numpy()
        found = ~np.isnan(outcome)
        if not found.any():
            return
        self.labeled.y.append(outcome[found].astype(np.int8))
        self.labeled.p.append(chunk.scores[found])
        for name, attr in self.attributes.items():
            column = chunk.columns[attr.column or name]
            values = column.to_numpy(zero_copy_only=False) if hasattr(column, "to_pylist") else np.asarray(column)
            self.labeled.attributes.setdefault(name, []).append(attribute_labels(values[found], attr))

    def judge(self, profile: ReferenceProfile, spec: MonitorSpec, *, seed: int) -> dict[str, Any]:
        p = self.spec
        return judge_performance(
            self.labeled,
            profile.performance,
            profile.threshold,
            min_labels=p.min_labels,
            min_completeness=p.min_completeness,
            max_drop={str(k): v for k, v in p.max_drop.items()},
            resamples=p.resamples,
            level=p.level,
            seed=seed,
        )


def performance_metrics(doc: dict[str, Any]) -> dict[str, float]:
    """The flat metrics alert rules read: performance.* overall, bias.* per subgroup (0 when not judged)."""
    out = {
        "performance.label_completeness": float(doc["label_completeness"]),
        "performance.labeled": float(doc["labeled"]),
    }
    out["performance.degraded"] = float(len(doc["degraded"]))
    for metric, entry in doc["metrics"].items():
        out[f"performance.{metric}"] = entry["value"]
        if "drop" in entry:
            out[f"performance.{metric}_drop"] = entry["drop"]
    degraded_groups = 0
    for group in doc["subgroups"]:
        if group.get("too_small"):
            continue
        degraded_groups += bool(group["degraded"])
        for metric, entry in group["metrics"].items():
            if "drop" in entry:
                out[f"bias.{group['attribute']}={group['group']}.{metric}_drop"] = entry["drop"]
    out["bias.degraded_groups"] = float(degraded_groups)
    return {k: v for k, v in out.items() if not (isinstance(v, float) and math.isnan(v))}


def store(ws: Platform, doc: dict[str, Any], *, actor: str) -> WindowInfo:
    """Record a window's document: the artifact first (harmless if the transaction fails), then the row."""
    digest = ws.artifacts.put(json.dumps(finite(doc), sort_keys=True, allow_nan=False, default=str).encode())
    window_id = uuid.uuid4().hex
    entity = f"{doc['model']}:{doc['version']}"
    with ws.users.authorized(actor, "monitor.window", "model", entity, MONITOR_ROLES) as ch:
        ch.session.add(
            MonitorWindow(
                id=window_id,
                model=doc["model"],
                version=doc["version"],
                source=doc["source"],
                label=doc["window"],
                start=datetime.fromisoformat(doc["start"]),
                end=datetime.fromisoformat(doc["end"]),
                rows=doc["rows"],
                judged=doc["judged"],
                drifted=json.dumps(doc["drifted"]),
                metrics=json.dumps(doc["metrics"], sort_keys=True),
                document=digest,
                created_at=utc_now(),
                created_by=actor,
            )
        )
        ch.after = {"window": doc["window"], "rows": doc["rows"], "drifted": doc["drifted"], "document": digest}
    return get(ws, window_id)


def run(
    ws: Platform,
    model: str,
    kind: str,
    *,
    since: datetime | None,
    until: datetime | None,
    spec: MonitorSpec,
    actor: str,
    progress: Callable[[Span, int], None] | None = None,
    keep: bool = True,
    skipped: list[tuple[int, str]] | None = None,
) -> list[WindowInfo]:
    """Compute and store every complete window of ``model``'s log from ``since`` (default: its first
    prediction) up to ``until`` (default: now); ``keep=False`` (exploring another spec) stores nothing.

    A version without a reference profile (imported as a bundle, or registered before monitoring) is
    not judged: it goes to ``skipped`` with the reason, once, and the other versions' windows are.

    On the workspace's Dask executor each window is summarized by tasks over slices of its time (the
    workers read the metadata store and must reach it: a shared SQLite file, or PostgreSQL)."""
    start = since or first_prediction(ws, model)
    if start is None:
        raise NotFound(f"the prediction log holds nothing of {model!r}", code="no_predictions")
    now = utc_now()
    stored: list[WindowInfo] = []
    unprofiled: set[int] = set()
    windows = spans(kind, start, min(until or now, now))  # a window that has not ended yet is not judged
    with _workspace_executor(ws, bool(windows)) as executor:
        for span in windows:
            for version in versions_in(ws, model, span):
                if version in unprofiled:
                    continue
                if progress is not None:
                    progress(span, version)
                judged = partial(compute, ws, model, version, span, spec, executor=executor)
                doc = _profiled(judged, version, skipped)
                if doc is None:
                    unprofiled.add(version)
                    continue
                stored.append(store(ws, doc, actor=actor) if keep else unstored(doc, actor))
    return stored


@contextmanager
def _workspace_executor(ws: Platform, needed: bool) -> Iterator[Executor | None]:
    """The workspace's executor while windows are judged, closed after; None when it is local or nothing
    is to be judged (a Dask cluster is not started for no work)."""
    if not needed or (ws.settings.executor or "local") == "local":
        yield None
        return
    executor = open_executor(ws.settings.executor)
    try:
        yield executor
    finally:
        executor.close()


def unstored(doc: dict[str, Any], actor: str) -> WindowInfo:
    """A window judged to explore, not kept: no id, no document in the store."""
    return WindowInfo(
        "-",
        doc["model"],
        doc["version"],
        doc["source"],
        doc["window"],
        datetime.fromisoformat(doc["start"]),
        datetime.fromisoformat(doc["end"]),
        doc["rows"],
        doc["judged"],
        list(doc["drifted"]),
        dict(doc["metrics"]),
        "-",
        utc_now(),
        actor,
    )


def get(ws: Platform, window_id: str) -> WindowInfo:
    with ws.db.read() as session:
        row = session.get(MonitorWindow, window_id)
        if row is None:
            prefixed = select(MonitorWindow).where(MonitorWindow.id.startswith(window_id)).limit(2)
            matches = list(session.scalars(prefixed))
            if len(matches) != 1 or len(window_id) < 6:
                raise NotFound(f"no monitored window {window_id!r}", code="window_not_found")
            row = matches[0]
        return _info(row)


def listing(ws: Platform, model: str | None = None, limit: int = 100) -> list[WindowInfo]:
    """The newest record of each window, newest windows first."""
    query = select(MonitorWindow).order_by(MonitorWindow.start.desc(), MonitorWindow.created_at.desc())
    if model is not None:
        query = query.where(MonitorWindow.model == model)
    seen: set[tuple[str, int, str, str]] = set()
    out: list[WindowInfo] = []
    with ws.db.read() as session:
        for row in session.scalars(query):
            key = (row.model, row.version, row.source, row.label)
            if key in seen:
                continue
            seen.add(key)
            out.append(_info(row))
            if len(out) >= limit:
                break
    return out


def document(ws: Platform, info: WindowInfo) -> dict[str, Any]:
    return dict(json.loads(ws.artifacts.read_bytes(info.document)))


def _info(row: MonitorWindow) -> WindowInfo:
    return WindowInfo(
        row.id,
        row.model,
        row.version,
        row.source,
        row.label,
        row.start,
        row.end,
        row.rows,
        row.judged,
        list(json.loads(row.drifted)),
        dict(json.loads(row.metrics)),
        row.document,
        row.created_at,
        row.created_by,
    )


def finite(value: Any) -> Any:
    """``value`` with every NaN or infinity as None: a statistic that could not be computed is null in JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value
