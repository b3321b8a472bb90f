"""A generated world as an EHR extract taken on a given day: what was on record by then.

A hospital does not send its history once: each extract holds what the systems knew on the
day it was taken. Cutting one generated world at two days gives two extracts that agree on
their common past (the same patients, stays, results and identifiers) and differ only by what
happened, or became known, in between: the second adds the new months' stays and the outcomes
that have since come in. That is what retraining on "the latest data" reads.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pandas as pd

from medops.synth.generator import SynthData

# Each outcome: the column of its event time, and the columns unknown until label_available_at.
_OUTCOMES = {
    "readmission_30d": ("label_time", ["readmitted_30d"]),
    "nonadherence_90d": ("index_fill_date", ["pdc_90d", "nonadherent_90d"]),
    "hcp_churn": ("index_date", ["churned"]),
}
_KNOWN_AFTER = {"nonadherence_90d": pd.Timedelta(days=90)}  # a PDC over 90 days is known 90 days on


def on_record(data: SynthData, day: date) -> SynthData:
    """The tables as an extract taken at the start of ``day`` holds them.

    A stay is on record once its patient is discharged (one under way is left out, as its notes
    and outcome are); results, fills and notes by their own times; a patient once they have a
    stay on record; an outcome's row with its event, its value only once it was known.
    """
    cut = pd.Timestamp(day)
    encounters = data.encounters[pd.to_datetime(data.encounters["discharge_time"]) < cut]
    stays = set(encounters["encounter_id"])
    patients = data.patients[data.patients["patient_id"].isin(set(encounters["patient_id"]))]

    def by_time(frame: pd.DataFrame, column: str) -> pd.DataFrame:
        return frame[pd.to_datetime(frame[column]) < cut].reset_index(drop=True)

    observations = by_time(data.observations, "observed_at")
    outcomes = {}
    for name, frame in data.outcomes.items():
        time, values = _OUTCOMES.get(name, (None, []))
        if time is None:
            outcomes[name] = frame
            continue
        kept = by_time(frame, time).copy()
        if "label_available_at" in kept.columns:
            known = pd.to_datetime(kept["label_available_at"])
        else:
            known = pd.to_datetime(kept[time]) + _KNOWN_AFTER.get(name, pd.Timedelta(0))
        for column in values:
            kept[column] = kept[column].astype(_nullable(kept[column])).mask(known >= cut)
        outcomes[name] = kept
    return replace(
        data,
        patients=patients.reset_index(drop=True),
        encounters=encounters.reset_index(drop=True),
        observations=observations[observations["encounter_id"].isin(stays)].reset_index(drop=True),
        medications=by_time(data.medications, "fill_date"),
        hcp_activity=by_time(data.hcp_activity, "reported_at"),
        notes=by_time(data.notes, "written_at"),
        outcomes=outcomes,
    )


def _nullable(column: pd.Series) -> str:
    """A dtype that holds a missing value without turning integers into floats."""
    if pd.api.types.is_integer_dtype(column.dtype):
        return "Int64"
    return str(column.dtype) if pd.api.types.is_float_dtype(column.dtype) else "object"
