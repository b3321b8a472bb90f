"""Online-feature lookup for the prediction API: a row that names its entity gets the model's features
from the workspace's online store.

What a model reads is taken from what trained it, never from a project file the server may not
have: its bundle names the feature-view versions and the training-set dataset; each view version's
recorded definition says its entity, TTL and features; the training set records its on-demand
features. A caller (an EHR) sends its own id; the online store is keyed by the pseudonyms ingest
made, so the id is pseudonymized here exactly as ingest did (same HMAC, same id space, the key
whose fingerprint the source dataset recorded). The id is never logged, echoed, or kept.

A row in the entity form holds the entity key(s), optionally ``event_timestamp`` (the time on-demand
features are computed at; default now) and fields only the caller has, and optionally explicit values
of model features: an explicit value wins over the store's, and the answer lists it under ``given``.
Each answer then says which features came back ``missing`` (the entity has no row in the view) and
which ``stale`` (older than the view's TTL: the value is withheld, as the store does).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from medops.errors import CODES, ConfigError, InvalidInput, NotFound
from medops.features.pit import TIME
from medops.features.views import Feature, FeatureSet, FeatureView, FeatureViewError, OnDemandFeature
from medops.identity.pseudonym_key import MISSING
from medops.platform import Platform
from medops.serving.validation import FieldError, RowsInvalid
from medops.store.schema import FeatureViewVersion

if TYPE_CHECKING:
    from medops.features.store import FeatureStore
    from medops.registry.bundles import Bundle
    from medops.serving.models import ServedModel

assert "entity_lookup_unsupported" in CODES and "pseudonym_key_mismatch" in CODES


@dataclass(frozen=True)
class Looked:
    """The rows to score (entity rows replaced by their features), per row the lookup's flags and the
    entity as ``key=pseudonym`` (None for a row that carried its features)."""

    records: list[Any]
    flags: list[dict[str, list[str]] | None]
    entities: list[str | None]


@dataclass(frozen=True)
class EntityKey:
    """A key the model's views are keyed by, and how its ids were pseudonymized at ingest."""

    name: str
    kind: str | None  # the pseudonym's id space; None: the source kept the ids as they were
    key_id: str | None  # fingerprint of the key the source was pseudonymized with


