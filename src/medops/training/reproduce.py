"""`medops runs reproduce RUN`: train again from what the run recorded, and say whether it matches.

The run's recipe (settings, seed, split, the data as a dataset version and how rows were
chosen) is read back from the artifact store (verified by its hash), the training runs
again as a new run tagged ``reproduces=RUN``, and the two are compared: the same model
SHA-256 and metrics is a reproduction; otherwise the report names what differs among
data, settings, code and environment.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from medops.errors import InvalidInput
from medops.training.stored import recipe, training_frame
from medops.training.tracking import Comparison, RunInfo, Tracker
from medops.training.train import TrainResult, config_from_recipe, train

# Parameters a run records that describe its data rather than choose anything.
DERIVED = {
    "split.train_rows",
    "split.test_rows",
    "split.train_label_mean",
    "split.test_label_mean",
    "split.groups",
    "split.dropped_test_rows_of_seen_entities",
    "rows_without_outcome_dropped",
}


@dataclass
class Reproduction:
    original: RunInfo
    result: TrainResult
    same_model: bool
    metric_changes: list[tuple[str, float | None, float | None]]
    causes: list[str] = field(default_factory=list)
    comparison: Comparison | None = None

    @property
    def reproduced(self) -> bool:
        return self.same_model and not self.metric_changes


def causes(diff: Comparison) -> list[str]:
    """What can explain two runs of the same training differing: data, settings, code, environment."""
    found = []
    if any(a != b for _, a, b in diff.inputs):
        changed = ", ".join(k for k, a, b in diff.inputs if a != b)
        found.append(f"data: {changed} differ")
    settings = [k for k, _, _ in diff.params if k not in DERIVED]  # sizes and shares follow the data
    if settings:
        found.append("settings: " + ", ".join(settings))
    code = [k for k, _, _ in diff.code if k != "seed"]
    if code:
        found.append("code: " + ", ".join(code))
    if diff.environment:
        found.append(f"environment: {len(diff.environment)} packages changed ({'; '.join(diff.environment[:3])})")
    return found


def reproduce(tracker: Tracker, ref: str, *, actor: str) -> Reproduction:
    original = tracker.get(ref)
    if "model_sha256" not in original.tags:
        raise InvalidInput(f"run {original.short} stored no model", code="run_not_trained")
    doc = recipe(tracker, original)
    frame = training_frame(tracker, original, doc)
    data = doc["data"]
    config = config_from_recipe(
        doc, name=f"reproduce-{original.short}", inputs=(f"{data['dataset']}@{data['version']}",)
    )
    result = train(tracker, frame, config, actor=actor)
    tracker.set_tag(result.run_id, "reproduces", original.id)
    return _report(tracker, original, result)


def _report(tracker: Tracker, original: RunInfo, result: TrainResult) -> Reproduction:
    new = tracker.get(result.run_id)
    changes = [
        (k, original.metrics.get(k), new.metrics.get(k))
        for k in sorted(set(original.metrics) | set(new.metrics))
        if k.startswith("test_") and original.metrics.get(k) != new.metrics.get(k)
    ]
    same = original.tags["model_sha256"] == result.model_sha256
    diff = tracker.compare(original.id, new.id)
    return Reproduction(original, result, same, changes, [] if same and not changes else causes(diff), diff)
