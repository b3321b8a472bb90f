"""The feature store: apply views, build training sets, materialize and serve features.

``apply`` computes each view's offline table from its source dataset version and records
the view version (definition + source version), its table, statistics, lineage and an
audit event: all views are checked, then all tables built, then all recorded in one
transaction, so a bad view leaves nothing applied half-way. ``get_training_set`` joins
labels to the applied tables point-in-time (see ``pit``); ``save_training_set`` stores
the result as a dataset version with lineage to the views and the labels. ``materialize``
writes each view's values as of now to the online store with the very same join, which is
why online and offline agree; ``check`` proves it on a sample.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import select

from medops.audit.trail import NewEvent, append_events
from medops.clock import utc_now
from medops.data.datasets import DatasetInfo, get, quarantine_of
from medops.data.duck import query
from medops.data.duck_connections import DuckConnections, duck
from medops.data.profile import profile_parquet
from medops.errors import InvalidInput, NotFound
from medops.features import ondemand
from medops.features.executor import Executor, LocalExecutor, open_executor
from medops.features.offline import ENTITY, check_view, feature_stats, write_table
from medops.features.online import OnlineStore, online_store_kind, open_online_store
from medops.features.partitions import join_partitioned, table_partitioned
from medops.features.pit import EVENT_TIME, ROW, TIME, JoinOptions
from medops.features.verified import verified_path
from medops.features.views import FeatureSet, FeatureView, FeatureViewError, OnDemandFeature
from medops.identity import Role
from medops.platform import Platform
from medops.store.lineage import Edge, add_edges, dataset_node
from medops.store.schema import DatasetVersion, FeatureViewVersion

APPLY_ROLES = {Role.DATA_SCIENTIST, Role.ML_ENGINEER, Role.ADMIN}
MATERIALIZE_ROLES = {Role.ML_ENGINEER, Role.ADMIN}
READ_ROLES = set(Role)


def view_node(name: str, version: str) -> str:
    return f"featureview:{name}@{version}"


@dataclass(frozen=True)
class AppliedView:
    name: str
    version: str
    source: str
    source_version: str
    table_digest: str
    rows: int
    definition: dict[str, Any]
    stats: dict[str, Any]
    created_at: datetime
    created_by: str

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version[:12]}"


@dataclass(frozen=True)
class ApplyResult:
    view: AppliedView
    new: bool


@dataclass
class Selection:
    """Which features a request names, grouped by view, plus on-demand ones, in request order."""

    views: dict[str, list[str]] = field(default_factory=dict)
    on_demand: list[OnDemandFeature] = field(default_factory=list)
    order: list[str] = field(default_factory=list)


@dataclass
class OnlineResult:
    """Feature values per requested row, each view's event time, and which values went stale.

    Values are kept as plain columns: building a DataFrame costs more than the lookup
    itself, so ``frame`` is built only when asked for.
    """

    columns: dict[str, list[Any]]
    event_times: dict[str, list[datetime | None]]
    stale: dict[str, list[bool]]
    found: dict[str, list[bool]]

    @property
    def rows(self) -> list[dict[str, Any]]:
        """One dict per requested entity: its ids, then the features in the order asked."""
        names = list(self.columns)
        return [dict(zip(names, values, strict=True)) for values in zip(*self.columns.values(), strict=True)]

    @property
    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.columns)


@dataclass
class Difference:
    view: str
    entity: str
    feature: str
    offline: Any
    online: Any


@dataclass
class CheckReport:
    checked: dict[str, int] = field(default_factory=dict)
    differences: list[Difference] = field(default_factory=list)
    not_materialized: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences


def _applied(row: FeatureViewVersion) -> AppliedView:
    return AppliedView(
        row.name,
        row.version,
        row.source,
        row.source_version,
        row.table_digest,
        row.rows,
        json.loads(row.definition),
        json.loads(row.stats),
        row.created_at,
        row.created_by,
    )


def list_applied(ws: Platform, name: str | None = None) -> list[AppliedView]:
    """Applied view versions, newest first."""
    query_ = select(FeatureViewVersion).order_by(FeatureViewVersion.created_at.desc(), FeatureViewVersion.name)
    if name:
        query_ = query_.where(FeatureViewVersion.name == name)
    with ws.db.read() as session:
        return [_applied(r) for r in session.execute(query_).scalars()]


class FeatureStore:
    """Feature views of one project over one workspace."""

    def __init__(
        self,
        ws: Platform,
        features: FeatureSet,
        *,
        executor: str | None = None,
        online_store: str | None = None,
    ) -> None:
        self.ws = ws
        self.features = features
        self.executor_url = executor if executor is not None else ws.settings.executor
        self.online_url = online_store if online_store is not None else ws.settings.online_store
        self._online: OnlineStore | None = None
        self._executor: Executor | None = None

    # --- plumbing -------------------------------------------------------------------

    @property
    def executor(self) -> Executor:
        if self._executor is None:
            self._executor = open_executor(self.executor_url)
        return self._executor

    @property
    def online(self) -> OnlineStore:
        if self._online is None:
            self._online = open_online_store(
                self.online_url, home=self.ws.settings.home, namespace=self.ws.settings.workspace_id
            )
        return self._online

    def close(self) -> None:
        if self._online is not None:
            self._online.close()
        if self._executor is not None:
            self._executor.close()

    def __enter__(self) -> FeatureStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _source(self, view: FeatureView) -> DatasetInfo:
        try:
            return get(self.ws.db, view.source)
        except NotFound:
            raise FeatureViewError(
                f"view {view.name}, source: no dataset {view.source!r}", code="feature_view_unknown_source"
            ) from None
        except InvalidInput as exc:
            raise FeatureViewError(f"view {view.name}, source: {exc.message}", hint=exc.hint) from None

    @property
    def duck(self) -> DuckConnections:
        """The workspace's DuckDB databases: opened once, a cursor per call."""
        return duck(self.ws)

    def _path(self, digest: str) -> Path:
        """The artifact's file, after its SHA-256 matched (``local_path`` verifies)."""
        return self.ws.artifacts.local_path(digest)

    def _table(self, applied: AppliedView) -> Path:
        """The view's feature table, checked against its digest once per file in this process
        (``verified``): a training set is built again and again from the same table."""
        return verified_path(self.ws.artifacts, applied.table_digest)

    def _views(self, names: Sequence[str] | None) -> list[FeatureView]:
        if not names:
            return list(self.features.views.values())
        return [self.features.view(n) for n in names]

    # --- apply ----------------------------------------------------------------------

    def apply(
        self,
        actor: str,
        *,
        views: Sequence[str] | None = None,
        reason: str | None = None,
        progress: Callable[[str], None] = lambda name: None,
    ) -> list[ApplyResult]:
        """Check every view, build every offline table, then record them all at once."""
        self.ws.users.require_role(actor, "features.apply", APPLY_ROLES)
        chosen = self._views(views)
        if not chosen:
            raise InvalidInput("no feature views to apply", hint="declare them under features.views in medops.yaml")
        with self.duck.sandboxed() as con:
            plans = []
            for view in chosen:  # every view is checked before any table is built
                source = self._source(view)
                path = self._path(source.version)
                check_view(con, view, pq.read_schema(path))
                plans.append((view, source, path))
            built: list[tuple[FeatureView, DatasetInfo, str, int, dict[str, Any], Path | str]] = []
            try:
                for view, source, path in plans:
                    progress(view.name)
                    version = view.version(source.version)
                    existing = self._stored(view.name, version)
                    if existing is not None:
                        built.append((view, source, version, existing.rows, existing.stats, existing.table_digest))
                        continue
                    table = table_partitioned(self.executor, view, path, con)
                    stats = feature_stats(con, view, table)
                    file = self.ws.artifacts.staging_path()
                    built.append((view, source, version, table.num_rows, stats, file))
                    write_table(table, file)
                    stats["profile"] = profile_parquet(file, databases=self.duck)
                # Every table is built: only now do they enter the artifact store.
                staged = [
                    (v, s, ver, n, st, self.ws.artifacts.adopt(f) if isinstance(f, Path) else f)
                    for v, s, ver, n, st, f in built
                ]
            finally:
                for *_, f in built:
                    if isinstance(f, Path):
                        f.unlink(missing_ok=True)
        return self._record(actor, reason, staged)

    def _stored(self, name: str, version: str) -> AppliedView | None:
        with self.ws.db.read() as session:
            row = session.get(FeatureViewVersion, (name, version))
            return _applied(row) if row is not None else None

    def _record(
        self,
        who: str,
        reason: str | None,
        staged: list[tuple[FeatureView, DatasetInfo, str, int, dict[str, Any], str]],
    ) -> list[ApplyResult]:
        names = ",".join(v.name for v, *_ in staged)
        new_names: list[str] = []
        per_view: list[NewEvent] = []  # one event per view too, so a view's history is one query away
        with self.ws.users.authorized(who, "features.apply", "feature_views", names, APPLY_ROLES, reason=reason) as ch:
            for view, source, version, rows, stats, digest in staged:
                if ch.session.get(FeatureViewVersion, (view.name, version)) is not None:
                    continue
                definition = {**view.definition(), **view.metadata(), "source_ref": source.ref}
                ch.session.add(
                    FeatureViewVersion(
                        name=view.name,
                        version=version,
                        source=source.name,
                        source_version=source.version,
                        table_digest=digest,
                        rows=rows,
                        definition=json.dumps(definition, sort_keys=True, default=str),
                        stats=json.dumps(stats, sort_keys=True, default=str),
                        created_at=utc_now(),
                        created_by=who,
                    )
                )
                new_names.append(view.name)
                per_view.append(
                    NewEvent(
                        who,
                        "features.apply",
                        "feature_view",
                        f"{view.name}@{version}",
                        after={"source": source.ref, "rows": rows, "table": digest, "definition": definition},
                        reason=reason,
                    )
                )
                attrs = {"view": view.name, "table": digest}
                add_edges(ch.session, [Edge(source.node, view_node(view.name, version), "features", attrs)], who)
            append_events(ch.session, per_view)
            ch.after = {
                "views": {v.name: version for v, _s, version, *_ in staged},
                "new": new_names,
            }
        out = []
        for view, _source, version, *_ in staged:
            stored = self._stored(view.name, version)
            assert stored is not None
            out.append(ApplyResult(stored, view.name in new_names))
        return out

    def current(self, view: FeatureView) -> AppliedView:
        """The applied version that matches the view's definition and its source's newest version."""
        source = self._source(view)
        stored = self._stored(view.name, view.version(source.version))
        if stored is None:
            raise NotFound(
                f"feature view {view.name} is not applied for its current definition and source {source.ref}",
                code="feature_views_not_applied",
            )
        return stored

    # --- selection ------------------------------------------------------------------

    def select(self, refs: Sequence[str]) -> Selection:
        """``view`` (all its features), ``view:feature`` or an on-demand feature's name."""
        out = Selection()
        owner: dict[str, str] = {}

        def take(view: str, name: str) -> None:
            if name in owner:
                raise FeatureViewError(
                    f"duplicate feature name {name!r}: in {owner[name]} and {view}",
                    hint="ask for one of them only; feature names of a training set must be unique",
                )
            owner[name] = view
            out.views.setdefault(view, []).append(name)
            out.order.append(name)

        if not refs:
            raise InvalidInput("no features requested", hint="name views, view:feature or on-demand features")
        for ref in refs:
            view_name, _, feature = ref.strip().partition(":")
            if not feature and view_name in self.features.on_demand:
                od = self.features.on_demand[view_name]
                if od.name in owner:
                    raise FeatureViewError(f"duplicate feature name {od.name!r}")
                owner[od.name] = "on_demand"
                out.on_demand.append(od)
                out.order.append(od.name)
                continue
            view = self.features.view(view_name)
            for name in [view.feature(feature).name] if feature else view.feature_names:
                take(view.name, name)
        return out

    # --- training sets --------------------------------------------------------------

    def get_training_set(
        self,
        labels: pd.DataFrame | pa.Table,
        features: Sequence[str],
        *,
        timestamp: str = TIME,
        backfill_guard: bool = True,
    ) -> pd.DataFrame:
        """Labels with point-in-time correct features added: nothing from after each row's timestamp."""
        table = self.training_table(labels, features, timestamp=timestamp, backfill_guard=backfill_guard)
        return table.to_pandas(types_mapper=pd.ArrowDtype)

    def training_table(
        self,
        labels: pd.DataFrame | pa.Table,
        features: Sequence[str],
        *,
        timestamp: str = TIME,
        backfill_guard: bool = True,
    ) -> pa.Table:
        """The labels with the requested features as columns, as Arrow (see ``get_training_set``)."""
        chosen = self.select(features)
        table = _as_arrow(labels)
        options = JoinOptions(backfill_guard=backfill_guard)
        out = table
        with self.duck.reader() as con:
            stamped = _label_times(con, table, timestamp)
            for view_name, names in chosen.views.items():
                view = self.features.view(view_name)
                if view.entity not in table.column_names:
                    raise InvalidInput(
                        f"labels have no column {view.entity!r}, the entity of feature view {view.name}",
                        hint=f"label columns: {', '.join(table.column_names)}",
                    )
                applied = self.current(view)
                keys = pa.table(
                    {
                        ROW: stamped.column(ROW),
                        TIME: stamped.column(TIME),
                        view.entity: pc.cast(table.column(view.entity), pa.string()),
                    }
                )
                joined = join_partitioned(self.executor, view, keys, self._table(applied), view.entity, options, con)
                for name in names:
                    if name in out.column_names:
                        raise FeatureViewError(
                            f"feature {view.name}:{name} has the name of a label column",
                            hint="rename the label column",
                        )
                    out = out.append_column(name, joined.column(name))
        if chosen.on_demand:
            # event_timestamp is always the label time, even when the labels hold a column of that name
            base = out.drop_columns([TIME]) if TIME in out.column_names else out
            frame_time = base.append_column(TIME, stamped.column(TIME))
            with self.duck.sandboxed() as sandboxed:
                computed = ondemand.compute(sandboxed, chosen.on_demand, frame_time)
            for od in chosen.on_demand:
                out = out.append_column(od.name, computed.column(od.name))
        return out

    def save_training_set(
        self,
        name: str,
        labels: str,
        features: Sequence[str],
        *,
        timestamp: str,
        actor: str,
        reason: str | None = None,
        backfill_guard: bool = True,
        quarantined: Literal["drop", "refuse"] = "drop",
    ) -> tuple[DatasetInfo, bool]:
        """Build a training set from a labels dataset and store it as a dataset version.

        A label whose entity lost source rows to a contract's quarantine would otherwise keep
        its place with those features missing (and imputed): it is dropped, or, with
        ``quarantined="refuse"``, the build stops. What was lost is recorded with the set.
        """
        from medops.data.ingest import DATASET_NAME

        self.ws.users.require_role(actor, "dataset.training_set", APPLY_ROLES)
        if not DATASET_NAME.match(name):
            raise InvalidInput(f"{name!r} is not a valid dataset name", hint="lowercase letters, digits and '_'")
        labels_info = get(self.ws.db, labels)
        labels_table = pq.read_table(self._path(labels_info.version))
        chosen = self.select(features)
        views = {v: self.current(self.features.view(v)) for v in chosen.views}
        labels_table, lost = self._without_quarantined(labels_info, labels_table, views, quarantined)
        table = self.training_table(labels_table, features, timestamp=timestamp, backfill_guard=backfill_guard)
        file = self.ws.artifacts.staging_path()
        try:
            write_table(table, file)
            profile = profile_parquet(file, databases=self.duck)
            size = file.stat().st_size
            version = self.ws.artifacts.adopt(file)
        finally:
            file.unlink(missing_ok=True)
        details = {
            "schema": [{"name": f.name, "type": str(f.type)} for f in table.schema],
            "profile": profile,
            "training_set": {
                "labels": labels_info.ref,
                "timestamp": timestamp,
                "features": list(features),
                "views": {v: a.version for v, a in views.items()},
                "on_demand": [od.definition() for od in chosen.on_demand],
                "backfill_guard": backfill_guard,
                "quarantine": lost,
            },
        }
        entity = f"{name}@{version}"
        with self.ws.users.authorized(
            actor, "dataset.training_set", "dataset", entity, APPLY_ROLES, reason=reason
        ) as ch:
            new = ch.session.get(DatasetVersion, (name, version)) is None
            if new:
                ch.session.add(
                    DatasetVersion(
                        name=name,
                        version=version,
                        kind="training_set",
                        rows=table.num_rows,
                        column_count=table.num_columns,
                        size_bytes=size,
                        contract_result="none",
                        details=json.dumps(details, sort_keys=True, default=str),
                        created_at=utc_now(),
                        created_by=actor,
                    )
                )
            node = dataset_node(name, version)
            edges = [Edge(labels_info.node, node, "labels", {"timestamp": timestamp})]
            edges += [Edge(view_node(v, a.version), node, "training_set", {"view": v}) for v, a in views.items()]
            add_edges(ch.session, edges, actor)
            ch.after = {"dataset": name, "version": version, "rows": table.num_rows, "unchanged": not new}
        return get(self.ws.db, entity), new

    def _without_quarantined(
        self,
        labels: DatasetInfo,
        table: pa.Table,
        views: dict[str, AppliedView],
        policy: Literal["drop", "refuse"],
    ) -> tuple[pa.Table, dict[str, Any]]:
        """The label rows whose entities kept every source row, and an account of those that did not."""
        keep = np.ones(table.num_rows, dtype=bool)
        sources: dict[str, dict[str, Any]] = {}
        for name, applied in views.items():
            view = self.features.view(name)
            source = get(self.ws.db, f"{applied.source}@{applied.source_version}")
            if source.name in sources:  # another view of the same source: already accounted for
                continue
            bad = quarantine_of(self.ws.db, source)
            if bad is None:
                continue
            held = pq.read_table(self._path(bad.version))
            lost = (
                pc.unique(pc.cast(held.column(view.entity), pa.string()).drop_null())
                if view.entity in held.column_names
                else pa.array([], pa.string())
            )
            ids = pc.cast(table.column(view.entity), pa.string())
            hit = pc.fill_null(pc.is_in(ids, value_set=lost), False).to_numpy(zero_copy_only=False)
            sources[source.name] = {
                "quarantine": bad.ref,
                "quarantined_rows": bad.rows,
                "entities": len(lost),
                "rows_without_entity": int(held.num_rows - held.column(view.entity).drop_null().length())
                if view.entity in held.column_names
                else held.num_rows,
                "label_rows_dropped": int(hit.sum()),
            }
            keep &= ~hit
        label_bad = quarantine_of(self.ws.db, labels)
        account = {
            "policy": policy,
            "label_rows": table.num_rows,
            "label_rows_dropped": int((~keep).sum()),
            "labels_quarantined": label_bad.rows if label_bad is not None else 0,
            "sources": sources,
        }
        examples = table.num_rows + account["labels_quarantined"]
        account["share_lost"] = (account["label_rows_dropped"] + account["labels_quarantined"]) / max(examples, 1)
        if policy == "refuse" and account["label_rows_dropped"]:
            detail = ", ".join(f"{k}: {v['entities']} entities" for k, v in sources.items() if v["label_rows_dropped"])
            raise InvalidInput(
                f"{account['label_rows_dropped']} label rows belong to entities with quarantined source rows "
                f"({detail})",
                hint="fix the source rows and ingest again, or set training_set.quarantined: drop",
            )
        return (table.filter(pa.array(keep)) if not keep.all() else table), account

    # --- online ---------------------------------------------------------------------

    def materialize(
        self,
        actor: str,
        *,
        views: Sequence[str] | None = None,
        as_of: datetime | None = None,
        reason: str | None = None,
        progress: Callable[[str, int], None] = lambda view, rows: None,
    ) -> dict[str, int]:
        """Write each view's values as of ``as_of`` (default now) per entity to the online store."""
        self.ws.users.require_role(actor, "features.materialize", MATERIALIZE_ROLES)
        moment = (as_of or utc_now()).astimezone(UTC)
        written: dict[str, int] = {}
        plans = [(view, self.current(view)) for view in self._views(views)]  # all applied, or none written
        for view, applied in plans:
            path = self._table(applied)
            with self.duck.reader() as con:
                ids = _read(con, path, f"SELECT DISTINCT {ENTITY} FROM t ORDER BY 1").column(ENTITY)
                keys = pa.table(
                    {
                        ROW: pa.array(range(len(ids)), pa.int64()),
                        TIME: pa.array([moment] * len(ids), pa.timestamp("us", tz="UTC")),
                        view.entity: ids,
                    }
                )
                joined = join_partitioned(self.executor, view, keys, path, view.entity, JoinOptions(), con)
            rows = joined.select(view.feature_names).to_pylist()
            times = joined.column(EVENT_TIME).to_pylist()
            count = self.online.write(
                view.name, applied.version, moment, [str(i) for i in ids.to_pylist()], times, rows
            )
            written[view.name] = count
            progress(view.name, count)
            with self.ws.users.authorized(
                actor,
                "features.materialize",
                "feature_view",
                f"{view.name}@{applied.version}",
                MATERIALIZE_ROLES,
                reason=reason,
            ) as ch:
                ch.after = {
                    "view": view.name,
                    "version": applied.version,
                    "as_of": moment.isoformat(),
                    "rows": count,
                    "online_store": online_store_kind(self.online_url),
                }
        return written

    def get_online_features(
        self,
        entities: Mapping[str, Sequence[str]],
        features: Sequence[str],
        *,
        request: Mapping[str, Sequence[Any]] | None = None,
        now: datetime | None = None,
    ) -> OnlineResult:
        """Latest materialized values per entity; values older than the view's TTL come back missing, flagged."""
        chosen = self.select(features)
        lengths = {len(v) for v in entities.values()} | {len(v) for v in (request or {}).values()}
        if len(lengths) > 1:
            raise InvalidInput("entity and request columns must have the same length")
        size = lengths.pop() if lengths else 0
        moment = (now or utc_now()).astimezone(UTC)
        columns: dict[str, Any] = {}
        event_times: dict[str, list[datetime | None]] = {}
        stale: dict[str, list[bool]] = {}
        found: dict[str, list[bool]] = {}
        for view_name, names in chosen.views.items():
            view = self.features.view(view_name)
            if view.entity not in entities:
                raise InvalidInput(
                    f"no {view.entity!r} ids given: feature view {view.name} is keyed by it",
                    code="entity_key_missing",
                    entity=view.entity,
                )
            rows = self.online.read(view.name, [str(i) for i in entities[view.entity]], names)
            latest = {f.name for f in view.latest}
            zero = {f.name for f in view.aggregates if f.agg in ("count", "coverage")}
            times = [r.event_time for r in rows]
            too_old = [bool(view.ttl and t is not None and moment - t > view.ttl) for t in times]
            for name in names:
                columns[name] = [
                    None if (old and name in latest) else 0 if (not r.found and name in zero) else r.values.get(name)
                    for r, old in zip(rows, too_old, strict=True)
                ]  # an entity with no rows counts none and covers nothing, as it does offline
                stale[name] = [old and name in latest for old in too_old]
            event_times[view.name] = times
            found[view.name] = [r.found for r in rows]
        ids = {k: list(v) for k, v in entities.items()}
        if chosen.on_demand:
            fields = {k: list(v) for k, v in (request or {}).items()}
            if TIME in fields:  # the request's own time, given as ISO text on the command line
                fields[TIME] = [_request_time(v) for v in fields[TIME]]
            else:
                fields[TIME] = [moment] * size
            base = pa.table({**ids, **{k: v for k, v in fields.items() if k not in ids}, **columns})
            with self.duck.sandboxed() as con:
                computed = ondemand.compute(con, chosen.on_demand, base)
            for od in chosen.on_demand:
                columns[od.name] = computed.column(od.name).to_pylist()
        ordered = {**ids, **{name: columns[name] for name in chosen.order}}
        return OnlineResult(ordered, event_times, stale, found)

    # --- consistency ----------------------------------------------------------------

    def check(self, actor: str, *, sample: int = 100, seed: int = 0, views: Sequence[str] | None = None) -> CheckReport:
        """Recompute a sample of entities offline at the online table's time and compare; then on-demand both ways."""
        self.ws.users.require_role(actor, "features.check", READ_ROLES)
        report = CheckReport()
        rng = random.Random(seed)
        for view in self._views(views):
            info = self.online.info(view.name)
            if info is None:
                report.not_materialized.append(view.name)
                continue
            applied = self.current(view)
            path = self._table(applied)
            with self.duck.reader() as con:
                ids = _read(con, path, f"SELECT DISTINCT {ENTITY} FROM t ORDER BY 1").column(ENTITY).to_pylist()
                picked = sorted(rng.sample(ids, min(sample, len(ids))))
                as_of = datetime.fromisoformat(str(info["as_of"]))
                keys = pa.table(
                    {
                        ROW: pa.array(range(len(picked)), pa.int64()),
                        TIME: pa.array([as_of] * len(picked), pa.timestamp("us", tz="UTC")),
                        view.entity: pa.array(picked, pa.string()),
                    }
                )
                offline = join_partitioned(
                    LocalExecutor(), view, keys, path, view.entity, JoinOptions(), con
                ).to_pylist()
            online = self.online.read(view.name, picked, view.feature_names)
            if info.get("version") != applied.version:
                report.differences.append(
                    Difference(view.name, "*", "(version)", applied.version[:12], str(info.get("version"))[:12])
                )
            for entity, off, on in zip(picked, offline, online, strict=True):
                for name in view.feature_names:
                    if not _same(off[name], on.values.get(name)):
                        report.differences.append(Difference(view.name, entity, name, off[name], on.values.get(name)))
            report.checked[view.name] = len(picked)
        if self.features.on_demand:
            self._check_on_demand(report, rng, sample)
        self.ws.trail.record(_check_event(actor, report))
        return report

    def _check_on_demand(self, report: CheckReport, rng: random.Random, sample: int) -> None:
        """The batch path and the one-row (serving) path must give the same values."""
        inputs = sorted({i for od in self.features.on_demand.values() for i in od.inputs})
        frame = _on_demand_sample(self, inputs, rng, sample)
        if frame is None:
            return
        with self.duck.sandboxed() as con:
            features = list(self.features.on_demand.values())
            batch = ondemand.compute(con, features, frame).to_pylist()
            for i in range(frame.num_rows):
                single = ondemand.compute(con, features, frame.slice(i, 1)).to_pylist()[0]
                for od in features:
                    if not _same(batch[i][od.name], single[od.name]):
                        report.differences.append(
                            Difference("on_demand", str(i), od.name, batch[i][od.name], single[od.name])
                        )
            report.checked["on_demand"] = frame.num_rows


