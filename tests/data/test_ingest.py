"""Ingest end to end: versions by content, quarantine, lineage, audit, no PHI, bad input."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from medops.audit import AuditFilter, list_events
from medops.data import datasets
from medops.data.contracts import load_contract
from medops.data.deid import Pseudonymizer
from medops.data.duck_connections import duck
from medops.data.ingest import IngestResult, TablePlan, ingest
from medops.data.sources import CsvSource, FhirNdjsonSource
from medops.errors import InvalidInput, PermissionDenied, SourceError
from medops.services.projects import LoadedProject, load_project
from medops.services.projects.ingest import table_plan
from medops.services.projects.templates import scaffold
from medops.store.lineage import walk
from medops.synth import vocab
from medops.workspace import Workspace

KEY = "pseudonym-key-for-tests-0123456789abcdef"
NOW = pd.Timestamp("2026-06-01", tz="UTC")


@pytest.fixture(scope="module")
def project_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("project")
    scaffold(folder, "readmission", patients=1500, seed=11)
    return folder


@pytest.fixture
def project(project_dir: Path, monkeypatch: pytest.MonkeyPatch) -> LoadedProject:
    monkeypatch.setenv("MEDOPS_PSEUDONYM_KEY", KEY)
    return load_project(project_dir / "medops.yaml")


def _artifacts(ws: Workspace) -> set[str]:
    return set(ws.artifacts.digests())


def _ingest_all(ws: Workspace, project: LoadedProject, **kw: object) -> dict[str, IngestResult]:
    return {
        name: ingest(ws, table_plan(project, name), now=NOW, **{"actor": "admin", **kw})
        for name in project.spec.sources
    }  # type: ignore[arg-type]


def test_ingest_versions_quarantine_lineage_and_audit(workspace: Workspace, project: LoadedProject) -> None:
    results = _ingest_all(workspace, project)
    obs = results["observations"]
    assert obs.new and obs.dataset.contract_result == "quarantined" and obs.quarantine is not None
    assert obs.validation is not None and obs.validation.normalized == {}  # baseline: no F temperatures
    bad = pd.read_parquet(workspace.artifacts.local_path(obs.quarantine.version))
    assert len(bad) == obs.quarantine.rows == obs.validation.rows_failed > 0
    assert set(bad["_reasons"]) <= {"rule: temperature 30-45 C", "rule: heart rate 20-300 /min"}
    assert bad["patient_id"].str.startswith("pat_").all()  # quarantined rows are de-identified too
    samples = obs.dataset.details["contract"]["rules"][0]["samples"]
    assert samples and all(s["patient_id"].startswith("pat_") and s["_row"] >= 1 for s in samples)
    good = pd.read_parquet(workspace.artifacts.local_path(obs.dataset.version))
    assert len(good) + len(bad) == obs.validation.rows
    # the profile describes the stored data
    profile = obs.dataset.profile["value"]
    assert profile["count"] == good["value"].notna().sum()
    assert profile["max"] == pytest.approx(good["value"].max())
    assert set(obs.dataset.profile["code"]["distinct"] for _ in [0]) == {good["code"].nunique()}

    before = _artifacts(workspace)
    again = ingest(workspace, table_plan(project, "observations"), now=NOW, chunk_rows=997, actor="admin")
    assert not again.new and again.dataset.version == obs.dataset.version
    assert again.quarantine is not None and again.quarantine.version == obs.quarantine.version
    assert _artifacts(workspace) == before  # nothing new stored
    assert len(datasets.list_versions(workspace.db, "observations")) == 1

    edges = walk(workspace.db, obs.dataset.node, "up")
    assert [(e.src.split(":")[0], e.relation) for e in edges] == [("file", "ingest")]
    assert edges[0].attrs["source"].endswith("observations.csv")
    down = walk(workspace.db, edges[0].src, "down")
    assert {e.relation for e in down} == {"ingest", "quarantine"}
    notes_up = walk(workspace.db, results["notes"].dataset.node, "up")
    assert {e.relation for e in notes_up} == {"ingest", "redaction_names"}

    events = list_events(workspace.db, AuditFilter(action="dataset.ingest"), limit=50)
    assert len(events) == len(project.spec.sources) + 1
    assert workspace.verify_audit().ok


def test_ingest_needs_a_role(team: Workspace, project: LoadedProject) -> None:
    team.users.add("admin", "otto", "Otto Auditor", "test-password-0123", [])
    with pytest.raises(PermissionDenied):
        ingest(team, table_plan(project, "encounters"), actor="otto", now=NOW)
    assert datasets.list_versions(team.db) == []
    assert list_events(team.db, AuditFilter(action="dataset.ingest.denied"), limit=5)
    assert ingest(team, table_plan(project, "encounters"), actor="alice", now=NOW).new


def _cells(frame: pd.DataFrame) -> str:
    return "\n".join(frame.astype("string").fillna("").to_numpy().ravel().tolist())


# What is stored is the de-identified Parquet, the same bytes whatever holds the metadata: one backend
# shows it (the PostgreSQL path of the same ingest is the test above).
@pytest.mark.parametrize("metadata_url", ["sqlite"], indirect=True)
def test_no_phi_survives_and_pseudonyms_are_stable(
    workspace: Workspace, project: LoadedProject, project_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = _ingest_all(workspace, project)
    stored = [r.dataset for r in results.values()] + [r.quarantine for r in results.values() if r.quarantine]
    cells = "\n".join(_cells(pd.read_parquet(workspace.artifacts.local_path(d.version))) for d in stored)
    raw = {name: pd.read_csv(project_dir / "raw" / f"{name}.csv", dtype=str) for name in ("patients", "encounters")}
    pts = raw["patients"]
    for column in ("mrn", "ssn", "phone", "email", "address", "patient_id"):
        leaked = [v for v in pts[column] if v in cells]
        assert not leaked, (column, leaked[:3])
    words = set(re.findall(r"[A-Za-z][A-Za-z'-]+", cells))
    assert not words & set(vocab.FIRST_F + vocab.FIRST_M + vocab.LAST)
    assert not [v for v in pts["birth_date"] if v in cells]  # birth dates are reduced to the year
    assert not re.search(r"\d{1,2}/\d{1,2}/\d{4}", cells)  # note dates are redacted

    # every stay's dates are shifted (never by 0 days) and its length is kept
    enc = pd.read_parquet(workspace.artifacts.local_path(results["encounters"].dataset.version))
    raw_enc = raw["encounters"]
    pseudo = Pseudonymizer(KEY.encode())
    stored = enc.set_index("encounter_id").loc[[pseudo.one(e, "encounter_id") for e in raw_enc["encounter_id"]]]
    admit = stored["admit_time"].dt.tz_convert(None).to_numpy()
    raw_admit = pd.to_datetime(raw_enc["admit_time"]).dt.tz_localize(None).to_numpy()
    assert (admit != raw_admit).all()
    raw_len = pd.to_datetime(raw_enc["discharge_time"]) - pd.to_datetime(raw_enc["admit_time"])
    assert ((stored["discharge_time"] - stored["admit_time"]).to_numpy() == raw_len.to_numpy()).all()

    # another key: other pseudonyms, other version; the same key elsewhere: the same bytes
    monkeypatch.setenv("MEDOPS_PSEUDONYM_KEY", "another-key-for-tests-0123456789abcdef")
    other = ingest(workspace, table_plan(project, "patients"), now=NOW, actor="admin")
    assert other.new and other.dataset.version != results["patients"].dataset.version
    ids_a = set(pd.read_parquet(workspace.artifacts.local_path(results["patients"].dataset.version))["patient_id"])
    ids_b = set(pd.read_parquet(workspace.artifacts.local_path(other.dataset.version))["patient_id"])
    assert not ids_a & ids_b
    assert other.dataset.details["deid"]["key_id"] != results["patients"].dataset.details["deid"]["key_id"]


def test_same_data_same_version_in_another_workspace(
    workspace: Workspace, project: LoadedProject, tmp_path: Path
) -> None:
    from medops.workspace import init_workspace

    first = ingest(workspace, table_plan(project, "encounters"), now=NOW, actor="admin")
    other = init_workspace(tmp_path / "other", admin_username="admin", admin_full_name="A", admin_password="x" * 16)
    with other:
        second = ingest(other, table_plan(project, "encounters"), now=NOW, chunk_rows=333, actor="admin")
    assert second.dataset.version == first.dataset.version


def _plan(path: Path, **kw: object) -> TablePlan:
    header = path.read_bytes().split(b"\n", 1)[0].decode("utf-8", "replace").split(",") if path.exists() else []
    actions = {c.strip(): "keep" for c in header if c.strip()}
    return TablePlan("bad", CsvSource(path), actions, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"a,b\n1,2\n3\n", "line 3: expected 2 fields, found 1"),
        (b"a;b\n1;2\n", "wrong delimiter"),
        (b"a,b\n1,\xff\xfe\n", "line 2: not UTF-8"),
        (b"", "the file is empty"),
        (b"a,b\n", "no data rows"),
    ],
)
def test_bad_csv_writes_nothing(workspace: Workspace, tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(content)
    before = _artifacts(workspace)
    with pytest.raises(InvalidInput, match=re.escape(message)) as info:
        ingest(workspace, _plan(path), actor="admin")
    assert str(path) in str(info.value)
    assert datasets.list_versions(workspace.db) == [] and _artifacts(workspace) == before
    assert not list((Path(workspace.settings.artifact_root) / ".tmp").glob("*"))


def test_other_bad_inputs_write_nothing(workspace: Workspace, project: LoadedProject, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file"):
        ingest(workspace, _plan(tmp_path / "missing.csv"), actor="admin")
    nd = tmp_path / "p.ndjson"
    nd.write_text('{"resourceType": "Patient", "id": "1"}\n{"resourceType": \n', encoding="utf-8")
    with pytest.raises(SourceError, match=r"p.ndjson, line 2: not valid JSON"):
        ingest(workspace, TablePlan("p", FhirNdjsonSource(nd, "Patient"), {}), actor="admin")
    nd.write_text('{"resourceType": "Observation", "id": "1"}\n', encoding="utf-8")
    with pytest.raises(SourceError, match="resourceType is 'Observation', expected 'Patient'"):
        ingest(workspace, TablePlan("p", FhirNdjsonSource(nd, "Patient"), {}), actor="admin")
    # a column without a de-identification action stops the ingest, naming it
    plan = table_plan(project, "encounters")
    plan.actions.pop("primary_dx")
    with pytest.raises(InvalidInput, match="column 'primary_dx' has no de-identification action"):
        ingest(workspace, plan, now=NOW, actor="admin")
    # a required column missing from the data
    path = tmp_path / "enc.csv"
    pd.read_csv(project.folder / "raw" / "encounters.csv", dtype=str).drop(columns=["admit_time"]).to_csv(
        path, index=False
    )
    plan = table_plan(project, "encounters")
    plan.source = CsvSource(path)
    with pytest.raises(InvalidInput, match="required column 'admit_time' is missing"):
        ingest(workspace, plan, now=NOW, actor="admin")
    # free text with PHI fails when the project says so, naming the row
    plan = table_plan(project, "notes")
    plan.text_phi = "fail"
    with pytest.raises(InvalidInput, match=r"column 'text', row 1: free text holds PHI"):
        ingest(workspace, plan, now=NOW, actor="admin")
    assert datasets.list_versions(workspace.db) == []
    assert list(workspace.artifacts.digests()) == []


def test_a_fail_contract_stops_the_ingest(workspace: Workspace, project: LoadedProject, tmp_path: Path) -> None:
    labels = pd.read_csv(project.folder / "raw" / "outcome_readmission_30d.csv", dtype=str)
    labels.loc[7, "readmitted_30d"] = "2"
    path = tmp_path / "labels.csv"
    labels.to_csv(path, index=False)
    plan = table_plan(project, "readmission_labels")
    plan.source = CsvSource(path)
    assert plan.contract is not None and load_contract(Path(str(plan.contract_file))).on_failure == "fail"
    with pytest.raises(InvalidInput, match="row 8 breaks readmitted_30d: allowed values"):
        ingest(workspace, plan, now=NOW, actor="admin")
    assert datasets.list_versions(workspace.db) == []


def test_a_version_recorded_meanwhile_by_another_ingest_is_unchanged(
    workspace: Workspace, project: LoadedProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two ingests of the same data can both find the version missing before either commits
    (PostgreSQL, read committed); the loser's insert fails and it records again, as unchanged."""
    import medops.data.ingest as ingest_module

    plan = table_plan(project, "patients")
    first = ingest(workspace, plan, now=NOW, actor="admin")
    real = ingest_module._stored
    calls: list[bool] = []

    def missed_once(session, record):  # type: ignore[no-untyped-def]
        calls.append(True)
        return False if len(calls) == 1 else real(session, record)

    monkeypatch.setattr(ingest_module, "_stored", missed_once)
    second = ingest(workspace, plan, now=NOW, actor="admin")
    assert not second.new and second.dataset.version == first.dataset.version and len(calls) >= 2
    assert [v.version for v in datasets.list_versions(workspace.db, "patients")] == [first.dataset.version]
    events = list_events(workspace.db, AuditFilter(action="dataset.ingest"), newest_first=False)
    assert [e.after["unchanged"] for e in events] == [False, True]
    assert workspace.verify_audit().ok