@dataclass
class OnlineLookup:
    """How one served model's features are fetched; its FeatureStore opens once, with the server."""

    store: FeatureStore
    keys: dict[str, EntityKey]
    fetched: dict[str, str]  # model feature -> the view it is read from
    reads: list[str]  # view:feature refs fetched (the model's, and the inputs its on-demand features need)
    computed: list[OnDemandFeature]  # on-demand SQL features the model takes, computed here
    accepted: frozenset[str]  # fields an entity row may hold besides the keys
    features: frozenset[str]  # the model's input features
    _platform: Platform
    _pseudonymizer: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @cached_property
    def _key_names(self) -> frozenset[str]:
        return frozenset(self.keys)

    def describe(self) -> dict[str, Any]:
        """What GET /v1/models/{name} shows: how to name an entity instead of sending features."""
        return {
            "entity": sorted(self.keys),
            "views": sorted(set(self.fetched.values())),
            "fetched": sorted(self.fetched),
            "computed": [od.name for od in self.computed],
        }

    def reachable(self) -> bool:
        try:
            self.store.online.views()
        except Exception:  # readiness reports, it never raises
            return False
        return True

    def close(self) -> None:
        self.store.close()

    def load_key(self) -> None:
        """The pseudonymization key, once; ConfigError unless it is the key the sources were ingested with."""
        from medops.data.deid import Pseudonymizer
        from medops.data.ingest import key_fingerprint
        from medops.identity.pseudonym_key import load_key

        with self._lock:
            if self._pseudonymizer is not None:
                return
            secret = load_key(key_file=self._platform.settings.pseudonym_key_file)
            for k in self.keys.values():
                if k.key_id is not None and k.key_id != key_fingerprint(secret):
                    raise ConfigError(
                        f"the pseudonymization key is not the one the source of {k.name!r} was ingested with",
                        code="pseudonym_key_mismatch",
                        hint="serve with the workspace's pseudonym key (MEDOPS_PSEUDONYM_KEY or its key file)",
                    )
            self._pseudonymizer = Pseudonymizer(secret)

    def _pseudonymize(self, key: EntityKey, raw: str) -> str:
        if key.kind is None:
            return raw
        self.load_key()
        return str(self._pseudonymizer.one(raw, key.kind))

    def rows(self, records: list[Any]) -> Looked:
        """Entity rows replaced by the model's features (RowsInvalid for a bad row), with their flags and pseudonyms."""
        keys = self._key_names
        chosen = [i for i, r in enumerate(records) if isinstance(r, dict) and not keys.isdisjoint(r)]
        flags: list[dict[str, list[str]] | None] = [None] * len(records)
        entities: list[str | None] = [None] * len(records)
        if not chosen:
            return Looked(records, flags, entities)
        errors: list[FieldError] = []
        ids: dict[str, list[str]] = {k: [] for k in self.keys}
        times: list[datetime] = []
        now = datetime.now(UTC)
        for i in chosen:
            record = records[i]
            for name in sorted(set(record) - self.keys.keys() - self.accepted):
                errors.append(FieldError(i, str(name)[:64], "unknown_field", "not an input of this model"))
            for name, key in self.keys.items():
                value = record.get(name)
                if value is None:
                    errors.append(FieldError(i, name, "missing_field", "the model's views are keyed by it too"))
                elif isinstance(value, bool) or not isinstance(value, str | int) or str(value) == "":
                    errors.append(FieldError(i, name, "wrong_type", "an entity id is a string or a whole number"))
                else:
                    ids[name].append(self._pseudonymize(key, str(value)))
            moment, problem = _moment(record.get(TIME), now)
            if problem:
                errors.append(FieldError(i, TIME, "wrong_type", problem))
            times.append(moment)
        if errors:
            raise RowsInvalid(errors)
        found = self.store.get_online_features(ids, self.reads, now=now) if self.reads else None
        out = list(records)
        merged: list[dict[str, Any]] = []
        for n, i in enumerate(chosen):
            record = records[i]
            row: dict[str, Any] = {}
            missing: set[str] = set()
            stale: set[str] = set()
            if found is not None:
                for ref in self.reads:
                    view, _, name = ref.partition(":")
                    row[name] = found.columns[name][n]
                    if not found.found[view][n]:
                        missing.add(name)
                    elif found.stale[name][n]:
                        stale.add(name)
            given = {k for k in record if k not in self.keys and k != TIME}
            row.update({k: record[k] for k in given})
            missing -= given
            stale -= given
            for od in self.computed:
                if od.name not in given:
                    missing |= {od.name} if missing & set(od.inputs) else set()
                    stale |= {od.name} if stale & set(od.inputs) else set()
            merged.append(row)
            entities[i] = " ".join(f"{k}={ids[k][n]}" for k in sorted(self.keys))  # pseudonyms only
            flags[i] = {
                "missing": sorted(missing & self.features),
                "stale": sorted(stale & self.features),
                "given": sorted(given & self.features),
            }
        if self.computed:
            self._compute(merged, times, [flags[i] or {} for i in chosen], chosen)
        for n, i in enumerate(chosen):
            out[i] = {k: v for k, v in merged[n].items() if k in self.features}
        return Looked(out, flags, entities)

    def _compute(
        self, rows: list[dict[str, Any]], times: list[datetime], flags: list[dict[str, list[str]]], index: list[int]
    ) -> None:
        """On-demand features from the merged rows: the same SQL, through the same function, as training.

        Rows are computed together; if given values make that fail (a text where the SQL takes a number),
        each row is computed alone, so the error names the rows at fault, never the values.
        """
        try:
            self._compute_rows(rows, times, flags)
            return
        except Exception:  # pyarrow and DuckDB raise several types; the rows are retried one by one
            pass
        errors = []
        for n in range(len(rows)):
            try:
                self._compute_rows(rows[n : n + 1], times[n : n + 1], flags[n : n + 1])
            except Exception:
                for od in self.computed:
                    problem = "can't be computed from the values given"
                    errors.append(FieldError(index[n], od.name, "wrong_type", problem))
        if errors:
            raise RowsInvalid(errors)

    def _compute_rows(
        self, rows: list[dict[str, Any]], times: list[datetime], flags: list[dict[str, list[str]]]
    ) -> None:
        import pyarrow as pa

        from medops.features import ondemand

        inputs = sorted({i for od in self.computed for i in od.inputs})
        table = pa.table(
            {
                **{name: pa.array([r.get(name) for r in rows]) for name in inputs},
                TIME: pa.array(times, pa.timestamp("us", "UTC")),
            }
        )
        with self.store.duck.sandboxed() as con:
            computed = ondemand.compute(con, self.computed, table)
        for od in self.computed:
            values = computed.column(od.name).to_pylist()
            for row, flag, value in zip(rows, flags, values, strict=True):
                if od.name not in flag.get("given", []):
                    row[od.name] = value