def _on_demand_sample(store: FeatureStore, inputs: list[str], rng: random.Random, sample: int) -> pa.Table | None:
    """Input rows for the on-demand check: sampled from the offline tables of the views providing them."""
    columns: dict[str, list[Any]] = {}
    for name in inputs:
        for view in store.features.views.values():
            if name in view.feature_names:
                try:
                    path = store._table(store.current(view))
                except NotFound:
                    continue
                with store.duck.reader() as con:
                    columns[name] = _read(con, path, f'SELECT "{name}" AS v FROM t').column("v").to_pylist()
                break
    if len(columns) != len(inputs):
        return None
    n = min([sample, *(len(v) for v in columns.values())])
    if n == 0:
        return None
    picked = {k: [v[rng.randrange(len(v))] for _ in range(n)] for k, v in columns.items()}
    stamps = [datetime(2020, 1, 1, tzinfo=UTC) + pd.Timedelta(days=rng.randrange(0, 2500)) for _ in range(n)]
    return pa.table({**{k: pa.array(v) for k, v in picked.items()}, TIME: pa.array(stamps, pa.timestamp("us", "UTC"))})


def _read(con: duckdb.DuckDBPyConnection, path: Path, sql: str) -> pa.Table:
    """``sql`` over the Parquet file at ``path`` (already verified), as table ``t``, read by DuckDB."""
    source = "'" + str(path).replace("'", "''") + "'"
    return con.sql(f"WITH t AS (SELECT * FROM read_parquet({source})) {sql}").to_arrow_table()


