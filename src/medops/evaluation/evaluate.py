"""One clinical validation of a trained run: the evaluation document every report and gate reads.

The run's test rows are rebuilt from its recipe (the same dataset version, split and seed),
its model is read back verified and scores them; then the threshold, metrics with
bootstrap intervals, subgroups and gaps, robustness, the comparison with the champion,
the prerequisites and the policy's gates. The result is one JSON-able document.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from medops.clock import utc_now
from medops.data.datasets import get as get_dataset
from medops.data.datasets import quarantine_of
from medops.errors import InvalidInput, NotFound
from medops.evaluation import gates as gating
from medops.evaluation import robustness, thresholds
from medops.evaluation.between import between_groups
from medops.evaluation.bootstrap import Distribution, bootstrap, paired_difference, percentile_interval
from medops.evaluation.champion_rows import unseen_by
from medops.evaluation.heldout import out_of_fold
from medops.evaluation.metrics import METRICS
from medops.evaluation.records import PREDICTIONS
from medops.evaluation.serving_ranges import refused_rows, serving_doc, serving_schema
from medops.evaluation.spec import GAPS, EvaluateSpec
from medops.evaluation.subgroups import GroupSet, attribute_values, build_groups
from medops.store.lineage import Edge, dataset_refs, walk
from medops.training import stored
from medops.training.environment import parse_lock
from medops.training.input_schema import InputSchema
from medops.training.tracking import RunInfo, Tracker, run_node
from medops.training.train import TrainConfig, config_from_recipe, split_and_check
from medops.training.trainers import FittedModel

# The run's parameters that describe the model (the split and data are under "data").
MODEL_SETTINGS = ("model.", "best.", "class_weight", "calibration", "resample", "seed")
KEY_PACKAGES = ("medops", "lightgbm", "scikit-learn", "numpy", "pandas", "scipy", "optuna")
Where = Callable[[tuple[str, ...]], str]


@dataclass(frozen=True)
class TestSet:
    """A run's test rows, their labels and the model's scores."""

    info: RunInfo
    recipe: dict[str, Any]
    config: TrainConfig
    frame: pd.DataFrame
    y: np.ndarray
    p: np.ndarray
    model: FittedModel
    schema: InputSchema
    leakage: tuple[bool, str]
    split: dict[str, Any]
    train_rows: int
    train_frame: pd.DataFrame

    @cached_property
    def clusters(self) -> np.ndarray | None:
        """Each test row's patient when the split keeps patients whole: the bootstrap resamples them."""
        group = self.config.group
        return self.frame[group].to_numpy() if group and group in self.frame.columns else None


def test_set(tracker: Tracker, ref: str, where: Where) -> TestSet:
    """Rebuild the run's split from its recipe and score the test rows with its stored model."""
    info = tracker.get(ref)
    doc = stored.recipe(tracker, info)
    frame = stored.training_frame(tracker, info, doc)
    config = config_from_recipe(doc)
    split, allowed = split_and_check(frame, config)
    leakage = (
        (True, "no finding: entity overlap, future features and perfect predictors checked before training")
        if not allowed
        else (False, "overridden: " + "; ".join(f.detail for f in allowed))
    )
    test = frame.iloc[split.test].reset_index(drop=True)
    y = binary_label(test[config.label], where)
    model = stored.model(tracker, info)
    schema = stored.input_schema(tracker, info) or InputSchema.from_frame(frame.iloc[split.train], model.features)
    return TestSet(
        info,
        doc,
        config,
        test,
        y,
        model.predict_proba(test),
        model,
        schema,
        leakage,
        split.description,
        len(split.train),
        frame.iloc[split.train],
    )


def binary_label(label: pd.Series, where: Where) -> np.ndarray:
    values = label.dropna().unique()
    if label.isna().any():
        raise InvalidInput(f"{where(('evaluate',))}: the test set's label {label.name!r} has missing values")
    if len(values) < 2:
        raise InvalidInput(
            f"{where(('evaluate',))}: the test set has one class only ({label.name!r} is always {values[0]!r})",
            hint="metrics such as AUROC and sensitivity need both outcomes; check the split and the label",
        )
    if len(values) > 2 or not set(pd.Series(values).astype(float)) <= {0.0, 1.0}:
        raise InvalidInput(f"{where(('evaluate',))}: the label {label.name!r} is not binary (0/1, true/false)")
    return np.asarray(label.astype(float).to_numpy(), dtype=np.int8)


