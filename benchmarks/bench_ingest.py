"""Ingest: 1,000,000 rows x 30 columns of CSV through contract + de-identification into a
versioned Parquet dataset, against plain `pandas.read_csv` + `to_parquet` of the same file.

medops side: ``ingest(ws, TablePlan(...))``, what ``medops ingest`` runs (into a fresh
workspace each time, so no run finds the previous one's dataset). pandas sides: its default,
``pd.read_csv(path)`` + ``to_parquet``, and its fastest documented reader,
``read_csv(engine="pyarrow")`` (multithreaded; ``to_parquet`` already writes with pyarrow).
Aims: at most 2x the default pandas time; peak memory bounded by the chunk, not the file
(shown by ingesting a file half the size with the same chunk size, and the full file with
chunks a quarter the size). Each run is its own process, timed inside it after the
interpreter starts, so its peak resident memory is measured alone. Also times the contract
alone against its Pandera schema over pandas (lazy validation, so every failing row is
counted, as the quarantine counts them; Pandera documents no faster mode for the same checks
over pandas frames), and writing the synthetic CSV and FHIR.

The sides run interleaved in a rotating order over ``--rounds`` rounds (``common.interleaved``),
each once untimed first (the CSV in the page cache); medians of the seconds and the highest
peak are reported, with the load average at the start and the end.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.common import interleaved, load_average, print_table, temp_dir, timed

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
    elif kind in ("pandas", "pandas-pyarrow"):
        import pandas as pd

        frame = pd.read_csv(csv) if kind == "pandas" else pd.read_csv(csv, engine="pyarrow")
        frame.to_parquet(out / f"{kind}.parquet", index=False)
        detail = f"{len(frame):,} rows"
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


def _sides(kinds: dict[str, Callable[[], dict[str, Any]]], rounds: int) -> dict[str, dict[str, Any]]:
    """Per side, interleaved: the median seconds, the highest peak and the last detail its worker gave."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in kinds}

    def side(name: str) -> Callable[[], None]:
        return lambda: runs[name].append(kinds[name]())

    interleaved({name: side(name) for name in kinds}, rounds)
    out = {}
    for name, done in runs.items():
        timed_runs = done[1:]  # [0]: the untimed warm-up
        out[name] = {
            "seconds": statistics.median(r["seconds"] for r in timed_runs),
            "peak_mb": max(r["peak_mb"] for r in timed_runs),
            "detail": timed_runs[-1]["detail"],
        }
    return out


def main(argv: list[str] | None = None) -> list[list[Any]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--chunk-rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per comparison (medians)")
    parser.add_argument("--quick", action="store_true", help="200,000 rows, 2 rounds")
    parser.add_argument("--no-synth-write", action="store_true", help="skip timing the synthetic CSV/FHIR writers")
    args = parser.parse_args(argv)
    rows = 200_000 if args.quick else args.rows
    rounds = 2 if args.quick else args.rounds
    from medops.synth import generate, write
    from medops.workspace import init_workspace

    print(f"load average at start: {load_average()}")
    result: list[list[Any]] = []
    with temp_dir("medops-bench-ingest-") as base:
        sizes = [rows // 2, rows]
        fresh = iter(range(1_000_000))
        for n in sizes:
            csv = base / f"wide_{n}.csv"
            t_csv = wide_csv(n, csv)
            mb = csv.stat().st_size / 1e6
            os.environ["MEDOPS_KEY_DIR"] = str(base / "keys")
            chunks = [args.chunk_rows, args.chunk_rows // 4] if n == rows else [args.chunk_rows]
            for chunk_rows in chunks:

                def ours(csv: Path = csv, chunk_rows: int = chunk_rows) -> dict[str, Any]:
                    folder = base / f"ws_{next(fresh)}"  # made before the worker's clock starts, removed after
                    init_workspace(folder, admin_username="admin", admin_full_name="A", admin_password="x" * 16).close()
                    try:
                        return _run("medops", csv, folder, chunk_rows)
                    finally:
                        shutil.rmtree(folder, ignore_errors=True)

                done = _sides(
                    {
                        "medops": ours,
                        "pandas": lambda csv=csv, c=chunk_rows: _run("pandas", csv, base, c),
                        "fastest": lambda csv=csv, c=chunk_rows: _run("pandas-pyarrow", csv, base, c),
                    },
                    rounds,
                )
                med, plain, fast = done["medops"], done["pandas"], done["fastest"]
                assert plain["detail"] == fast["detail"] == f"{n:,} rows", (plain, fast)
                result.append(
                    [
                        f"ingest {n:,} x 30 CSV ({mb:,.0f} MB), chunks of {chunk_rows:,}",
                        f"{med['seconds']:.1f} s, {med['peak_mb']:,.0f} MB peak",
                        f"{plain['seconds']:.1f} s, {plain['peak_mb']:,.0f} MB peak",
                        f"{med['seconds'] / plain['seconds']:.2f}",
                        f"{fast['seconds']:.1f} s, {fast['peak_mb']:,.0f} MB peak",
                        f"{med['seconds'] / fast['seconds']:.2f}",
                        med["detail"],
                    ]
                )
            if n == rows:
                result.append([f"(write that CSV with pandas: {t_csv:.1f} s)", "", "", "", "", "", ""])
                done = _sides(
                    {
                        "sql": lambda csv=csv: _run("contract-sql", csv, base, args.chunk_rows),
                        "pandera": lambda csv=csv: _run("contract-pandera", csv, base, args.chunk_rows),
                    },
                    rounds,
                )
                sql, pandera = done["sql"], done["pandera"]
                result.append(
                    [
                        f"contract only, {n:,} rows: medops SQL vs its Pandera schema",
                        f"{sql['seconds']:.1f} s",
                        f"Pandera {pandera['seconds']:.1f} s",
                        f"{sql['seconds'] / pandera['seconds']:.2f}",
                        "",
                        "",
                        f"{sql['detail']}; Pandera: {pandera['detail']}",
                    ]
                )
        header = [
            "benchmark",
            "medops",
            "pandas read_csv + to_parquet",
            "ratio",
            'read_csv(engine="pyarrow") (fastest)',
            "ratio vs fastest",
            "notes",
        ]
        title = (
            f"ingest (contract + de-id + versioned Parquet), chunk {args.chunk_rows:,} rows, medians of {rounds} rounds"
        )
        if not args.no_synth_write:
            data = generate(max(1000, rows // 1), seed=1)
            n_rows = sum(len(f) for f in data.tables().values())
            t_csv, _ = timed(lambda: write(data, base / "synth_csv", "csv"))
            t_fhir, _ = timed(lambda: write(data, base / "synth_fhir", "fhir"))
            result.append(
                [f"synth write CSV, {rows:,} patients", f"{t_csv:.1f} s ({n_rows:,} rows)", "", "", "", "", ""]
            )
            result.append([f"synth write FHIR NDJSON, {rows:,} patients", f"{t_fhir:.1f} s", "", "", "", "", ""])
    print_table(title, header, result)
    print(
        "pandas: default = read_csv (C engine) + to_parquet; fastest documented = read_csv(engine='pyarrow'), "
        "multithreaded. Pandera: lazy validation over pandas (its default stops at the first failing check)"
    )
    print(f"load average at end: {load_average()}")
    return result


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        kind, csv, out, chunk = sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]), int(sys.argv[5])
        print(json.dumps(_worker(kind, csv, out, chunk)))
    else:
        main()
