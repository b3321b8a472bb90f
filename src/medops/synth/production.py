"""What a hospital's systems send a readmission model at each discharge, from generated data.

One row per encounter, as the EHR holds it at discharge: the patient's age at admission, sex and
site, the stay's length and primary diagnosis, and the stay's first temperature, heart rate, HbA1c
and creatinine (missing when not drawn). Nothing passes a data contract on the way: a site that
records Fahrenheit sends Fahrenheit, a lost decimal point arrives as it was typed. Beside the
features: the discharge time (when the model is asked), the 30-day readmission outcome and when
it became known (missing while it is not). Monitoring's synthetic proof scores these rows month
by month.
"""

from __future__ import annotations

import pandas as pd

from medops.synth.generator import SynthData

FEATURES = [
    "age",
    "sex",
    "site",
    "length_of_stay_days",
    "primary_dx",
    "temperature",
    "heart_rate",
    "hba1c",
    "creatinine",
]
LABS = ("temperature", "heart_rate", "hba1c", "creatinine")


def served_rows(data: SynthData) -> pd.DataFrame:
    """One row per encounter: ``encounter_id``, FEATURES, ``discharge_time``, ``readmitted_30d`` and
    ``label_available_at``, in discharge order."""
    encounters = data.encounters
    patients = data.patients.set_index("patient_id")
    first = (
        data.observations[data.observations["code"].isin(LABS)]
        .sort_values("observed_at", kind="stable")
        .drop_duplicates(["encounter_id", "code"])
        .pivot(index="encounter_id", columns="code", values="value")
    )
    rows = encounters.join(first.reindex(columns=list(LABS)), on="encounter_id")
    owner = patients.loc[rows["patient_id"]]
    admitted = pd.to_datetime(rows["admit_time"])
    born = pd.to_datetime(owner["birth_date"]).to_numpy()
    rows["age"] = (admitted - born).dt.days.to_numpy() // 365.25
    rows["sex"] = owner["sex"].to_numpy()
    outcome = data.outcomes["readmission_30d"].set_index("encounter_id")
    rows["readmitted_30d"] = outcome.loc[rows["encounter_id"], "readmitted_30d"].to_numpy()
    rows["label_available_at"] = outcome.loc[rows["encounter_id"], "label_available_at"].to_numpy()
    columns = ["encounter_id", *FEATURES, "discharge_time", "readmitted_30d", "label_available_at"]
    return rows[columns].sort_values("discharge_time", kind="stable").reset_index(drop=True)