def evaluate(
    tracker: Tracker,
    ref: str,
    spec: EvaluateSpec,
    *,
    project: dict[str, Any],
    where: Where = lambda loc: ".".join(loc),
    source: Callable[[str], pd.DataFrame] | None = None,
    champion: str | None = None,
    actor: str,
    progress: Callable[[str, int, int], None] | None = None,
    declared_ranges: Mapping[str, tuple[float, float]] | None = None,
) -> dict[str, Any]:
    """The evaluation document of run ``ref`` under ``spec`` (nothing is stored here).

    ``declared_ranges``: plausible ranges the sources' contracts declare, by column; a feature of that
    name is served (and judged here) by it rather than by its widened training range.
    """
    say = progress or (lambda step, done, total: None)
    ts = test_set(tracker, ref, where)
    if champion and tracker.get(champion).id == ts.info.id:  # refused before the bootstrap, not after it
        raise InvalidInput("the champion is the run being evaluated", hint="name the production model's run")
    for name in spec.robustness.unit_errors:
        if name not in ts.model.features:
            raise InvalidInput(
                f"{where(('evaluate', 'robustness', 'unit_errors', name))}: {name!r} is not a feature of the model",
                hint=f"features: {', '.join(ts.model.features)}",
            )
    served, origin = serving_schema(ts.schema, ts.train_frame, spec.serving, declared_ranges or {})
    serving = serving_doc(served, origin, spec.serving, refused_rows(served, ts.frame))
    threshold_doc = _threshold(ts, spec, say)
    threshold = threshold_doc["value"]
    groups, attributes = _groups(ts, spec, ts.config.group, source, where)
    boot = spec.bootstrap
    say("bootstrap", 0, boot.resamples)
    clusters = ts.clusters
    dist = bootstrap(
        ts.y,
        ts.p,
        groups.strata,
        groups.membership,
        threshold,
        resamples=boot.resamples,
        seed=boot.seed,
        progress=lambda done: say("bootstrap", done, boot.resamples),
        clusters=clusters,
    )
    metrics = {m: _entry(dist, 0, m, boot.level) for m in METRICS}
    subgroup_docs = _subgroup_docs(ts, groups, dist, spec) if spec.subgroups is not None else None
    between = (
        between_groups(
            dist,
            groups.names,
            [g for g, doc in enumerate(subgroup_docs, start=1) if not doc["too_small"]],
            [*GAPS, *sorted(set(spec.policy.gap_rules()) - set(GAPS))],
            spec.bootstrap.level,
        )
        if subgroup_docs is not None
        else []
    )
    say("robustness", 0, 1)
    robust = robustness.run(ts.model.predict_proba, ts.frame, ts.y, ts.model.features, ts.schema, spec.robustness, ts.p)
    say("robustness", 1, 1)
    champ = _champion(tracker, champion, ts, spec, threshold) if champion else None
    edges = walk(tracker.ws.db, run_node(ts.info.id), "up")  # the lineage: read once, for contracts and report
    checks = {"data_contract": _contracts(tracker, edges), "leakage_checks": ts.leakage}
    lost = _quarantine(tracker, ts)
    gates = [
        *gating.prerequisite_gates(spec, checks),
        *gating.quarantine_gate(spec, lost),
        *gating.metric_gates(spec, metrics),
        *gating.calibration_gates(spec, metrics),
        *gating.subgroup_gates(spec, subgroup_docs or [], between),
        *gating.non_inferiority_gate(spec, champ),
    ]
    for group in subgroup_docs or []:
        group.pop("kinds")
    return {
        "id": uuid.uuid4().hex,
        "created_at": utc_now().isoformat(),
        "created_by": actor,
        "passed": all(g.passed for g in gates),
        "policy_sha256": spec.sha256,
        "project": project,
        "run": _run_doc(tracker, ts),
        "data": {**_data_doc(ts, edges), "quarantine": lost},
        "threshold": threshold_doc,
        "bootstrap": {
            "resamples": boot.resamples,
            "level": boot.level,
            "seed": boot.seed,
            "method": (
                f"cluster bootstrap: whole {ts.config.group} groups resampled"
                if clusters is not None
                else "stratified by label"
            )
            + "; binned, shifted to the exact estimate",
        },
        "metrics": metrics,
        "curves": thresholds.curves(ts.y, ts.p),
        "threshold_table": thresholds.table(ts.y, ts.p, threshold),
        "subgroups": None
        if spec.subgroups is None
        else {
            "min_size": spec.subgroups.min_size,
            "min_events": spec.subgroups.min_events,
            "attributes": {k: v.model_dump() for k, v in spec.subgroups.attributes.items()},
            "groups": subgroup_docs,
            "between_groups": between,
        },
        "robustness": robust,
        "serving": serving,
        "input_checks": ts.schema.to_doc(),
        "champion": champ,
        "predictions": {"rows": len(ts.y), "threshold": threshold},
        PREDICTIONS: predictions_table(ts, threshold, attributes),  # stored as Parquet by records.record
        "gates": [g.doc() for g in gates],
        "card": spec.model_card.model_dump(),
    }


