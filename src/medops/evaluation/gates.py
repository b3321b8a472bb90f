"""The validation policy applied: one gate per criterion, each with its value, threshold, outcome and why.

The overall result passes only if every gate passes. A gate whose value can't be computed
(a metric undefined on this test set) fails: a criterion nobody can check is not met.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from medops.evaluation.spec import EvaluateSpec, GapRule


@dataclass(frozen=True)
class Gate:
    criterion: str
    kind: str
    value: float | None
    threshold: float | str | None
    passed: bool
    why: str

    def doc(self) -> dict[str, Any]:
        return asdict(self)


def _num(value: float | None) -> str:
    return "undefined" if value is None or not math.isfinite(value) else f"{value:.3f}"


def metric_gates(spec: EvaluateSpec, metrics: dict[str, dict[str, float]]) -> list[Gate]:
    gates = []
    for name, rule in spec.policy.metrics.items():
        field = {"value": "value", "ci_lower": "low", "ci_upper": "high"}[rule.check]
        value = metrics[name][field]
        on = {"value": "", "ci_lower": " on the CI lower bound", "ci_upper": " on the CI upper bound"}[rule.check]
        for bound, op in ((rule.min, "≥"), (rule.max, "≤")):
            if bound is None:
                continue
            defined = value is not None and math.isfinite(value)
            passed = defined and (value >= bound if op == "≥" else value <= bound)
            why = (
                f"{name}{on} is {_num(value)}, {'meets' if passed else 'misses'} {op} {bound:g}"
                if defined
                else f"{name} is undefined on this test set"
            )
            gates.append(Gate(f"{name} {op} {bound:g}{on}", "metric", value, bound, passed, why))
    return gates


def quarantine_gate(spec: EvaluateSpec, lost: dict[str, Any]) -> list[Gate]:
    """The share of examples lost to the contracts' quarantine: a model judged on what was left."""
    limit = spec.policy.max_quarantined_share
    if limit is None:
        return []
    share = float(lost.get("share_lost", 0.0))
    passed = share <= limit
    why = (
        f"{share:.1%} of examples lost to quarantine ({lost.get('labels_quarantined', 0)} labels quarantined, "
        f"{lost.get('label_rows_dropped', 0)} labels whose entity lost source rows), "
        f"{'within' if passed else 'above'} {limit:.1%}"
    )
    return [Gate(f"quarantined share ≤ {limit:g}", "data", share, limit, passed, why)]


def calibration_gates(spec: EvaluateSpec, metrics: dict[str, dict[str, float]]) -> list[Gate]:
    rule = spec.policy.calibration
    if rule is None:
        return []
    gates = []
    for name, bounds in (("calibration_slope", rule.slope), ("calibration_intercept", rule.intercept)):
        if bounds is None:
            continue
        value = metrics[name]["value"]
        passed = math.isfinite(value) and bounds[0] <= value <= bounds[1]
        why = f"{name} {_num(value)} is {'within' if passed else 'outside'} [{bounds[0]:g}, {bounds[1]:g}]"
        gates.append(Gate(f"{name} in [{bounds[0]:g}, {bounds[1]:g}]", "calibration", value, str(bounds), passed, why))
    if rule.ece_max is not None:
        value = metrics["ece"]["value"]
        passed = math.isfinite(value) and value <= rule.ece_max
        why = f"expected calibration error {_num(value)} {'≤' if passed else '>'} {rule.ece_max:g}"
        gates.append(Gate(f"ece ≤ {rule.ece_max:g}", "calibration", value, rule.ece_max, passed, why))
    return gates


def subgroup_gates(
    spec: EvaluateSpec, groups: list[dict[str, Any]], between: list[dict[str, Any]] | None = None
) -> list[Gate]:
    """One gate per gap rule: the worst group (of the rule's attributes, large enough) against the limit,
    or, for ``compare: between_groups``, the widest gap between two groups of one attribute.

    Marks each offending group's ``flagged`` list in place.
    """
    gates = []
    for gap, rule in spec.policy.gap_rules().items():
        if rule.compare == "between_groups":
            gates += _between_gates(gap, rule, between or [])
            continue
        assert rule.max is not None
        worst: tuple[float, str] | None = None
        offenders = []
        for group in groups:
            if group["too_small"] or not _applies(rule, group["kinds"]):
                continue
            entry = group["gaps"].get(gap)
            if entry is None:
                continue
            size = _size(entry, rule)
            if not math.isfinite(size):
                continue
            label = f"{group['attribute']}={group['group']}"
            if worst is None or size > worst[0]:
                worst = (size, label)
            if size > rule.max:
                offenders.append(label)
                group["flagged"].append(gap)
        on = " (CI lower bound)" if rule.check == "ci_lower" else ""
        scope = f" over {', '.join(rule.attributes)}" if rule.attributes else ""
        criterion = f"{gap} gap ≤ {rule.max:g}{on}{scope}"
        if worst is None:
            gates.append(Gate(criterion, "subgroup", None, rule.max, False, "no group large enough to check"))
            continue
        passed = not offenders
        why = (
            f"largest: {worst[1]} at {worst[0]:.3f}"
            if passed
            else f"{len(offenders)} group(s) beyond {rule.max:g}: {', '.join(offenders[:5])}"
            + (" …" if len(offenders) > 5 else "")
            + f"; largest {worst[1]} at {worst[0]:.3f}"
        )
        gates.append(Gate(criterion, "subgroup", worst[0], rule.max, passed, why))
    return gates


