"""Ingest: 1,000,000 rows x 30 columns of CSV through contract + de-identification into a
versioned Parquet dataset, against plain `pandas.read_csv` + `to_parquet` of the same file.

Aims: at most 2x the pandas time; peak memory bounded by the chunk, not the file (shown by
ingesting a file half the size with the same chunk size, and the full file with chunks a
quarter the size). Each run is its own process, so its peak resident memory is measured
alone. Also times the contract alone against its Pandera schema, and writing the synthetic
CSV and FHIR.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import print_table, temp_dir, timed

KEY = "benchmark-pseudonym-key-0123456789abcdef"
CONTRACT = """
table: wide_encounters
version: 1
on_failure: quarantine
columns:
  encounter_id: {type: string, nullable: false, unique: true}
  patient_id: {type: string, nullable: false}
  mrn: {type: string}
  ssn: {type: string}
  first_name: {type: string}
  last_name: {type: string}
  sex: {type: string, allowed: [F, M]}
  birth_date: {type: datetime, nullable: false}
  race_ethnicity: {type: string}
  address: {type: string}
  city: {type: string}
  state: {type: string}
  zip: {type: string}
  phone: {type: string}
  email: {type: string}
  payer: {type: string}
  home_site: {type: string, allowed: [north, south]}
  pcp_id: {type: string}
  site: {type: string, allowed: [north, south]}
  admit_time: {type: datetime, nullable: false}
  discharge_time: {type: datetime, nullable: false}
  length_of_stay_days: {type: float, range: [0, 365]}
  primary_dx: {type: string, allowed: [I50.9, E11.9, J44.1, N18.3, I10, J18.9, A41.9]}
  attending_hcp_id: {type: string}
  temperature: {type: float}
  temperature_unit: {type: string, allowed: [C, F]}
  temperature_method: {type: string}
  heart_rate: {type: float}
  hba1c: {type: float}
  creatinine: {type: float}
normalize:
  - name: temperature F to C
    when: "temperature_unit == 'F'"
    set: {temperature: "(temperature - 32) * 5 / 9", temperature_unit: "'C'"}
rules:
  - {name: discharge after admit, expr: "discharge_time >= admit_time"}
  - {name: temperature 30-45 C, expr: "temperature >= 30 and temperature <= 45"}
  - {name: heart rate 20-300, expr: "heart_rate >= 20 and heart_rate <= 300"}
"""
ACTIONS = {
    "encounter_id": "pseudonymize",
    "patient_id": "pseudonymize",
    "mrn": "drop",
    "ssn": "drop",
    "first_name": "drop",
    "last_name": "drop",
    "sex": "keep",
    "birth_date": "year",
    "race_ethnicity": "keep",
    "address": "drop",
    "city": "drop",
    "state": "keep",
    "zip": "zip3",
    "phone": "drop",
    "email": "drop",
    "payer": "keep",
    "home_site": "keep",
    "pcp_id": "pseudonymize:hcp",
    "site": "keep",
    "admit_time": "shift_dates",
    "discharge_time": "shift_dates",
    "length_of_stay_days": "keep",
    "primary_dx": "keep",
    "attending_hcp_id": "pseudonymize:hcp",
    "temperature": "keep",
    "temperature_unit": "keep",
    "temperature_method": "keep",
    "heart_rate": "keep",
    "hba1c": "keep",
    "creatinine": "keep",
}


def wide_csv(rows: int, path: Path) -> float:
    """Encounters joined with their patient and vitals: 30 columns of realistic, PHI-laden CSV."""
    import pandas as pd

    from medops.synth import generate

    data = generate(max(1000, int(rows / 1.7)), seed=3, scenario="unit_change")
    enc = data.encounters.merge(data.patients, on="patient_id")
    obs = data.observations.pivot_table(index="encounter_id", columns="code", values="value", aggfunc="first")
    temp = data.observations[data.observations["code"] == "temperature"].set_index("encounter_id")
    enc = enc.join(obs, on="encounter_id").join(
        temp[["unit", "method"]].rename(columns={"unit": "temperature_unit", "method": "temperature_method"}),
        on="encounter_id",
    )
    enc = enc[list(ACTIONS)]
    while len(enc) < rows:  # top up with renamed copies when the draw fell short
        extra = enc.head(rows - len(enc)).copy()
        extra["encounter_id"] = extra["encounter_id"] + f"-{len(enc)}"
        enc = pd.concat([enc, extra], ignore_index=True)
    enc = enc.head(rows)
    seconds, _ = timed(lambda: enc.to_csv(path, index=False, date_format="%Y-%m-%dT%H:%M:%SZ"))
    return seconds


def _contract_only(kind: str, csv: Path, chunk_rows: int) -> str:
    """The contract alone, chunk by chunk: medops's SQL over Arrow, or its Pandera schema over pandas."""
    import pandas as pd
    import yaml
    from pandera.errors import SchemaErrors

    from medops.data.contracts import Contract, ContractSpec
    from medops.data.sources import CsvSource

    contract = Contract(ContractSpec.model_validate(yaml.safe_load(CONTRACT)))
    source, failed = CsvSource(csv), 0
    if kind == "contract-sql":
        for table in source.tables(chunk_rows):
            failed += contract.apply(table).quarantined.num_rows
        return f"{failed:,} rows failed"
    schema = contract.pandera_schema()
    types = {n: c.type for n, c in contract.spec.columns.items()}
    for frame in source.chunks(chunk_rows):
        for name, kind_ in types.items():
            blank = frame[name].str.strip().eq("")
            if kind_ == "float":
                frame[name] = pd.to_numeric(frame[name].mask(blank), errors="coerce").astype("Float64")
            elif kind_ == "datetime":
                frame[name] = pd.to_datetime(frame[name].mask(blank), errors="coerce", utc=True, format="ISO8601")
            else:
                frame[name] = frame[name].mask(blank).astype("string")
        unit_f = frame["temperature_unit"] == "F"
        frame.loc[unit_f, "temperature"] = (frame.loc[unit_f, "temperature"] - 32) * 5 / 9
        frame.loc[unit_f, "temperature_unit"] = "C"
        try:
            schema.validate(frame, lazy=True)
        except SchemaErrors as exc:
            failed += exc.failure_cases["index"].nunique()
    return f"{failed:,} rows failed (no uniqueness check)"