def _threshold(ts: TestSet, spec: EvaluateSpec, say: Callable[[str, int, int], None]) -> dict[str, Any]:
    """The decision threshold, and where it came from: a rule is solved on held-out training predictions."""
    rule = spec.threshold
    if not rule.is_rule:
        return {"value": rule.fixed, "rule": rule.describe(), "chosen_on": "fixed by the policy"}
    say("threshold", 0, 1)
    held = out_of_fold(ts.train_frame, ts.config, rule.folds)
    value = thresholds.choose(held.y, held.p, rule)
    row = next(r for r in thresholds.table(held.y, held.p, value) if r["threshold"] == value)
    say("threshold", 1, 1)
    return {
        "value": value,
        "rule": rule.describe(),
        "chosen_on": held.description,
        "held_out": {"rows": len(held.y), "sensitivity": row["sensitivity"], "specificity": row["specificity"]},
    }


def _entry(dist: Distribution, group: int, metric: str, level: float) -> dict[str, float]:
    ci = dist.interval(group, metric, level)
    return {"value": float(dist.exact[group, dist.metrics.index(metric)]), "low": ci.low, "high": ci.high}


def _groups(
    ts: TestSet, spec: EvaluateSpec, entity: str | None, source: Callable[[str], pd.DataFrame] | None, where: Where
) -> tuple[GroupSet, dict[str, pd.Series]]:
    if spec.subgroups is None:
        return build_groups({}, [], len(ts.y)), {}
    values = attribute_values(ts.frame, spec.subgroups, entity=entity, source=source or _no_source, where=where)
    return build_groups(values, spec.subgroups.intersections, len(ts.y)), dict(values)


def predictions_table(ts: TestSet, threshold: float, attributes: dict[str, pd.Series]) -> pa.Table:
    """Every test row's outcome, score and decision, with its (pseudonymized) patient and subgroup values:
    enough for anyone to recompute every number of the evaluation independently."""
    columns: dict[str, Any] = {"row": pa.array(np.arange(len(ts.y)), pa.int64())}
    if ts.clusters is not None:
        columns[str(ts.config.group)] = pa.array([None if v is None else str(v) for v in ts.clusters], pa.string())
    columns["label"] = pa.array(ts.y.astype(np.int8))
    columns["score"] = pa.array(ts.p.astype(np.float64))
    columns["decision"] = pa.array((ts.p >= threshold).astype(np.int8))
    for name, values in attributes.items():
        columns[f"group:{name}"] = pa.array([None if pd.isna(v) else str(v) for v in values], pa.string())
    return pa.table(columns)


def _no_source(name: str) -> pd.DataFrame:
    raise InvalidInput(f"no source {name!r} to join subgroup attributes from")


