"""Writing generated data as CSV, Parquet, or FHIR R4 Bulk Data NDJSON.

Writes go to a temporary folder that is renamed into place once every file is complete,
so an interrupted run never leaves a half-written data set behind.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from medops.errors import Conflict, InvalidInput
from medops.synth.generator import SynthData
from medops.synth.names import FORMATS

LOINC = {  # code -> (LOINC code, display, UCUM code per unit)
    "temperature": ("8310-5", "Body temperature", {"C": "Cel", "F": "[degF]"}),
    "heart_rate": ("8867-4", "Heart rate", {"/min": "/min"}),
    "hba1c": ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", {"%": "%"}),
    "creatinine": ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", {"mg/dL": "mg/dL"}),
}


def write(data: SynthData, out_dir: Path, fmt: str) -> list[Path]:
    """Write every table into ``out_dir`` (which must not exist yet); return the files."""
    if fmt not in FORMATS:
        raise InvalidInput(f"unknown format {fmt!r}", hint=f"formats: {', '.join(FORMATS)}")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise Conflict(f"{out_dir} exists and is not empty", hint="choose a new folder for generated data")
    tmp = out_dir.with_name(f".{out_dir.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        if fmt == "fhir":
            _write_fhir(data, tmp)
        else:
            for name, frame in data.tables().items():
                if fmt == "csv":
                    frame.to_csv(tmp / f"{name}.csv", index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
                else:
                    frame.to_parquet(tmp / f"{name}.parquet", index=False)
        if out_dir.exists():
            out_dir.rmdir()
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return sorted(out_dir.iterdir())


def _iso(value: Any) -> str:
    return str(pd.Timestamp(value).strftime("%Y-%m-%dT%H:%M:%SZ"))


def _rows(frame: pd.DataFrame) -> Iterator[dict[str, Any]]:
    columns = list(frame.columns)
    for values in zip(*(frame[c].to_numpy() for c in columns), strict=True):
        yield dict(zip(columns, values, strict=True))


def _patient(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": r["patient_id"],
        "identifier": [
            {"system": "urn:medops:synthetic:mrn", "value": r["mrn"]},
            {"system": "http://hl7.org/fhir/sid/us-ssn", "value": r["ssn"]},
        ],
        "name": [{"family": r["last_name"], "given": [r["first_name"]]}],
        "gender": "female" if r["sex"] == "F" else "male",
        "birthDate": str(r["birth_date"]),
        "telecom": [{"system": "phone", "value": r["phone"]}, {"system": "email", "value": r["email"]}],
        "address": [{"line": [r["address"]], "city": r["city"], "state": r["state"], "postalCode": r["zip"]}],
        "extension": [
            {"url": "urn:medops:synthetic:race-ethnicity", "valueString": r["race_ethnicity"]},
            {"url": "urn:medops:synthetic:payer", "valueString": r["payer"]},
        ],
    }


def _encounter(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "id": r["encounter_id"],
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
        "subject": {"reference": f"Patient/{r['patient_id']}"},
        "period": {"start": _iso(r["admit_time"]), "end": _iso(r["discharge_time"])},
        "reasonCode": [{"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": r["primary_dx"]}]}],
        "serviceProvider": {"display": r["site"]},
        "participant": [{"individual": {"reference": f"Practitioner/{r['attending_hcp_id']}"}}],
    }


def _observation(r: dict[str, Any], index: int) -> dict[str, Any]:
    loinc, display, ucum = LOINC[r["code"]]
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": f"O{index:010d}",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": loinc, "display": display}], "text": r["code"]},
        "subject": {"reference": f"Patient/{r['patient_id']}"},
        "encounter": {"reference": f"Encounter/{r['encounter_id']}"},
        "effectiveDateTime": _iso(r["observed_at"]),
        "method": {"text": r["method"]},
    }
    if isinstance(r["value"], float) and math.isnan(r["value"]):
        resource["dataAbsentReason"] = {"text": "not performed"}
    else:
        resource["valueQuantity"] = {
            "value": float(r["value"]),
            "unit": r["unit"],
            "system": "http://unitsofmeasure.org",
            "code": ucum[r["unit"]],
        }
    return resource


def _medication(r: dict[str, Any], index: int) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": f"M{index:010d}",
        "status": "completed",
        "intent": "order",
        "subject": {"reference": f"Patient/{r['patient_id']}"},
        "medicationCodeableConcept": {"text": r["drug"]},
        "authoredOn": _iso(r["fill_date"]),
        "requester": {"reference": f"Practitioner/{r['prescriber_hcp_id']}"},
        "dispenseRequest": {"expectedSupplyDuration": {"value": int(r["days_supplied"]), "unit": "days"}},
    }


def _write_fhir(data: SynthData, folder: Path) -> None:
    def dump(name: str, resources: Iterator[dict[str, Any]]) -> None:
        with open(folder / f"{name}.ndjson", "w", encoding="utf-8") as out:
            for resource in resources:
                out.write(json.dumps(resource, separators=(",", ":"), ensure_ascii=False) + "\n")

    dump("Patient", (_patient(r) for r in _rows(data.patients)))
    dump("Encounter", (_encounter(r) for r in _rows(data.encounters)))
    dump("Observation", (_observation(r, i) for i, r in enumerate(_rows(data.observations))))
    dump("MedicationRequest", (_medication(r, i) for i, r in enumerate(_rows(data.medications))))