def _between_gates(gap: str, rule: GapRule, between: list[dict[str, Any]]) -> list[Gate]:
    """The widest difference (and the lowest ratio) between two eligible groups of any attribute in scope."""
    scope = f" over {', '.join(rule.attributes)}" if rule.attributes else ""
    on = " (CI lower bound)" if rule.check == "ci_lower" else ""
    entries = [
        (doc["attribute"], doc["gaps"][gap])
        for doc in between
        if gap in doc["gaps"] and _applies(rule, doc["attribute"].split(" × "))
    ]
    gates = []
    for bound, kind in ((rule.max, "difference"), (rule.min_ratio, "ratio")):
        if bound is None:
            continue
        op = "≤" if kind == "difference" else "≥"
        criterion = f"{gap} between-groups {kind} {op} {bound:g}{on}{scope}"
        if not entries:
            gates.append(Gate(criterion, "subgroup", None, bound, False, "no attribute with two groups large enough"))
            continue

        def judged(entry: dict[str, Any], kind: str = kind) -> float:
            if kind == "difference":
                return float(entry["low"] if rule.check == "ci_lower" else entry["value"])
            return float(entry["ratio_high"] if rule.check == "ci_lower" else entry["ratio"])

        finite = [(a, e) for a, e in entries if math.isfinite(judged(e))]
        if not finite:
            gates.append(Gate(criterion, "subgroup", None, bound, False, f"the {kind} is undefined"))
            continue
        pick = max if kind == "difference" else min
        attribute, entry = pick(finite, key=lambda item: judged(item[1]))
        value = judged(entry)
        passed = value <= bound if kind == "difference" else value >= bound
        why = (
            f"{attribute}: {entry['highest']} against {entry['lowest']}, {kind} {value:.3f}, "
            f"{'within' if passed else 'beyond'} {bound:g}"
        )
        gates.append(Gate(criterion, "subgroup", value, bound, passed, why))
    return gates


def _applies(rule: GapRule, kinds: list[str]) -> bool:
    return rule.attributes is None or all(k in rule.attributes for k in kinds)


def _size(entry: dict[str, float], rule: GapRule) -> float:
    """The gap's absolute size; on the CI lower bound, how far the whole interval is from zero."""
    value, low, high = entry["value"], entry["low"], entry["high"]
    if rule.check == "value":
        return abs(value)
    if not (math.isfinite(low) and math.isfinite(high)):
        return math.nan
    return 0.0 if low <= 0 <= high else min(abs(low), abs(high))


def non_inferiority_gate(spec: EvaluateSpec, champion: dict[str, Any] | None) -> list[Gate]:
    rule = spec.policy.non_inferiority
    if rule is None:
        return []
    criterion = f"{rule.metric} not worse than the production model by more than {rule.margin:g}"
    if champion is None:
        return [Gate(criterion, "non_inferiority", None, rule.margin, True, "no production model to compare with")]
    lower_is_better = rule.metric in ("brier", "ece", "fpr")
    # difference = challenger - champion; worse means lower (or higher, for an error)
    bound = champion["high"] if lower_is_better else champion["low"]
    passed = math.isfinite(bound) and (bound <= rule.margin if lower_is_better else bound >= -rule.margin)
    why = (
        f"difference {champion['difference']:+.3f} (CI {champion['low']:+.3f} to {champion['high']:+.3f}) against "
        f"run {champion['run'][:12]}; {'within' if passed else 'beyond'} the margin of {rule.margin:g}"
        + (f"; on {champion['rows']:,} test rows, {champion['left_out']:,} it was trained on left out"
           if champion.get("left_out") else "")
    )  # fmt: skip
    return [Gate(criterion, "non_inferiority", champion["difference"], rule.margin, passed, why)]


def prerequisite_gates(spec: EvaluateSpec, checks: dict[str, tuple[bool, str]]) -> list[Gate]:
    names = {"data_contract": "data contracts passed", "leakage_checks": "leakage checks passed"}
    return [Gate(names[p], "prerequisite", None, None, *checks[p]) for p in spec.policy.prerequisites]