def test_ingest_leaves_no_working_files(workspace: Workspace, project: LoadedProject) -> None:
    people = ingest(workspace, table_plan(project, "patients"), now=NOW, actor="admin")  # k-anonymity over people
    assert people.deid.k_counts == "patients"
    ingest(workspace, table_plan(project, "observations"), now=NOW, actor="admin")  # unique keys, a quarantine
    temp = Path(workspace.artifacts.root) / ".tmp"
    assert not temp.exists() or not any(temp.iterdir())
    databases = duck(workspace)  # contract, de-identification and profile drew on the workspace's two
    assert databases.opened == 2
    with databases.reader() as con:  # the keys and people files were detached, not only removed
        attached = con.execute("SELECT database_name FROM duckdb_databases() WHERE NOT internal").fetchall()
    assert attached == [("memory",)]


def test_a_quarantine_sample_shows_the_failing_value_and_the_key_but_never_an_identifier(
    workspace: Workspace, tmp_path: Path
) -> None:
    from medops.data.contracts import ContractSpec

    path = tmp_path / "labs.csv"
    path.write_text("patient_id,ssn,albumin\nP1,123-45-6789,3.5\nP2,12-x,3.4\nP3,987-65-4320,abc\n")
    spec = ContractSpec.model_validate(
        {
            "table": "labs",
            "columns": {
                "patient_id": {"nullable": False},
                "ssn": {"type": "string", "allowed": ["123-45-6789", "987-65-4320"]},
                "albumin": {"type": "float"},
            },
        }
    )
    actions = {"patient_id": "pseudonymize", "ssn": "drop", "albumin": "keep"}
    result = ingest(workspace, TablePlan("labs", CsvSource(path), actions, spec), actor="admin")
    rules = {r["rule"]: r["samples"] for r in result.dataset.details["contract"]["rules"]}
    [albumin] = rules["albumin: not a float"]
    assert albumin["_value"] == "abc" and albumin["_key"]["patient_id"].startswith("pat_") and albumin["_row"] == 3
    [ssn] = rules["ssn: allowed values"]
    assert ssn["_value"] == "(withheld: the column is de-identified)" and "12-x" not in str(result.dataset.details)


