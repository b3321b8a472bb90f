"""The project file's ``evaluate`` section: threshold, bootstrap, subgroups, robustness, policy.

Checked when the project loads, so an unknown metric, an unknown attribute or a threshold
outside [0, 1] is reported with its file, line and field before any work.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from medops.evaluation.metrics import METRICS

GAPS = ("equal_opportunity", "equalized_odds", "demographic_parity", "calibration")
Fraction = Annotated[float, Field(ge=0, le=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ThresholdSpec(_Strict):
    """The decision threshold: a value, or a rule solved on out-of-fold predictions of the training side."""

    value: Fraction | None = None
    target_sensitivity: Annotated[float, Field(gt=0, le=1)] | None = None
    target_specificity: Annotated[float, Field(gt=0, le=1)] | None = None
    cost_ratio: Annotated[float, Field(gt=0)] | None = None  # a missed case costs this many false alarms
    folds: Annotated[int, Field(ge=2, le=20)] = 5  # for a rule: never solved on the rows the gates judge

    @property
    def is_rule(self) -> bool:
        return any(v is not None for v in (self.target_sensitivity, self.target_specificity, self.cost_ratio))

    @model_validator(mode="after")
    def _one(self) -> ThresholdSpec:
        given = [k for k, v in self.model_dump().items() if v is not None and k != "folds"]
        if len(given) > 1:
            raise ValueError(f"give one of value, target_sensitivity, target_specificity, cost_ratio, not {given}")
        return self

    def describe(self) -> str:
        if self.target_sensitivity is not None:
            return f"target sensitivity {self.target_sensitivity:g}"
        if self.target_specificity is not None:
            return f"target specificity {self.target_specificity:g}"
        if self.cost_ratio is not None:
            return f"least cost, a missed case costing {self.cost_ratio:g} false alarms"
        return f"fixed at {self.fixed:g}"

    @property
    def fixed(self) -> float:
        return 0.5 if self.value is None else self.value


class BootstrapSpec(_Strict):
    resamples: Annotated[int, Field(ge=100, le=100_000)] = 2000
    level: Annotated[float, Field(gt=0.5, lt=1)] = 0.95
    seed: int = 0


class AttributeSpec(_Strict):
    """A subgroup attribute: a test-set column, or a column of a source joined by the entity; numbers in bands."""

    column: str | None = None  # default: the attribute's own name
    source: str | None = None  # a source of this project, joined on the split's entity column
    bins: list[float] | None = Field(None, min_length=1)  # band edges: [18, 45, 65] gives <18, 18-44, 45-64, 65+

    @model_validator(mode="after")
    def _sorted(self) -> AttributeSpec:
        if self.bins is not None and sorted(set(self.bins)) != self.bins:
            raise ValueError("bins: band edges must increase")
        return self


class SubgroupsSpec(_Strict):
    attributes: dict[str, AttributeSpec] = Field(min_length=1)
    intersections: list[Annotated[list[str], Field(min_length=2)]] = []
    min_size: Annotated[int, Field(ge=1)] = 100
    min_events: Annotated[int, Field(ge=0)] = 5  # fewer positives (or negatives) than this: too small as well

    @model_validator(mode="after")
    def _known(self) -> SubgroupsSpec:
        for i, combo in enumerate(self.intersections):
            for name in combo:
                if name not in self.attributes:
                    raise ValueError(f"intersections.{i}: {name!r} is not a declared attribute")
        return self


class UnitError(_Strict):
    """A value recorded in the wrong unit: new = value * scale + offset (Celsius read as Fahrenheit: 1.8, 32)."""

    scale: float = 1.0
    offset: float = 0.0
    note: str = ""


class ServingSpec(_Strict):
    """What the registered model will accept: validation and serving judge inputs by the same ranges.

    A numeric feature's range is its contract's (a plausible clinical range) where the feature is a
    contract column that declares one, else the training range widened by ``range_margin`` of its
    width on each side (and by at least 1 for a whole-number feature, a count one above the training
    maximum being no surprise). ``out_of_range``: refuse such a row, or score it and flag it.
    """

    range_margin: Annotated[float, Field(ge=0, le=10)] = 0.1
    out_of_range: Literal["reject", "flag"] = "reject"


class RobustnessSpec(_Strict):
    noise: Annotated[float, Field(ge=0)] = 0.1  # Gaussian noise, in standard deviations of each numeric feature
    out_of_range: Fraction = 0.05  # share of rows given a value just outside the training range
    missing: Fraction = 0.1  # share of values set missing
    unit_errors: dict[str, UnitError] = {}
    seed: int = 0


class MetricRule(_Strict):
    min: float | None = None
    max: float | None = None
    check: Literal["value", "ci_lower", "ci_upper"] = "value"  # (not "on": YAML reads that as true)

    @model_validator(mode="after")
    def _bound(self) -> MetricRule:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        return self


class GapRule(_Strict):
    max: Annotated[float, Field(ge=0)] | None = None
    check: Literal["value", "ci_lower"] = "value"  # ci_lower: fail only when the whole interval is beyond max
    attributes: list[str] | None = None  # default: every attribute and intersection
    # overall: each group against the whole test set; between_groups: the highest group against the lowest
    compare: Literal["overall", "between_groups"] = "overall"
    min_ratio: Fraction | None = None  # between_groups: the lowest group over the highest, at least this

    @model_validator(mode="after")
    def _bounded(self) -> GapRule:
        if self.max is None and self.min_ratio is None:
            raise ValueError("give max, or min_ratio with compare: between_groups")
        if self.min_ratio is not None and self.compare != "between_groups":
            raise ValueError("min_ratio compares groups with each other: set compare: between_groups")
        return self


class CalibrationRule(_Strict):
    slope: tuple[float, float] | None = None
    intercept: tuple[float, float] | None = None
    ece_max: Annotated[float, Field(ge=0, le=1)] | None = None


class NonInferiority(_Strict):
    metric: str = "auroc"
    margin: Annotated[float, Field(ge=0, le=1)] = 0.02


class PolicySpec(_Strict):
    metrics: dict[str, MetricRule] = {}
    subgroup_gaps: dict[str, GapRule | float] = {}
    calibration: CalibrationRule | None = None
    non_inferiority: NonInferiority | None = None
    prerequisites: list[Literal["data_contract", "leakage_checks"]] = ["data_contract", "leakage_checks"]
    max_quarantined_share: Fraction | None = None  # examples lost to the contracts' quarantine, of all examples
    # The roles whose signatures production requires: the policy's, never the registering author's choice.
    approvals: list[Literal["data_scientist", "ml_engineer", "validator", "clinical_reviewer", "admin"]] = [
        "clinical_reviewer",
        "validator",
    ]
    # A version that passed every gate goes to production by itself, audited: only under a policy that names
    # no signature (a model no clinician or validator must sign, such as a commercial one), said on purpose.
    auto_promote: bool = False

    @model_validator(mode="after")
    def _known(self) -> PolicySpec:
        if len(set(self.approvals)) != len(self.approvals):
            raise ValueError("approvals: name each role once")
        if self.auto_promote and self.approvals:
            raise ValueError(
                f"auto_promote: refused, this policy requires signatures ({', '.join(self.approvals)}): "
                "production waits for them; set approvals: [] to promote without any"
            )
        if not self.approvals and not self.auto_promote:
            raise ValueError("approvals: a policy that names no signature must say auto_promote: true, on purpose")
        for name, rule in self.metrics.items():
            if name not in METRICS:
                raise ValueError(f"metrics.{name}: unknown metric; known: {', '.join(METRICS)}")
            bounded = [v for v in (rule.min, rule.max) if v is not None]
            if name not in ("calibration_slope", "calibration_intercept") and any(not 0 <= v <= 1 for v in bounded):
                raise ValueError(f"metrics.{name}: a bound outside [0, 1]")
        for name in self.subgroup_gaps:
            if name not in GAPS and name not in METRICS:
                raise ValueError(f"subgroup_gaps.{name}: unknown gap; known: {', '.join(GAPS)} or a metric")
        if self.non_inferiority is not None and self.non_inferiority.metric not in METRICS:
            raise ValueError(f"non_inferiority.metric: unknown metric {self.non_inferiority.metric!r}")
        return self

    def gap_rules(self) -> dict[str, GapRule]:
        return {k: v if isinstance(v, GapRule) else GapRule(max=v) for k, v in self.subgroup_gaps.items()}


class ModelCardSpec(_Strict):
    limitations: list[str] = []
    ethical_considerations: list[str] = []


class EvaluateSpec(_Strict):
    threshold: ThresholdSpec = ThresholdSpec()
    bootstrap: BootstrapSpec = BootstrapSpec()
    subgroups: SubgroupsSpec | None = None
    robustness: RobustnessSpec = RobustnessSpec()
    serving: ServingSpec = ServingSpec()
    policy: PolicySpec = PolicySpec()
    model_card: ModelCardSpec = ModelCardSpec()

    @property
    def sha256(self) -> str:
        """The policy's identity: an evaluation gates only under the hash of the workspace's reviewed policy."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    @model_validator(mode="after")
    def _gaps_need_groups(self) -> EvaluateSpec:
        if self.policy.subgroup_gaps and self.subgroups is None:
            raise ValueError("policy.subgroup_gaps: declare subgroups.attributes to check gaps")
        for gap, rule in self.policy.gap_rules().items():
            for name in rule.attributes or []:
                if self.subgroups is None or name not in self.subgroups.attributes:
                    raise ValueError(f"policy.subgroup_gaps.{gap}.attributes: {name!r} is not a declared attribute")
        return self
