"""The project file's ``monitor`` section: the thresholds a window is judged by.

Verdicts are on effect sizes, each with a p-value that must also be below ``alpha``: a large
window with a negligible shift is significant but not material, and a small window with a large
shift may be chance. The defaults are the usual ones (PSI 0.2 is "major shift" in credit-risk
practice, where the index comes from; KS, Wasserstein in reference standard deviations, Cramer's V
and Jensen-Shannon at 0.1 are small-to-moderate effects) and docs/monitoring.md says why.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    from medops.platform import Platform

Positive = Annotated[float, Field(gt=0)]
Fraction = Annotated[float, Field(gt=0, le=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DriftSpec(_Strict):
    """A feature has drifted when one effect reaches its threshold and its test's p-value is below alpha."""

    psi: Positive = 0.2
    ks: Fraction = 0.1
    wasserstein: Positive = 0.1  # in standard deviations of the reference
    jensen_shannon: Fraction = 0.1
    cramers_v: Fraction = 0.1
    alpha: Fraction = 0.01
    min_rows: Annotated[int, Field(ge=1)] = 200  # a smaller window is reported, not judged


class QualitySpec(_Strict):
    """Data quality, judged on shares of the window's rows."""

    missing_increase: Fraction = 0.05  # missing share up by this much (absolute) over the reference
    out_of_range: Fraction = 0.01  # values outside the range the model serves
    new_category: Fraction = 0.01  # values of a category the reference never held


class PerformanceSpec(_Strict):
    """Where a model's outcomes arrive (a dataset of this workspace) and how windows are judged on them."""

    labels: str = Field(pattern=r"^[a-z][a-z0-9_]*$")  # the dataset's name: its current version is read
    entity: str = Field(min_length=1)  # its entity column, and the key a logged prediction names
    label: str = Field(min_length=1)  # the outcome column (1 or true: the positive class)
    time: str = Field(min_length=1)  # the event the outcome belongs to (a discharge), matched to the prediction's
    available: str | None = None  # when the outcome became known; None: at its event time
    match_within: str = Field("1d", pattern=r"^[1-9][0-9]*[mhd]$")  # the largest gap between the two times
    min_labels: Annotated[int, Field(ge=1)] = 100
    min_completeness: Fraction = 0.5  # share of the window's predictions that must have their label
    max_drop: dict[Literal["auroc", "sensitivity", "ppv", "calibration_slope", "calibration_intercept"], Positive] = {
        "auroc": 0.05,
        "sensitivity": 0.1,
        "ppv": 0.1,
        "calibration_slope": 0.2,
        "calibration_intercept": 0.2,  # log-odds: observed odds about a fifth off the predicted
    }
    resamples: Annotated[int, Field(ge=100, le=10_000)] = 500
    level: Annotated[float, Field(gt=0.5, lt=1)] = 0.95


Channel = Literal["log", "webhook", "email"]
_NAME = r"^[a-z][a-z0-9_]{0,63}$"


class AlertRule(_Strict):
    """An alert when ``metric`` (a window metric, or a pattern such as ``drift.*.psi``: any match) is
    above or below a value in each of the last ``windows`` windows of a model version."""

    name: str = Field(pattern=_NAME)
    metric: str = Field(min_length=1)
    above: float | None = None
    below: float | None = None
    windows: Annotated[int, Field(ge=1, le=24)] = 1
    severity: Literal["info", "warning", "critical"] = "warning"
    channels: list[Channel] = ["log"]
    retrain: bool = False  # an alert of this rule runs the workspace's pipeline (trigger alert:ID)

    @model_validator(mode="after")
    def _one_bound(self) -> AlertRule:
        if (self.above is None) == (self.below is None):
            raise ValueError("give one of above or below")
        return self

    def breached(self, value: float) -> bool:
        return value > self.above if self.above is not None else value < float(self.below or 0.0)

    @property
    def condition(self) -> str:
        return f"{self.metric} > {self.above:g}" if self.above is not None else f"{self.metric} < {self.below:g}"


# What a project without rules gets: each kind of verdict a window can reach raises an alert.
DEFAULT_RULES = (
    AlertRule(name="feature_drift", metric="drift.features", above=0, severity="warning"),
    AlertRule(name="prediction_drift", metric="prediction.drifted", above=0, severity="warning"),
    AlertRule(name="unit_change", metric="quality.unit_changes", above=0, severity="critical"),
    AlertRule(name="data_quality", metric="quality.flags", above=0, severity="warning"),
    AlertRule(name="performance_decay", metric="performance.degraded", above=0, severity="critical"),
    AlertRule(name="bias_drift", metric="bias.degraded_groups", above=0, severity="critical"),
)


class WebhookSpec(_Strict):
    """JSON POSTed to ``url``, signed with HMAC-SHA256 by the secret in the environment variable named."""

    url: str = Field(pattern=r"^https?://")
    secret_env: str = Field("MEDOPS_WEBHOOK_SECRET", pattern=r"^[A-Z_][A-Z0-9_]*$")
    attempts: Annotated[int, Field(ge=1, le=10)] = 4
    timeout: Positive = 5.0


class EmailSpec(_Strict):
    """Mail through an SMTP server; the login, if any, from the environment variables named."""

    host: str = Field(min_length=1)
    port: Annotated[int, Field(ge=1, le=65535)] = 587
    sender: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    to: list[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]] = Field(min_length=1)
    starttls: bool = True
    username_env: str | None = Field(None, pattern=r"^[A-Z_][A-Z0-9_]*$")
    password_env: str | None = Field(None, pattern=r"^[A-Z_][A-Z0-9_]*$")
    timeout: Positive = 10.0


class ChannelsSpec(_Strict):
    webhook: WebhookSpec | None = None
    email: EmailSpec | None = None


class MonitorSpec(_Strict):
    drift: DriftSpec = DriftSpec()
    quality: QualitySpec = QualitySpec()
    performance: PerformanceSpec | None = None  # None: no outcomes to judge performance on
    alerts: list[AlertRule] | None = None  # None: DEFAULT_RULES; [] turns alerts off
    channels: ChannelsSpec = ChannelsSpec()

    @property
    def rules(self) -> tuple[AlertRule, ...]:
        return DEFAULT_RULES if self.alerts is None else tuple(self.alerts)

    @model_validator(mode="after")
    def _consistent(self) -> MonitorSpec:
        names = [r.name for r in self.rules]
        if len(set(names)) != len(names):
            raise ValueError("alerts: each rule needs its own name")
        for rule in self.rules:
            for channel in rule.channels:
                if channel != "log" and getattr(self.channels, channel) is None:
                    raise ValueError(f"alerts.{rule.name}: channel {channel!r} is not configured under channels")
        return self


def governing_spec(ws: Platform) -> MonitorSpec:
    """The workspace's reviewed project file's monitor section (the defaults when it has none): what
    stored windows and alerts are judged by. Another file's section only explores."""
    from pydantic import ValidationError

    from medops.errors import ConfigError
    from medops.evaluation.governing import governing_section

    found = governing_section(ws, "monitor")
    if found is None or found[1] is None:
        return MonitorSpec()
    path, section, _ = found
    try:
        return MonitorSpec.model_validate(section)
    except ValidationError as exc:
        raise ConfigError(
            f"{path}: the monitor section is not valid ({exc.errors()[0]['msg']})", code="project_file_invalid"
        ) from None