def test_ingesting_earlier_content_again_makes_it_current_and_a_version_can_be_pinned(
    team: Workspace, tmp_path: Path
) -> None:
    from medops.data.datasets import use

    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    good.write_text("patient_id,x\nP1,1\nP2,2\n")
    bad.write_text("patient_id,x\nP1,1\n")  # a truncated extract
    actions = {"patient_id": "pseudonymize", "x": "keep"}
    first = ingest(team, TablePlan("t", CsvSource(good), actions), actor="alice").dataset
    second = ingest(team, TablePlan("t", CsvSource(bad), actions), actor="alice").dataset
    assert datasets.get(team.db, "t").version == second.version
    again = ingest(team, TablePlan("t", CsvSource(good), actions), actor="alice")
    assert not again.new and datasets.get(team.db, "t").version == first.version  # current again, nothing new
    use(team, f"t@{second.version[:8]}", actor="alice", reason="compare")
    assert datasets.get(team.db, "t").version == second.version == datasets.current_versions(team.db)["t"]
    with pytest.raises(PermissionDenied):
        use(team, f"t@{first.version[:8]}", actor="carol", reason="not hers to decide")
    with pytest.raises(InvalidInput, match="names no version"):
        use(team, "t", actor="alice")
    events = list_events(team.db, AuditFilter(action="dataset.use"), limit=None)
    assert len(events) == 1 and events[0].before == {"version": first.version}