def _worker(kind: str, csv: Path, out: Path, chunk_rows: int) -> dict[str, Any]:
    start = time.perf_counter()
    if kind.startswith("contract-"):
        detail = _contract_only(kind, csv, chunk_rows)
    elif kind == "pandas":
        import pandas as pd

        pd.read_csv(csv).to_parquet(out / "plain.parquet", index=False)
        detail = ""
    else:
        os.environ["MEDOPS_PSEUDONYM_KEY"] = KEY
        import pandas as pd
        import yaml

        from medops.data.contracts import ContractSpec
        from medops.data.ingest import TablePlan, ingest
        from medops.data.sources import CsvSource
        from medops.workspace import Workspace

        contract = ContractSpec.model_validate(yaml.safe_load(CONTRACT))
        plan = TablePlan("wide_encounters", CsvSource(csv), ACTIONS, contract=contract)
        with Workspace.open(out) as ws:
            result = ingest(ws, plan, chunk_rows=chunk_rows, now=pd.Timestamp("2026-01-01", tz="UTC"), actor="admin")
        quarantined = result.quarantine.rows if result.quarantine else 0
        detail = f"{result.dataset.rows:,} rows stored, {quarantined:,} quarantined"
    seconds = time.perf_counter() - start
    peak_mb = _peak_rss_mb()
    return {"seconds": seconds, "peak_mb": peak_mb, "detail": detail}


def _peak_rss_mb() -> float:
    """This process's own high-water mark (VmHWM); ru_maxrss would include the parent's, before exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run(kind: str, csv: Path, out: Path, chunk_rows: int) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_ingest", "--worker", kind, str(csv), str(out), str(chunk_rows)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{kind} worker failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> list[list[Any]]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--chunk-rows", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="200,000 rows")
    parser.add_argument("--no-synth-write", action="store_true", help="skip timing the synthetic CSV/FHIR writers")
    args = parser.parse_args(argv)
    rows = 200_000 if args.quick else args.rows
    from medops.synth import generate, write
    from medops.workspace import init_workspace

    result: list[list[Any]] = []
    with temp_dir("medops-bench-ingest-") as base:
        sizes = [rows // 2, rows]
        for n in sizes:
            csv = base / f"wide_{n}.csv"
            t_csv = wide_csv(n, csv)
            mb = csv.stat().st_size / 1e6
            os.environ["MEDOPS_KEY_DIR"] = str(base / "keys")
            chunks = [args.chunk_rows, args.chunk_rows // 4] if n == rows else [args.chunk_rows]
            for chunk_rows in chunks:
                folder = base / f"ws_{n}_{chunk_rows}"
                init_workspace(folder, admin_username="admin", admin_full_name="A", admin_password="x" * 16).close()
                plain = _run("pandas", csv, base, chunk_rows)
                ours = _run("medops", csv, folder, chunk_rows)
                result.append(
                    [
                        f"ingest {n:,} x 30 CSV ({mb:,.0f} MB), chunks of {chunk_rows:,}",
                        f"{ours['seconds']:.1f} s, {ours['peak_mb']:,.0f} MB peak",
                        f"{plain['seconds']:.1f} s, {plain['peak_mb']:,.0f} MB peak",
                        f"{ours['seconds'] / plain['seconds']:.2f}",
                        ours["detail"],
                    ]
                )
            if n == rows:
                result.append([f"(write that CSV with pandas: {t_csv:.1f} s)", "", "", "", ""])
                sql = _run("contract-sql", csv, base, args.chunk_rows)
                pandera = _run("contract-pandera", csv, base, args.chunk_rows)
                result.append(
                    [
                        f"contract only, {n:,} rows: medops SQL vs its Pandera schema",
                        f"{sql['seconds']:.1f} s",
                        f"Pandera {pandera['seconds']:.1f} s",
                        f"{sql['seconds'] / pandera['seconds']:.2f}",
                        f"{sql['detail']}; Pandera: {pandera['detail']}",
                    ]
                )
        if args.no_synth_write:
            print_table("ingest", ["benchmark", "medops", "pandas read_csv + to_parquet", "ratio", "notes"], result)
            return result
        data = generate(max(1000, rows // 1), seed=1)
        n_rows = sum(len(f) for f in data.tables().values())
        t_csv, _ = timed(lambda: write(data, base / "synth_csv", "csv"))
        t_fhir, _ = timed(lambda: write(data, base / "synth_fhir", "fhir"))
        result.append([f"synth write CSV, {rows:,} patients", f"{t_csv:.1f} s ({n_rows:,} rows)", "", "", ""])
        result.append([f"synth write FHIR NDJSON, {rows:,} patients", f"{t_fhir:.1f} s", "", "", ""])
    print_table(
        f"ingest (contract + de-id + versioned Parquet), chunk {args.chunk_rows:,} rows",
        ["benchmark", "medops", "pandas read_csv + to_parquet", "ratio", "notes"],
        result,
    )
    return result


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        kind, csv, out, chunk = sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]), int(sys.argv[5])
        print(json.dumps(_worker(kind, csv, out, chunk)))
    else:
        main()