def _subgroup_docs(ts: TestSet, groups: GroupSet, dist: Distribution, spec: EvaluateSpec) -> list[dict[str, Any]]:
    assert spec.subgroups is not None
    level = spec.bootstrap.level
    wanted = set(spec.policy.gap_rules()) - set(GAPS)
    clusters = ts.clusters
    docs = []
    for g in range(1, len(groups.names)):
        rows = groups.membership[g][groups.strata]
        n, positives = int(rows.sum()), int(ts.y[rows].sum())
        events = min(positives, n - positives)
        small = n < spec.subgroups.min_size or events < spec.subgroups.min_events
        doc: dict[str, Any] = {
            "attribute": groups.names[g][0],
            "group": groups.names[g][1],
            "kinds": list(groups.kinds[g]),
            "n": n,
            "patients": int(pd.Series(clusters[rows]).nunique()) if clusters is not None else None,
            "positives": positives,
            "too_small": small,
            "metrics": {},
            "gaps": {},
            "flagged": [],
        }
        if not small:
            doc["metrics"] = {m: _entry(dist, g, m, level) for m in METRICS}
            doc["gaps"] = _gaps(dist, g, level, wanted)
        docs.append(doc)
    return docs


def _gaps(dist: Distribution, g: int, level: float, metrics: set[str]) -> dict[str, dict[str, float]]:
    """Each gap of group ``g`` to the overall population, with its paired bootstrap interval."""

    def entry(name: str) -> dict[str, float]:
        value, ci = dist.gap(g, name, level)
        return {"value": value, "low": ci.low, "high": ci.high}

    sens, fpr = dist.metrics.index("sensitivity"), dist.metrics.index("fpr")
    odds_exact = max(abs(dist.exact[g, sens] - dist.exact[0, sens]), abs(dist.exact[g, fpr] - dist.exact[0, fpr]))
    odds = np.maximum(
        np.abs(dist.resampled[g, sens] - dist.resampled[0, sens]),
        np.abs(dist.resampled[g, fpr] - dist.resampled[0, fpr]),
    )
    odds_ci = percentile_interval(odds, level)
    ece = dist.metrics.index("ece")
    ece_ci = dist.interval(g, "ece", level)
    out = {
        "equal_opportunity": entry("sensitivity"),
        "equalized_odds": {"value": float(odds_exact), "low": odds_ci.low, "high": odds_ci.high},
        "demographic_parity": entry("selection_rate"),
        "calibration": {"value": float(dist.exact[g, ece]), "low": ece_ci.low, "high": ece_ci.high},
    }
    for name in sorted(metrics):
        out[name] = entry(name)
    return out


def _champion(tracker: Tracker, ref: str, ts: TestSet, spec: EvaluateSpec, threshold: float) -> dict[str, Any] | None:
    rule = spec.policy.non_inferiority
    metric = rule.metric if rule is not None else "auroc"
    info = tracker.get(ref)
    model = stored.model(tracker, info)
    missing = [f for f in model.features if f not in ts.frame.columns]
    if missing:
        raise InvalidInput(
            f"the champion (run {info.short}) needs {missing[0]!r}, which the test set does not have",
            hint="compare models trained on the same training set",
        )
    unseen = unseen_by(tracker, info, ts.frame, ts.config)  # rows the champion trained on would flatter it
    rows = unseen.mask
    y = ts.y[rows]
    if len(np.unique(y)) < 2:
        raise InvalidInput(
            f"the champion (run {info.short}) can't be compared: of the {len(ts.y):,} test rows it trained on "
            f"{unseen.left_out:,}, and the {int(rows.sum()):,} left hold one outcome only",
            hint="test the challenger on rows the production model never saw: a later extract, other patients",
        )
    clusters = ts.clusters
    paired = paired_difference(
        y,
        ts.p[rows],
        model.predict_proba(ts.frame[rows]),
        metric,
        threshold,
        resamples=spec.bootstrap.resamples,
        seed=spec.bootstrap.seed,
        level=spec.bootstrap.level,
        clusters=None if clusters is None else clusters[rows],
    )
    return {
        "run": info.id,
        "rows": int(rows.sum()),
        "left_out": unseen.left_out,  # test rows the champion was trained on
        "matched_by": unseen.key,
        "metric": metric,
        "challenger": paired.challenger,
        "champion": paired.champion,
        "difference": paired.difference,
        "low": paired.interval.low,
        "high": paired.interval.high,
        "margin": rule.margin if rule is not None else None,
    }