def _moment(value: Any, now: datetime) -> tuple[datetime, str | None]:
    if value is None:
        return now, None
    if not isinstance(value, str):
        return now, "an ISO 8601 time, such as 2026-03-01T08:00:00Z"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return now, "an ISO 8601 time, such as 2026-03-01T08:00:00Z"
    return (moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)), None


def plan_lookup(platform: Platform, bundle: Bundle, features: Sequence[str]) -> OnlineLookup | None:
    """The lookup of a model trained from feature views (None for one that was not), its store opened."""
    from medops.data.datasets import get
    from medops.features.store import FeatureStore

    meta = bundle.metadata
    trained_on: dict[str, str] = dict(meta.get("feature_views") or {})
    if not trained_on:
        return None
    views = FeatureSet()
    keys: dict[str, EntityKey] = {}
    with platform.db.read() as session:
        rows = {
            r.name: (r.definition, r.source, r.source_version)
            for r in session.execute(select(FeatureViewVersion).where(FeatureViewVersion.name.in_(trained_on)))
            .scalars()
            .all()
            if r.version == trained_on[r.name]
        }
    if set(rows) != set(trained_on):
        return None  # a model registered elsewhere (a transferred registry): it serves, without lookups
    for name in trained_on:
        definition, source, source_version = rows[name]
        view = _view(json.loads(definition))
        views.add(view)
        if view.entity not in keys:
            try:
                details = get(platform.db, f"{source}@{source_version}").details
            except NotFound:
                return None  # how its ids were pseudonymized is not on record here
            keys[view.entity] = _entity_key(details, view.entity)
    on_demand: list[OnDemandFeature] = []
    data = meta.get("training_set") or {}
    if data.get("dataset"):
        try:
            recorded = get(platform.db, f"{data['dataset']}@{data['version']}").details.get("training_set") or {}
        except NotFound:
            return None  # its on-demand features are not on record here: no lookup rather than a partial one
        for doc in recorded.get("on_demand") or []:
            if doc.get("expr") and doc["name"] in features:  # a Python one is the caller's to send
                on_demand.append(OnDemandFeature(doc["name"], expr=doc["expr"], inputs=tuple(doc.get("inputs") or ())))
    for od in on_demand:
        views.add(od)
    owner = {f: v.name for v in views.views.values() for f in v.feature_names}
    fetched = {f: owner[f] for f in features if f in owner}
    needed = list(fetched) + [i for od in on_demand for i in od.inputs if i in owner and i not in fetched]
    reads = [f"{owner[f]}:{f}" for f in dict.fromkeys(needed)]
    unfetched_inputs = {i for od in on_demand for i in od.inputs if i not in owner}  # only the caller has them
    accepted = frozenset(set(features) | unfetched_inputs | ({TIME} if on_demand else set()))
    store = FeatureStore(platform, views)
    store.online  # noqa: B018 - made now, once (it connects on its first read), so request threads share it
    lookup = OnlineLookup(store, keys, fetched, reads, on_demand, accepted, frozenset(features), platform)
    if any(k.kind is not None for k in keys.values()):
        try:
            lookup.load_key()  # a wrong key stops the server at start; a missing one refuses entity rows only
        except ConfigError as exc:
            if exc.code != MISSING:
                store.close()
                raise
    return lookup