def _check_event(who: str, report: CheckReport) -> NewEvent:
    return NewEvent(
        who,
        "features.check",
        "feature_views",
        ",".join(sorted(report.checked)) or "-",
        after={"checked": report.checked, "differences": len(report.differences), "ok": report.ok},
    )


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, datetime) or isinstance(b, datetime):
        return str(a.isoformat() if isinstance(a, datetime) else a) == str(
            b.isoformat() if isinstance(b, datetime) else b
        )
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return abs(float(a) - float(b)) <= 1e-9 * max(1.0, abs(float(a)), abs(float(b)))
    return bool(a == b)


def _request_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            raise InvalidInput(f"request field {TIME} {value!r} is not an ISO time") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _as_arrow(labels: pd.DataFrame | pa.Table) -> pa.Table:
    if isinstance(labels, pa.Table):
        return labels
    if not isinstance(labels, pd.DataFrame):
        raise InvalidInput("labels must be a pandas DataFrame or an Arrow table")
    return pa.Table.from_pandas(labels, preserve_index=False)


def _label_times(con: duckdb.DuckDBPyConnection, labels: pa.Table, timestamp: str) -> pa.Table:
    """``_row`` and the label time as UTC timestamps; a missing column or time is a clear error."""
    if timestamp not in labels.column_names:
        raise InvalidInput(
            f"labels have no timestamp column {timestamp!r}",
            code="label_timestamp_unknown",
            hint=f"label columns: {', '.join(labels.column_names)}",
        )
    column = labels.column(timestamp)
    try:
        times = query(con, "SELECT CAST(t AS TIMESTAMPTZ) AS t FROM x", x=pa.table({"t": column})).column("t")
    except duckdb.Error:
        raise InvalidInput(f"labels column {timestamp!r} is not a timestamp") from None
    missing = pc.indices_nonzero(pc.is_null(times))
    if len(missing):
        raise InvalidInput(
            f"labels column {timestamp!r} is empty in row {missing[0].as_py() + 1} ({len(missing)} rows in all)",
            hint="every label row needs the time its prediction would have been made",
        )
    rows = pa.array(range(labels.num_rows), pa.int64())
    return pa.table({ROW: rows, TIME: times})


__all__ = [
    "APPLY_ROLES",
    "AppliedView",
    "ApplyResult",
    "CheckReport",
    "FeatureStore",
    "MATERIALIZE_ROLES",
    "OnlineResult",
    "list_applied",
    "view_node",
]