def _contracts(tracker: Tracker, edges: list[Edge]) -> tuple[bool, str]:
    """Every dataset upstream of the run that came from a source passed its contract (bad rows quarantined)."""
    judged, bad = [], []
    for ref in dataset_refs(edges):
        try:
            ds = get_dataset(tracker.ws.db, ref)
        except NotFound:
            continue
        if ds.kind == "training_set":  # built by medops from checked datasets, not from a source
            continue
        judged.append(ds.name)
        if ds.contract_result not in ("passed", "quarantined"):
            bad.append(f"{ds.name}@{ds.short} ({ds.contract_result})")
    if bad:
        return False, "no passed contract for " + ", ".join(bad)
    if not judged:
        return False, "no source dataset recorded upstream of the run"
    return True, f"{len(judged)} source datasets passed theirs: {', '.join(sorted(judged))}"


def _quarantine(tracker: Tracker, ts: TestSet) -> dict[str, Any]:
    """How many examples the contracts' quarantine took away before training, and from which sources."""
    data = ts.recipe.get("data") or {}
    if not data.get("dataset"):
        return {"share_lost": 0.0, "recorded": False}
    info = get_dataset(tracker.ws.db, f"{data['dataset']}@{data['version']}")
    if info.kind == "training_set":
        lost = (info.details.get("training_set") or {}).get("quarantine")
        if lost is not None:
            return {**lost, "recorded": True}
    bad = quarantine_of(tracker.ws.db, info)
    held = bad.rows if bad is not None else 0
    return {
        "label_rows": info.rows,
        "label_rows_dropped": 0,
        "labels_quarantined": held,
        "share_lost": held / max(info.rows + held, 1),
        "sources": {},
        "recorded": True,
    }


def _run_doc(tracker: Tracker, ts: TestSet) -> dict[str, Any]:
    info = ts.info
    lock = tracker.ws.artifacts.read_bytes(info.env_digest).decode() if info.env_digest else ""
    versions = parse_lock(lock)
    return {
        "id": info.id,
        "experiment": info.experiment,
        "name": info.name,
        "estimator": info.params.get("estimator", ""),
        "params": {k: str(v) for k, v in sorted(info.params.items()) if k.startswith(MODEL_SETTINGS)},
        "created_by": info.created_by,
        "started_at": info.started_at.isoformat(),
        "ended_at": info.ended_at.isoformat() if info.ended_at else None,
        "git_commit": info.git_commit,
        "git_dirty": info.git_dirty,
        "model_sha256": info.tags.get("model_sha256", ""),
        "seed": info.seed,
        "host": info.host,
        "environment": {
            "digest": info.env_digest,
            "packages": {k: versions[k] for k in KEY_PACKAGES if k in versions},
        },
    }


def _data_doc(ts: TestSet, edges: list[Edge]) -> dict[str, Any]:
    data = ts.recipe.get("data") or {}
    return {
        "training_set": f"{data.get('dataset')}@{str(data.get('version', ''))[:12]}",
        "label": ts.config.label,
        "features": list(ts.model.features),
        "test_rows": len(ts.y),
        "test_patients": int(pd.Series(ts.clusters).nunique()) if ts.clusters is not None else None,
        "test_positives": int(ts.y.sum()),
        "train_rows": ts.train_rows,
        "split": {k: _plain(v) for k, v in ts.split.items()},
        "feature_views": dict(ts.recipe.get("feature_views") or {}),
        "lineage": [{"from": e.src, "to": e.dst, "relation": e.relation} for e in edges],
    }


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return (
        value
        if isinstance(value, str | int | float | bool | type(None))
        else json.loads(json.dumps(value, default=str))
    )
