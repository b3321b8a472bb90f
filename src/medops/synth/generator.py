"""Realistic, internally consistent synthetic clinical data, deterministic by seed.

The causal model (what drives each outcome) is documented in docs/synthetic-data.md and
in the functions below; models trained on this data have real signal to learn, and the
scenarios change it in known ways after the drift point (the period's midpoint unless
``drift_at`` names another day):

- ``baseline``: nothing changes.
- ``aging``: half the patients are a cohort 10 years older whose care starts at the drift
  point, so admissions after it are older on average (covariate shift, visible in birth dates).
- ``new_treatment``: after the drift point a transitional-care program lowers every
  discharge's readmission odds (by a fifth) and takes most of the risk that age and a long
  stay carried, and a new treatment halves heart failure's (concept drift: same inputs, a
  different outcome relation, so the model that learned the old one ranks and calibrates worse).
- ``unit_change``: after the drift point site ``south`` records temperature in F.
- ``missingness_spike``: after the drift point 40% of labs at site ``north`` are missing.
- ``label_delay``: outcomes of the last 90 days become known 60-150 days late (or not yet).

Everything is vectorized with NumPy; one Generator seeded once draws every number, in a
fixed order, so the same seed gives the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import pandas as pd

from medops.errors import InvalidInput
from medops.synth import vocab
from medops.synth.names import SCENARIOS

SITES = ("north", "south")
CONDITIONS = ("chf", "diabetes", "copd", "ckd", "hypertension")
DAY = np.timedelta64(1, "D")


@dataclass
class SynthData:
    """The generated tables; identifiers are raw PHI on purpose (de-identification's input)."""

    patients: pd.DataFrame
    encounters: pd.DataFrame
    observations: pd.DataFrame
    medications: pd.DataFrame
    hcps: pd.DataFrame
    hcp_activity: pd.DataFrame
    notes: pd.DataFrame
    outcomes: dict[str, pd.DataFrame] = field(default_factory=dict)
    scenario: str = "baseline"
    seed: int = 0

    def tables(self) -> dict[str, pd.DataFrame]:
        out = {
            "patients": self.patients,
            "encounters": self.encounters,
            "observations": self.observations,
            "medications": self.medications,
            "hcps": self.hcps,
            "hcp_activity": self.hcp_activity,
            "notes": self.notes,
        }
        out.update({f"outcome_{name}": frame for name, frame in self.outcomes.items()})
        return out


def _pick(rng: np.random.Generator, options: list[str], size: int, p: list[float] | None = None) -> np.ndarray:
    chosen: np.ndarray = np.asarray(options, dtype=object)[rng.choice(len(options), size=size, p=p)]
    return chosen


def _digits(rng: np.random.Generator, size: int, width: int) -> np.ndarray:
    out: np.ndarray = pd.Series(rng.integers(0, 10**width, size=size)).astype(str).str.zfill(width).to_numpy(object)
    return out


def _sigmoid(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = 1.0 / (1.0 + np.exp(-x))
    return out


def generate(
    patients: int = 1000,
    *,
    seed: int = 0,
    scenario: str = "baseline",
    start: date = date(2025, 1, 1),
    days: int = 365,
    hcps: int | None = None,
    drift_at: date | None = None,
) -> SynthData:
    """Generate ``patients`` patients with a year (``days``) of care starting at ``start``.

    ``hcps`` is the number of HCPs (prescribers); by default one per 200 patients, at least 10.
    ``drift_at`` is the day the scenario's change begins (default: the period's midpoint).
    """
    if scenario not in SCENARIOS:
        raise InvalidInput(f"unknown scenario {scenario!r}", hint=f"scenarios: {', '.join(SCENARIOS)}")
    if patients < 1:
        raise InvalidInput("the number of patients must be at least 1")
    if days < 60:
        raise InvalidInput("the period must span at least 60 days")
    if hcps is not None and hcps < 1:
        raise InvalidInput("the number of HCPs must be at least 1")
    end = start + timedelta(days=days)
    if drift_at is not None and not start < drift_at < end:
        raise InvalidInput(f"the drift day {drift_at} is outside the period {start} to {end}")
    rng = np.random.default_rng(seed)
    t0 = np.datetime64(start, "s")
    drift = t0 + np.timedelta64((drift_at - start).days if drift_at else days // 2, "D")
    pts = _patients(rng, patients, t0, aging=scenario == "aging")
    prescribers, activity, churn = _hcps(rng, max(10, patients // 200) if hcps is None else hcps, t0, days)
    pts["pcp_id"] = prescribers["hcp_id"].to_numpy()[rng.integers(0, len(prescribers), size=patients)]
    enc = _encounters(rng, pts, t0, days, drift, scenario)
    obs = _observations(rng, enc, pts, drift, scenario)
    meds, adherence = _medications(rng, pts, enc)
    notes = _notes(rng, enc, pts)
    readmission = _readmission_labels(rng, enc, t0, days, drift, scenario)
    data = SynthData(
        patients=pts.drop(columns=[c for c in pts.columns if c.startswith("_")]),
        encounters=enc.drop(columns=[c for c in enc.columns if c.startswith("_")]),
        observations=obs,
        medications=meds,
        hcps=prescribers,
        hcp_activity=activity,
        notes=notes,
        outcomes={"readmission_30d": readmission, "nonadherence_90d": adherence, "hcp_churn": churn},
        scenario=scenario,
        seed=seed,
    )
    return data


def _patients(rng: np.random.Generator, n: int, t0: np.datetime64, *, aging: bool) -> pd.DataFrame:
    sex = _pick(rng, ["F", "M"], n)
    female = sex == "F"
    first = np.where(female, _pick(rng, vocab.FIRST_F, n), _pick(rng, vocab.FIRST_M, n))
    last = _pick(rng, vocab.LAST, n)
    age = np.clip(rng.normal(64, 16, n), 18, 102).astype(int)
    late = rng.random(n) < 0.5 if aging else np.zeros(n, bool)
    age = np.where(late, np.minimum(age + 10, 102), age)
    birth = t0 - (age * 365.25 * DAY).astype("timedelta64[D]") - rng.integers(0, 365, n) * DAY
    place = rng.integers(0, len(vocab.PLACES), n)
    places = np.asarray(vocab.PLACES, dtype=object)
    payer = np.where(age >= 65, "medicare", _pick(rng, ["medicaid", "commercial", "self_pay"], n, [0.3, 0.6, 0.1]))
    older = (age - 64).clip(0).astype(float)
    prevalence = {  # chronic conditions; heart failure and kidney disease grow with age
        "chf": 0.12 + 0.004 * older,
        "diabetes": np.full(n, 0.25),
        "copd": np.full(n, 0.1),
        "ckd": 0.12 + 0.003 * older,
        "hypertension": np.full(n, 0.45),
    }
    latent = {c: rng.random(n) < prevalence[c] for c in CONDITIONS}
    frame = pd.DataFrame(
        {
            "patient_id": [f"P{i:08d}" for i in range(n)],
            "mrn": np.char.add("MRN", _digits(rng, n, 8).astype(str)),
            "ssn": _ssn(rng, n),
            "first_name": first,
            "last_name": last,
            "sex": sex,
            "birth_date": pd.to_datetime(birth).date,
            "race_ethnicity": _pick(rng, vocab.RACE_ETHNICITY, n, vocab.RACE_WEIGHTS),
            "address": pd.Series(rng.integers(1, 9999, n)).astype(str).to_numpy(dtype=object)
            + " "
            + _pick(rng, vocab.STREETS, n)
            + " "
            + _pick(rng, vocab.STREET_KINDS, n),
            "city": places[place, 0],
            "state": places[place, 1],
            "zip": places[place, 2],
            "phone": _phone(rng, n),
            "email": (
                pd.Series(first).str.lower()
                + "."
                + pd.Series(last).str.lower()
                + pd.Series(rng.integers(1, 999, n)).astype(str)
                + "@example.org"
            ).to_numpy(dtype=object),
            "payer": payer,
            "home_site": _pick(rng, list(SITES), n, [0.55, 0.45]),
        }
    )
    for name, flag in latent.items():
        frame[f"_{name}"] = flag
    frame["_age"] = age
    frame["_late"] = late
    frame["_frailty"] = rng.normal(0, 1, n)
    return frame


def _ssn(rng: np.random.Generator, n: int) -> np.ndarray:
    area = rng.integers(1, 900, n)
    area = np.where(area == 666, 667, area)
    group, serial = rng.integers(1, 100, n), rng.integers(1, 10000, n)
    out: np.ndarray = (
        pd.Series(area).astype(str).str.zfill(3)
        + "-"
        + pd.Series(group).astype(str).str.zfill(2)
        + "-"
        + pd.Series(serial).astype(str).str.zfill(4)
    ).to_numpy(dtype=object)
    return out


def _phone(rng: np.random.Generator, n: int) -> np.ndarray:
    area, exchange, line = rng.integers(201, 990, n), rng.integers(200, 999, n), rng.integers(0, 10000, n)
    out: np.ndarray = (
        pd.Series(area).astype(str)
        + "-"
        + pd.Series(exchange).astype(str)
        + "-"
        + pd.Series(line).astype(str).str.zfill(4)
    ).to_numpy(dtype=object)
    return out


def _encounters(
    rng: np.random.Generator, pts: pd.DataFrame, t0: np.datetime64, days: int, drift: np.datetime64, scenario: str
) -> pd.DataFrame:
    """Index admissions spaced more than 30 days apart, plus readmissions drawn from the model."""
    n = len(pts)
    burden = sum(pts[f"_{c}"].to_numpy().astype(int) for c in CONDITIONS)
    count = np.clip(rng.poisson(0.8 + 0.5 * burden), 1, 6)
    owner = np.repeat(np.arange(n), count)
    rank = np.arange(len(owner)) - np.repeat(np.cumsum(count) - count, count)
    drift_day = int((drift - t0) // DAY)
    first_day = np.where(pts["_late"].to_numpy()[owner], drift_day, 0)  # the aging cohort arrives at drift
    slot = (days - first_day) / np.repeat(count, count)
    offset_days = first_day + rank * slot + rng.random(len(owner)) * np.maximum(slot - 45, 1)
    admit = t0 + (offset_days * 86400).astype("timedelta64[s]")
    age = pts["_age"].to_numpy()[owner]
    los_days = np.clip(rng.lognormal(1.1 + 0.15 * burden[owner], 0.5), 0.2, 40)
    discharge = admit + (los_days * 86400).astype("timedelta64[s]")
    primary = np.array([vocab.DIAGNOSES[c][0] for c in CONDITIONS] + ["J18.9", "A41.9"], dtype=object)
    cond_idx = rng.integers(0, len(primary), len(owner))
    frame = pd.DataFrame(
        {
            "encounter_id": [f"E{i:09d}" for i in range(len(owner))],
            "patient_id": pts["patient_id"].to_numpy()[owner],
            "site": np.where(
                rng.random(len(owner)) < 0.9,
                pts["home_site"].to_numpy()[owner],
                np.where(pts["home_site"].to_numpy()[owner] == "north", "south", "north"),
            ),
            "admit_time": admit,
            "discharge_time": discharge,
            "length_of_stay_days": np.round(los_days, 2),
            "primary_dx": primary[cond_idx],
            "attending_hcp_id": pts["pcp_id"].to_numpy()[owner],
        }
    )
    frame["_owner"], frame["_age"] = owner, age
    return _add_readmissions(rng, frame, pts, drift, scenario)


def _readmission_risk(frame: pd.DataFrame, pts: pd.DataFrame, drift: np.datetime64, scenario: str) -> np.ndarray:
    """The documented causal model: logit of a 30-day readmission after each admission."""
    o = frame["_owner"].to_numpy()
    chf = pts["_chf"].to_numpy()[o].astype(float)
    treated = (scenario == "new_treatment") & (frame["admit_time"].to_numpy() >= drift)
    age_effect = np.where(treated, 0.008, 0.025)
    stay_effect = np.where(treated, 0.02, 0.06)
    chf_effect = np.where(treated, 0.45, 0.9)
    logit = (
        -2.6
        + age_effect * (frame["_age"].to_numpy() - 65)
        + chf_effect * chf
        + 0.5 * pts["_ckd"].to_numpy()[o]
        + 0.35 * pts["_copd"].to_numpy()[o]
        + 0.3 * pts["_diabetes"].to_numpy()[o]
        + stay_effect * frame["length_of_stay_days"].to_numpy()
        + 0.4 * pts["_frailty"].to_numpy()[o]
        + 0.3 * (pts["payer"].to_numpy()[o] == "medicaid")
        - 0.25 * treated
    )
    return _sigmoid(logit)


def _add_readmissions(
    rng: np.random.Generator, frame: pd.DataFrame, pts: pd.DataFrame, drift: np.datetime64, scenario: str
) -> pd.DataFrame:
    risk = _readmission_risk(frame, pts, drift, scenario)
    hit = rng.random(len(frame)) < risk
    back = frame[hit].copy()
    gap = rng.integers(1, 31, len(back)) * DAY - rng.integers(0, 3600, len(back)) * np.timedelta64(1, "s")
    los = np.clip(rng.lognormal(1.3, 0.5, len(back)), 0.3, 40)
    back["admit_time"] = back["discharge_time"].to_numpy() + gap
    back["discharge_time"] = back["admit_time"].to_numpy() + (los * 86400).astype("timedelta64[s]")
    back["length_of_stay_days"] = np.round(los, 2)
    back["encounter_id"] = [f"E{i:09d}" for i in range(len(frame), len(frame) + len(back))]
    out = pd.concat([frame, back], ignore_index=True).sort_values(["patient_id", "admit_time"], kind="stable")
    return out.reset_index(drop=True)


def _readmission_labels(
    rng: np.random.Generator, enc: pd.DataFrame, t0: np.datetime64, days: int, drift: np.datetime64, scenario: str
) -> pd.DataFrame:
    """The label as a hospital would compute it: another admission within 30 days of discharge."""
    nxt = enc.groupby("patient_id")["admit_time"].shift(-1)
    gap = (nxt - enc["discharge_time"]).dt.total_seconds() / 86400
    label = (gap <= 30).astype(int)
    known = enc["discharge_time"] + pd.Timedelta(days=30)
    end = pd.Timestamp(t0 + np.timedelta64(days, "D"))
    if scenario == "label_delay":
        late = enc["discharge_time"] >= end - pd.Timedelta(days=90)
        known = known.where(~late, known + pd.to_timedelta(rng.integers(60, 150, len(enc)), unit="D"))
    frame = pd.DataFrame(
        {
            "encounter_id": enc["encounter_id"],
            "patient_id": enc["patient_id"],
            "label_time": enc["discharge_time"],
            "readmitted_30d": label,
            "label_available_at": known,
        }
    )
    frame.loc[frame["label_available_at"] > end, "readmitted_30d"] = pd.NA
    frame["readmitted_30d"] = frame["readmitted_30d"].astype("Int8")
    return frame


def _observations(
    rng: np.random.Generator, enc: pd.DataFrame, pts: pd.DataFrame, drift: np.datetime64, scenario: str
) -> pd.DataFrame:
    """Vitals and labs with units and measurement method; sites keep different conventions."""
    m = len(enc)
    o = enc["_owner"].to_numpy()
    at = enc["admit_time"].to_numpy() + rng.integers(600, 7200, m) * np.timedelta64(1, "s")
    site = enc["site"].to_numpy()
    after = enc["admit_time"].to_numpy() >= drift
    temp_c = np.round(rng.normal(37.0, 0.6, m) + 0.8 * (enc["primary_dx"].to_numpy() == "A41.9"), 1)
    fahrenheit = (scenario == "unit_change") & (site == "south") & after
    temp = np.where(fahrenheit, np.round(temp_c * 9 / 5 + 32, 1), temp_c)
    method = np.where(site == "north", "oral", "tympanic")
    hr = np.clip(np.round(rng.normal(82, 14, m) + 10 * pts["_frailty"].to_numpy()[o]), 35, 190)
    a1c = np.round(rng.normal(5.6, 0.5, m) + 2.2 * pts["_diabetes"].to_numpy()[o] * rng.random(m), 1)
    creat = np.round(np.abs(rng.normal(0.95, 0.2, m) + 1.1 * pts["_ckd"].to_numpy()[o]), 2)
    # Entry errors real feeds have, for contracts to catch: a lost decimal point (370 for
    # 37.0) in 0.2% of temperatures, a heart rate of 0 from a disconnected lead in 0.1%.
    temp = np.where(rng.random(m) < 0.002, np.round(temp * 10, 1), temp)
    hr = np.where(rng.random(m) < 0.001, 0.0, hr)
    parts = [
        ("temperature", temp, np.where(fahrenheit, "F", "C"), method, np.ones(m, bool)),
        ("heart_rate", hr, np.full(m, "/min"), np.full(m, "monitor"), np.ones(m, bool)),
        ("hba1c", a1c, np.full(m, "%"), np.full(m, "lab"), rng.random(m) < 0.5),
        ("creatinine", creat, np.full(m, "mg/dL"), np.full(m, "lab"), rng.random(m) < 0.7),
    ]
    frames = []
    for code, value, unit, how, keep in parts:
        values = value.astype(float)
        if scenario == "missingness_spike" and how[0] == "lab":
            values = np.where(after & (site == "north") & (rng.random(m) < 0.4), np.nan, values)
        frames.append(
            pd.DataFrame(
                {
                    "encounter_id": enc["encounter_id"].to_numpy()[keep],
                    "patient_id": enc["patient_id"].to_numpy()[keep],
                    "code": code,
                    "value": values[keep],
                    "unit": unit[keep],
                    "method": how[keep],
                    "observed_at": at[keep],
                    "site": site[keep],
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _medications(rng: np.random.Generator, pts: pd.DataFrame, enc: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fills of chronic drugs; adherence is latent and drives the 90-day PDC outcome."""
    chronic = [c for c in ("chf", "diabetes", "hypertension", "copd")]
    on = np.column_stack([pts[f"_{c}"].to_numpy() for c in chronic])
    has = on.any(axis=1)
    idx = np.flatnonzero(has)
    drug = np.asarray([vocab.DRUGS[c] for c in chronic], dtype=object)[np.argmax(on[idx], axis=1)]
    first_admit = enc.groupby("_owner")["discharge_time"].min()
    start = first_admit.reindex(idx).to_numpy()
    age = pts["_age"].to_numpy()[idx]
    self_pay = pts["payer"].to_numpy()[idx] == "self_pay"
    adherence = _sigmoid(0.9 + 0.03 * (age - 60) - 1.2 * self_pay + rng.normal(0, 1.1, len(idx)))
    fills = 6
    gaps = 30 + rng.gamma(1.0 + 6 * (1 - adherence)[:, None], 6 * (1 - adherence)[:, None] + 0.1, (len(idx), fills))
    gaps[:, 0] = 0
    offset = np.cumsum(gaps, axis=1)
    covered = np.clip(np.minimum(offset + 30, 90) - np.minimum(offset, 90), 0, 30).sum(axis=1)
    pdc = np.round(np.minimum(covered, 90) / 90, 3)  # the label follows the PDC as published
    owner = np.repeat(idx, fills)
    fill_time = np.repeat(start, fills) + (offset.ravel() * 86400).astype("timedelta64[s]")
    meds = pd.DataFrame(
        {
            "patient_id": pts["patient_id"].to_numpy()[owner],
            "drug": np.repeat(drug, fills),
            "fill_date": fill_time,
            "days_supplied": 30,
            "prescriber_hcp_id": pts["pcp_id"].to_numpy()[owner],
        }
    )
    labels = pd.DataFrame(
        {
            "patient_id": pts["patient_id"].to_numpy()[idx],
            "index_fill_date": start,
            "drug": drug,
            "pdc_90d": pdc,
            "nonadherent_90d": (pdc < 0.8).astype(int),
        }
    )
    return meds, labels


def _hcps(
    rng: np.random.Generator, n: int, t0: np.datetime64, days: int
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """HCPs with monthly prescribing; churn (volume falling below half) follows engagement."""
    first, last = _pick(rng, vocab.FIRST_F + vocab.FIRST_M, n), _pick(rng, vocab.LAST, n)
    engagement = rng.normal(0, 1, n)
    competitor = rng.random(n) < 0.3
    base = rng.lognormal(3.2, 0.6, n)
    months = max(2, days // 30)
    churn_p = _sigmoid(-1.6 - 1.1 * engagement + 1.3 * competitor)
    churned = rng.random(n) < churn_p
    trend = np.where(churned, -0.65, 0.05) / months
    month_idx = np.arange(months)
    volume = rng.poisson(np.clip(base[:, None] * (1 + trend[:, None] * month_idx[None, :] * months / 2), 0.1, None))
    hcp_ids = np.asarray([f"H{i:06d}" for i in range(n)], dtype=object)
    hcps = pd.DataFrame(
        {
            "hcp_id": hcp_ids,
            "npi": _digits(rng, n, 10),
            "first_name": first,
            "last_name": last,
            "specialty": _pick(rng, vocab.SPECIALTIES, n),
            "site": _pick(rng, list(SITES), n),
            "emails_opened_90d": np.clip(np.round(rng.poisson(np.exp(1.5 + 0.6 * engagement))), 0, None),
            "competitor_trial_site": competitor,
        }
    )
    edges = pd.date_range(pd.Timestamp(t0), periods=months + 1, freq="MS" if pd.Timestamp(t0).day == 1 else "30D")
    month_start, reported = edges[:-1], edges[1:]  # a month's count is known once the month is over
    activity = pd.DataFrame(
        {
            "hcp_id": np.repeat(hcp_ids, months),
            "month": np.tile(month_start, n),
            "rx_count": volume.ravel(),
            "reported_at": np.tile(reported, n),
        }
    )
    third = max(1, months // 4)
    early, late = volume[:, :third].mean(axis=1), volume[:, -third:].mean(axis=1)
    # Predicted once the first month is reported (index_date), before churners' volume falls;
    # known once the last month is reported (label_available_at).
    churn = pd.DataFrame(
        {
            "hcp_id": hcp_ids,
            "index_date": reported[0],
            "churned": (late < 0.5 * np.maximum(early, 1)).astype(int),
            "label_available_at": reported[-1],
        }
    )
    return hcps, activity, churn


def _notes(rng: np.random.Generator, enc: pd.DataFrame, pts: pd.DataFrame) -> pd.DataFrame:
    """Free text with PHI where real notes have it: names, relatives, dates, phone, MRN."""
    o = enc["_owner"].to_numpy()
    m = len(enc)
    first, last = pts["first_name"].to_numpy()[o], pts["last_name"].to_numpy()[o]
    relative = _pick(rng, vocab.FIRST_F + vocab.FIRST_M, m)
    relation = _pick(rng, vocab.RELATIONS, m)
    admit = pd.Series(enc["admit_time"]).dt.strftime("%m/%d/%Y")
    dx = pd.Series(enc["primary_dx"])
    text = (
        "Pt "
        + pd.Series(first)
        + " "
        + pd.Series(last)
        + " ("
        + pd.Series(pts["mrn"].to_numpy()[o])
        + ") admitted "
        + admit
        + " with "
        + dx
        + ". "
        + pd.Series(relation).str.capitalize()
        + " "
        + pd.Series(relative)
        + " "
        + pd.Series(last)
        + " at bedside, reachable at "
        + pd.Series(pts["phone"].to_numpy()[o])
        + ". DOB "
        + pd.Series(pd.to_datetime(pts["birth_date"]).dt.strftime("%Y-%m-%d").to_numpy()[o])
        + ". Plan: continue home meds, follow up in clinic."
    )
    return pd.DataFrame(
        {
            "note_id": [f"N{i:09d}" for i in range(m)],
            "encounter_id": enc["encounter_id"].to_numpy(),
            "patient_id": enc["patient_id"].to_numpy(),
            "written_at": enc["discharge_time"].to_numpy(),
            "text": text.to_numpy(dtype=object),
        }
    )
