"""The project file: the template is valid; every mistake is named with its line and field."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from medops.data.sources import CsvSource, FhirNdjsonSource, SqlSource
from medops.errors import Conflict, InvalidInput
from medops.services.projects import ProjectError, find_project, load_project
from medops.services.projects.ingest import table_plan
from medops.services.projects.templates import TEMPLATES_DIR, scaffold

TEMPLATE = (TEMPLATES_DIR / "readmission" / "medops.yaml").read_text(encoding="utf-8")


def _project(tmp_path: Path, text: str) -> Path:
    (tmp_path / "contracts").mkdir(exist_ok=True)
    for contract in (TEMPLATES_DIR / "readmission" / "contracts").iterdir():
        (tmp_path / "contracts" / contract.name).write_bytes(contract.read_bytes())
    path = tmp_path / "medops.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _line(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), start=1) if needle in line)


def test_the_template_is_valid_and_plans_every_source(tmp_path: Path) -> None:
    loaded = load_project(_project(tmp_path, TEMPLATE))
    assert loaded.spec.name == "readmission_30d" and len(loaded.sha256) == 64
    assert set(loaded.contracts) == {"patients", "encounters", "observations", "medications", "readmission_labels"}
    notes = table_plan(loaded, "notes")
    assert notes.names is not None and notes.names.columns == ("first_name", "last_name")
    assert isinstance(notes.source, CsvSource) and notes.source.path == tmp_path / "raw" / "notes.csv"
    assert table_plan(loaded, "patients").names is None  # the names source needs no lookup of itself
    assert find_project(tmp_path / "contracts") == tmp_path / "medops.yaml"


@pytest.mark.parametrize(
    ("change", "needle", "message"),
    [
        (("\nowner: alice", "\nowner: alice\nowners: bob"), "owners: bob", "owners: unknown field"),
        (
            ("      source: observations", "      source: labz"),
            "source: labz",
            "features.views.labs.source: there is no source 'labz'",
        ),
        (
            ("admissions_365d: {agg: count,", "admissions_365d: {agg: cnt,"),
            "agg: cnt",
            "features.views.admissions.features.admissions_365d.agg: Input should be",
        ),
        (
            (
                "pdc_90d: {expr: days_supplied, agg: coverage, window: 90d,",
                "pdc_90d: {expr: days_supplied, agg: coverage,",
            ),
            "pdc_90d:",
            "features.views.fills.features.pdc_90d: window: required for agg coverage",
        ),
        (
            (
                "      ttl: 365d\n      owner: alice\n      description: Vital",
                "      ttl: 1 year\n      owner: alice\n      description: Vital",
            ),
            "ttl: 1 year",
            "features.views.labs.ttl: '1 year' is not a duration",
        ),
        (
            ("        mrn: drop", "        mrn: dorp"),
            "mrn: dorp",
            "deidentify.tables.patients.columns.mrn: unknown action 'dorp'",
        ),
        (
            ("  notes: {path: raw/notes.csv}", "  notes: {path: raw/notes.txt}"),
            "raw/notes.txt",
            "can't tell the format",
        ),
        (("name: readmission_30d", "name: Readmission 30d"), "name: Readmission", "name: String should match pattern"),
        (
            ("  medications: contracts/medications.yaml", "  meds: contracts/medications.yaml"),
            "meds:",
            "contracts.meds: there is no source 'meds'",
        ),
        (("  notes: {path: raw/notes.csv}\n", ""), "    notes:", "deidentify.tables.notes: there is no source 'notes'"),
        (
            ("      text_phi: redact", "      text_phi: maybe"),
            "text_phi: maybe",
            "text_phi: Input should be 'redact' or 'fail'",
        ),
        (
            ("      auroc: {min: 0.5, check: ci_lower}", "      auroc_pr: {min: 0.5, check: ci_lower}"),
            "auroc_pr:",
            "evaluate.policy.metrics.auroc_pr: unknown metric",
        ),
        (
            ("attributes: [sex, race_ethnicity, site]}", "attributes: [sex, religion]}"),
            "religion",
            "evaluate.policy.subgroup_gaps.equalized_odds.attributes: 'religion' is not a declared attribute",
        ),
        (
            ("threshold: {target_sensitivity: 0.6}", "threshold: {value: 1.5}"),
            "value: 1.5",
            "evaluate.threshold.value: Input should be less than or equal to 1",
        ),
        (
            ("      sensitivity: {min: 0.5}", "      sensitivity: {min: 50}"),
            "min: 50",
            "evaluate.policy.metrics.sensitivity: a bound outside [0, 1]",
        ),
        (
            ("intersections: [[sex, age_band]]", "intersections: [[sex, ward]]"),
            "ward",
            "evaluate.subgroups.intersections.0: 'ward' is not a declared attribute",
        ),
        (
            ("  encounters: contracts/encounters.yaml", "  encounters: contracts/patients.yaml"),
            "  encounters: contracts/patients.yaml",
            "contracts.encounters: contracts/patients.yaml is the contract of table 'patients', not of source",
        ),
        (
            ("split: {kind: grouped, group: patient_id, test_size: 0.25}", "split: {kind: period, cutoff: 2019-01-01}"),
            "split: {kind: period",
            "a period split's cutoff is a number such as 2019",
        ),
        (
            ("{source: patients}", "{source: census}"),
            "census",
            "evaluate.subgroups.attributes.race_ethnicity.source: there is no source 'census'",
        ),
    ],
)
def test_mistakes_name_line_and_field(tmp_path: Path, change: tuple[str, str], needle: str, message: str) -> None:
    text = TEMPLATE.replace(*change)
    assert text != TEMPLATE
    with pytest.raises(ProjectError) as info:
        load_project(_project(tmp_path, text))
    assert message in str(info.value)
    assert f"medops.yaml, line {_line(text, needle)}:" in str(info.value)


def test_missing_sections_yaml_errors_and_contract_typos(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match="intended_use: required field is missing"):
        load_project(_project(tmp_path, "name: x\npopulation: adults here\nsources: {}\ndeidentify: {tables: {}}\n"))
    with pytest.raises(ProjectError, match=r"line 2: "):
        load_project(_project(tmp_path, "name: x\n  bad: [\n"))
    with pytest.raises(ProjectError, match="no project file"):
        load_project(tmp_path / "nothing.yaml")
    path = _project(tmp_path, TEMPLATE)
    contract = tmp_path / "contracts" / "encounters.yaml"
    contract.write_text(
        contract.read_text().replace("nullable: false, unique", "nulable: false, unique"), encoding="utf-8"
    )
    with pytest.raises(ProjectError) as info:
        load_project(path)
    assert "contracts.encounters" in str(info.value) and "encounters.yaml" in str(info.value)
    assert "columns.encounter_id.nulable: unknown field" in str(info.value)
    assert f"line {_line(TEMPLATE, '  encounters: contracts/encounters.yaml')}" in str(info.value)


def test_source_kinds(tmp_path: Path) -> None:
    text = TEMPLATE.replace(
        "  notes: {path: raw/notes.csv}", "  notes: {path: raw/notes.ndjson, resource: Patient}"
    ).replace("  medications: {path: raw/medications.csv}", "  medications: {url: 'sqlite:///x.db', query: select 1}")
    loaded = load_project(_project(tmp_path, text))
    assert isinstance(loaded.source("notes"), FhirNdjsonSource)
    assert isinstance(loaded.source("medications"), SqlSource)
    with pytest.raises(InvalidInput, match="no source 'nope'"):
        loaded.source("nope")
    bad = TEMPLATE.replace("  notes: {path: raw/notes.csv}", "  notes: {path: raw/notes.ndjson}")
    with pytest.raises(ProjectError, match="a fhir source needs resource"):
        load_project(_project(tmp_path, bad))


def test_scaffold_refuses_to_overwrite(tmp_path: Path) -> None:
    files = scaffold(tmp_path / "p", "readmission", patients=50, seed=1)
    assert (tmp_path / "p" / "raw" / "patients.csv") in files
    load_project(tmp_path / "p" / "medops.yaml")
    with pytest.raises(Conflict):
        scaffold(tmp_path / "p", "readmission", patients=50)
    with pytest.raises(InvalidInput, match="unknown template"):
        scaffold(tmp_path / "q", "sepsis")


def test_features_in_a_file_of_their_own(tmp_path: Path) -> None:
    head, _, rest = TEMPLATE.partition("\nfeatures:\n")
    section = re.match(r"(?:[ #][^\n]*\n|\n)*", rest).group(0)  # type: ignore[union-attr]
    tail = rest[len(section) :]
    path = _project(tmp_path, head + "\nfeatures_file: features.yaml\n" + tail)
    (tmp_path / "features.yaml").write_text(textwrap.dedent(section))
    loaded = load_project(path)
    assert set(loaded.features.views) == {"admissions", "labs", "fills", "demographics"}
    assert set(loaded.features.on_demand) == {"age_years"}
    broken = (tmp_path / "features.yaml").read_text().replace("source: observations", "source: labz")
    (tmp_path / "features.yaml").write_text(broken)
    with pytest.raises(ProjectError) as info:
        load_project(path)
    assert "features.yaml, line " in str(info.value) and "views.labs.source: there is no source 'labz'" in str(
        info.value
    )
    with pytest.raises(ProjectError, match="give features here or in a features file, not both"):
        load_project(_project(tmp_path, TEMPLATE + "\nfeatures_file: features.yaml\n"))


def test_the_template_module_names_the_same_project_file() -> None:
    from medops.services.projects.project import PROJECT_FILE
    from medops.services.projects.templates import PROJECT_FILE as TEMPLATE_FILE

    assert TEMPLATE_FILE == PROJECT_FILE
