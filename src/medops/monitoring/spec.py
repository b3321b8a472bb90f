"""The project file's ``monitor`` section: the thresholds a window is judged by.

Verdicts are on effect sizes, each with a p-value that must also be below ``alpha``: a large
window with a negligible shift is significant but not material, and a small window with a large
shift may be chance. The defaults are the usual ones (PSI 0.2 is "major shift" in credit-risk
practice, where the index comes from; KS, Wasserstein in reference standard deviations, Cramer's V
and Jensen-Shannon at 0.1 are small-to-moderate effects) and docs/monitoring.md says why.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

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


class MonitorSpec(_Strict):
    drift: DriftSpec = DriftSpec()
    quality: QualitySpec = QualitySpec()
