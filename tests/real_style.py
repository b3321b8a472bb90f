"""A small real-style clinical extract, made here rather than by the synthetic generator: one flat
table of visits (features and outcome together), R's NA tokens, ages up to 104, repeat visits per
patient, a survival outcome turned into a yes/no label with censored rows left unknown, a year
column and a visit date, no event timestamps to join on. With its contract and project file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

CONTRACT = """\
table: visits
on_failure: quarantine
missing_values: [NA]
columns:
  patient_id: {type: string, nullable: false}
  visit: {type: int}
  visit_date: {type: datetime}
  dx_date: {type: datetime}
  age: {type: int, range: [18, 110]}
  sex: {type: string, allowed: [F, M]}
  bili: {type: float, range: [0, 40]}
  albumin: {type: float, range: [1, 6]}
  stage: {type: int, range: [1, 4]}
  edema: {type: float}
  time_days: {type: int}
  status: {type: int, allowed: [0, 1, 2]}
  died_3y: {type: bool}
"""

PROJECT = """\
name: pbc_mortality
intended_use: Flag adults with primary biliary cholangitis at high risk of death within three years of a clinic visit.
population: Adults followed in the hepatology clinic, all ages, repeat visits.
sources:
  visits: {path: raw/visits.csv}
contracts:
  visits: contracts/visits.yaml
deidentify:
  tables:
    visits:
      columns: {patient_id: pseudonymize, visit_date: shift_dates, dx_date: year, age: age, sex: keep, time_days: drop,
        status: drop}
      quasi_identifiers: [age, sex]
train:
  experiment: pbc
  dataset: visits
  label: died_3y
  drop_missing_labels: true
  split: {kind: grouped, group: patient_id, time: visit_date, test_size: 0.3}
  model: {estimator: logistic_regression}
  seed: 11
evaluate:
  threshold: {target_sensitivity: 0.7, folds: 4}
  bootstrap: {resamples: 300, seed: 3}
  subgroups:
    attributes:
      sex: {}
      age_band: {column: age, bins: [60, 75]}
    min_size: 40
    min_events: 5
  robustness: {unit_errors: {albumin: {scale: 10, note: g/L recorded where g/dL is expected}}}
  policy:
    metrics:
      auroc: {min: 0.6, check: ci_lower}
    subgroup_gaps:
      auroc: {max: 0.25, attributes: [sex]}
    max_quarantined_share: 0.05
"""


def visits(patients: int = 500, seed: int = 5) -> pd.DataFrame:
    """The raw extract, as a registry export would hand it over (text, with NA tokens)."""
    rng = np.random.default_rng(seed)
    stays = rng.integers(1, 4, patients)
    pid = np.repeat(np.arange(patients), stays)
    n = len(pid)
    visit = np.concatenate([np.arange(1, k + 1) for k in stays])
    age0 = np.clip(rng.normal(62, 14, patients), 26, 101).round()
    age = (age0[pid] + visit - 1).astype(int)
    age[:3] = [97, 101, 104]  # the oldest patients of a real clinic
    frailty = rng.normal(0, 1, patients)[pid]
    bili = np.round(np.exp(rng.normal(0.3, 0.9, n) + 0.4 * frailty), 1)
    albumin = np.round(np.clip(rng.normal(3.5, 0.4, n) - 0.15 * frailty, 1.5, 5.5), 2)
    stage = np.clip(np.round(2.5 + frailty + rng.normal(0, 0.7, n)), 1, 4).astype(int)
    risk = -3.0 + 0.045 * (age - 60) + 0.55 * np.log(bili) - 1.1 * (albumin - 3.5) + 0.35 * (stage - 2.5) + frailty
    hazard = np.exp(risk) / 365
    time_days = np.ceil(rng.exponential(1 / hazard)).astype(int)
    censor = np.ceil(rng.uniform(200, 4000, n)).astype(int)
    status = np.where(time_days <= censor, 2, 0)
    status[(status == 0) & (rng.random(n) < 0.1)] = 1  # transplant: censored too
    observed = np.minimum(time_days, censor)
    died = np.where((status == 2) & (observed < 1095), "yes", np.where(observed >= 1095, "no", "NA"))
    year = rng.integers(2008, 2021, patients)[pid] + (visit - 1)
    start = pd.to_datetime(year.astype(str) + "-01-01") + pd.to_timedelta(rng.integers(0, 365, n), unit="D")
    frame = pd.DataFrame(
        {
            "patient_id": [f"PBC{p:04d}" for p in pid],
            "visit": visit,
            "visit_date": start.strftime("%Y-%m-%d"),
            "dx_date": (pd.to_datetime((year - visit + 1).astype(str) + "-06-15")).strftime("%Y-%m-%d"),
            "age": age.astype(str),
            "sex": np.where(rng.random(patients) < 0.88, "F", "M")[pid],
            "bili": bili.astype(str),
            "albumin": albumin.astype(str),
            "stage": stage.astype(str),
            "edema": rng.choice(["0", "0.5", "1"], n, p=[0.8, 0.12, 0.08]),
            "time_days": observed,
            "status": status,
            "died_3y": died,
        }
    )
    for column, share in (("bili", 0.03), ("albumin", 0.05), ("stage", 0.04)):
        frame.loc[rng.random(n) < share, column] = "NA"
    frame.loc[[7, 8], "albumin"] = ["3,4", "abc"]  # a decimal comma and a typo: quarantined
    return frame


def write_project(folder: Path, patients: int = 500) -> Path:
    """The extract, its contract and the project file in ``folder``; returns the project file."""
    (folder / "raw").mkdir(parents=True, exist_ok=True)
    (folder / "contracts").mkdir(exist_ok=True)
    visits(patients).to_csv(folder / "raw" / "visits.csv", index=False)
    (folder / "contracts" / "visits.yaml").write_text(CONTRACT)
    (folder / "medops.yaml").write_text(PROJECT)
    return folder / "medops.yaml"