def _view(doc: dict[str, Any]) -> FeatureView:
    """A view as its applied version recorded it: what reading its online table needs."""
    features = tuple(
        Feature(
            f["name"],
            expr=f.get("expr"),
            agg=f.get("agg"),
            window=timedelta(seconds=f["window_seconds"]) if f.get("window_seconds") else None,
            filter=f.get("filter"),
            fn=_applied_only if f.get("python") else None,
        )
        for f in doc["features"]
    )
    return FeatureView(
        name=doc["name"],
        entity=doc["entity"],
        source=doc["source"],
        features=features,
        timestamp=doc.get("timestamp"),
        created=doc.get("created"),
        ttl=timedelta(seconds=doc["ttl_seconds"]) if doc.get("ttl_seconds") else None,
        filter=doc.get("filter"),
    )


def _applied_only(frame: Any) -> Any:
    """A Python feature's values are computed when its view is applied; serving reads them, never runs it."""
    raise FeatureViewError("a Python feature runs when its view is applied, not when it is served")


def _entity_key(details: dict[str, Any], entity: str) -> EntityKey:
    """How ingest treated the view's entity column, from the source dataset's de-identification record."""
    from medops.data.deid import pseudonym_kind

    deid = details.get("deid") or {}
    for column in deid.get("columns") or []:
        if column["column"] == entity and str(column["action"]).startswith("pseudonymize"):
            return EntityKey(entity, pseudonym_kind(entity, str(column["action"])), deid.get("key_id"))
    return EntityKey(entity, None, None)


def entity_keys(platform: Platform) -> frozenset[str]:
    """The entity keys of every view applied in the workspace: fields a row may use to name an entity."""
    with platform.db.read() as session:
        return frozenset(
            json.loads(d).get("entity", "") for d in session.scalars(select(FeatureViewVersion.definition))
        )


def with_online_features(model: ServedModel, records: list[Any]) -> Looked:
    """The records with entity rows replaced by their features, each row's lookup flags and entity pseudonym
    (None: not looked up)."""
    if model.lookup is None:
        refuse_entity(records, model.entity_keys)
        return Looked(records, [None] * len(records), [None] * len(records))
    return model.lookup.rows(records)


def refuse_entity(records: list[Any], known: frozenset[str]) -> None:
    """For a model that was not trained from feature views: a row naming an entity gets a clear 422."""
    for index, record in enumerate(records):
        if isinstance(record, dict):
            named = sorted(known & record.keys())
            if named:
                raise InvalidInput(
                    f"row {index} names an entity ({named[0]}), but this model was not trained from feature views: "
                    "it has no features to look up",
                    code="entity_lookup_unsupported",
                    hint="send the model's features (GET /v1/models/{name} shows its input schema)",
                )


def entity_row_schema(lookup: OnlineLookup, row: dict[str, Any]) -> dict[str, Any]:
    """The entity form of a predict row in JSON Schema: the keys, optional features and request fields."""
    properties = {k: {"type": ["string", "integer"], "description": "the caller's id"} for k in sorted(lookup.keys)}
    properties.update({k: v for k, v in row["properties"].items()})
    if TIME in lookup.accepted:
        properties[TIME] = {"type": "string", "format": "date-time"}
    for name in lookup.accepted - set(properties):
        properties[name] = {}
    return {"type": "object", "properties": properties, "required": sorted(lookup.keys), "additionalProperties": False}


__all__ = [
    "EntityKey",
    "OnlineLookup",
    "entity_keys",
    "entity_row_schema",
    "plan_lookup",
    "refuse_entity",
    "with_online_features",
]
